"""A small comparison sweep on a local Ray cluster with 2 workers against 1, against the local
executor's process pool with 2 workers against 1, in one run (issue #17).

The sweep: the Balwani MNIST conv net at half width on the first 6000 Fashion-MNIST images (Debian's
``dataset-fashion-mnist`` or ``topoprune data fetch fashion-mnist``), 4 data-free methods x 2
sparsities x 2 seeds = 16 cells of 2 recovery epochs each (a few seconds each on one core), after
one shared baseline trained once, outside the timing, in a run folder that every timed run copies,
so that no run reuses another's cells. Timed, each in a fresh copy of that folder:

- ``local-1``: ``--executor local --workers 1`` with this process pinned to one core (so one
  torch thread per cell, like every other run here);
- ``local-2``: ``--workers 2`` (two spawned processes, one thread each);
- ``local-1x2t``: ``--workers 1`` on both cores (the default: one cell at a time with 2 threads),
  for reference;
- ``ray-1`` / ``ray-2``: ``--executor ray`` on a local cluster with 1 / 2 CPUs (``cpus_per_cell:
  1``: one / two cells at a time, one thread each). The cluster is started before the timed sweep
  (``ray.init``, timed on its own as "cluster start"), so the sweep's seconds hold the storage
  probe, task dispatch, the workers' first imports and each task re-reading the config and data.

Each run is repeated (``--repeats``, default 2, in turn: a run's repeats are not back to back, so a
slow spell of the machine spreads over the runs) and its mean is used.

Reported: seconds of each; the speed-up of a second worker (ray-1 / ray-2, and local-1 / local-2 as
the peer); Ray's overhead per cell against the local executor at the same thread count,
``(ray-1 - local-1) / cells``; and the cluster's start. Run alone on the machine (both cores):
``python benchmarks/ray_sweep.py``.
"""

from __future__ import annotations

import argparse
import json
import shutil
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
RUNS = (("local-1", "local", 1), ("local-2", "local", 2), ("local-1x2t", "local", 1), ("ray-1", "ray", 1),
        ("ray-2", "ray", 2))


def _seed_folder(cfg, work: Path) -> Path:
    """The baseline and analysis once: run the sweep, then drop its cells, rows and their manifest lines."""
    from topoprune.experiments.runner import run_experiment

    seed_dir = run_experiment(cfg, work / "seed", quiet=True, report=False)
    shutil.rmtree(seed_dir / "cells")
    (seed_dir / "results.jsonl").unlink(missing_ok=True)
    manifest = seed_dir / "manifest.jsonl"
    kept = [line for line in manifest.read_text().splitlines() if '"cells/' not in line]
    manifest.write_text("\n".join(kept) + ("\n" if kept else ""))
    return seed_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--repeats", type=int, default=2, help="times each run is timed (default 2)")
    args = ap.parse_args()
    import os
    import statistics

    import ray
    import torch

    from topoprune.experiments.config import parse_config
    from topoprune.experiments.runner import run_dir_for, run_experiment
    from topoprune.experiments.store import read_results

    torch.set_num_threads(1)
    cfg = parse_config(SWEEP)
    cells = len(SWEEP["methods"]) * len(SWEEP["sparsities"]) * len(SWEEP["seeds"])
    work = Path(tempfile.mkdtemp(prefix="ray-sweep-"))
    all_cores = os.sched_getaffinity(0)
    times: dict[str, list[float]] = {label: [] for label, _, _ in RUNS}
    rows, cluster_start = {}, {label: [] for label, executor, _ in RUNS if executor == "ray"}
    try:
        seed_dir = _seed_folder(cfg, work)
        for repeat in range(args.repeats):
            for label, executor, n in RUNS:
                out = work / f"{label}-{repeat}"
                shutil.copytree(seed_dir.parent, out)
                if label == "local-1":  # one core: the runner gives a cell every core it may run on
                    os.sched_setaffinity(0, {min(all_cores)})
                if executor == "ray":
                    t0 = time.perf_counter()
                    ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False, configure_logging=False)
                    cluster_start[label].append(time.perf_counter() - t0)
                try:
                    t0 = time.perf_counter()
                    kwargs = {"executor": "ray"} if executor == "ray" else {"workers": n}
                    run_dir = run_experiment(cfg, out, quiet=True, report=False, **kwargs)
                    times[label].append(time.perf_counter() - t0)
                finally:
                    if executor == "ray":
                        ray.shutdown()
                    os.sched_setaffinity(0, all_cores)
                rows[label] = len(read_results(run_dir))
                assert run_dir.name == run_dir_for(cfg, out).name and rows[label] == cells
                shutil.rmtree(out)
                print(label, f"{times[label][-1]:.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = {k: statistics.mean(v) for k, v in times.items()}
    record = {
        "command": "python benchmarks/ray_sweep.py", "seeds": SWEEP["seeds"], **environment(("topoprune", "torch", "ray")),
        "cells": cells, "repeats": args.repeats, "seconds": seconds, "seconds_each": times, "rows": rows,
        "cluster_start_s": {k: statistics.mean(v) for k, v in cluster_start.items()},
        "ratio_ray1_over_ray2": seconds["ray-1"] / seconds["ray-2"],
        "ratio_local1_over_local2": seconds["local-1"] / seconds["local-2"],
        "overhead_per_cell_s": (seconds["ray-1"] - seconds["local-1"]) / cells,
        "config": SWEEP,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_sweep.json").write_text(json.dumps(record, indent=2) + "\n")
    what = {"local-1": "local executor, 1 worker, pinned to 1 core", "local-2": "local executor, 2 workers",
            "local-1x2t": "local executor, 1 worker with 2 threads (the default)",
            "ray-1": "Ray, local cluster with 1 CPU", "ray-2": "Ray, local cluster with 2 CPUs"}
    lines = ["# A sweep on a local Ray cluster: 2 workers against 1", "", *provenance_lines(record), "",
             f"{cells} cells (mnist-conv w0.5 on 6000 Fashion-MNIST images, 4 methods x 2 sparsities x 2 seeds, "
             "2 recovery epochs), the baseline trained once outside the timing; mean of "
             f"{args.repeats} repeats (each listed).", "",
             "| run | what | seconds | s per cell | each repeat (s) |", "|---|---|---:|---:|---|",
             *[f"| {k} | {what[k]} | {v:.1f} | {v / cells:.2f} | {', '.join(f'{t:.1f}' for t in times[k])} |"
               for k, v in seconds.items()], "",
             f"A second worker: Ray **{record['ratio_ray1_over_ray2']:.2f}x** faster (ray-1 / ray-2); the local "
             f"process pool {record['ratio_local1_over_local2']:.2f}x (local-1 / local-2). Ray's overhead against "
             f"the local executor at one thread per cell: **{record['overhead_per_cell_s']:+.2f} s per cell** "
             f"((ray-1 - local-1) / {cells}: storage probe, dispatch, the worker's first imports). Starting the "
             "local cluster (`ray.init`, not in the sweep's seconds): "
             f"{', '.join(f'{k} {v:.1f} s' for k, v in record['cluster_start_s'].items())}.", ""]
    (args.out / "ray_sweep.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
