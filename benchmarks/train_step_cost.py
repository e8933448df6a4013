"""What one training step of a model costs against VGG-16 width 0.25, in one run, and so how
long a matched-FLOPs run of that model would take on this machine.

The two models train on the same random batch (1x32x32, batch 128, one torch thread) in
alternating blocks of ``--steps`` steps, ``--rounds`` times; the first two rounds are warm-up and
the median step time of each is reported, with their ratio. The estimate for a budget run is
the model's median step times the steps of its cells (``--epochs`` x ceil(``--train-samples`` /
128) per cell, ``--cells`` cells): training only, without evaluation, pruning or the baseline.
As a check, the same product for VGG-16 is set beside what the VGG-16 budget run's cells
actually took (training and evaluation, from its recovery ``metrics.json`` files), when that run
folder is here.

Run: ``python benchmarks/train_step_cost.py`` (about a minute). Another job on the machine slows
both models alike, but not exactly alike: the figures are estimates, not timings to quote.
"""

from __future__ import annotations

import argparse
import json
import math
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
BATCH = 128


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


def vgg_cells(runs: Path) -> dict | None:
    """Training + evaluation minutes per finished cell of the newest VGG-16 budget run folder
    under ``runs`` (a cell is finished when its recovery history has the run's
    ``recovery.epochs``), or None when there is none."""
    folders = sorted(runs.glob(VGG_RUN), key=lambda f: f.stat().st_mtime)
    if not folders:
        return None
    run = folders[-1]
    epochs = json.loads((run / "config.json").read_text()).get("recovery", {}).get("epochs")
    minutes = []
    for metrics in run.glob("cells/*/*/*/*/recovery/metrics.json"):
        history = json.loads(metrics.read_text()).get("history", [])
        if epochs and len(history) == epochs:
            minutes.append(sum(h["seconds"] + h.get("eval_seconds", 0.0) for h in history) / 60)
    if not minutes:
        return None
    return {"run": run.name, "cells": len(minutes), "epochs": epochs, "mean_min": statistics.mean(minutes),
            "min_min": min(minutes), "max_min": max(minutes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=3, help="steps per block")
    ap.add_argument("--rounds", type=int, default=8, help="alternating blocks per model (2 are warm-up)")
    ap.add_argument("--epochs", type=int, default=10, help="recovery epochs per cell")
    ap.add_argument("--train-samples", type=int, default=54000,
                    help="training inputs per epoch (Fashion-MNIST's 60000 less the 10 %% validation split)")
    ap.add_argument("--cells", type=int, default=48, help="cells in the budget run")
    ap.add_argument("--runs", type=Path, default=HERE / "runs")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.rounds < 3 or args.steps < 1:
        ap.error("--rounds must be at least 3 (2 are warm-up) and --steps at least 1")
    if args.width <= 0 or min(args.epochs, args.train_samples, args.cells) < 1:
        ap.error("--width must be > 0 and --epochs, --train-samples, --cells at least 1")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = {"reference": tp.create_model(REFERENCE[0], width=REFERENCE[1], in_channels=1, input_size=32),
              "other": tp.create_model(args.model, width=args.width, in_channels=1, input_size=32)}
    x, y = torch.randn(BATCH, 1, 32, 32), torch.randint(0, 10, (BATCH,))
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.rounds):
        for k, m in models.items():
            times[k].append(step_seconds(m, x, y, args.steps))
    med = {k: statistics.median(v[2:]) for k, v in times.items()}
    ratio = med["other"] / med["reference"]
    steps_per_cell = args.epochs * math.ceil(args.train_samples / BATCH)
    cell_min = {k: v * steps_per_cell / 60 for k, v in med.items()}
    record = {
        "command": f"python benchmarks/train_step_cost.py --model {args.model} --width {args.width} "
                   f"--steps {args.steps} --rounds {args.rounds} --epochs {args.epochs} "
                   f"--train-samples {args.train_samples} --cells {args.cells}",
        "seed": 0, "torch_threads": 1, "batch": BATCH, "input_shape": [1, 32, 32],
        "reference": f"{REFERENCE[0]} w{REFERENCE[1]}", "model": args.model, "width": args.width,
        **environment(),
        "step_s": times, "median_step_s": med, "ratio": ratio,
        "steps_per_cell": steps_per_cell, "cells": args.cells,
        "cell_training_min": cell_min, "run_training_core_hours": cell_min["other"] * args.cells / 60,
        "vgg_run": vgg_cells(args.runs),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_step_cost.json").write_text(json.dumps(record, indent=2) + "\n")
    name = f"{args.model} w{args.width:g}"
    lines = [
        "# Training-step cost against VGG-16 width 0.25",
        "",
        *provenance_lines(record, ", one torch thread"),
        "",
        f"| model | median step seconds (batch {BATCH}, 1x32x32) | training minutes per cell ({steps_per_cell} steps) |",
        "|---|---:|---:|",
        f"| {record['reference']} | {med['reference']:.3f} | {cell_min['reference']:.0f} |",
        f"| {name} | {med['other']:.3f} | {cell_min['other']:.0f} |",
        "",
        f"Ratio: about **{ratio:.1f}x**. {args.cells} cells of {name}: about "
        f"{record['run_training_core_hours']:.0f} core-hours of training alone (evaluation, pruning and the "
        "baseline not included).",
    ]
    v = record["vgg_run"]
    if v is not None:
        lines += ["", f"Check: the VGG-16 budget run's {v['cells']} finished cells (`{v['run']}`) took "
                      f"{v['min_min']:.1f} to {v['max_min']:.1f} min of training and evaluation each (mean "
                      f"{v['mean_min']:.1f}; they ran with one worker of 2 threads or two workers of one thread, "
                      f"beside other jobs), against {cell_min['reference']:.1f} min of training predicted here."]
    md = "\n".join(lines) + "\n"
    (args.out / "train_step_cost.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
