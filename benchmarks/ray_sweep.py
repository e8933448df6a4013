"""A small comparison sweep on a local Ray cluster with 2 workers against 1, beside the local
executor with 2 workers against 1, in one run.

The sweep: the Balwani MNIST conv net at half width on the first 6000 Fashion-MNIST images (Debian's
``dataset-fashion-mnist`` or ``topoprune data fetch fashion-mnist``), 4 data-free methods x 2
sparsities x 2 seeds = 16 cells of 2 recovery epochs each (a few seconds each on one core), after
one shared baseline, trained once outside the timing in a run folder that every timed run copies,
so that no run reuses another's cells. Each timed run is a fresh Python process, as a user's
``topoprune compare`` is: it pays its own imports, data loading and workers' start, and the time is
that of ``run_experiment`` in it (the interpreter's start and imports before it are left out):

- ``local-1``: ``--executor local --workers 1``, the process pinned to one core (``taskset``: one
  torch and numba thread, everything on that core);
- ``local-2``: ``--workers 2`` on both cores (two spawned workers, one thread each);
- ``local-1x2t``: ``--workers 1`` on both cores (the default: one cell at a time, 2 threads), for
  reference;
- ``ray-1``: ``--executor ray`` on a local cluster of 1 CPU, the process pinned to one core before
  ``ray.init`` so that Ray's own daemons (GCS, raylet) share that core with the worker: its
  overhead is paid on the same budget as local-1's;
- ``ray-2``: a local cluster of 2 CPUs on both cores (two cells at a time, one thread each).

``ray.init`` happens before the timed sweep and is timed on its own ("cluster start"); the sweep's
seconds hold the storage probe, task dispatch, the workers' start and imports, and each worker's
first load of the config's data. Runs alternate in order between repeats (``--repeats``, at least 2).

Reported: seconds of each (mean, and every repeat), the speed-up of a second worker for each
executor (ray-1 / ray-2, local-1 / local-2), and Ray's overhead per cell against the local executor
on one core, ``(ray-1 - local-1) / cells``, with its value per repeat (the runs of a repeat are
back to back, so the per-repeat differences show whether the overhead is resolved). Run alone on
the machine (both cores): ``python benchmarks/ray_sweep.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

RESULTS = Path(__file__).parent / "results"

SWEEP = {
    "name": "ray-sweep",
    "dataset": {"name": "fashion-mnist", "limit": 6000},
    "model": {"name": "mnist-conv", "width": 0.5},
    "train": {"epochs": 2, "lr": 0.05, "batch_size": 64},
    "methods": ["l1", "l2", "fpgm", "magnitude"],
    "sparsities": [0.5, 0.7],
    "seeds": [0, 1],
    "recovery": {"epochs": 2, "batch_size": 64},
    "analyses": {"latency": False},
    "resources": {"cpus_per_cell": 1, "max_retries": 1},
}
# label, executor, workers or cluster CPUs, pinned to one core
RUNS = (("local-1", "local", 1, True), ("local-2", "local", 2, False), ("local-1x2t", "local", 1, False),
        ("ray-1", "ray", 1, True), ("ray-2", "ray", 2, False))
WHAT = {"local-1": "local executor, 1 worker, pinned to 1 core", "local-2": "local executor, 2 workers",
        "local-1x2t": "local executor, 1 worker with 2 threads (the default)",
        "ray-1": "Ray, local cluster with 1 CPU, pinned to 1 core", "ray-2": "Ray, local cluster with 2 CPUs"}

# one timed run, in a fresh process: argv = out folder, executor, n; prints a JSON line
_CHILD = """
import json, sys, time
from topoprune.experiments.config import parse_config
from topoprune.experiments.runner import run_experiment
from topoprune.experiments.store import read_results
sweep, out, executor, n = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = parse_config(sweep)
start = None
if executor == "ray":
    import ray
    t0 = time.perf_counter()
    ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False, configure_logging=False)
    start = time.perf_counter() - t0
t0 = time.perf_counter()
kwargs = {"executor": "ray"} if executor == "ray" else {"workers": n}
run_dir = run_experiment(cfg, out, quiet=True, report=False, **kwargs)
seconds = time.perf_counter() - t0
if executor == "ray":
    ray.shutdown()
print(json.dumps({"seconds": seconds, "cluster_start": start, "rows": len(read_results(run_dir))}))
"""


def _seed_folder(cfg, work: Path) -> Path:
    """A run folder holding the config, the baseline and its analysis, and no cell: what every
    timed run copies (the runner's own stages, as the local executor runs them)."""
    from topoprune.experiments.executors import LocalExecutor
    from topoprune.experiments.runner import run_dir_for
    from topoprune.experiments.store import RunStore, run_log

    store = RunStore(run_dir_for(cfg, work / "seed"))
    store.root.mkdir(parents=True)
    store.claim_config(cfg.to_dict())
    log = run_log(store.root)
    for spec in cfg.models:
        LocalExecutor().baseline(cfg, store, spec, log=log, progress=False, device=None)
    return store.root


def _timed(out: Path, executor: str, n: int, pinned: bool) -> dict:
    env = dict(os.environ)
    cmd = [sys.executable, "-c", _CHILD, json.dumps(SWEEP), str(out), executor, str(n)]
    if pinned:  # the process, its threads, its children and Ray's daemons on one core
        cmd = ["taskset", "-c", str(min(os.sched_getaffinity(0))), *cmd]
        env["NUMBA_NUM_THREADS"] = "1"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{executor}-{n} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ray_gone(timeout: float = 30.0) -> None:
    """Wait until no Ray daemon of a finished run is left (they would take CPU from the next run)."""
    end = time.time() + timeout
    while time.time() < end:
        if subprocess.run(["pgrep", "-f", "ray/core/src/ray"], capture_output=True).returncode:
            return
        time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--repeats", type=int, default=2, help="times each run is timed (at least 2; default 2)")
    args = ap.parse_args()
    if args.repeats < 2:
        ap.error("--repeats: at least 2 (the per-repeat differences are part of the result)")
    from topoprune.experiments.config import parse_config

    env = environment(("topoprune", "torch", "numpy", "ray"))  # the code as it is when the timing starts
    cfg = parse_config(SWEEP)
    cells = len(SWEEP["methods"]) * len(SWEEP["sparsities"]) * len(SWEEP["seeds"])
    work = Path(tempfile.mkdtemp(prefix="ray-sweep-"))
    times: dict[str, list[float]] = {label: [] for label, *_ in RUNS}
    cluster_start: dict[str, list[float]] = {label: [] for label, executor, *_ in RUNS if executor == "ray"}
    try:
        seed_dir = _seed_folder(cfg, work)
        for repeat in range(args.repeats):
            for label, executor, n, pinned in (RUNS if repeat % 2 == 0 else RUNS[::-1]):
                out = work / f"{label}-{repeat}"
                shutil.copytree(seed_dir.parent, out)
                result = _timed(out, executor, n, pinned)
                if result["rows"] != cells:
                    raise SystemExit(f"{label}: {result['rows']} rows, expected {cells}")
                times[label].append(result["seconds"])
                if executor == "ray":
                    cluster_start[label].append(result["cluster_start"])
                    _ray_gone()
                shutil.rmtree(out)
                print(label, f"{result['seconds']:.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = {k: statistics.mean(v) for k, v in times.items()}
    per_repeat = [(r1 - l1) / cells for r1, l1 in zip(times["ray-1"], times["local-1"])]
    record = {
        "command": "python benchmarks/ray_sweep.py", "seeds": SWEEP["seeds"], **env,
        "cells": cells, "repeats": args.repeats, "seconds": seconds, "seconds_each": times,
        "cluster_start_s": {k: statistics.mean(v) for k, v in cluster_start.items()},
        "ratio_ray1_over_ray2": seconds["ray-1"] / seconds["ray-2"],
        "ratio_local1_over_local2": seconds["local-1"] / seconds["local-2"],
        "overhead_per_cell_s": (seconds["ray-1"] - seconds["local-1"]) / cells,
        "overhead_per_cell_each_s": per_repeat,
        "config": SWEEP,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_sweep.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["# A sweep on a local Ray cluster: 2 workers against 1", "", *provenance_lines(record), "",
             f"{cells} cells (mnist-conv w0.5 on 6000 Fashion-MNIST images, 4 methods x 2 sparsities x 2 seeds, "
             "2 recovery epochs), the baseline trained once outside the timing; each run a fresh process; mean "
             f"of {args.repeats} repeats (each listed).", "",
             "| run | what | seconds | s per cell | each repeat (s) |", "|---|---|---:|---:|---|",
             *[f"| {k} | {WHAT[k]} | {v:.1f} | {v / cells:.2f} | {', '.join(f'{t:.1f}' for t in times[k])} |"
               for k, v in seconds.items()], "",
             f"A second worker: Ray **{record['ratio_ray1_over_ray2']:.2f}x** faster (ray-1 / ray-2); the local "
             f"executor {record['ratio_local1_over_local2']:.2f}x (local-1 / local-2). Ray's overhead against the "
             f"local executor on one core: **{record['overhead_per_cell_s']:+.2f} s per cell** ((ray-1 - local-1) / "
             f"{cells}; per repeat {', '.join(f'{x:+.2f}' for x in per_repeat)}). Starting the local cluster "
             f"(`ray.init`, not in the sweep's seconds): "
             f"{', '.join(f'{k} {v:.1f} s' for k, v in record['cluster_start_s'].items())}.", ""]
    (args.out / "ray_sweep.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
