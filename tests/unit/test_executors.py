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
