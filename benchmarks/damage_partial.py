"""Partial rank correlations of the damage studies, from their results files alone.

    python benchmarks/damage_partial.py

For each ``benchmarks/results/*-damage.json``: per sparsity (all candidates, and the random
candidates alone), every topological score's partial Spearman correlation with every outcome,
controlling for L1 mass removed and for the largest per-layer fraction removed, with percentile
bootstrap intervals (the file's resample count, seed 0) and Holm's adjustment across the
topological scores of each (outcome, sparsity). The result goes into the file's ``partial`` key
with the command, the environment and the date; nothing is retrained. The benchmark page
(``scripts/bench_report.py``) prints the sentences.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

try:
    from _env import environment
except ImportError:
    from benchmarks._env import environment

from topoprune.experiments.study.damage import partial_block
from topoprune.experiments.study.damage_stats import MIN_RANDOM_ONLY

HERE = Path(__file__).parent
FILES = ("fmnist-vgg16q-damage", "fmnist-lenet300-damage")


def partials_of(record: dict) -> dict:
    corr = record["correlations"]
    out = {"families": corr["families"], "directions": corr["directions"]}
    blocks = {}
    for s in sorted({r["sparsity"] for r in record["rows"]}):
        these = [r for r in record["rows"] if r["sparsity"] == s]
        for subset, rows in (("all", these), ("random_only", [r for r in these if r.get("source") == "random"])):
            if subset == "random_only" and len(rows) < MIN_RANDOM_ONLY:
                continue
            scores = {n: [r["scores"].get(n) for r in rows] for n in corr["families"]}
            outcomes = {o: [r["outcomes"].get(o) for r in rows] for o in corr["outcomes"]}
            blocks.setdefault(f"{s:g}", {})[subset] = {"n": len(rows), **partial_block(
                rows, scores, outcomes, out, resamples=corr["resamples"], level=corr["level"], seed=0, sparsity=s,
                labels=corr["outcomes"])}
    return blocks


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    names = argv or FILES
    for name in names:
        path = HERE / "results" / f"{name}.json"
        record = json.loads(path.read_text())
        t0 = time.perf_counter()
        record["partial"] = {"command": "python benchmarks/damage_partial.py", "seed": 0,
                             "resamples": record["correlations"]["resamples"], **environment(),
                             "sparsities": partials_of(record), "seconds": time.perf_counter() - t0}
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"{path.name}: {record['partial']['seconds']:.0f} s")


if __name__ == "__main__":
    main()
