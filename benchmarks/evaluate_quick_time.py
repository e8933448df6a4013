"""How long ``topoprune evaluate --suite quick`` takes here, from an empty folder: one structured
and one unstructured method, each through the command line as a user runs it (the baselines'
training, every cell, the controls and the leaderboard included).

    python benchmarks/evaluate_quick_time.py            # writes results/evaluate_quick.{json,md}

The methods are shipped ones that are not baselines of the quick suite (``l2``, ``synflow``), so
each evaluation runs the whole suite task of its kind. The machine's load average before each
run is recorded: run it on idle cores, the figure the docs quote.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

HERE = Path(__file__).parent
METHODS = ("l2", "synflow")


def time_one(method: str, out: Path) -> dict:
    """Wall time of one evaluation from an empty folder, with what it ran."""
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "topoprune.cli", "evaluate", method, "--suite", "quick",
                           "--out", str(out), "--quiet"], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"evaluate {method} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    folder = next(out.glob(f"evaluate-quick-{method}-*"))
    record = json.loads((folder / "evaluation.json").read_text())
    cells = sum(sum(1 for _ in (folder / "tasks" / t["run"]).joinpath("results.jsonl").open())
                for t in record["tasks"].values())
    return {"method": method, "seconds": wall, "cells": cells, "load_before": load,
            "tasks": {name: round(t["seconds_this_call"], 1) for name, t in record["tasks"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    runs = []
    for method in METHODS:
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(time_one(method, Path(tmp)))
            print(f"{method}: {runs[-1]['seconds']:.0f} s, {runs[-1]['cells']} cells", flush=True)
    record = {"command": "python benchmarks/evaluate_quick_time.py", "seeds": [0, 1, 2], **environment(),
              "torch_threads_default": os.cpu_count(), "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluate_quick.json").write_text(json.dumps(record, indent=2) + "\n")
    md = ["# `topoprune evaluate --suite quick`: how long it takes here", "", *provenance_lines(record), "",
          "From an empty folder, through the command line: the suite's baselines trained (one network per seed, "
          "seeds 0, 1, 2), every cell of the method, its controls, and the leaderboard.", "",
          "| method | kind | cells | wall time | load average before |", "|---|---|---:|---:|---:|"]
    for r in runs:
        kind = "structured" if r["method"] == "l2" else "unstructured"
        md.append(f"| `{r['method']}` | {kind} | {r['cells']} | {r['seconds']:.0f} s | {r['load_before']:.2f} |")
    (args.out / "evaluate_quick.md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out / 'evaluate_quick.md'}")


if __name__ == "__main__":
    main()
