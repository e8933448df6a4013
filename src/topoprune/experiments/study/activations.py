"""The topological activation study (Kochar et al. 2021).

``topoprune study activations CONFIG`` trains the same MLP on a synthetic set with many holes
(:mod:`topoprune.data.synthetic`) once per activation and seed, and reports per activation:
epochs to reach the target test accuracy, final accuracy, and the Betti numbers of each class
after every layer (at the chosen epochs and at the end). The bar for recommending a candidate is
the paper's claim: at least 1.5x fewer epochs than ReLU, every seed reaching the target, and a
final accuracy no lower than ReLU's minus 0.5 points.

Run folder ``<out>/<name>-<hash>/``: ``config.json``, one folder per (activation, seed) with a
resumable training checkpoint and ``row.json``, ``results.jsonl``, ``report.md/html`` and plots.
A killed study resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import TopopruneError
from ...train.checkpoint import atomic_write_bytes, atomic_write_json
from ..report import mean_std

__all__ = ["StudyConfig", "load_study_config", "parse_study_config", "run_study", "build_study_report",
           "SPEEDUP_BAR"]

SPEEDUP_BAR = 1.5  # the paper's low end: 1.5-2x fewer epochs than ReLU
ACCURACY_SLACK = 0.5  # "equal final accuracy": within 0.5 points of ReLU's mean, or better


@dataclass(frozen=True)
class StudyConfig:
    name: str
    dataset: dict            # make_synthetic arguments: name, n, density, seed, noise
    hidden: tuple[int, ...]  # MLP hidden widths
    activations: tuple[str, ...]
    seeds: tuple[int, ...]
    train: dict              # TrainConfig fields
    target_accuracy: float   # test accuracy in %, "converged"
    betti: dict              # samples_per_class, epochs, method, k, max_dim

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"], d["activations"], d["seeds"] = list(self.hidden), list(self.activations), list(self.seeds)
        return d

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _study_layout():
    """The study config's pydantic models (built on first use: pydantic and the registries load
    only when a study is validated)."""
    from typing import Annotated, Literal

    from pydantic import Field, field_validator, model_validator

    from ...data.synthetic import list_synthetic
    from ...models.activations import list_activations
    from ...topology.persistence import BETTI_METHODS
    from ..config import NAME_PATTERN, Seed, TrainSpec, _Spec, registered

    class SyntheticSpec(_Spec):
        name: Annotated[str, registered(list_synthetic)] = Field(description="a synthetic set with declared Betti numbers")
        n: int | None = Field(None, ge=1, le=10_000, description="motifs")
        density: int | None = Field(None, ge=1, le=10_000, description="sampling density of each piece")
        seed: Seed = 0
        noise: float = Field(0.0, ge=0, le=10)

    class MLPSpec(_Spec):
        hidden: list[Annotated[int, Field(ge=1, le=65_536)]] = Field([32, 32, 32], min_length=1, max_length=64)

    class BettiSpec(_Spec):
        samples_per_class: int = Field(1000, ge=8, le=100_000)
        epochs: list[Annotated[int, Field(ge=1)]] = Field([], max_length=1000)
        method: Literal[BETTI_METHODS] = "knn-geodesic"  # type: ignore[valid-type]
        k: int = Field(16, ge=1, le=1024)
        max_dim: int = Field(1, ge=0, le=2)

    class StudyLayout(_Spec):
        name: str = Field("activation-study", pattern=NAME_PATTERN)
        dataset: SyntheticSpec
        model: MLPSpec = MLPSpec()
        activations: list[Annotated[str, registered(list_activations)]] = Field(
            default_factory=list_activations, min_length=1, max_length=64)
        seeds: list[Seed] = Field([0, 1, 2, 3, 4], min_length=1, max_length=1024)
        train: TrainSpec = TrainSpec()
        target_accuracy: float = Field(95.0, gt=50, le=100, description="test accuracy in %")
        betti: BettiSpec = BettiSpec()

        @model_validator(mode="before")
        @classmethod
        def _shorthands(cls, data):
            if isinstance(data, dict):
                data = {k: v for k, v in data.items() if not (k in ("model", "train", "betti") and v is None)}
                if isinstance(data.get("dataset"), str):
                    data["dataset"] = {"name": data["dataset"]}
            return data

        @field_validator("activations")
        @classmethod
        def _known(cls, acts: list[str]) -> list[str]:
            if "relu" not in acts:
                raise ValueError("a list that includes relu, the reference")
            if len(set(acts)) != len(acts):
                raise ValueError("distinct activations")
            return acts

        @field_validator("seeds")
        @classmethod
        def _distinct(cls, seeds: list[int]) -> list[int]:
            if len(set(seeds)) != len(seeds):
                raise ValueError("distinct seeds")
            return seeds

    return StudyLayout


def parse_study_config(data: Any) -> StudyConfig:
    """Validate a study config mapping; an error is one line naming the dotted field, the value
    and what is allowed."""
    from pydantic import ValidationError

    from ...pruning.methods import format_validation_error
    from ..config import without_default_speed

    if not isinstance(data, dict):
        raise TopopruneError(f"study config: bad value {type(data).__name__}; allowed: a mapping "
                             "(name, dataset, model, activations, seeds, train, target_accuracy, betti)")
    try:
        layout = _study_layout().model_validate(data)
    except ValidationError as exc:
        raise TopopruneError(f"study config field {format_validation_error(exc)}") from None
    epochs = layout.train.epochs
    if any(e > epochs for e in layout.betti.epochs):
        raise TopopruneError(f"study config field betti.epochs: bad value {layout.betti.epochs}; allowed: "
                             f"a list of epochs in [1, {epochs}]")
    return StudyConfig(layout.name, layout.dataset.model_dump(exclude_unset=True) | {"name": layout.dataset.name},
                       tuple(layout.model.hidden), tuple(layout.activations), tuple(layout.seeds),
                       without_default_speed(layout.train.model_dump(mode="json", exclude_unset=True)),
                       float(layout.target_accuracy),
                       layout.betti.model_dump(mode="json"))


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML file."""
    from ..config import read_yaml

    return parse_study_config(read_yaml(path, "study config"))


def _betti_sample(data, per_class: int, seed: int):
    """A fixed, class-balanced sample of training inputs for the Betti measurements (the
    training split is the largest, and a k-NN complex needs dense samples to be exact)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    picks = []
    for label in (0, 1):
        idx = torch.nonzero(data.train_y == label).flatten()
        if idx.numel() < per_class:
            raise TopopruneError(f"betti.samples_per_class {per_class} exceeds the {idx.numel()} training "
                                 f"points of class {label}; use at most that")
        picks.append(idx[torch.randperm(idx.numel(), generator=g)[:per_class]])
    idx = torch.cat(picks).sort().values
    return data.train_x[idx], data.train_y[idx].numpy()


def _run_one(config: StudyConfig, run_dir: Path, data, activation: str, seed: int, progress: bool,
             device: str | None = None) -> dict:
    from ...analysis import betti_by_layer
    from ...models.mlp import MLP
    from ...train import BettiTracker, TrainConfig, seeded_rng, train

    folder = run_dir / "runs" / activation / f"seed{seed}"
    row_path = folder / "row.json"
    if row_path.exists():
        return json.loads(row_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    b = config.betti
    options = {"max_dim": b["max_dim"], "method": b["method"], "k": b["k"]}
    x_b, y_b = _betti_sample(data, b["samples_per_class"], 0)  # same points for every run
    with seeded_rng(seed):  # the initialisation of `seed`, leaving the caller's generator alone
        model = MLP(data.train_x.shape[1], list(config.hidden), 2, activation)
    betti = {"0": betti_by_layer(model, x_b, y_b, **options)} if not (folder / "checkpoint.pt").exists() else None
    if betti is not None:
        atomic_write_json(betti, folder / "betti0.json")
    cfg = TrainConfig(**{**config.train, "seed": seed})
    tracker = BettiTracker(x_b, y_b, epochs=sorted(set(b["epochs"]) | {cfg.epochs}), **options)
    t0 = time.perf_counter()
    res = train(model, data, cfg, out_dir=folder, callbacks=[tracker], progress=progress,
                description=f"{activation} seed {seed}", device=device)
    betti = json.loads((folder / "betti0.json").read_text())
    betti.update({str(h["epoch"]): h["betti"] for h in res.history if "betti" in h})
    curve = [h["test_acc"] for h in res.history]
    reached = next((i + 1 for i, a in enumerate(curve) if a >= config.target_accuracy), None)
    row = {"activation": activation, "seed": seed, "test_curve": curve,
           "val_curve": [h["val_acc"] for h in res.history],
           "train_loss": [h["train_loss"] for h in res.history],
           "epochs_to_target": reached, "final_acc": curve[-1], "best_acc": max(curve),
           "betti": betti, "seconds": sum(h["seconds"] for h in res.history),
           "wall_seconds": time.perf_counter() - t0}
    atomic_write_json(row, row_path)
    return row


def run_study(config: StudyConfig, out: str | Path = "runs", *, quiet: bool = False, report: bool = True,
              threads: int = 1, device: str | None = None) -> Path:
    """Run (or resume) the activation study and write its report; returns the run folder.

    ``device``: where the MLPs train (see :func:`~topoprune.train.train`); not part of the config.

    ``threads``: torch intra-op threads while the study trains (the caller's count is restored
    afterwards). One is the default: these small MLPs at batch 64 gain nothing from more, and
    several threads thrash when other jobs share the cores."""
    from ...train import resolve_device, using_threads

    device = None if device is None else str(resolve_device(device))  # refuse a missing GPU now
    run_dir = Path(out) / f"{config.name}-{config.digest()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.json"
    if saved.exists() and json.loads(saved.read_text()) != config.to_dict():
        raise TopopruneError(f"{run_dir} holds another config; remove it or use another --out")
    atomic_write_json(config.to_dict(), saved)
    with using_threads(threads):
        rows = _run_cells(config, run_dir, quiet, device)
    atomic_write_bytes(run_dir / "results.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    if report:
        build_study_report(run_dir)
    return run_dir


def _run_cells(config: StudyConfig, run_dir: Path, quiet: bool, device: str | None) -> list[dict]:
    """Build the synthetic set, then train (or load) every (activation, seed) cell, in order."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ...data.synthetic import make_synthetic, synthetic_splits

    ds = dict(config.dataset)
    synthetic = make_synthetic(ds.pop("name"), **ds)
    data = synthetic_splits(synthetic, seed=int(config.dataset.get("seed", 0)))
    atomic_write_json({"name": synthetic.name, "points": int(synthetic.x.shape[0]), "dim": int(synthetic.x.shape[1]),
                       "betti": {str(k): v for k, v in synthetic.betti.items()}, "total_betti": synthetic.total_betti,
                       "train": int(data.train_x.shape[0]), "test": int(data.test_x.shape[0])},
                      run_dir / "dataset.json")
    cells = [(a, s) for s in config.seeds for a in config.activations]
    rows = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=quiet) as bar:
        task = bar.add_task("activation study", total=len(cells))
        for activation, seed in cells:
            bar.update(task, description=f"{activation} seed {seed}")
            rows.append(_run_one(config, run_dir, data, activation, seed, progress=False, device=device))
            bar.advance(task)
    return rows


# --- summary and report ---------------------------------------------------------------------------


def _betti_total(per_class: dict[str, list[int]]) -> int:
    """b0 + b1 (+ ...) summed over both classes: the complexity measure of Naitzat et al."""
    return int(sum(sum(b) for b in per_class.values()))


def summarize_study(rows: list[dict], target: float) -> list[dict]:
    """One entry per activation: epochs to target (over seeds that reached it), how many did,
    final accuracy, speed-up against ReLU, Betti totals per layer at the end, and the verdict."""
    by_act: dict[str, list[dict]] = {}
    for r in rows:
        by_act.setdefault(r["activation"], []).append(r)
    out = []
    for act, rs in by_act.items():
        reached = [r["epochs_to_target"] for r in rs if r["epochs_to_target"] is not None]
        last = max(int(k) for k in rs[0]["betti"])
        layers = list(rs[0]["betti"][str(last)])
        betti_end = {layer: mean_std([_betti_total(r["betti"][str(last)][layer]) for r in rs])[0] for layer in layers}
        layers0 = list(rs[0]["betti"]["0"])
        betti_start = {layer: mean_std([_betti_total(r["betti"]["0"][layer]) for r in rs])[0] for layer in layers0}
        out.append({"activation": act, "seeds": len(rs), "reached": len(reached),
                    "epochs": mean_std(reached), "epochs_all": [r["epochs_to_target"] for r in rs],
                    "final": mean_std([r["final_acc"] for r in rs]),
                    "final_all": [r["final_acc"] for r in rs],
                    "betti_end": betti_end, "betti_start": betti_start, "betti_epoch": last})
    relu = next((s for s in out if s["activation"] == "relu"), None)
    for s in out:
        s["speedup"] = None
        if relu and relu["reached"] and s["reached"]:
            s["speedup"] = relu["epochs"][0] / s["epochs"][0]
        s["recommended"] = bool(
            s["activation"] != "relu" and relu is not None and s["speedup"] is not None
            and s["speedup"] >= SPEEDUP_BAR and s["reached"] == s["seeds"]
            and s["final"][0] >= relu["final"][0] - ACCURACY_SLACK)
    return out


def _fmt(ms: tuple[float, float], digits: int = 1) -> str:
    m, s = ms
    return "—" if m != m else f"{m:.{digits}f} ± {s:.{digits}f}"


def study_table(summary: list[dict], target: float) -> list[list[str]]:
    layers = list(summary[0]["betti_end"]) if summary else []
    head = ["activation", f"epochs to {target:g}% (mean ± std)", "seeds reaching", "speed-up vs relu",
            "final acc %", f"recommended (>= {SPEEDUP_BAR}x, all seeds, acc >= relu - {ACCURACY_SLACK})"]
    head += [f"b0+b1 {layer}" for layer in layers]
    rows = [head]
    for s in summary:
        rows.append([s["activation"], _fmt(s["epochs"]), f"{s['reached']}/{s['seeds']}",
                     "—" if s["speedup"] is None else f"{s['speedup']:.2f}x", _fmt(s["final"], 2),
                     "yes" if s["recommended"] else "no"]
                    + [f"{s['betti_end'][layer]:.1f}" for layer in layers])
    return rows


def verdict(summary: list[dict]) -> str:
    """The one sentence the README quotes."""
    winners = [s["activation"] for s in summary if s["recommended"]]
    if winners:
        return (f"{', '.join(winners)} reached the target in at least {SPEEDUP_BAR}x fewer epochs than ReLU on "
                "every seed at equal final accuracy: recommended on this task.")
    best = max((s for s in summary if s["activation"] != "relu" and s["speedup"] is not None),
               key=lambda s: s["speedup"], default=None)
    tail = (f" The fastest other activation, {best['activation']}, needed {best['speedup']:.2f}x ReLU's "
            "speed (above 1 = fewer epochs).") if best else ""
    return (f"No activation reached the target in {SPEEDUP_BAR}x fewer epochs than ReLU at equal final "
            f"accuracy on every seed, so none is recommended.{tail}")


def _study_plots(run_dir: Path, rows: list[dict], summary: list[dict], target: float) -> list[tuple[str, Path]]:
    from matplotlib import colormaps

    from ..plots import new_figure, save_figure

    plots = []

    def save(fig, file: str, title: str) -> None:
        plots.append((title, save_figure(fig, run_dir / file, dpi=110)))

    fig, ax = new_figure(figsize=(7, 4))
    for i, s in enumerate(summary):
        curves = np.array([r["test_curve"] for r in rows if r["activation"] == s["activation"]])
        epochs = np.arange(1, curves.shape[1] + 1)
        ax.plot(epochs, curves.mean(0), color=f"C{i}", label=s["activation"])
        ax.fill_between(epochs, curves.min(0), curves.max(0), color=f"C{i}", alpha=0.15)
    ax.axhline(target, color="k", ls=":", lw=1, label=f"target {target:g}%")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy % (mean, min-max over seeds)")
    ax.legend(fontsize=7)
    save(fig, "accuracy_curves.png", "Test accuracy by epoch")

    fig, ax = new_figure(figsize=(7, 4))
    for i, s in enumerate(summary):
        layers = list(s["betti_end"])
        ax.plot(range(len(layers)), [s["betti_end"][x] for x in layers], marker="o", color=f"C{i}",
                label=s["activation"])
    ax.set_xticks(range(len(layers)), ["input"] + [f"layer {k}" for k in range(1, len(layers))], fontsize=8)
    ax.set_ylabel("b0 + b1, both classes (mean over seeds)")
    ax.set_title(f"after training (epoch {summary[0]['betti_epoch']})", fontsize=9)
    ax.legend(fontsize=7)
    save(fig, "betti_by_depth.png", "Betti numbers by depth after training")

    cols = min(4, len(summary))
    nrows = -(-len(summary) // cols)
    fig, axes = new_figure(nrows, cols, figsize=(3.4 * cols, 2.7 * nrows), squeeze=False)
    for ax in axes.flat[len(summary):]:
        ax.axis("off")
    for ax, s in zip(axes.flat, summary):
        rs = [r for r in rows if r["activation"] == s["activation"]]
        epochs = sorted(rs[0]["betti"], key=int)
        for j, e in enumerate(epochs):
            layers = list(rs[0]["betti"][e])
            vals = [statistics.mean(_betti_total(r["betti"][e][x]) for r in rs) for x in layers]
            ax.plot(range(len(layers)), vals, marker=".", color=colormaps["viridis"](j / max(1, len(epochs) - 1)),
                    label=f"epoch {e}")
        ax.set_title(s["activation"], fontsize=9)
        ax.set_xlabel("depth (0 = input)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle("b0 + b1 by depth over training (mean over seeds)", fontsize=10)
    save(fig, "betti_over_training.png", "Betti numbers by depth over training")
    return plots


def build_study_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` for a study run folder (from its files alone)."""
    from ..report import write_pages

    run_dir = Path(run_dir)
    path = run_dir / "results.jsonl"
    if not path.exists():
        raise TopopruneError(f"{run_dir} has no results.jsonl yet; run `topoprune study activations` first")
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    config = json.loads((run_dir / "config.json").read_text())
    dataset = json.loads((run_dir / "dataset.json").read_text())
    summary = summarize_study(rows, config["target_accuracy"])
    table = study_table(summary, config["target_accuracy"])
    t = config["train"]
    intro = (f"Synthetic set `{dataset['name']}` ({dataset['points']} points in {dataset['dim']}-D, "
             f"Betti numbers per class {dataset['betti']}, total {dataset['total_betti']}; "
             f"{dataset['train']} train / {dataset['test']} test). MLP {dataset['dim']}-"
             f"{'-'.join(map(str, config['hidden']))}-2, {t.get('optimizer', 'sgd')} lr {t.get('lr', 0.05)}, "
             f"batch {t.get('batch_size', 128)}, {t.get('epochs', 10)} epochs; seeds "
             f"{', '.join(map(str, config['seeds']))}. Epochs to target count the first epoch whose test "
             "accuracy reaches it, over the seeds that did. Betti numbers: "
             f"{config['betti']['method']} (k={config['betti']['k']}) on {config['betti']['samples_per_class']} "
             "training points per class, after every activation; b0 + b1 summed over both classes.")
    return write_pages(run_dir, f"topoprune activation study: {config['name']}", intro,
                       [("Verdict", [verdict(summary)]), ("Per activation", table)],
                       _study_plots(run_dir, rows, summary, config["target_accuracy"]))


def summary_dict(run_dir: str | Path) -> dict:
    """The study's summary as plain data (for ``benchmarks/results``)."""
    run_dir = Path(run_dir)
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines() if x.strip()]
    config = json.loads((run_dir / "config.json").read_text())
    summary = summarize_study(rows, config["target_accuracy"])
    return {"config": config, "dataset": json.loads((run_dir / "dataset.json").read_text()),
            "summary": summary, "verdict": verdict(summary), "table": study_table(summary, config["target_accuracy"]),
            "rows": rows}


