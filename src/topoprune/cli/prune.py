"""``topoprune prune``: remove units physically, save the smaller model, optionally export it
and check the exports against it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import TopopruneError
from .app import app
from .common import (check_folder, check_out, console, deprecation_note, field_default_help, inputs_to_trace, load_net,
                     model_kind)
from .options import DataRootOption, KwargsOption, TrustOption, model_option


def _setting(cls_name: str, name: str) -> tuple:
    """A method setting (``topoprune.pruning.methods.<cls_name>``)."""
    from ..pruning import methods

    return field_default_help(getattr(methods, cls_name), name)


# CLI option -> method setting; each method takes the options that name one of its own fields
_METHOD_OPTIONS = {"samples": "samples", "betti_threshold": "threshold", "betti_dim": "dim",
                   "betti_quantile": "quantile", "fitness": "fitness", "population": "population",
                   "generations": "generations", "workers": "workers"}


def _export_formats(values: Optional[list[str]]) -> list[str]:
    """``--export onnx --export torchscript`` or ``--export onnx,torch.export``, checked."""
    from ..experiments.export import EXPORT_FORMATS

    formats: list[str] = []
    for value in values or ():
        for fmt in (v.strip() for v in value.split(",")):
            if fmt not in EXPORT_FORMATS:
                raise TopopruneError(f"--export {fmt!r} is not a format; allowed: {', '.join(EXPORT_FORMATS)} "
                                     "(repeat the option or separate by commas)")
            if fmt not in formats:
                formats.append(fmt)
    return formats


def _run_exports(model, inputs, formats: list[str], out: Path) -> list[dict]:
    """Export the pruned model into ``out`` in each format and check it against the eager model;
    a failed export is recorded (``ok: false`` and the error), not raised, so the pruned model
    and the other exports are still saved."""
    import warnings

    from ..experiments.export import export_model, export_suffix
    from ..models.inputs import example_inputs_for

    x = example_inputs_for(model, inputs)
    records = []
    for fmt in formats:
        try:
            with warnings.catch_warnings():  # a mismatch is in the record and the table
                warnings.simplefilter("ignore")
                records.append(export_model(model, x, out / f"model{export_suffix(fmt)}", format=fmt).to_dict())
        except TopopruneError as exc:
            records.append({"format": fmt, "path": None, "max_abs_diff": None, "ok": False, "error": str(exc)})
    return records


@app.command("prune")
def prune_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for the pruned model (pruned.json + weights.pt + example_inputs.pt, and the exports).")],
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="A `topoprune train` checkpoint (or run folder), a pruned-model folder, or a model file; with --model pkg.module:factory, its weights.")] = None,
    model: Annotated[Optional[str], model_option(", freshly initialised unless --checkpoint gives its weights; or a model file.")] = None,
    width: Annotated[float, typer.Option("--width", help="Width multiplier (registry --model).")] = 1.0,
    input_shape: Annotated[Optional[str], typer.Option("--input-shape", help="C,H,W (registry --model; default: the model's). For your own model: the shape of one float input, to trace it with.")] = None,
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classifier outputs (registry --model).")] = 10,
    model_kwargs: KwargsOption = None,
    example_inputs: Annotated[Optional[Path], typer.Option("--example-inputs", help="The inputs to trace the model with: a tensor, tuple or dict of tensors (e.g. input_ids and attention_mask) saved with torch.save.")] = None,
    export: Annotated[Optional[list[str]], typer.Option("--export", help="Also export the pruned model and check it against the eager one: onnx, torchscript or torch.export (repeatable, or comma-separated).")] = None,
    trust_pickle: TrustOption = False,
    method: Annotated[str, typer.Option("--method", help="A registered structured method: l1, l2, fpgm, random, taylor (needs --dataset), group-norm, topological, betti; with --target also topological-v2, tp-global (`topoprune methods`).")] = "l1",
    sparsity: Annotated[Optional[float], typer.Option("--sparsity", help="Fraction of units removed per targeted layer, in [0, 1) (default 0.5; not with --target).")] = None,
    target: Annotated[Optional[str], typer.Option("--target", help="Prune to a count instead: METRIC=REDUCTION, e.g. flops=4x (4x fewer FLOPs), or METRIC_kept=FRACTION, e.g. flops_kept=0.25; metrics flops, macs, params. Met within 1 %.")] = None,
    allocation: Annotated[str, typer.Option("--allocation", help="With --target, how many units each layer loses: uniform, global, eagleeye (needs --dataset), topological-budget (`topoprune methods`).")] = "uniform",
    exclude: Annotated[Optional[list[str]], typer.Option("--exclude", help="Layer never to prune (repeatable).")] = None,
    ignore: Annotated[Optional[list[str]], typer.Option("--ignore", hidden=True, help="Deprecated spelling of --exclude.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random choices and of the data sample.")] = 0,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Data for data-driven methods (betti; topological with --fitness activation).")] = None,
    data_root: DataRootOption = None,
    samples: Annotated[int, typer.Option("--samples", help=_setting("Betti", "samples")[1])] = _setting("Betti", "samples")[0],
    betti_threshold: Annotated[Optional[float], typer.Option("--betti-threshold", help="Betti: " + _setting("Betti", "threshold")[1])] = None,
    betti_dim: Annotated[str, typer.Option("--betti-dim", help="Betti: " + _setting("Betti", "dim")[1] + ": total (b0 + b1), b0 or b1")] = _setting("Betti", "dim")[0],
    betti_quantile: Annotated[float, typer.Option("--betti-quantile", help="Betti: " + _setting("Betti", "quantile")[1])] = _setting("Betti", "quantile")[0],
    fitness: Annotated[str, typer.Option("--fitness", help="Topological Pruner: " + _setting("Topological", "fitness")[1])] = _setting("Topological", "fitness")[0],
    population: Annotated[int, typer.Option("--population", help="Topological Pruner: " + _setting("Topological", "population")[1])] = _setting("Topological", "population")[0],
    generations: Annotated[int, typer.Option("--generations", help="Topological Pruner: " + _setting("Topological", "generations")[1])] = _setting("Topological", "generations")[0],
    workers: Annotated[int, typer.Option("--workers", help="Topological Pruner: " + _setting("Topological", "workers")[1])] = _setting("Topological", "workers")[0],
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
) -> None:
    """Remove filters/neurons/heads physically and save the smaller model (load it with
    topoprune.load_model); optionally export it (ONNX, TorchScript, torch.export) and check the
    export's outputs against the model's."""
    check_out("--out", out)  # before any pruning: a file at --out would fail only when saving
    check_folder("--data-root", data_root)
    if ignore:
        if exclude:
            raise TopopruneError("give --exclude only (--ignore is its deprecated spelling)")
        deprecation_note("--ignore", "--exclude")
        exclude = ignore
    from ..experiments import read_pruned, save_pruned
    from ..pruning import prune_units
    from ..pruning.methods import method_class, resolve_method

    if checkpoint is None and model is None:
        raise TopopruneError("give exactly one of --checkpoint PATH or --model NAME (a pkg.module:factory "
                             "--model may come with --checkpoint: its weights)")
    if checkpoint is not None and model is not None and model_kind(model) == "registry":
        raise TopopruneError("give exactly one of --checkpoint PATH or --model NAME: a registry model's "
                             "checkpoint records its architecture (only a pkg.module:factory --model takes "
                             "--checkpoint weights)")
    formats = _export_formats(export)
    cls = method_class(method)
    given = {"samples": samples, "betti_threshold": betti_threshold, "betti_dim": betti_dim,
             "betti_quantile": betti_quantile, "fitness": fitness, "population": population,
             "generations": generations, "workers": workers}
    settings = {_METHOD_OPTIONS[k]: v for k, v in given.items()
                if _METHOD_OPTIONS[k] in cls.model_fields and not (k == "betti_threshold" and v is None)}
    chosen = resolve_method({"name": method, **settings}, kind="structured")
    goal = _parse_target_option(target) if target is not None else None
    if goal is not None and sparsity is not None:
        raise TopopruneError("give --sparsity or --target, not both: with --target the allocation chooses "
                             "each layer's sparsity")
    from ..pruning.allocation import resolve_allocation

    if allocation == "topological":
        deprecation_note("--allocation topological", "--allocation topological-budget")
        allocation = "topological-budget"
    chosen_allocation = resolve_allocation(allocation)
    method_labels = chosen.needs().labelled  # methods scored by gradients (taylor)
    wants_labels = (goal is not None and chosen_allocation.needs_data) or bool(method_labels)
    if wants_labels and dataset is None:
        what = (f"--method {method} scores units by the loss's gradients" if method_labels else
                f"--allocation {allocation} judges candidates by accuracy")
        raise TopopruneError(f"{what}: it needs --dataset NAME (labelled training inputs)")
    if formats and "onnx" in formats:
        from ..experiments.export import require_onnx

        require_onnx()  # a missing optional package is said before any work
    net = load_net(model, checkpoint, model_kwargs=model_kwargs, input_shape=input_shape,
                    num_classes=num_classes, width=width, trust_pickle=trust_pickle)
    meta = getattr(net.model, "meta", None)
    x = inputs_to_trace(net, example_inputs, None if meta is not None else input_shape, "--model")
    inputs = None
    if dataset is not None:
        import torch

        shape = meta.input_shape if meta is not None and x is None else (
            tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else None)
        if shape is None:
            raise TopopruneError(f"--dataset needs a model that takes one image tensor; {net.label}'s example "
                                 "inputs are a tuple or dict")
        inputs = _data_sample(dataset, data_root, shape, chosen.needs().sample or samples, seed)
        if wants_labels:
            labelled = _labelled_sample(dataset, data_root, shape, max(2000, method_labels), seed)
    elif chosen.needs().sample:
        raise TopopruneError(f"--method {method} ({chosen}) needs --dataset NAME: it looks at the "
                             "layers' outputs on a data sample")
    if goal is not None:
        pruned, info = prune_units(net.model, x, method=chosen, target=goal, allocation=chosen_allocation,
                                   labelled_sample=labelled if wants_labels else None, exclude=exclude or (),
                                   seed=seed, data_sample=inputs)
    else:
        pruned, info = prune_units(net.model, x, method=chosen, sparsity=sparsity, exclude=exclude or (),
                                   seed=seed, data_sample=inputs, labelled_sample=labelled if wants_labels else None)
    sparsity = 0.5 if sparsity is None else sparsity
    record = info.to_dict()
    if formats:
        record["exports"] = _run_exports(pruned, x, formats, out)
    save_pruned(pruned, out, steps=net.steps + info.steps, info=record, example_inputs=x,
                original=net.model, **net.source)
    needs = read_pruned(out).needs
    if "betti" in info.extra:
        _write_betti_tables(info.extra["betti"], out)
    if "topological" in info.extra:
        from ..experiments.plots import plot_ga_trajectories

        plot_ga_trajectories(info.extra["topological"], out / "ga_fitness.png",
                             f"{net.label}: Topological Pruner, sparsity {sparsity}")
    failed = [e for e in record.get("exports", []) if not e.get("ok")]
    if as_json:
        print(json.dumps(record, indent=2))
    else:
        _print_prune(net.label, info, sparsity, record.get("exports", []), out)
        console.print(f"saved to {out} in {info.seconds:.2f} s; load with topoprune.load_model({str(out)!r}"
                      f"{', model=...' if needs else ''})")
        if needs:
            console.print(f"note: the folder cannot rebuild the model alone; it needs {needs}")
    if failed:
        for e in failed:  # the pruned model and the other exports are saved; the exit status says so
            why = e.get("error") or (f"{e['format']} export differs from the pruned model by "
                                     f"{e['max_abs_diff']:.3g} on the example inputs")
            print(f"topoprune: {' '.join(str(why).split())}", file=sys.stderr)
        raise typer.Exit(1)


def _parse_target_option(text: str) -> dict:
    """``--target flops=4x`` / ``flops_kept=0.25`` as the mapping prune_units takes (checked there).
    The older ``flops=0.25`` (a bare fraction kept) still works, with a deprecation note."""
    metric, sep, value = text.partition("=")
    if not sep:
        raise TopopruneError(f"--target: bad value {text!r}; allowed: METRIC=REDUCTION or METRIC_kept=FRACTION, "
                             "e.g. flops=4x or flops_kept=0.25")
    metric, value = metric.strip(), value.strip()
    try:
        number = float(value)
    except ValueError:
        return {metric: value}
    if not metric.endswith("_kept") and 0 < number < 1:
        deprecation_note(f"--target {metric}={value} (a bare fraction kept)",
                         f"--target {metric}_kept={value} or --target {metric}={1 / number:.3g}x" if number > 0
                         else f"--target {metric}_kept=FRACTION")
        metric = f"{metric}_kept"
    return {metric: number}


def _labelled_sample(dataset: str, root, input_shape, n: int, seed: int):
    """``n`` seeded training inputs with their labels, for allocations that measure accuracy."""
    import torch

    from ..data import prepare_data

    data = prepare_data(dataset, root, input_shape=tuple(input_shape), val_fraction=0.1, seed=seed)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(data.train_x.shape[0], generator=g)[: min(n, data.train_x.shape[0])]
    return data.train_x[idx], data.train_y[idx]


def _print_prune(label: str, info, sparsity: float, exports: list[dict], out: Path) -> None:
    budget = info.extra.get("budget")
    how = (f"target {budget['target']['metric']} x{budget['target']['keep']:.3g}, {budget.get('searched_by')}"
           if budget else f"sparsity {sparsity}")
    summary = Table(title=f"{label}: {info.method} filter pruning, {how}")
    for col in ("", "before", "after", "kept"):
        summary.add_column(col, justify="left" if not col else "right")
    for name, (a, b) in (("parameters", info.params), ("MACs (NNI rule)", info.macs),
                         ("FLOPs (torch counter)", info.flops)):
        summary.add_row(name, f"{a:,}", f"{b:,}", f"{100 * b / a:.1f}%" if a else "-")
    console.print(summary)
    layers = Table(title="per-layer units")
    for col in ("layer", "kind", "before", "after", "note"):
        layers.add_column(col, justify="right" if col in ("before", "after") else "left")
    for x in info.layers:
        layers.add_row(x.name, x.kind, str(x.before), str(x.after), x.note)
    console.print(layers)
    if budget:
        console.print(f"target {budget['target']['metric']}: kept {budget['measured_fraction']:.4f} of the dense "
                      f"count (asked {budget['target']['keep']:.4f}; {'met' if budget['met'] else 'MISSED'} within 1 %)")
    if "topological" in info.extra:
        ga = Table(title=f"Topological Pruner fitness ({info.extra['ga']['fitness']}, lower is better)")
        for col in ("layer", "GA", "l1", "l2", "fpgm", "generations", "evaluations"):
            ga.add_column(col, justify="left" if col == "layer" else "right")
        for name, r in info.extra["topological"].items():
            h = r["heuristics"]
            ga.add_row(name, f"{r['fitness']:.4f}", *(f"{h[m]:.4f}" if m in h else "-" for m in ("l1", "l2", "fpgm")),
                       str(len(r["best_by_generation"]) - 1), str(r["evaluations"]))
        console.print(ga)
        console.print(f"fitness trajectories: {out / 'ga_fitness.png'}")
    if exports:
        table = Table(title="exports (outputs compared with the pruned model on the example inputs)")
        for col in ("format", "file", "max |diff|", "ok", "seconds"):
            table.add_column(col, justify="right" if col in ("max |diff|", "seconds") else "left")
        for e in exports:
            diff = "-" if e.get("max_abs_diff") is None else f"{e['max_abs_diff']:.2e}"
            table.add_row(e["format"], Path(e["path"]).name if e.get("path") else "-", diff,
                          "yes" if e.get("ok") else "no", f"{e.get('seconds', 0):.2f}")
        console.print(table)


def _data_sample(dataset: str, root, input_shape, n: int, seed: int):
    """A fixed, seeded sample of ``n`` training inputs, fitted and normalized for the model."""
    from ..data import prepare_data

    if n < 4:
        raise TopopruneError(f"--samples must be >= 4 (a loop needs 4 points), got {n}")
    data = prepare_data(dataset, root, input_shape=tuple(input_shape), val_fraction=0.1, seed=seed)
    return data.sample(n, seed)


def _write_betti_tables(tables: dict, out: Path) -> None:
    """betti.json (layer -> rows) and betti.csv (one row per layer and unit)."""
    import csv

    (out / "betti.json").write_text(json.dumps(tables, indent=2) + "\n")
    with (out / "betti.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["layer", "unit", "b0", "b1", "total", "scale"])
        for layer, rows in tables.items():
            for r in rows:
                writer.writerow([layer, r["unit"], r["b0"], r["b1"], r["total"], f"{r['scale']:.6g}"])
