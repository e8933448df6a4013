"""What running our own methods through the standard suite would cost here, and the cuts.

    python benchmarks/evaluate_cost.py

Our methods as one evaluation (they share the baselines' cells): the Topological Pruner
(`topological`), Betti pruning (`betti`) and the Topological Pruner v2 (`topological-v2`) in the
structured task; T-IMP (`timp`, the extreme-compression table's schedule: half of the remaining
weights per round, 8 rounds, rewound to the initialisation, 6 epochs each) and magnitude pruning that keeps every
layer's spanning tree (`magnitude-mst`) in the unstructured tasks. The estimate is
`topoprune evaluate ... --dry-run`'s: a few training steps of each dense model timed here, times
the steps every baseline and cell takes (a method's own search is not priced, so the GA's and
T-IMP's extra cost is a lower bound).

If the whole costs more than 10 hours on this machine, the cuts, in order:
1. the topological methods, the three strongest baselines and the controls (structured: FPGM, L1
   and torch-pruning's global pruning, the best three peers of our matched-FLOPs table;
   unstructured: global magnitude and SynFlow, which lead our extreme-compression table, and LAMP,
   the published improvement on global magnitude);
2. then the VGG-16 task at 2x fewer FLOPs only (the other tasks kept);
3. what is left is reported as not run, with its cost.
Writes `results/evaluate_cost.json` and `.md`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

from topoprune.experiments.cost import format_seconds
from topoprune.experiments.evaluate import plan_evaluation
from topoprune.experiments.runner import cells_of
from topoprune.experiments.suites import Suite, load_suite
from topoprune.pruning.methods import Magnitude, method_class

HERE = Path(__file__).parent
LIMIT_H = 10.0
STRONGEST = {"structured": ["fpgm", "l1", "tp-global"], "unstructured": ["magnitude", "synflow", "lamp"]}


def ours():
    timp = method_class("timp")(rounds=8, fraction=0.5, rewind="init", epochs=6, scope="global")
    return (["topological", "betti", "topological-v2", timp, Magnitude(scope="global", preserve="mst")],
            [None, None, None, None, "magnitude-mst"])


def _key(entry) -> str:
    return entry if isinstance(entry, str) else (entry.get("label") or entry["name"])


def cut_strongest(suite: Suite) -> Suite:
    tasks = [t.model_copy(update={"baselines": [b for b in t.baselines if _key(b) in STRONGEST[t.kind]]})
             for t in suite.tasks]
    return suite.model_copy(update={"name": f"{suite.name}-cut1", "tasks": tasks})


def cut_vgg_2x(suite: Suite) -> Suite:
    tasks = [t.model_copy(update={"config": {**t.config, "sparsities": [0.5]}}) if t.kind == "structured" else t
             for t in suite.tasks]
    return suite.model_copy(update={"name": f"{suite.name}-cut2", "tasks": tasks})


def plan_ours(suite: str | Path | Suite):
    """The evaluation of our methods on ``suite`` (a shipped suite's name, a YAML file or a
    :class:`Suite`): the candidates of the suite's kinds only, and the Topological Pruner v2, which
    prunes to a target count, only where every structured task has a budget."""
    from topoprune.experiments.candidate import resolve_candidate

    chosen = suite if isinstance(suite, Suite) else load_suite(suite)
    kinds = {t.kind for t in chosen.tasks}
    budgets = all("budget" in t.config for t in chosen.tasks if t.kind == "structured")
    pairs = [(m, lab) for m, lab in zip(*ours())
             if ("structured" if resolve_candidate(m).structured else "unstructured") in kinds
             and (budgets or m != "topological-v2")]
    return plan_evaluation([m for m, _ in pairs], suite=chosen, label=[lab for _, lab in pairs])


def estimate(suite: Suite) -> dict:
    plan = plan_ours(suite)
    seconds = plan.estimate(device="cpu")
    return {"suite": suite.name, "tasks": {t.name: {"seconds": seconds[t.name], "cells": len(cells_of(c)),
                                                    "methods": [m.key for m in c.methods]}
                                           for t, c in plan.tasks},
            "seconds": sum(seconds.values())}


def main() -> None:
    t0 = time.perf_counter()
    standard = load_suite("standard")
    levels = [("whole standard suite", standard), ("cut 1: topological methods, 3 strongest baselines, controls",
                                                   cut_strongest(standard)),
              ("cut 2: and the VGG-16 task at 2x fewer FLOPs only", cut_vgg_2x(cut_strongest(standard)))]
    out = {"command": "python benchmarks/evaluate_cost.py", "seeds": [], "limit_hours": LIMIT_H, **environment(),
           "levels": []}
    chosen = None
    for what, suite in levels:
        e = estimate(suite)
        e["what"] = what
        out["levels"].append(e)
        if chosen is None and e["seconds"] <= LIMIT_H * 3600:
            chosen = what
    out["fits"] = chosen
    out["ran"] = False
    out["seconds_to_estimate"] = time.perf_counter() - t0
    (HERE / "results" / "evaluate_cost.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# Our methods through the standard suite: the cost here", "", *provenance_lines(out), "",
             "| level | task | cells | estimated training |", "|---|---|---:|---:|"]
    for e in out["levels"]:
        for name, t in e["tasks"].items():
            lines.append(f"| {e['what']} | {name} | {t['cells']} | {format_seconds(t['seconds'])} |")
        lines.append(f"| {e['what']} | **total** | | **{format_seconds(e['seconds'])}** |")
    lines += ["", f"Limit: {LIMIT_H:g} h on this machine. " + (
        f"The first level within it: {chosen}." if chosen else "No level fits: every one is reported as not run, "
        "with its cost.") + " The numbers above are estimates: the evaluation itself is a separate run.", ""]
    (HERE / "results" / "evaluate_cost.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
