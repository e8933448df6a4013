"""What a cell of a full-size model costs on this machine, under the default training settings
and the fast ones, in one run; and so what a matched-FLOPs run of that model would take.

Every (model, setting) trains on the same random batch (1x32x32, batch 128, ``--threads`` torch
threads) with the training loop's own step (``benchmarks/train_speed.py``'s ``Stepper``: forward
and loss under the setting, backward, SGD with momentum). Each round runs ``--steps`` steps of
every pair, the pairs in a rotated order each round so that drifts of the machine's speed fall on
all of them alike; the first two rounds are warm-up and the median step time of the rest is
reported. The models: table 1's VGG-16 width 0.25 (the reference), full-width VGG-16 and
ResNet-56 (``--models``). The settings: ``fp32`` (the default) and ``channels_last+bf16`` (the
fastest on this CPU in ``results/train_speed.md``; ``--settings``).

A cell's training minutes are its model's median step times the steps of its recovery
(``--epochs`` x ceil(``--train-samples`` / 128)); a run's hours are that times ``--cells``, with
one worker. Evaluation, pruning and the dense baseline are not included. As a check, the
reference's estimate is set beside what the VGG-16 budget run's cells actually took (training and
evaluation, from their recovery ``metrics.json`` files), when that run folder is here.

``--device cuda`` measures on a GPU; without one the file says that the GPU was not measured.

Run: ``python benchmarks/train_step_cost.py`` (a few minutes). Another job on the machine slows
every pair, not exactly alike: the figures are estimates, not timings to quote.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import torch

import topoprune as tp

try:
    from _env import environment, provenance_lines
    from train_speed import Stepper, options, rotated, setting_name
except ImportError:
    from benchmarks._env import environment, provenance_lines
    from benchmarks.train_speed import Stepper, options, rotated, setting_name

HERE = Path(__file__).parent
RESULTS = HERE / "results"
VGG_RUN = "fmnist-vgg16q-budget-*"
BATCH = 128
SHAPE = (1, 32, 32)
DEFAULT_MODELS = ("vgg16:0.25", "vgg16:1", "resnet56:1")
DEFAULT_SETTINGS = ("fp32", "channels_last+bf16")


def vgg_cells(runs: Path) -> dict | None:
    """Training + evaluation minutes per finished cell of the newest VGG-16 budget run folder
    under ``runs`` (a cell is finished when its recovery history has the run's
    ``recovery.epochs``), or None when there is none."""
    folders = sorted(runs.glob(VGG_RUN), key=lambda f: f.stat().st_mtime)
    if not folders:
        return None
    run = folders[-1]
    recovery = json.loads((run / "config.json").read_text()).get("recovery", {})
    epochs = recovery.get("epochs")
    setting = setting_name(**recovery)
    minutes = []
    for metrics in run.glob("cells/*/*/*/*/recovery/metrics.json"):
        history = json.loads(metrics.read_text()).get("history", [])
        if epochs and len(history) == epochs:
            minutes.append(sum(h["seconds"] + h.get("eval_seconds", 0.0) for h in history) / 60)
    if not minutes:
        return None
    return {"run": run.name, "cells": len(minutes), "epochs": epochs, "setting": setting,
            "mean_min": statistics.mean(minutes), "min_min": min(minutes), "max_min": max(minutes)}


def parse_model(text: str) -> tuple[str, float]:
    """``"vgg16:0.25"`` -> ``("vgg16", 0.25)``; a bare name is width 1."""
    name, _, width = text.partition(":")
    try:
        w = float(width) if width else 1.0
    except ValueError:
        raise SystemExit(f"train_step_cost.py: bad --models entry {text!r}; allowed: NAME or NAME:WIDTH "
                         "(e.g. vgg16:0.25)") from None
    if w <= 0:
        raise SystemExit(f"train_step_cost.py: bad width in {text!r}; allowed: a number > 0")
    return name, w


def measure(models: list[tuple[str, float]], settings: list[str], *, rounds: int, steps: int,
            device: torch.device) -> tuple[dict, dict]:
    """``{model key: {setting: [seconds per step, one per round]}}`` and what actually ran."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, *SHAPE, generator=g).to(device)
    y = torch.randint(0, 10, (BATCH,), generator=g).to(device)
    steppers = {}
    for name, width in models:
        torch.manual_seed(0)
        model = tp.create_model(name, width=width, in_channels=SHAPE[0], input_size=SHAPE[1:])
        for s in settings:
            steppers[(f"{name} w{width:g}", s)] = Stepper(model, s, device)
    times: dict = {}
    pairs = list(steppers)
    for r in range(rounds):
        for pair in rotated(pairs, r):
            times.setdefault(pair[0], {}).setdefault(pair[1], []).append(steppers[pair].run(x, y, steps))
    ran = {}
    for (key, s), st in steppers.items():
        ran.setdefault(key, {})[s] = st.run_as.to_dict()
    return times, ran


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                    help="NAME:WIDTH, the first is the reference (default: %(default)s)")
    ap.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS),
                    help="fp32 first, then + joined options (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=3, help="steps per block")
    ap.add_argument("--rounds", type=int, default=8, help="rotated rounds of every pair (2 are warm-up)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (one: a worker of the budget runs)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    ap.add_argument("--epochs", type=int, default=10, help="recovery epochs per cell")
    ap.add_argument("--train-samples", type=int, default=54000,
                    help="training inputs per epoch (Fashion-MNIST's 60000 less the 10 %% validation split)")
    ap.add_argument("--cells", type=int, default=48, help="cells in the budget run")
    ap.add_argument("--runs", type=Path, default=HERE / "runs")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.rounds < 3 or args.steps < 1 or args.threads < 1:
        ap.error("--rounds must be at least 3 (2 are warm-up), --steps and --threads at least 1")
    if min(args.epochs, args.train_samples, args.cells) < 1:
        ap.error("--epochs, --train-samples and --cells must be at least 1")
    if args.settings[0] != "fp32":
        ap.error("--settings must start with fp32 (the default every speedup is measured against)")
    for s in args.settings:
        try:
            options(s)
        except SystemExit:
            raise SystemExit(f"train_step_cost.py: unknown setting {s!r}; allowed: fp32, or + joined bf16, "
                             "channels_last, compile") from None
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise SystemExit(f"train_step_cost.py: bad --device {args.device!r}; allowed: cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"train_step_cost.py: --device {args.device}: no CUDA GPU here; allowed: cpu")
    torch.set_num_threads(args.threads)
    models = [parse_model(m) for m in args.models]
    known = set(tp.list_models())
    unknown = [name for name, _ in models if name not in known]
    if unknown:
        raise SystemExit(f"train_step_cost.py: unknown model {unknown[0]!r} in --models; allowed: "
                         f"{', '.join(sorted(known))}")
    times, ran = measure(models, args.settings, rounds=args.rounds, steps=args.steps, device=device)
    med = {k: {s: statistics.median(v[2:]) for s, v in per.items()} for k, per in times.items()}
    ref = next(iter(med))  # the first --models entry
    steps_per_cell = args.epochs * math.ceil(args.train_samples / BATCH)
    cell_min = {k: {s: v * steps_per_cell / 60 for s, v in per.items()} for k, per in med.items()}
    record = {
        "command": " ".join(["python benchmarks/train_step_cost.py", *(sys.argv[1:] if argv is None else argv)]),
        "seed": 0, "torch_threads": args.threads, "batch": BATCH, "input_shape": list(SHAPE), "device": str(device),
        "reference": ref, "models": list(med), "settings": list(args.settings),
        **environment(),
        "step_s": times, "ran": ran, "median_step_s": med,
        "against_reference_fp32": {k: {s: v / med[ref]["fp32"] for s, v in per.items()} for k, per in med.items()},
        "speedup_over_fp32": {k: {s: per["fp32"] / v for s, v in per.items()} for k, per in med.items()},
        "epochs": args.epochs, "steps_per_cell": steps_per_cell, "cells": args.cells,
        "cell_training_min": cell_min,
        "run_training_hours": {k: {s: v * args.cells / 60 for s, v in per.items()} for k, per in cell_min.items()},
        "gpu_measured": device.type == "cuda", "gpu_available": torch.cuda.is_available(),
        "vgg_run": vgg_cells(args.runs),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_step_cost.json").write_text(json.dumps(record, indent=2) + "\n")
    md = "\n".join(markdown(record)) + "\n"
    (args.out / "train_step_cost.md").write_text(md)
    print(md)


def markdown(record: dict) -> list[str]:
    """The results page of a record."""
    threads = record["torch_threads"]
    where = "one torch thread" if threads == 1 else f"{threads} torch threads"
    lines = ["# What a cell costs: full-size models, default and fast settings", "",
             *provenance_lines(record, f", {where}, device {record['device']}"), "",
             f"| model | setting | median step (batch {record['batch']}, 1x32x32) | speedup over its fp32 | "
             f"against {record['reference']} fp32 | training min per cell ({record['steps_per_cell']} steps) | "
             f"hours for {record['cells']} cells, one worker |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for k in record["models"]:
        for s in record["settings"]:
            ran = record["ran"][k][s]
            note = "" if setting_name(**ran) == s else f" (ran as {setting_name(**ran)})"
            lines.append(f"| {k} | {s}{note} | {1000 * record['median_step_s'][k][s]:.0f} ms | "
                         f"{record['speedup_over_fp32'][k][s]:.2f}x | {record['against_reference_fp32'][k][s]:.1f}x | "
                         f"{record['cell_training_min'][k][s]:.0f} | {record['run_training_hours'][k][s]:.1f} |")
    lines += ["", f"A cell here is {record['epochs']} recovery epochs; evaluation, pruning and the dense baseline are "
                  "not included. fp32 is the default; the fast setting is opt-in (see the parity run in "
                  "train_speed.md)."]
    if not record.get("gpu_measured"):
        why = "this run measured the CPU only" if record.get("gpu_available") else "no GPU was available to this run"
        lines += ["", f"GPU: not measured ({why}). `--device cuda` measures there."]
    v = record.get("vgg_run")
    ref = record["reference"]
    setting = (v or {}).get("setting", "fp32")
    if v is not None and setting in record["cell_training_min"][ref]:
        lines += ["", f"Check: the VGG-16 w0.25 budget run's {v['cells']} finished cells (`{v['run']}`, {setting}) "
                      f"took {v['min_min']:.1f} to {v['max_min']:.1f} min of training and evaluation each (mean "
                      f"{v['mean_min']:.1f}; however many workers and other jobs shared the machine), against "
                      f"{record['cell_training_min'][ref][setting]:.1f} min of {setting} training predicted here "
                      f"for {ref}."]
    return lines


if __name__ == "__main__":
    main()
