"""The local executor's thread handling: a cell run here under ``--workers N`` gets a worker's
threads, torch's and numba's alike, and the caller's counts come back afterwards."""

from __future__ import annotations

import numba
import torch

from topoprune.experiments.executors import LocalExecutor, _cell_threads
from topoprune.train import scoped


def test_a_cell_here_gets_a_workers_threads_for_torch_and_numba(monkeypatch):
    monkeypatch.setattr(scoped, "usable_cores", lambda: 2)
    assert LocalExecutor(workers=1).cell_threads() is None and LocalExecutor(workers=2).cell_threads() == 1
    assert LocalExecutor(workers=4).cell_threads() == 1  # never below one thread
    with scoped.using_threads(2):
        numba_before = numba.get_num_threads()
        with _cell_threads(1):
            assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
        assert torch.get_num_threads() == 2 and numba.get_num_threads() == numba_before
        with _cell_threads(None):  # one worker: nothing changes
            assert torch.get_num_threads() == 2 and numba.get_num_threads() == numba_before


class _NeedsTwo(Exception):
    def __init__(self, text: str, code: int) -> None:
        super().__init__(f"{text} (code {code})")


def test_an_error_that_survives_pickling_leaves_a_worker_as_itself(monkeypatch):
    """The parent's one-line handling (out of memory, a missing file) needs the original type;
    only an exception that cannot be rebuilt there is wrapped, with its type's name kept."""
    import pytest

    from topoprune.experiments import executors
    from topoprune.experiments.executors import CellError, _cell_job, _travels
    from topoprune.experiments.runner import _one_line

    missing = FileNotFoundError(2, "No such file or directory", "/data/x.npz")
    assert _travels(RuntimeError("DefaultCPUAllocator: can't allocate memory")) and _travels(missing)
    assert not _travels(_NeedsTwo("the method's own words", 7))
    for raised, expected in ((missing, FileNotFoundError), (_NeedsTwo("own words", 7), CellError)):
        def run_cell(*args, error=raised, **kwargs):
            raise error
        monkeypatch.setattr(executors, "run_cell", run_cell)
        with pytest.raises(expected) as caught:
            _cell_job(("run", {}, None, None))
    assert caught.value.kind == "_NeedsTwo" and _one_line(caught.value) == "_NeedsTwo: own words (code 7)"

    class Kind(Exception):
        kind = "not its name"

    assert _one_line(Kind("words")) == "Kind: words"  # only a worker's wrapper renames an error


def test_a_cell_times_the_dense_model_again_when_the_analysis_used_other_threads(monkeypatch):
    from topoprune.experiments import cell

    monkeypatch.setattr(cell, "load_baseline", lambda store, key: f"dense {key}")
    monkeypatch.setattr(cell, "median_latency", lambda model, shape: {"1": 9.0, "model": model})
    measured = {"latency_ms": {"1": 1.0}, "latency_threads": 2}
    with scoped.using_threads(1):
        assert cell._dense_latency(measured, None, "m", (1, 4)) == {"1": 9.0, "model": "dense m"}
        assert cell._dense_latency({**measured, "latency_threads": 1}, None, "m", (1, 4)) == {"1": 1.0}
        assert cell._dense_latency({"latency_ms": {"1": 1.0}}, None, "m", (1, 4)) == {"1": 1.0}  # threads unknown
