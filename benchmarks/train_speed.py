"""How much faster a training step runs with the speed options of ``TrainConfig`` (bfloat16
autocast, channels-last memory, torch.compile) than in float32 eager mode, in one run; and, with
``--parity``, whether the fastest setting keeps a table-1 cell's accuracy.

Step times: LeNet-300-100 (1x28x28), the MNIST conv net (1x28x28), VGG-16 width 0.25 (1x32x32)
and ResNet-20 (1x32x32) each train on one fixed random batch of 128 (SGD with momentum, the
loop's forward/loss/backward/step, built from the same helpers as ``topoprune.train``) under
every setting: ``fp32``, ``bf16``, ``channels_last``, ``channels_last+bf16`` and, where
torch.compile works here, ``compile``, ``compile+bf16`` and ``compile+channels_last+bf16``. Each
round runs ``--steps`` steps of every (model, setting), the settings in a rotated order each
round so that drifts of the machine's speed fall on all of them alike; the first ``--warmup``
rounds (where torch.compile compiles) are dropped and the median step time of the rest is
reported with its speedup over ``fp32``. One torch thread unless ``--threads``. Writes
``results/train_speed.json`` and ``.md``.

``--quick``: VGG-16 only, without compile (its first steps take minutes), a few rounds; prints
the table and, last, ``speedup X.XXx`` (the fastest setting against fp32 in this run); writes
no file.

``--parity``: a table-1 cell (``configs/fmnist-vgg16q-filters.yaml``'s model, data and recipes:
VGG-16 w0.25 on Fashion-MNIST at 1x32x32, 15 training epochs, L1 filter pruning at 0.5, BatchNorm
recalibration, 5 recovery epochs) for 5 seeds, in fp32 and in the fastest setting (``--setting``,
default the fastest VGG-16 setting of ``results/train_speed.json``, else
``channels_last+bf16``), each seed trained under both (baseline seed = cell seed). Reported: the
same-seed paired difference of the final accuracy (fast - fp32) with its 95 % t-interval, the
same for the dense baseline, and the cell's training throughput ratio (fp32 seconds / fast
seconds, training and evaluation epochs of baseline and recovery). Each (seed, setting) is a
run folder under ``--runs`` (resumable) and is saved in the ``parity`` key of
``results/train_speed.json`` as soon as it finishes; a rerun skips what is there. Hours on a
CPU.

Run: ``nice python benchmarks/train_speed.py`` (the step table, about half an hour with compile
on 2 cores); ``--quick`` (a few minutes); ``--parity`` (hours).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from topoprune.experiments.stats import t_interval

try:
    from _env import environment, provenance_lines
except ImportError:
    from benchmarks._env import environment, provenance_lines

HERE = Path(__file__).parent
RESULTS = HERE / "results"
ROOT = HERE.parent
BATCH = 128
# key: (registry name, width, input shape)
MODELS = {
    "lenet300": ("lenet300", 1.0, (1, 28, 28)),
    "mnist-conv": ("mnist-conv", 1.0, (1, 28, 28)),
    "vgg16-w0.25": ("vgg16", 0.25, (1, 32, 32)),
    "resnet20": ("resnet20", 1.0, (1, 32, 32)),
}
QUICK_MODEL = "vgg16-w0.25"
EAGER = ("fp32", "bf16", "channels_last", "channels_last+bf16")
COMPILED = ("compile", "compile+bf16", "compile+channels_last+bf16")
FALLBACK_SETTING = "channels_last+bf16"
PARITY_SEEDS = (0, 1, 2, 3, 4)


def options(setting: str) -> dict:
    """``TrainConfig`` keyword arguments of a setting name (``"channels_last+bf16"``, ...)."""
    parts = set(setting.split("+"))
    known = {"fp32", "bf16", "channels_last", "compile"}
    if not parts <= known:
        raise SystemExit(f"train_speed.py: unknown setting {setting!r}; allowed: + joined {sorted(known)}")
    return {"precision": "bf16" if "bf16" in parts else "fp32", "channels_last": "channels_last" in parts,
            "compile": "compile" in parts}


def setting_name(*, precision: str = "fp32", channels_last: bool = False, compile: bool = False, **_: object) -> str:
    """The setting name of options (the inverse of :func:`options`; ``Speedups.to_dict()`` or a
    config section's keys): ``"fp32"``, ``"channels_last+bf16"``, ``"compile+channels_last+bf16"``, ..."""
    parts = [p for p, on in (("compile", compile), ("channels_last", channels_last), ("bf16", precision == "bf16"))
             if on]
    return "+".join(parts) or "fp32"


# --- step times ----------------------------------------------------------------------------------


class Stepper:
    """One model under one setting: its own copy of the weights, optimizer and (compiled) module;
    :meth:`run` times ``steps`` training steps on the batch."""

    def __init__(self, model: torch.nn.Module, setting: str, device: torch.device):
        from topoprune.train.speedups import compile_fallback, compile_module, resolve_speedups

        opts = options(setting)
        self.run_as = resolve_speedups(device=device, **opts)  # what runs here (a fallback warns)
        self.model = copy.deepcopy(model).to(device)
        if self.run_as.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.net, self.first = self.model, False
        if self.run_as.compile:
            self.net, why = compile_module(self.model)
            if why:
                self.run_as = compile_fallback(why, self.run_as, "when wrapping the model")
            self.first = not why
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        self.device = device

    def run(self, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
        """Mean seconds of one step (forward and loss under the setting, backward, SGD step)."""
        from topoprune.train.loop import _forward
        from topoprune.train.speedups import as_channels_last, compile_fallback

        self.model.train()
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            xb = as_channels_last(x) if self.run_as.channels_last else x
            try:
                _, loss = _forward(self.net, xb, y, self.device, self.run_as.precision, 1, 0)
            except Exception as exc:  # as the training loop does: a compiler failure trains eagerly
                if not self.first:
                    raise
                self.run_as, self.net = compile_fallback(exc, self.run_as, "at the first step"), self.model
                _, loss = _forward(self.net, xb, y, self.device, self.run_as.precision, 1, 0)
            self.first = False
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        sync()
        return (time.perf_counter() - t0) / steps


def rotated(items: list, shift: int) -> list:
    """``items`` started at ``shift`` (mod its length): each round a different setting goes first."""
    k = shift % len(items)
    return items[k:] + items[:k]


def step_times(models: dict, settings: list[str], *, rounds: int, steps: int, batch: int,
               device: torch.device, seed: int = 0) -> dict:
    """``{model: {setting: [seconds per step, one per round]}}`` and what actually ran."""
    import topoprune as tp

    times: dict = {}
    ran: dict = {}
    for key, (name, width, shape) in models.items():
        torch.manual_seed(seed)
        model = tp.create_model(name, width=width, in_channels=shape[0], input_size=shape[1:])
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, *shape, generator=g).to(device)
        y = torch.randint(0, 10, (batch,), generator=g).to(device)
        steppers = {s: Stepper(model, s, device) for s in settings}
        ran[key] = {s: st.run_as.to_dict() for s, st in steppers.items()}
        times[key] = {s: [] for s in settings}
        for r in range(rounds):
            for s in rotated(list(settings), r):
                times[key][s].append(steppers[s].run(x, y, steps))
        ran[key] = {s: st.run_as.to_dict() for s, st in steppers.items()}  # after any fallback at a first step
    return {"times": times, "ran": ran}


def summarize(times: dict, warmup: int) -> dict:
    """Median step seconds after the warm-up rounds, speedup over fp32, and the fastest setting,
    per model."""
    out = {}
    for key, per in times.items():
        med = {s: statistics.median(v[warmup:]) for s, v in per.items()}
        base = med["fp32"]
        fastest = min(med, key=med.get)
        out[key] = {"median_s": med, "speedup": {s: base / m for s, m in med.items()},
                    "fastest": fastest, "first_round_s": {s: v[0] for s, v in per.items()}}
    return out


def step_table(summary: dict, batch: int) -> list[str]:
    settings = list(next(iter(summary.values()))["median_s"])
    lines = [f"| model | {' | '.join(settings)} |", "|---|" + "---:|" * len(settings)]
    for key, s in summary.items():
        cells = [f"{1000 * s['median_s'][k]:.1f} ms ({s['speedup'][k]:.2f}x)" for k in settings]
        lines.append(f"| {key} | {' | '.join(cells)} |")
    lines += ["", f"Median seconds per training step (batch {batch}) and, in brackets, the speedup over fp32 eager."]
    return lines


def compile_works(device: torch.device) -> str:
    """Why torch.compile cannot run here (empty when it can)."""
    from topoprune.train.speedups import compile_support

    return compile_support(device)


# --- evaluation and BatchNorm recalibration -----------------------------------------------------

EVAL_CASES = (  # (name, what, batch, precision, channels_last)
    ("eval b128 fp32", "evaluate", 128, "fp32", False),
    ("eval b1024 fp32", "evaluate", 1024, "fp32", False),
    ("eval b1024 bf16", "evaluate", 1024, "bf16", False),
    ("eval b1024 channels_last+bf16", "evaluate", 1024, "bf16", True),
    ("recal 50x128 fp32", "recalibrate", 128, "fp32", False),
    ("recal 50x128 channels_last+bf16", "recalibrate", 128, "bf16", True),
)


def eval_times(*, rounds: int, test_size: int = 10_000) -> dict:
    """Seconds of one evaluation of VGG-16 w0.25 over ``test_size`` inputs (as after every
    recovery epoch) and of one BatchNorm recalibration (50 batches of 128), per case, in a
    rotated order over ``rounds`` rounds; and one training step at batch 128 in fp32 for scale."""
    import topoprune as tp
    from topoprune.data import DataSplits

    torch.manual_seed(0)
    name, width, shape = MODELS[QUICK_MODEL]
    model = tp.create_model(name, num_classes=10, in_channels=shape[0], input_size=shape[1:], width=width)
    x = torch.randn(test_size, *shape)
    y = torch.randint(0, 10, (test_size,))
    data = DataSplits(name="random", input_shape=shape, num_classes=10, train_x=x, train_y=y, val_x=x[:0],
                      val_y=y[:0], test_x=x, test_y=y, mean=(0.0,), std=(1.0,))
    times: dict[str, list[float]] = {c[0]: [] for c in EVAL_CASES}
    for r in range(rounds):
        for case, what, batch, precision, cl in rotated(list(EVAL_CASES), r):
            t0 = time.perf_counter()
            if what == "evaluate":
                tp.evaluate(model, x, y, batch_size=batch, precision=precision, channels_last=cl)
            else:
                tp.recalibrate_bn(model, data, batches=50, batch_size=batch, precision=precision, channels_last=cl)
            times[case].append(time.perf_counter() - t0)
    step = Stepper(model, "fp32", torch.device("cpu"))
    step.run(x[:BATCH], y[:BATCH], 2)
    step_s = statistics.median(step.run(x[:BATCH], y[:BATCH], 3) for _ in range(3))
    return {"test_size": test_size, "rounds": rounds, "seconds": times,
            "median_s": {k: statistics.median(v[1:] if len(v) > 1 else v) for k, v in times.items()},
            "train_step_s": step_s, "train_epoch_s": step_s * math.ceil(54_000 / BATCH)}


def eval_lines(ev: dict) -> list[str]:
    med = ev["median_s"]
    base = med["eval b128 fp32"]
    rows = ["| case | median seconds | against eval b128 fp32 |", "|---|---:|---:|"]
    rows += [f"| {k} | {v:.2f} | {base / v:.2f}x |" for k, v in med.items()]
    epoch = ev["train_epoch_s"]
    return ["## Evaluation and BatchNorm recalibration", "",
            f"VGG-16 w0.25, {ev['test_size']} inputs per evaluation (a cell evaluates the test split after every "
            f"recovery epoch), BatchNorm recalibration on 50 batches of 128; {ev['rounds']} rounds in a rotated "
            "order, the first dropped. Both run under `torch.inference_mode`.", "", *rows, "",
            f"For scale: one training epoch of 54,000 inputs at batch 128 in fp32 takes about {epoch:.0f} s "
            f"({ev['train_step_s'] * 1000:.0f} ms a step), so one evaluation at the default batch of 1024 in fp32 "
            f"is {med['eval b1024 fp32'] / epoch * 100:.1f} % of an epoch and a recalibration "
            f"{med['recal 50x128 fp32'] / epoch * 100:.1f} %.", ""]


# --- parity --------------------------------------------------------------------------------------


def paired_difference(reference: dict, other: dict) -> dict:
    """Same-seed differences ``other - reference`` over the seeds both have: the mean with its
    95 % t-interval (``None`` bounds for fewer than two seeds) and the differences."""
    seeds = sorted(set(reference) & set(other), key=int)
    diffs = [other[s] - reference[s] for s in seeds]
    if not diffs:
        return {"n": 0, "mean": None, "low": None, "high": None, "diffs": {}}
    if len(diffs) == 1:
        return {"n": 1, "mean": diffs[0], "low": None, "high": None, "diffs": dict(zip(seeds, diffs))}
    m, low, high = t_interval(diffs)
    return {"n": len(diffs), "mean": m, "low": low, "high": high, "diffs": dict(zip(seeds, diffs))}


def throughput_ratio(reference: dict, other: dict) -> dict:
    """``reference seconds / other seconds`` per seed (above 1: ``other`` is faster), their mean
    with its 95 % t-interval, and the ratio of the totals."""
    seeds = sorted(set(reference) & set(other), key=int)
    ratios = [reference[s] / other[s] for s in seeds]
    out = {"n": len(ratios), "ratios": dict(zip(seeds, ratios)),
           "total": (sum(reference[s] for s in seeds) / sum(other[s] for s in seeds)) if seeds else None}
    if len(ratios) >= 2:
        out["mean"], out["low"], out["high"] = t_interval(ratios)
    else:
        out["mean"], out["low"], out["high"] = (ratios[0] if ratios else None), None, None
    return out


def parity_config(seed: int, setting: str, args: argparse.Namespace) -> dict:
    """The config of one (seed, setting) run: the table-1 config's model, data and recipes with
    one method (L1 at 0.5), one seed (also the baseline's) and the setting's options in both
    training sections (the table's own speed settings are replaced by the setting's)."""
    import yaml

    base = yaml.safe_load((ROOT / "configs" / "fmnist-vgg16q-filters.yaml").read_text())
    from topoprune.train.config import SPEED_OPTIONS

    for section in ("train", "recovery"):  # the setting decides these, not the table's own choice
        base[section] = {k: v for k, v in base[section].items() if k not in SPEED_OPTIONS}
    speed = {k: v for k, v in options(setting).items() if v not in ("fp32", False)}
    model = dict(base["model"])
    if args.model:
        model = {"name": args.model, "width": args.width, "input_shape": [int(v) for v in args.input_shape.split(",")]}
    dataset = {**base["dataset"], "name": args.dataset or base["dataset"]["name"]}
    if args.subset:
        dataset["limit"] = args.subset
    return {
        "name": f"train-speed-parity-{setting.replace('+', '-').replace('_', '-')}",
        "dataset": dataset,
        "model": model,
        "train": {**base["train"], "epochs": args.epochs, "seed": seed, **speed},
        "methods": ["l1"],
        "sparsities": [0.5],
        "seeds": [seed],
        "recovery": {**base["recovery"], "epochs": args.recovery_epochs, **speed},
        "analyses": {"persistence": False, "critical": False, "overlap": False, "latency": False},
    }


def _epoch_seconds(metrics: Path) -> float:
    """Training and evaluation seconds of a run's epochs (from its ``metrics.json``: the sums hold
    across a kill and resume)."""
    history = json.loads(metrics.read_text())["history"]
    return sum(h["seconds"] + h.get("eval_seconds", 0.0) for h in history)


def run_pair(seed: int, setting: str, args: argparse.Namespace) -> dict:
    """Run (or resume) one (seed, setting) and return its record."""
    from topoprune.experiments.config import parse_config
    from topoprune.experiments.runner import run_experiment
    from topoprune.experiments.store import read_results

    config = parse_config(parity_config(seed, setting, args))
    t0 = time.perf_counter()
    run_dir = run_experiment(config, args.runs, quiet=True, report=False, device=args.device)
    wall = time.perf_counter() - t0
    (row,) = read_results(run_dir)
    key = config.models[0].key
    baseline = json.loads((run_dir / "baseline" / key / "baseline.json").read_text())
    cell = run_dir / "cells" / key / row["method"] / f"s{row['sparsity']:g}" / f"seed{seed}"
    seconds = _epoch_seconds(run_dir / "baseline" / key / "metrics.json") + _epoch_seconds(
        cell / "recovery" / "metrics.json")
    return {"seed": seed, "setting": setting, "run": run_dir.name, "dense_acc": baseline["test_acc"],
            "acc_after_recovery": row["acc_after_recovery"], "acc_pruned_recal": row.get("acc_pruned_recal"),
            "training_seconds": seconds, "wall_seconds_last_call": wall,
            "baseline_settings": baseline.get("train_settings"), "recovery_settings": row.get("train_settings")}


def parity_summary(pairs: dict, fast: str) -> dict:
    """The paired statistics of the finished pairs (``pairs``: ``{"<seed>/<setting>": record}``)."""
    def by_seed(setting: str, field: str) -> dict:
        return {str(r["seed"]): r[field] for r in pairs.values() if r["setting"] == setting}

    return {
        "final_accuracy_diff": paired_difference(by_seed("fp32", "acc_after_recovery"),
                                                 by_seed(fast, "acc_after_recovery")),
        "dense_accuracy_diff": paired_difference(by_seed("fp32", "dense_acc"), by_seed(fast, "dense_acc")),
        "throughput_ratio": throughput_ratio(by_seed("fp32", "training_seconds"), by_seed(fast, "training_seconds")),
    }


def fastest_setting(results: Path) -> str:
    """The fastest VGG-16 setting of an earlier step run (``results/train_speed.json``), else
    ``channels_last+bf16``."""
    path = results / "train_speed.json"
    if path.exists():
        summary = json.loads(path.read_text()).get("summary", {})
        if QUICK_MODEL in summary and summary[QUICK_MODEL]["fastest"] != "fp32":
            return summary[QUICK_MODEL]["fastest"]
    return FALLBACK_SETTING


def _fmt_interval(d: dict, unit: str = "", digits: int = 2) -> str:
    if d.get("mean") is None:
        return "—"
    if d.get("low") is None:
        return f"{d['mean']:+.{digits}f}{unit} (one seed)"
    return f"{d['mean']:+.{digits}f}{unit} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}]"


def parity_lines(parity: dict) -> list[str]:
    s = parity["summary"]
    t = s["throughput_ratio"]
    ratio = "—" if t.get("mean") is None else (
        f"{t['mean']:.2f}x" + (f" [{t['low']:.2f}, {t['high']:.2f}]" if t.get("low") is not None else ""))
    return [
        f"## Parity: fp32 against {parity['setting']} ({parity['done']} of {parity['expected']} runs done)",
        "",
        f"Command: `{parity['command']}` · seeds {parity['seeds']}",
        "",
        "| measure | fast - fp32, same seed (mean, 95 % t-interval) |",
        "|---|---:|",
        f"| accuracy after recovery (points) | {_fmt_interval(s['final_accuracy_diff'])} |",
        f"| dense baseline accuracy (points) | {_fmt_interval(s['dense_accuracy_diff'])} |",
        f"| training throughput, fp32 seconds / fast seconds | {ratio} |",
        *_parity_detail(parity),
    ]


GOAL_POINTS = 0.3  # the final-accuracy interval must lie inside +-0.3 points ...
GOAL_THROUGHPUT = 1.8  # ... and the cell throughput reach 1.8x


def _parity_detail(parity: dict) -> list[str]:
    """The per-seed differences and ratios under the table, and whether the goal is reached."""
    s = parity["summary"]
    acc, t = s["final_accuracy_diff"], s["throughput_ratio"]
    if not acc.get("diffs"):
        return []
    lines = ["", "Per seed, accuracy after recovery fast - fp32: "
             + ", ".join(f"seed {k} {v:+.2f}" for k, v in acc["diffs"].items())
             + "; throughput ratio: " + ", ".join(f"seed {k} {v:.2f}x" for k, v in t.get("ratios", {}).items())
             + (f"; all seeds together {t['total']:.2f}x" if t.get("total") else "") + "."]
    if acc.get("low") is None or t.get("mean") is None:
        return lines
    inside = -GOAL_POINTS <= acc["low"] and acc["high"] <= GOAL_POINTS
    fast = t["mean"] >= GOAL_THROUGHPUT
    lines += ["", f"Goal: the interval of the final-accuracy difference inside ±{GOAL_POINTS} points "
              f"({'reached' if inside else 'not reached'}: [{acc['low']:+.2f}, {acc['high']:+.2f}]) and at least "
              f"{GOAL_THROUGHPUT}x cell throughput ({'reached' if fast else 'not reached'} on the mean of the per-seed "
              f"ratios, {t['mean']:.2f}x" + (f"; {t['total']:.2f}x from the summed seconds" if t.get("total") else "")
              + "). "
              "Throughput is measured while the runs share the machine with whatever else runs; the step table "
              "above is the clean speed comparison."]
    return lines


def run_parity(args: argparse.Namespace, out: Path) -> dict:
    """Every (seed, setting) not yet in ``out/train_speed.json``'s ``parity`` key, each saved as
    it finishes."""
    fast = args.setting or fastest_setting(out)
    options(fast)
    if fast == "fp32":
        raise SystemExit("train_speed.py: --setting must differ from fp32")
    path = out / "train_speed.json"
    command = parity_command(sys.argv[1:]) if args.command is None else args.command
    record = json.loads(path.read_text()) if path.exists() else {}
    parity = record.get("parity") or {}
    if parity.get("setting") not in (None, fast) or parity.get("config") != _parity_identity(args):
        parity = {}  # another comparison: start it over
    parity.update({"setting": fast, "seeds": list(args.seeds), "config": _parity_identity(args),
                   "command": command, "expected": 2 * len(args.seeds)})
    pairs = parity.setdefault("pairs", {})
    for seed in args.seeds:
        for setting in ("fp32", fast):
            key = f"{seed}/{setting}"
            if key in pairs:
                continue
            pairs[key] = run_pair(seed, setting, args)
            parity["done"] = len(pairs)
            parity["summary"] = parity_summary(pairs, fast)
            _save_parity(path, record, parity)
    parity["done"] = len(pairs)
    parity["summary"] = parity_summary(pairs, fast)
    _save_parity(path, record, parity)
    return parity


def parity_command(argv: list[str]) -> str:
    """The command that made a parity record, without ``--runs PATH`` (where the run folders
    live changes nothing they compute) and without ``--summarize``."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--runs":
            skip = True
            continue
        if a.startswith("--runs=") or a == "--summarize":
            continue
        kept.append(a)
    return " ".join(["python benchmarks/train_speed.py", *kept])


def summarize_parity(out: Path) -> dict:
    """Recompute the parity summary and page from the pairs stored in ``out/train_speed.json``
    (nothing runs); the stored command loses its ``--runs`` folder."""
    path = out / "train_speed.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    parity = record.get("parity")
    if not parity:
        raise SystemExit("train_speed.py: --summarize needs a parity record in " + str(path))
    parity["command"] = parity_command(parity["command"].split()[2:])
    parity["done"] = len(parity["pairs"])
    parity["summary"] = parity_summary(parity["pairs"], parity["setting"])
    _save_parity(path, record, parity)
    return parity


def _parity_identity(args: argparse.Namespace) -> dict:
    return {"epochs": args.epochs, "recovery_epochs": args.recovery_epochs, "subset": args.subset,
            "dataset": args.dataset, "model": args.model, "width": args.width, "input_shape": args.input_shape}


def _save_parity(path: Path, record: dict, parity: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**record, "parity": parity}
    if "command" not in record:  # no step table yet: the file still says where it came from
        record.update({"command": parity["command"], "seeds": parity["seeds"], **environment()})
    if "environment_parity" not in record:
        record["environment_parity"] = environment()
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    md = path.with_suffix(".md")
    text = md.read_text() if md.exists() else "# Training speed options\n"
    head = text.split("\n## Parity", 1)[0].rstrip("\n")
    md.write_text(head + "\n\n" + "\n".join(parity_lines(parity)) + "\n")


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="VGG-16 only, no compile, no file; last line 'speedup X.XXx'")
    ap.add_argument("--parity", action="store_true", help="the table-1 accuracy parity run (hours)")
    ap.add_argument("--eval", action="store_true", help="time evaluation and BatchNorm recalibration only "
                    "(a minute); saved in the 'eval' key")
    ap.add_argument("--summarize", action="store_true", help="with --parity: recompute the parity summary from "
                    "the stored pairs, run nothing")
    ap.add_argument("--rounds", type=int, default=None, help="rounds of every (model, setting) (default 8, quick 6)")
    ap.add_argument("--warmup", type=int, default=2, help="first rounds dropped (compiling happens there)")
    ap.add_argument("--steps", type=int, default=None, help="steps per block (default 4, quick 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--no-compile", action="store_true", help="leave the compile settings out")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    ap.add_argument("--setting", default=None, help="--parity: the fast setting (default: the fastest VGG-16 one)")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(PARITY_SEEDS), help="--parity: seeds")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--runs", type=Path, default=HERE / "runs", help="--parity: run folders")
    # smaller settings, for tests and smoke runs
    hidden = argparse.SUPPRESS
    ap.add_argument("--only", nargs="+", default=None, help=hidden)
    ap.add_argument("--batch", type=int, default=BATCH, help=hidden)
    ap.add_argument("--epochs", type=int, default=15, help=hidden)
    ap.add_argument("--recovery-epochs", type=int, default=5, help=hidden)
    ap.add_argument("--subset", type=int, default=None, help=hidden)
    ap.add_argument("--dataset", default=None, help=hidden)
    ap.add_argument("--model", default=None, help=hidden)
    ap.add_argument("--width", type=float, default=0.25, help=hidden)
    ap.add_argument("--input-shape", default="1,32,32", help=hidden)
    ap.add_argument("--command", default=None, help=hidden)
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (6 if args.quick else 8)
    args.steps = args.steps or (3 if args.quick else 4)
    if args.rounds <= args.warmup or args.steps < 1 or args.threads < 1 or args.batch < 1:
        ap.error("--rounds must exceed --warmup; --steps, --threads and --batch must be at least 1")
    if args.only and not set(args.only) <= set(MODELS):
        ap.error(f"--only takes {', '.join(MODELS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.eval:
        ev = eval_times(rounds=args.rounds or 5)
        ev.update({"command": "python benchmarks/train_speed.py --eval" + (f" --threads {args.threads}"
                                                                          if args.threads != 1 else ""),
                   "torch_threads": args.threads, **environment()})
        path = args.out / "train_speed.json"
        record = json.loads(path.read_text()) if path.exists() else {}
        record["eval"] = ev
        path.write_text(json.dumps(record, indent=2) + "\n")
        md = path.with_suffix(".md")
        text = md.read_text() if md.exists() else "# Training speed options\n"
        head = text.split("\n## Parity", 1)[0].split("\n## Evaluation and BatchNorm recalibration", 1)[0]
        parity = ["", *parity_lines(record["parity"])] if record.get("parity", {}).get("pairs") else []
        md.write_text(head.rstrip("\n") + "\n\n" + "\n".join(eval_lines(ev) + parity) + "\n")
        print("\n".join(eval_lines(ev)))
        return
    if args.parity:
        parity = summarize_parity(args.out) if args.summarize else run_parity(args, args.out)
        print("\n".join(parity_lines(parity)))
        return
    keys = args.only or ([QUICK_MODEL] if args.quick else list(MODELS))
    models = {k: MODELS[k] for k in keys}
    why = "compile left out (--quick)" if args.quick else ("compile left out (--no-compile)" if args.no_compile
                                                          else compile_works(device))
    settings = list(EAGER) + ([] if why else list(COMPILED))
    t0 = time.perf_counter()
    measured = step_times(models, settings, rounds=args.rounds, steps=args.steps, batch=args.batch, device=device)
    summary = summarize(measured["times"], args.warmup)
    threads = f", {args.threads} torch thread{'s' if args.threads > 1 else ''}"
    table = step_table(summary, args.batch)
    if args.quick:
        key = keys[0]
        fastest = summary[key]["fastest"]
        print("\n".join(table))
        print(f"{key}: fastest {fastest}{threads}; {args.rounds} rounds of {args.steps} steps, "
              f"{args.warmup} dropped; {time.perf_counter() - t0:.0f} s")
        print(f"speedup {summary[key]['speedup'][fastest]:.2f}x")
        return
    record = {
        "command": args.command or ("python benchmarks/train_speed.py " + " ".join(argv if argv is not None
                                                                                   else sys.argv[1:])).strip(),
        "seed": 0, "torch_threads": args.threads, "batch": args.batch, "device": str(device),
        "rounds": args.rounds, "warmup": args.warmup, "steps": args.steps,
        "models": {k: {"name": n, "width": w, "input_shape": list(s)} for k, (n, w, s) in models.items()},
        "settings": settings, "compile": why or "available",
        **environment(),
        "step_s": measured["times"], "ran": measured["ran"], "summary": summary,
        "seconds": time.perf_counter() - t0,
    }
    path = args.out / "train_speed.json"
    if path.exists():  # a parity run and evaluation timings already there stay
        old = json.loads(path.read_text())
        for key in ("eval", "parity", "environment_parity"):
            if key in old:
                record[key] = old[key]
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    lines = ["# Training speed options", "", *provenance_lines(record, threads), "",
             f"Settings: {', '.join(settings)}" + (f" ({why})" if why else "") + f"; {args.rounds} rounds of "
             f"{args.steps} steps in a rotated order, the first {args.warmup} dropped.", "", *table]
    lines += ["", "Fastest per model: " + ", ".join(f"{k} {v['fastest']} ({v['speedup'][v['fastest']]:.2f}x)"
                                                   for k, v in summary.items()) + "."]
    if "eval" in record:
        lines += ["", *eval_lines(record["eval"])]
    if "parity" in record:
        lines += ["", *parity_lines(record["parity"])]
    md = "\n".join(lines) + "\n"
    (args.out / "train_speed.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
