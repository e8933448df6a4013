"""The Topological Pruner searches layers in a thread pool: the same result as a serial search,
no spawned processes (a script without a main guard runs once), and kernels that release the GIL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import numba
import pytest
import torch

import topoprune as tp
from topoprune.pruning import genetic
from topoprune.pruning.filters import default_targets
from topoprune.pruning.genetic import GAConfig, layer_problems, run_searches
from topoprune.pruning.surgery import Surgeon
from topoprune.topology import graphs, persistence, spanning


def vgg_problems():
    """The GA's inputs for the seven targeted conv layers of a small VGG-11."""
    torch.manual_seed(0)
    model = tp.create_model("vgg11", width=0.125)
    surgeon = Surgeon(model, torch.zeros(1, *model.meta.input_shape))
    targets = {n: 0.5 for n in default_targets(model)}
    return layer_problems(model, surgeon.modules, targets, surgeon=surgeon, inputs=None, fitness="diagram")


def test_threads_give_exactly_the_serial_result(monkeypatch):
    problems = vgg_problems()[:4]
    settings = {"population": 8, "generations": 4, "seed": 3}
    serial = run_searches(problems, GAConfig(**settings, workers=1))

    seen = []  # (thread name, numba threads) of every layer search
    search = genetic.search_layer

    def spy(problem, config, index):
        seen.append((threading.current_thread().name, numba.get_num_threads()))
        return search(problem, config, index)

    monkeypatch.setattr(genetic, "search_layer", spy)
    caller_threads = numba.get_num_threads()
    threaded = run_searches(problems, GAConfig(**settings, workers=2))

    assert list(threaded) == [p.name for p in problems]  # layer order is kept
    assert {n: r.to_dict() for n, r in threaded.items()} == {n: r.to_dict() for n, r in serial.items()}
    # the searches really ran in the pool, each on one numba thread, and the caller's count stays
    assert len(seen) == 4
    assert all(name.startswith("topoprune-ga") and threads == 1 for name, threads in seen), seen
    assert numba.get_num_threads() == caller_threads


def test_one_layer_or_one_worker_runs_on_the_calling_thread(monkeypatch):
    problems = vgg_problems()
    seen = []
    search = genetic.search_layer

    def spy(problem, config, index):
        seen.append(threading.current_thread().name)
        return search(problem, config, index)

    monkeypatch.setattr(genetic, "search_layer", spy)
    run_searches(problems[:1], GAConfig(population=4, generations=1, workers=4))
    run_searches(problems[:2], GAConfig(population=4, generations=1, workers=1))
    assert seen == [threading.current_thread().name] * 3


GUARDLESS = textwrap.dedent("""\
    import threading
    import torch
    import topoprune

    print("script body starts")
    torch.set_num_threads(2)  # the default workers=0 then searches 2 layers at once
    torch.manual_seed(0)
    model = topoprune.create_model("vgg11", width=0.125)
    before = sum(p.numel() for p in model.parameters())
    seen = set()
    from topoprune.pruning import genetic
    original = genetic.search_layer
    def spy(*args, **kwargs):
        seen.add(threading.current_thread().name)
        return original(*args, **kwargs)
    genetic.search_layer = spy
    pruned, info = topoprune.prune_filters(  # the README's way: no main guard, default workers
        model, sparsity=0.5, method={"name": "topological", "population": 6, "generations": 2})
    after = sum(p.numel() for p in pruned.parameters())
    print("params", before, after, "searched", len(info.extra["topological"]),
          "pool", sum(name.startswith("topoprune-ga") for name in seen),
          "workers", genetic.worker_count(genetic.GAConfig()))
""")


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_a_script_without_main_guard_runs_once_and_prunes(tmp_path, how):
    """With spawned worker processes, every child re-ran a guard-less script from the top, and
    from stdin there was no script to re-run; threads need neither."""
    if how == "script":
        script = tmp_path / "prune_script.py"
        script.write_text(GUARDLESS)
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
    else:
        done = subprocess.run([sys.executable, "-"], input=GUARDLESS, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("script body starts") == 1, done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("params"))
    _, before, after, _, searched, _, pool, _, workers = line.split()
    assert int(after) < int(before)
    # the default: one thread per usable core (2 on the developer box), and on one core the calling thread
    expected = min(int(workers), int(searched)) if int(workers) > 1 else 0
    assert int(searched) == 7 and int(pool) == expected


@pytest.mark.parametrize("module", [spanning, persistence, graphs])
def test_every_numba_kernel_releases_the_gil(module):
    kernels = {n: v for n, v in vars(module).items() if isinstance(v, numba.core.registry.CPUDispatcher)}
    assert kernels
    assert [n for n, k in kernels.items() if not k.targetoptions.get("nogil")] == []


def test_a_failing_layer_stops_the_search_and_raises(monkeypatch):
    problems = vgg_problems()
    started = []
    search = genetic.search_layer

    def failing(problem, config, index):
        started.append(problem.name)
        if len(started) == 1:
            raise RuntimeError(f"search of {problem.name} failed")
        time.sleep(0.2)  # a slow layer: time for the caller to cancel what is still queued
        return search(problem, config, index)

    monkeypatch.setattr(genetic, "search_layer", failing)
    with pytest.raises(RuntimeError, match="search of .* failed"):
        run_searches(problems, GAConfig(population=4, generations=1, workers=2))
    assert len(started) < len(problems)  # layers still queued were dropped
