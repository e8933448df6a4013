"""The ``topoprune`` command line: parse, call the library, print.

Bad input ends in one line on stderr (``topoprune: error: ...``) naming the bad value and what
is allowed, exit code 2, and no traceback.
"""

from __future__ import annotations

import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.exceptions import TyperException
from rich.console import Console
from rich.table import Table

from ._version import __version__
from .errors import TopopruneError

app = typer.Typer(
    name="topoprune",
    help="Topology-aware neural network pruning: neural persistence and critical compression of "
    "a model; filter pruning (l1, l2, fpgm, random, the Topological Pruner's genetic search, Betti "
    "pruning); unstructured magnitude pruning and IMP/T-IMP in comparisons; recovery measurement, "
    "resumable method comparisons with reports, and the activation study.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console()

DeviceOption = Annotated[str, typer.Option(
    "--device", help="Where training runs: auto (cuda if available, else cpu), cpu, cuda, cuda:N or mps.")]


class Convention(str, Enum):
    paper = "paper"
    exact = "exact"


class Normalization(str, Enum):
    layer = "layer"
    global_ = "global"


class ConvGraph(str, Enum):
    channel = "channel"
    toeplitz = "toeplitz"


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.5f}"


def _check_range(option: str, value: float | None, low: float, high: float, *,
                 low_open: bool = False, high_open: bool = False) -> None:
    """Refuse an option's number outside ``low..high`` (NaN and infinities included), naming the
    option and the allowed range, before any work."""
    if value is None:
        return
    ok = math.isfinite(value) and (low < value if low_open else low <= value) and (
        value < high if high_open else value <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        allowed = (f">= {low:g}" if math.isinf(high) else
                   f"in {lo}{low:g}, {int(high) if float(high).is_integer() else high}{hi}")
        raise TopopruneError(f"{option} {value!r}: allowed: a number {allowed}")


def _check_out(option: str, out: Path) -> None:
    """A folder to write into: refuse a path that is a file, or lies under one, before any work."""
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                where = "is a file" if parent == out else f"lies under {parent}, which is a file"
                raise TopopruneError(f"{option} {out} {where}; allowed: a folder (created if missing)")
            return


def _check_folder(option: str, path: Optional[Path]) -> None:
    """A folder to read from: refuse a path that exists but is not a folder."""
    if path is not None and path.exists() and not path.is_dir():
        raise TopopruneError(f"{option} {path} is a file; allowed: a folder")


def _build_model(name: str, input_shape: Optional[str], num_classes: int, width: float):
    from .models import create_model, model_defaults, parse_shape

    in_channels, input_size, _ = model_defaults(name)
    if input_shape is not None:
        shape = parse_shape(input_shape)
        if len(shape) != 3:
            raise TopopruneError(
                f"malformed shape {input_shape!r}: expected three positive integers C,H,W "
                "(e.g. 1,28,28)"
            )
        in_channels, input_size = shape[0], (shape[1], shape[2])
    return create_model(
        name, num_classes=num_classes, in_channels=in_channels, input_size=input_size, width=width
    )


@app.command("models")
def models_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the model registry with default input shapes and parameter counts."""
    from .models import create_model, list_models, model_defaults

    rows = []
    for name in list_models():
        c, (h, w), desc = model_defaults(name)
        params = sum(p.numel() for p in create_model(name).parameters())
        rows.append({"name": name, "input_shape": [c, h, w], "params": params, "description": desc})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="topoprune models (10 classes, width 1)")
    for col in ("name", "input", "params", "description"):
        table.add_column(col, justify="right" if col == "params" else "left")
    for r in rows:
        table.add_row(r["name"], "x".join(map(str, r["input_shape"])), f"{r['params']:,}", r["description"])
    console.print(table)


@app.command("methods")
def methods_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the registered pruning methods, their kind and their settings (the config keys)."""
    from .pruning.methods import METHODS

    rows = [{"name": name, "kind": "structured" if cls.structured else "unstructured",
             "settings": {f: (info.description or "") for f, info in cls.model_fields.items()},
             "summary": cls.summary} for name, cls in METHODS.items()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="topoprune pruning methods")
    for col in ("name", "kind", "settings", "what it does"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["kind"], ", ".join(r["settings"]) or "-", r["summary"])
    console.print(table)


@app.command("critical")
def critical_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Registry model name.")],
    input_shape: Annotated[
        Optional[str], typer.Option("--input-shape", help="C,H,W of one input (default: the model's).")
    ] = None,
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classifier outputs.")] = 10,
    convention: Annotated[
        Convention, typer.Option("--convention", help="paper: one-channel Toeplitz count; exact: full unrolled graph.")
    ] = Convention.paper,
    width: Annotated[float, typer.Option("--width", help="Width multiplier.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Topologically critical compression ratio per layer and for the model (Balwani & Krzyston)."""
    from .analysis import critical_compression

    net = _build_model(model, input_shape, num_classes, width)
    report = critical_compression(net, convention=convention.value)
    if as_json:
        print(json.dumps({"model": model, **report.to_dict()}, indent=2))
        return
    shape = "x".join(map(str, net.meta.input_shape))
    table = Table(title=f"critical compression: {model} at {shape}, convention={convention.value}")
    for col in ("layer", "kind", "edges", "tree size", "ratio"):
        table.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for x in report.layers:
        table.add_row(x.name, x.kind, f"{x.edges:,}", f"{x.tree_size:,}", _fmt(x.ratio))
    table.add_section()
    table.add_row(
        "final", "", f"{sum(x.edges for x in report.layers):,}",
        f"{sum(x.tree_size for x in report.layers):,}", _fmt(report.final),
    )
    console.print(table)


@app.command("persistence")
def persistence_cmd(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Registry model name.")] = None,
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", help="State dict to load into --model.")
    ] = None,
    weights: Annotated[
        Optional[Path], typer.Option("--weights", help="A .npy (one layer, n_out x n_in) or .npz (one layer per array).")
    ] = None,
    p: Annotated[float, typer.Option("--p", help="Norm exponent, > 0 (inf allowed).")] = 2.0,
    normalization: Annotated[
        Normalization, typer.Option("--normalization", help="layer: each layer by its max |w|; global: by the network's.")
    ] = Normalization.layer,
    conv_graph: Annotated[
        ConvGraph, typer.Option("--conv-graph", help="channel: kernel-slice norms; toeplitz: exact unrolled graph.")
    ] = ConvGraph.channel,
    include_bias: Annotated[bool, typer.Option("--include-bias", help="Fold biases in as an extra input vertex.")] = False,
    essential: Annotated[bool, typer.Option("--essential", help="Count the never-dying class as (1, 0).")] = False,
    input_shape: Annotated[Optional[str], typer.Option("--input-shape", help="C,H,W (default: the model's).")] = None,
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classifier outputs.")] = 10,
    width: Annotated[float, typer.Option("--width", help="Width multiplier.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Neural persistence per layer and for the network (Rieck et al. 2019)."""
    from .analysis import neural_persistence

    if (model is None) == (weights is None):
        raise TopopruneError("give exactly one of --model NAME or --weights FILE")
    if checkpoint is not None and model is None:
        raise TopopruneError("--checkpoint needs --model NAME (the architecture to load it into)")
    if model is not None:
        target = _build_model(model, input_shape, num_classes, width)
        if checkpoint is not None:
            from .experiments import load_checkpoint_into

            load_checkpoint_into(target, checkpoint)
        source = model
    else:
        from .experiments import load_weights_file

        target = load_weights_file(weights)
        source = str(weights)
    report = neural_persistence(
        target, p=p, normalization=normalization.value, include_bias=include_bias,
        essential=essential, conv_graph=conv_graph.value,
    )
    if as_json:
        print(json.dumps({"source": source, **report.to_dict()}, indent=2))
        return
    table = Table(
        title=f"neural persistence: {source}, p={_fmt(report.p)}, normalization={report.normalization}"
    )
    for col in ("layer", "kind", "graph", "|V|", "NP", "normalized"):
        table.add_column(col, justify="left" if col in ("layer", "kind", "graph") else "right")
    for x in report.layers:
        table.add_row(x.name, x.kind, x.graph, f"{x.n_vertices:,}", _fmt(x.np), _fmt(x.normalized))
    table.add_section()
    table.add_row("network", "", "", "", f"total {_fmt(report.total)}", f"mean {_fmt(report.mean_normalized)}")
    console.print(table)


class Optimizer(str, Enum):
    sgd = "sgd"
    adam = "adam"


class Schedule(str, Enum):
    cosine = "cosine"
    multistep = "multistep"
    none = "none"


def _field(model, name: str) -> tuple:
    """(default, help) of a field of a pydantic model: a CLI option and the config key or method
    setting it mirrors share one source."""
    f = model.model_fields[name]
    return f.default, f.description or ""


def _recipe(name: str) -> tuple:
    """A training setting (:class:`topoprune.experiments.config.TrainSpec`, from ``TrainConfig``)."""
    from .experiments.config import TrainSpec

    return _field(TrainSpec, name)


def _validated_recipe(**values):
    """The options of a training recipe, validated by the config's own model; an error names the
    option (``--batch-size``), the value and what is allowed."""
    from pydantic import ValidationError

    from .experiments.config import TrainSpec
    from .pruning.methods import format_validation_error

    try:
        return TrainSpec.model_validate(values).train_config()
    except ValidationError as exc:
        raise TopopruneError("--" + format_validation_error(exc).replace("_", "-", 1)) from None


@app.command("train")
def train_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Registry model name.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (see `topoprune data list`).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoint.pt and metrics.json; rerun to resume.")],
    width: Annotated[float, typer.Option("--width", help="Width multiplier.")] = 1.0,
    epochs: Annotated[int, typer.Option("--epochs", help=_recipe("epochs")[1])] = _recipe("epochs")[0],
    optimizer: Annotated[Optimizer, typer.Option("--optimizer", help=_recipe("optimizer")[1])] = Optimizer(_recipe("optimizer")[0]),
    lr: Annotated[float, typer.Option("--lr", help=_recipe("lr")[1])] = _recipe("lr")[0],
    weight_decay: Annotated[float, typer.Option("--weight-decay", help=_recipe("weight_decay")[1])] = _recipe("weight_decay")[0],
    schedule: Annotated[Schedule, typer.Option("--schedule", help=_recipe("schedule")[1])] = Schedule(_recipe("schedule")[0]),
    batch_size: Annotated[int, typer.Option("--batch-size", help=_recipe("batch_size")[1])] = _recipe("batch_size")[0],
    seed: Annotated[int, typer.Option("--seed", help=_recipe("seed")[1] + " (and of the val split)")] = _recipe("seed")[0],
    input_shape: Annotated[Optional[str], typer.Option("--input-shape", help="C,H,W to fit the data to (default: the dataset's).")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Folder to look for data in first.")] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of train held out for validation.")] = 0.1,
    augment: Annotated[bool, typer.Option("--augment", help="Random crop + flip (CIFAR style).")] = False,
    track_np: Annotated[bool, typer.Option("--track-np", help="Record every layer's neural persistence per epoch.")] = False,
    np_patience: Annotated[Optional[int], typer.Option("--np-early-stop", help="Stop after this many epochs without a rise in mean normalized NP.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Use only the first N train/test samples (quick runs).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    device: DeviceOption = "auto",
) -> None:
    """Train a registry model on a dataset, checkpointing every epoch (rerun to resume)."""
    import torch

    from .data import dataset_info, prepare_data
    from .experiments.config import LIMITS
    from .models import create_model, model_defaults, parse_shape
    from .train import NeuralPersistenceTracker, NPEarlyStopping, resolve_device, set_threads, train

    set_threads()  # the entry point sets torch's threads once; the library never does

    # every option is checked before data are loaded or --out is created: the recipe by the
    # config file's own model (the same ranges, no NaN/inf), the rest one by one
    cfg = _validated_recipe(epochs=epochs, optimizer=optimizer.value, lr=lr, weight_decay=weight_decay,
                            schedule=schedule.value, batch_size=batch_size, seed=seed)
    _check_range("--width", width, 0, LIMITS["width"], low_open=True)
    _check_range("--val-fraction", val_fraction, 0, 1, high_open=True)
    _check_range("--limit", limit, 1, math.inf)
    _check_range("--np-early-stop", np_patience, 1, LIMITS["epochs"])
    _check_out("--out", out)
    _check_folder("--data-root", data_root)
    model_defaults(model)  # an unknown model is refused now, not after loading the data
    resolve_device(device)  # a missing GPU too

    info = dataset_info(dataset)
    shape = parse_shape(input_shape) if input_shape is not None else info.shape
    if len(shape) != 3:
        raise TopopruneError(f"malformed shape {input_shape!r}: expected C,H,W (e.g. 1,32,32)")
    data = prepare_data(dataset, data_root, input_shape=shape, val_fraction=val_fraction,
                        seed=seed, augment=augment, limit=limit)
    torch.manual_seed(seed)
    net = create_model(model, num_classes=info.num_classes, in_channels=shape[0],
                       input_size=(shape[1], shape[2]), width=width)
    callbacks = []
    if track_np or np_patience is not None:
        callbacks.append(NeuralPersistenceTracker())
    if np_patience is not None:
        callbacks.append(NPEarlyStopping(patience=np_patience))
    result = train(net, data, cfg, out_dir=out, callbacks=callbacks, progress=not quiet,
                   description=f"{model} on {dataset}", device=device)
    final = result.final
    how = "stopped early" if result.stopped_early else "done"
    console.print(
        f"{how}: {len(result.history)} epochs, train loss {final['train_loss']:.4f}, "
        f"val {final['val_acc']:.2f}%, test {final['test_acc']:.2f}%; wrote {out / 'metrics.json'}"
    )


data_app = typer.Typer(help="Datasets: list what is available locally, fetch the official files.",
                       no_args_is_help=True, rich_markup_mode=None)
app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list_cmd(
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Folder to look in first.")] = None,
) -> None:
    """Show each dataset, whether it is available locally, and where."""
    from .data import dataset_info, list_datasets, locate

    _check_folder("--data-root", data_root)

    table = Table(title="topoprune datasets")
    for col in ("name", "shape", "classes", "available", "where / how to get it"):
        table.add_column(col)
    for name in list_datasets():
        info = dataset_info(name)
        where = "embedded (scikit-learn)" if name == "digits" else locate(name, data_root)
        table.add_row(name, "x".join(map(str, info.shape)), str(info.num_classes),
                      "yes" if where else "no", str(where) if where else info.how_to_get)
    console.print(table)


@data_app.command("fetch")
def data_fetch_cmd(
    name: Annotated[str, typer.Argument(help="Dataset to download.")],
    root: Annotated[Optional[Path], typer.Option("--root", help="Download into ROOT/NAME (default ~/.cache/topoprune/NAME).")] = None,
    mirror: Annotated[Optional[str], typer.Option("--mirror", help="Base URL serving the same file names.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Download a dataset's official files, verifying each checksum."""
    from urllib.parse import urlsplit

    from .data import dataset_info, fetch

    dataset_info(name)  # an unknown name first, with its did-you-mean
    if root is not None:
        _check_out("--root", root)
    if mirror is not None:
        url = urlsplit(mirror)
        if url.scheme not in ("http", "https", "ftp", "file") or (url.scheme != "file" and not url.netloc):
            raise TopopruneError(f"--mirror {mirror!r} is not a URL; allowed: an http(s)://, ftp:// or "
                                 "file:// base URL serving the same file names")

    dest = fetch(name, root, progress=not quiet, mirror=mirror)
    console.print(f"{name}: checksums verified; files in {dest}")


def _setting(cls_name: str, name: str) -> tuple:
    """A method setting (``topoprune.pruning.methods.<cls_name>``)."""
    from .pruning import methods

    return _field(getattr(methods, cls_name), name)


# CLI option -> method setting; each method takes the options that name one of its own fields
_METHOD_OPTIONS = {"samples": "samples", "betti_threshold": "threshold", "betti_dim": "dim",
                   "betti_quantile": "quantile", "fitness": "fitness", "population": "population",
                   "generations": "generations", "workers": "workers"}


@app.command("prune")
def prune_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for the pruned model (pruned.json + weights.pt).")],
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="A `topoprune train` checkpoint (or run folder), or a pruned-model folder.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Registry model, freshly initialised (instead of --checkpoint).")] = None,
    width: Annotated[float, typer.Option("--width", help="Width multiplier (with --model).")] = 1.0,
    input_shape: Annotated[Optional[str], typer.Option("--input-shape", help="C,H,W (with --model; default: the model's).")] = None,
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classifier outputs (with --model).")] = 10,
    method: Annotated[str, typer.Option("--method", help="A registered structured method: l1, l2, fpgm, random, topological, betti (`topoprune methods`).")] = "l1",
    sparsity: Annotated[float, typer.Option("--sparsity", help="Fraction of units removed per targeted layer, in [0, 1).")] = 0.5,
    ignore: Annotated[Optional[list[str]], typer.Option("--ignore", help="Layer never to prune (repeatable).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random choices and of the data sample.")] = 0,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Data for data-driven methods (betti; topological with --fitness activation).")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Folder to look for data in first.")] = None,
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
    """Remove filters/neurons physically and save the smaller model (load it with topoprune.load_model)."""
    _check_out("--out", out)  # before any pruning: a file at --out would fail only when saving
    _check_folder("--data-root", data_root)
    from .experiments import load_model, save_pruned
    from .pruning import prune_filters

    from .pruning.methods import method_class, resolve_method

    if (checkpoint is None) == (model is None):
        raise TopopruneError("give exactly one of --checkpoint PATH or --model NAME")
    cls = method_class(method)
    given = {"samples": samples, "betti_threshold": betti_threshold, "betti_dim": betti_dim,
             "betti_quantile": betti_quantile, "fitness": fitness, "population": population,
             "generations": generations, "workers": workers}
    settings = {_METHOD_OPTIONS[k]: v for k, v in given.items()
                if _METHOD_OPTIONS[k] in cls.model_fields and not (k == "betti_threshold" and v is None)}
    chosen = resolve_method({"name": method, **settings}, kind="structured")
    net = load_model(checkpoint) if checkpoint is not None else _build_model(model, input_shape, num_classes, width)
    inputs = None
    if dataset is not None:
        inputs = _data_sample(dataset, data_root, net.meta.input_shape, chosen.needs().sample or samples, seed)
    elif chosen.needs().sample:
        raise TopopruneError(f"--method {method} ({chosen}) needs --dataset NAME: it looks at the "
                             "layers' outputs on a data sample")
    pruned, info = prune_filters(net, method=chosen, sparsity=sparsity, ignore=ignore or (),
                                 seed=seed, inputs=inputs)
    prior = []
    if checkpoint is not None and (Path(checkpoint) / "pruned.json").is_file():
        prior = json.loads((Path(checkpoint) / "pruned.json").read_text())["steps"]
    save_pruned(pruned, prior + info.steps, out, info=info.to_dict(), spec=net.meta.spec())
    if "betti" in info.extra:
        _write_betti_tables(info.extra["betti"], out)
    if "topological" in info.extra:
        from .experiments.plots import plot_ga_trajectories

        plot_ga_trajectories(info.extra["topological"], out / "ga_fitness.png",
                             f"{net.meta.name}: Topological Pruner, sparsity {sparsity}")
    if as_json:
        print(json.dumps(info.to_dict(), indent=2))
        return
    summary = Table(title=f"{net.meta.name}: {info.method} filter pruning, sparsity {sparsity}")
    for col in ("", "before", "after", "kept"):
        summary.add_column(col, justify="left" if not col else "right")
    for label, (a, b) in (("parameters", info.params), ("MACs (NNI rule)", info.macs),
                          ("FLOPs (torch counter)", info.flops)):
        summary.add_row(label, f"{a:,}", f"{b:,}", f"{100 * b / a:.1f}%")
    console.print(summary)
    layers = Table(title="per-layer units")
    for col in ("layer", "kind", "before", "after", "note"):
        layers.add_column(col, justify="right" if col in ("before", "after") else "left")
    for x in info.layers:
        layers.add_row(x.name, x.kind, str(x.before), str(x.after), x.note)
    console.print(layers)
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
    console.print(f"saved to {out} in {info.seconds:.2f} s; load with topoprune.load_model({str(out)!r})")


def _data_sample(dataset: str, root, input_shape, n: int, seed: int):
    """A fixed, seeded sample of ``n`` training inputs, fitted and normalized for the model."""
    from .data import prepare_data

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


def _default_config() -> Path:
    """configs/quickstart.yaml in the working directory, else beside the installed source tree."""
    here = Path("configs/quickstart.yaml")
    if here.exists():
        return here
    repo = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
    return repo if repo.exists() else here


@app.command("compare")
def compare_cmd(
    config: Annotated[Optional[Path], typer.Argument(help="Experiment YAML (default: configs/quickstart.yaml).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Parent folder of the run folder.")] = Path("runs"),
    workers: Annotated[int, typer.Option("--workers", help="Cells run in parallel processes.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display (CI logs).")] = False,
    device: DeviceOption = "auto",
    repair: Annotated[bool, typer.Option("--repair", help="Redo the stages whose artefacts no longer match the run's manifest (and what used them).")] = False,
) -> None:
    """Prune a model with every method, let it recover, compare (resumable: rerun to continue).
    Training runs on --device; pruning and the latency columns stay on the CPU."""
    from .experiments.config import load_config
    from .experiments.runner import run_experiment

    cfg = load_config(config or _default_config())
    run_dir = run_experiment(cfg, out, workers=workers, quiet=quiet, device=device, repair=repair)
    console.print(f"results: {run_dir / 'results.jsonl'}\nreport:  {run_dir / 'report.md'} and {run_dir / 'report.html'}")


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `topoprune compare`.")],
) -> None:
    """(Re)build report.md and report.html from a run folder's results."""
    from .experiments.report import build_report

    if not (run_dir / "config.json").is_file():
        raise TopopruneError(f"{run_dir} is not a run folder (no config.json)")
    md, page = build_report(run_dir)
    console.print(f"wrote {md} and {page}")


study_app = typer.Typer(help="Studies of topology through the layers (Kochar et al.).", no_args_is_help=True)
app.add_typer(study_app, name="study")


@study_app.command("activations")
def study_activations_cmd(
    config: Annotated[Path, typer.Argument(help="Study YAML, e.g. configs/study-activations.yaml.")],
    out: Annotated[Path, typer.Option("--out", help="Parent folder of the run folder.")] = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
    device: DeviceOption = "auto",
) -> None:
    """Train one MLP per activation and seed on a synthetic set with many holes; report epochs
    to the target accuracy, final accuracy and Betti numbers per layer (resumable)."""
    from .experiments.study import load_study_config, run_study, summary_dict

    _check_out("--out", out)

    run_dir = run_study(load_study_config(config), out, quiet=quiet, device=device)
    console.print(summary_dict(run_dir)["verdict"])
    console.print(f"results: {run_dir / 'results.jsonl'}\nreport:  {run_dir / 'report.md'} and {run_dir / 'report.html'}")


@app.command("version")
def version_cmd() -> None:
    """Print the topoprune version."""
    print(__version__)


def _fail(message: str) -> None:
    """Print an error as one line (whitespace folded) and exit with status 2."""
    import re

    message = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", message)  # colour codes some libraries put in
    print(f"topoprune: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: turns every user error into one line and exit code 2."""
    import warnings

    args = sys.argv[1:] if argv is None else argv
    # torch.load's warning before it refuses a TorchScript file would be a second stderr line
    warnings.filterwarnings("ignore", message=r".*looks like a TorchScript archive", category=UserWarning)
    try:
        app(args=args, prog_name="topoprune", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("topoprune: aborted", file=sys.stderr)
        sys.exit(130)
    except TyperException as exc:  # usage errors: unknown option, bad choice, bad number
        _fail(exc.format_message())
    except TopopruneError as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - only input-caused errors become one line
        message = _input_error(exc, args)
        if message is None:
            raise  # a bug: keep the traceback
        _fail(message)
    sys.exit(0)


_PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                PermissionError)


def _input_error(exc: BaseException, args: list[str]) -> str | None:
    """The one-line message for an error caused by the user's input or machine (a file that is
    not text, a path of the wrong kind, memory), or None for anything else: a bug keeps its
    traceback. The library should raise TopopruneError itself; this is the safety net."""
    if isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc) or "out of memory" in str(exc))
    ):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return (f"out of memory ({first}); allowed: sizes this machine can hold: lower the width, the "
                "input shape, the batch size or the sample size")
    if isinstance(exc, _PATH_ERRORS) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, UnicodeDecodeError):
        files = [a for a in args if not a.startswith("-") and Path(a).exists()]
        where = f" ({', '.join(files)})" if files else ""
        return (f"a file given{where} is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} "
                f"at position {exc.start}); allowed: UTF-8 text files")
    return None


if __name__ == "__main__":
    main()
