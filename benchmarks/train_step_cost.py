"""What one training step of a model costs against VGG-16 width 0.25, in one run: how long a
matched-FLOPs run (issue #16) of another model would take on this machine.

The two models train on the same random batch (1x32x32, batch 128, one torch thread) in
alternating blocks of ``--steps`` steps, ``--rounds`` times; the first two rounds are warm-up and
the ratio of the median step times is reported. The estimate for the other model's budget run
multiplies that ratio by the training and evaluation seconds the VGG-16 budget run's cells
actually took (its recovery ``metrics.json`` files, when that run folder exists here).

Run: ``python benchmarks/train_step_cost.py`` (about a minute). A second job on the machine slows
both models alike, but not exactly alike: the ratio is an estimate, not a timing to quote.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import topoprune as tp

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

HERE = Path(__file__).parent
RESULTS = HERE / "results"
REFERENCE = ("vgg16", 0.25)
VGG_RUN = "fmnist-vgg16q-budget-*"


def step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Mean seconds of one SGD step (forward, cross-entropy, backward, update) over ``steps``."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def vgg_cell_seconds(runs: Path) -> dict | None:
    """Mean training + evaluation seconds per cell of the VGG-16 budget run found under ``runs``
    (finished recoveries only), or None when no such run is here."""
    folders = sorted(runs.glob(VGG_RUN))
    if not folders:
        return None
    per_cell = []
    for metrics in folders[-1].glob("cells/*/*/*/*/recovery/metrics.json"):
        history = json.loads(metrics.read_text()).get("history", [])
        if len(history) == 10:  # a finished 10-epoch recovery
            per_cell.append(sum(h["seconds"] + h.get("eval_seconds", 0.0) for h in history))
    if not per_cell:
        return None
    return {"run": folders[-1].name, "cells": len(per_cell), "mean_s": statistics.mean(per_cell)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=3, help="steps per block")
    ap.add_argument("--rounds", type=int, default=8, help="alternating blocks per model (2 are warm-up)")
    ap.add_argument("--cells", type=int, default=48, help="cells in the other model's budget run")
    ap.add_argument("--runs", type=Path, default=HERE / "runs")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.rounds < 3 or args.steps < 1:
        ap.error("--rounds must be at least 3 (2 warm-up) and --steps at least 1")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = {"reference": tp.create_model(REFERENCE[0], width=REFERENCE[1], in_channels=1, input_size=32),
              "other": tp.create_model(args.model, width=args.width, in_channels=1, input_size=32)}
    x, y = torch.randn(128, 1, 32, 32), torch.randint(0, 10, (128,))
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.rounds):
        for k, m in models.items():
            times[k].append(step_seconds(m, x, y, args.steps))
    med = {k: statistics.median(v[2:]) for k, v in times.items()}
    ratio = med["other"] / med["reference"]
    vgg = vgg_cell_seconds(args.runs)
    estimate = None
    if vgg is not None:
        cell = ratio * vgg["mean_s"]
        estimate = {"cell_s": cell, "run_core_hours": cell * args.cells / 3600, "from": vgg}
    record = {
        "command": f"python benchmarks/train_step_cost.py --model {args.model} --width {args.width} "
                   f"--steps {args.steps} --rounds {args.rounds} --cells {args.cells}",
        "seed": 0, "torch_threads": 1, "batch": 128, "input_shape": [1, 32, 32],
        "reference": f"{REFERENCE[0]} w{REFERENCE[1]}", "model": f"{args.model} w{args.width}",
        **environment(),
        "step_s": times, "median_step_s": med, "ratio": ratio, "estimate": estimate,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_step_cost.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Training-step cost against VGG-16 width 0.25",
        "",
        *provenance_lines(record, ", one torch thread"),
        "",
        "| model | median step seconds (batch 128, 1x32x32) |",
        "|---|---:|",
        f"| {record['reference']} | {med['reference']:.3f} |",
        f"| {record['model']} | {med['other']:.3f} |",
        "",
        f"Ratio: **{ratio:.2f}x**.",
    ]
    if estimate is not None:
        lines += ["", f"The VGG-16 budget run's cells took {vgg['mean_s'] / 60:.1f} min of training and evaluation "
                      f"each ({vgg['cells']} finished cells of `{vgg['run']}`), so a cell of {record['model']} would "
                      f"take about {estimate['cell_s'] / 60:.0f} min on one core here, and {args.cells} cells about "
                      f"{estimate['run_core_hours']:.0f} core-hours (baseline training not included)."]
    md = "\n".join(lines) + "\n"
    (args.out / "train_step_cost.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
