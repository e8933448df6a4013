"""A small comparison sweep on a local Ray cluster with 2 workers against 1, and against the local
executor, in one run (issue #17).

The sweep: the quickstart model (mnist-conv, width 0.25, on the embedded digits), 4 data-free
methods x 2 sparsities x 2 seeds = 16 cells, 2 recovery epochs each, after one shared baseline
(trained once, outside the timing, in a run folder that every timed run copies). Timed, each in a
fresh copy of that folder so that no run reuses another's cells:

- ``local``: ``--executor local --workers 1`` (cells one after another in this process);
- ``ray-1``: ``--executor ray`` on a local cluster with 1 CPU (``cpus_per_cell: 1``: one cell at a time);
- ``ray-2``: the same with 2 CPUs (two cells at a time).

Reported: seconds of each, the ratio ray-1 / ray-2 (the speed-up from a second worker), and the
overhead per cell of Ray against the local executor, ``(ray-1 - local) / cells`` (cluster start,
the storage probe, task dispatch, re-reading the config and data in each task). Every cell gets one
torch thread in all three runs. Run alone on the machine: ``python benchmarks/ray_sweep.py``.
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
    "dataset": "digits",
    "model": {"name": "mnist-conv", "width": 0.25},
    "train": {"epochs": 3, "lr": 0.1, "batch_size": 64},
    "methods": ["l1", "l2", "fpgm", "magnitude"],
    "sparsities": [0.5, 0.7],
    "seeds": [0, 1],
    "recovery": {"epochs": 2, "batch_size": 64},
    "analyses": {"latency": False},
    "resources": {"cpus_per_cell": 1, "max_retries": 1},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    import torch

    from topoprune.experiments.config import parse_config
    from topoprune.experiments.runner import run_dir_for, run_experiment
    from topoprune.experiments.store import read_results

    torch.set_num_threads(1)
    cfg = parse_config(SWEEP)
    cells = len(SWEEP["methods"]) * len(SWEEP["sparsities"]) * len(SWEEP["seeds"])
    work = Path(tempfile.mkdtemp(prefix="ray-sweep-"))
    try:
        # the baseline and analysis once: run a config with no seeds' cells done, then drop the cells
        seed_dir = run_experiment(cfg, work / "seed", quiet=True, report=False)
        shutil.rmtree(seed_dir / "cells")
        for f in ("results.jsonl",):
            (seed_dir / f).unlink(missing_ok=True)
        manifest = seed_dir / "manifest.jsonl"
        kept = [line for line in manifest.read_text().splitlines() if '"cells/' not in line]
        manifest.write_text("\n".join(kept) + ("\n" if kept else ""))
        seconds, rows = {}, {}
        for label, kwargs in (("local", {}), ("ray-1", {"executor": "ray", "ray_num_cpus": 1}),
                              ("ray-2", {"executor": "ray", "ray_num_cpus": 2})):
            out = work / label
            shutil.copytree(seed_dir.parent, out)
            t0 = time.perf_counter()
            run_dir = run_experiment(cfg, out, quiet=True, report=False, **kwargs)
            seconds[label] = time.perf_counter() - t0
            rows[label] = len(read_results(run_dir))
            print(label, f"{seconds[label]:.1f} s", rows[label], "rows", flush=True)
        assert run_dir_for(cfg, work / "local").name == run_dir.name
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = {
        "command": "python benchmarks/ray_sweep.py", "seeds": SWEEP["seeds"], **environment(("topoprune", "torch", "ray")),
        "cells": cells, "seconds": seconds, "rows": rows,
        "ratio_ray1_over_ray2": seconds["ray-1"] / seconds["ray-2"],
        "overhead_per_cell_s": (seconds["ray-1"] - seconds["local"]) / cells,
        "config": SWEEP,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_sweep.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["# A sweep on a local Ray cluster: 2 workers against 1", "", *provenance_lines(record), "",
             f"{cells} cells (mnist-conv w0.25 on digits, 4 methods x 2 sparsities x 2 seeds, 2 recovery epochs), "
             "one torch thread per cell, the baseline trained once outside the timing.", "",
             "| run | seconds | rows |", "|---|---:|---:|",
             *[f"| {k} | {v:.1f} | {rows[k]} |" for k, v in seconds.items()], "",
             f"Two Ray workers against one: **{record['ratio_ray1_over_ray2']:.2f}x** faster. Ray's overhead against "
             f"the local executor: **{record['overhead_per_cell_s']:.2f} s per cell** (cluster start and storage "
             "probe included).", ""]
    (args.out / "ray_sweep.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
