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


MODEL_HELP = ("A registry model (`topoprune models`), or your own: pkg.module:factory (a function or class "
              "returning an nn.Module; see --model-kwargs)")
KwargsOption = Annotated[Optional[str], typer.Option(
    "--model-kwargs", help="JSON object of keyword arguments for --model: the factory's, or a registry "
    "model's extra options (e.g. '{\"shortcut\": \"B\"}').")]
TrustOption = Annotated[bool, typer.Option(
    "--trust-pickle", help="Allow a model file saved whole with torch.save(model): unpickling runs code "
    "stored in the file, so only for files you trust.")]

_REGISTRY_ONLY = ("num_classes", "in_channels", "input_size", "width")


def _model_kind(model: str) -> str:
    """``"factory"`` (``pkg.module:function``), ``"registry"`` or ``"file"`` (an existing path)."""
    from .experiments.factory import is_factory
    from .models import list_models

    if is_factory(model):
        return "factory"
    if model in list_models():
        return "registry"
    path = Path(model)
    if model and (path.is_file() or any((path / f).is_file() for f in ("pruned.json", "checkpoint.pt"))):
        return "file"
    return "registry"  # unknown: create_model names the registry's choices


def _import_from_cwd() -> None:
    """Let ``--model mymodule:build`` find ``mymodule.py`` in the working directory, as
    ``python -m`` would (the console script's sys.path starts at its own folder)."""
    import os

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


def _registry_shape(name: str, input_shape: Optional[str]) -> tuple[int, tuple[int, int]]:
    from .models import model_defaults, parse_shape

    in_channels, input_size, _ = model_defaults(name)
    if input_shape is not None:
        shape = parse_shape(input_shape)
        if len(shape) != 3:
            raise TopopruneError(
                f"malformed shape {input_shape!r}: expected three positive integers C,H,W "
                "(e.g. 1,28,28)"
            )
        in_channels, input_size = shape[0], (shape[1], shape[2])
    return in_channels, input_size


def _build_model(name: str, input_shape: Optional[str], num_classes: int, width: float,
                 kwargs: Optional[dict] = None):
    """A registry model (``kwargs``: its extra options), or the model ``pkg.module:factory``
    returns for ``kwargs`` (the registry's --num-classes/--width/--input-shape do not apply)."""
    from .experiments.factory import build_from_factory
    from .models import create_model

    kwargs = dict(kwargs or {})
    if _model_kind(name) == "factory":
        if width != 1.0 or num_classes != 10:
            which = "--width" if width != 1.0 else "--num-classes"
            raise TopopruneError(f"{which} applies to registry models; --model {name} takes its own "
                                 "arguments: pass them in --model-kwargs JSON")
        _import_from_cwd()
        return build_from_factory(name, kwargs, what="--model")
    clash = sorted(set(kwargs) & set(_REGISTRY_ONLY))
    if clash:
        raise TopopruneError(f"--model-kwargs {clash[0]!r}: use the option --{clash[0].replace('_', '-')} "
                             "(or --input-shape) instead")
    try:
        in_channels, input_size = _registry_shape(name, input_shape)
    except TopopruneError as exc:
        if "unknown model" in str(exc):
            raise TopopruneError(f"{exc}; or your own model as pkg.module:factory, or a model file") from None
        raise
    return create_model(name, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                        width=width, **kwargs)


def nn_module() -> type:
    """``torch.nn.Module``, imported when needed (the CLI starts without torch)."""
    from torch import nn

    return nn.Module


class _Net:
    """The model a command works on and where it came from: ``source`` are the keyword arguments
    of ``save_pruned`` naming its architecture, ``steps`` the removals a pruned folder already
    holds, ``example_inputs`` the inputs that folder was traced with."""

    def __init__(self, model, label: str, source: dict, steps: list, example_inputs=None) -> None:
        self.model, self.label, self.source = model, label, source
        self.steps, self.example_inputs = steps, example_inputs


def _load_net(model: Optional[str], checkpoint: Optional[Path], *, model_kwargs: Optional[str],
              input_shape: Optional[str], num_classes: int, width: float, trust_pickle: bool) -> _Net:
    """The model of --model (registry, factory, or a model file) and/or --checkpoint (weights for
    --model; alone: a train checkpoint, a pruned folder or a model file)."""
    from .experiments import load_inputs_file, load_model, read_pruned, require_python_model
    from .experiments.factory import parse_kwargs

    kwargs = parse_kwargs(model_kwargs)
    if model is not None and _model_kind(model) == "file":
        if checkpoint is not None:
            raise TopopruneError(f"--model {model} is a file and --checkpoint is given too; give the model "
                                 "file once, as --model FILE or --checkpoint FILE")
        model, checkpoint = None, Path(model)
    if model is None and checkpoint is None:
        raise TopopruneError("give --model NAME (a registry model or pkg.module:factory), --checkpoint PATH, or both")
    if model is None:
        if kwargs:
            raise TopopruneError("--model-kwargs needs --model (the factory or registry model it is for)")
        _import_from_cwd()  # a pruned folder may name a factory in the working directory
        net = require_python_model(load_model(checkpoint, trust_pickle=trust_pickle), str(checkpoint))
        label = getattr(getattr(net, "meta", None), "name", None) or type(net).__name__
        source, steps, inputs = {}, [], None
    else:
        net = _build_model(model, input_shape, num_classes, width, kwargs)
        label = model
        source = {"factory": model, "factory_kwargs": kwargs} if _model_kind(model) == "factory" else {}
        steps, inputs = [], None
        if checkpoint is not None:
            net = load_model(checkpoint, model=net, trust_pickle=trust_pickle)
    if checkpoint is not None and (Path(checkpoint) / "pruned.json").is_file():
        record = read_pruned(checkpoint)
        steps = record.steps
        source = source or record.source()
        inputs = load_inputs_file(record.example_inputs) if record.example_inputs is not None else None
    return _Net(net, label, source, steps, inputs)


def _example_inputs(net: _Net, example_inputs: Optional[Path], input_shape: Optional[str], what: str):
    """The inputs to trace the model with: --example-inputs, else those of the pruned folder it
    came from, else (a registry model) None: zeros of its input shape; else zeros of
    --input-shape."""
    import torch

    from .experiments import load_inputs_file
    from .models import parse_shape

    if example_inputs is not None:
        return load_inputs_file(example_inputs, "--example-inputs")
    if net.example_inputs is not None:
        return net.example_inputs
    if getattr(net.model, "meta", None) is not None:
        return None
    if input_shape is not None:
        return torch.zeros(1, *parse_shape(input_shape))
    raise TopopruneError(f"{what} {net.label} is not a registry model, so its input is unknown: give "
                         "--example-inputs FILE.pt (a tensor, tuple or dict of tensors saved with "
                         "torch.save) or --input-shape of one float input (e.g. 3,32,32)")


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
    """List the registered pruning methods and allocations (per-layer budgets under --target), their
    kind and their settings (the config keys)."""
    from .pruning.allocation import ALLOCATIONS
    from .pruning.methods import METHODS

    rows = [{"name": name, "kind": "structured" if cls.structured else "unstructured",
             "settings": {f: (info.description or "") for f, info in cls.model_fields.items()},
             "summary": cls.summary} for name, cls in METHODS.items()]
    if as_json:  # methods only, as always (allocations: topoprune.pruning.allocation.list_allocations())
        print(json.dumps(rows, indent=2))
        return
    rows += [{"name": name, "kind": "allocation",
              "settings": {f: (info.description or "") for f, info in cls.model_fields.items()},
              "summary": cls.summary} for name, cls in ALLOCATIONS.items()]
    table = Table(title="topoprune pruning methods")
    for col in ("name", "kind", "settings", "what it does"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["kind"], ", ".join(r["settings"]) or "-", r["summary"])
    console.print(table)


@app.command("critical")
def critical_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP + ", or a pruned-model folder or model file.")],
    input_shape: Annotated[
        Optional[str], typer.Option("--input-shape", help="C,H,W of one input (default: the model's).")
    ] = None,
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classifier outputs.")] = 10,
    convention: Annotated[
        Convention, typer.Option("--convention", help="paper: one-channel Toeplitz count; exact: full unrolled graph.")
    ] = Convention.paper,
    width: Annotated[float, typer.Option("--width", help="Width multiplier.")] = 1.0,
    model_kwargs: KwargsOption = None,
    example_inputs: Annotated[Optional[Path], typer.Option("--example-inputs", help="Inputs the model takes (a tensor, tuple or dict saved with torch.save); they size the conv layers.")] = None,
    trust_pickle: TrustOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Topologically critical compression ratio per layer and for the model (Balwani & Krzyston)."""
    from .analysis import critical_compression

    net = _load_net(model, None, model_kwargs=model_kwargs, input_shape=input_shape, num_classes=num_classes,
                    width=width, trust_pickle=trust_pickle)
    meta = getattr(net.model, "meta", None)
    if meta is not None or example_inputs is not None or net.example_inputs is not None:
        inputs = _example_inputs(net, example_inputs, None, "--model")
        report = critical_compression(net.model, inputs, convention.value)
        shape = "x".join(map(str, meta.input_shape)) if meta is not None and inputs is None else "the example inputs"
    else:  # a model of one's own: --input-shape sizes its conv layers (a dense model needs none)
        from .models import parse_shape

        try:
            report = critical_compression(net.model, convention=convention.value,
                                          input_shape=parse_shape(input_shape) if input_shape else None)
        except TopopruneError as exc:
            if input_shape is None and "input sizes" in str(exc):
                raise TopopruneError(f"--model {model} has conv layers, whose input sizes are unknown: give "
                                     "--input-shape C,H,W or --example-inputs FILE.pt") from None
            raise
        shape = input_shape.replace(",", "x") if input_shape else "any input"
    if as_json:
        print(json.dumps({"model": model, **report.to_dict()}, indent=2))
        return
    table = Table(title=f"critical compression: {net.label} at {shape}, convention={convention.value}")
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
    model: Annotated[Optional[str], typer.Option("--model", "-m", help=MODEL_HELP + ", or a model file.")] = None,
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", help="Weights to load into --model (a state dict or a `topoprune train` checkpoint); alone: a pruned-model folder, a train checkpoint or a model file.")
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
    model_kwargs: KwargsOption = None,
    trust_pickle: TrustOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Neural persistence per layer and for the network (Rieck et al. 2019)."""
    from .analysis import neural_persistence

    if weights is not None and checkpoint is not None:
        raise TopopruneError("--checkpoint needs --model NAME (the architecture to load it into), not --weights")
    if (model is None and checkpoint is None) == (weights is None):
        raise TopopruneError("give exactly one of --model NAME or --weights FILE")
    if model is not None or checkpoint is not None:
        net = _load_net(model, checkpoint, model_kwargs=model_kwargs, input_shape=input_shape,
                        num_classes=num_classes, width=width, trust_pickle=trust_pickle)
        target, source = net.model, model or str(checkpoint)
    else:
        from .experiments import load_weights_file

        target = load_weights_file(weights)
        source = str(weights)
    own_shape = None  # a model of one's own: --input-shape sizes its conv layers (toeplitz graph)
    if input_shape is not None and isinstance(target, nn_module()) and getattr(target, "meta", None) is None:
        from .models import parse_shape

        own_shape = parse_shape(input_shape)
    report = neural_persistence(
        target, p=p, normalization=normalization.value, include_bias=include_bias,
        essential=essential, conv_graph=conv_graph.value, input_shape=own_shape,
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
    model: Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP + ".")],
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
    model_kwargs: KwargsOption = None,
    nproc: Annotated[int, typer.Option("--nproc", help="Data-parallel (DDP) processes on this machine: gloo on the CPU, one GPU each with --device cuda; only rank 0 checkpoints.")] = 1,
) -> None:
    """Train a registry model (or your own, pkg.module:factory) on a dataset, checkpointing every
    epoch (rerun to resume)."""
    import torch

    from .data import dataset_info, prepare_data
    from .experiments.config import LIMITS
    from .experiments.factory import build_from_factory, parse_kwargs, resolve_factory
    from .models import parse_shape
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
    _check_range("--nproc", nproc, 1, 64)
    _check_out("--out", out)
    _check_folder("--data-root", data_root)
    kwargs = parse_kwargs(model_kwargs)
    factory = _model_kind(model) == "factory"
    if factory:
        _import_from_cwd()
        resolve_factory(model, "--model")  # a bad factory is refused now, not after loading the data
        if width != 1.0:
            raise TopopruneError(f"--width applies to registry models; --model {model} takes its own "
                                 "arguments: pass them in --model-kwargs JSON")
    else:
        _registry_shape(model, None)  # an unknown model is refused now, not after loading the data
    resolve_device(device)  # a missing GPU too

    info = dataset_info(dataset)
    shape = parse_shape(input_shape) if input_shape is not None else info.shape
    if len(shape) != 3:
        raise TopopruneError(f"malformed shape {input_shape!r}: expected C,H,W (e.g. 1,32,32)")
    data = prepare_data(dataset, data_root, input_shape=shape, val_fraction=val_fraction,
                        seed=seed, augment=augment, limit=limit)
    torch.manual_seed(seed)
    if factory:
        net = build_from_factory(model, kwargs, what="--model")
    else:
        net = _build_model(model, ",".join(map(str, shape)), info.num_classes, width, kwargs)
    callbacks = []
    if track_np or np_patience is not None:
        callbacks.append(NeuralPersistenceTracker())
    if np_patience is not None:
        callbacks.append(NPEarlyStopping(patience=np_patience))
    result = train(net, data, cfg, out_dir=out, callbacks=callbacks, progress=not quiet,
                   description=f"{model} on {dataset}", device=device, nproc=nproc)
    final = result.final
    how = "stopped early" if result.stopped_early else "done"
    console.print(
        f"{how}: {len(result.history)} epochs, train loss {final['train_loss']:.4f}, "
        f"val {'off' if final['val_acc'] is None else format(final['val_acc'], '.2f') + '%'}, "
        f"test {final['test_acc']:.2f}%; wrote {out / 'metrics.json'}"
    )
    if factory:  # the checkpoint holds weights only: the architecture is the factory's
        import shlex

        kw = f"--model-kwargs {shlex.quote(model_kwargs)} " if model_kwargs else ""
        console.print(f"prune it with: topoprune prune --model {model} {kw}--checkpoint {out} "
                      f"--input-shape {','.join(map(str, shape))} --out DIR")


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


def _export_formats(values: Optional[list[str]]) -> list[str]:
    """``--export onnx --export torchscript`` or ``--export onnx,torch.export``, checked."""
    from .experiments.export import EXPORT_FORMATS

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

    from .experiments.export import export_model, export_suffix
    from .models.inputs import example_inputs_for

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
    model: Annotated[Optional[str], typer.Option("--model", "-m", help=MODEL_HELP + ", freshly initialised unless --checkpoint gives its weights; or a model file.")] = None,
    width: Annotated[float, typer.Option("--width", help="Width multiplier (registry --model).")] = 1.0,
    input_shape: Annotated[Optional[str], typer.Option("--input-shape", help="C,H,W (registry --model; default: the model's). For your own model: the shape of one float input, to trace it with.")] = None,
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classifier outputs (registry --model).")] = 10,
    model_kwargs: KwargsOption = None,
    example_inputs: Annotated[Optional[Path], typer.Option("--example-inputs", help="The inputs to trace the model with: a tensor, tuple or dict of tensors (e.g. input_ids and attention_mask) saved with torch.save.")] = None,
    export: Annotated[Optional[list[str]], typer.Option("--export", help="Also export the pruned model and check it against the eager one: onnx, torchscript or torch.export (repeatable, or comma-separated).")] = None,
    trust_pickle: TrustOption = False,
    method: Annotated[str, typer.Option("--method", help="A registered structured method: l1, l2, fpgm, random, topological, betti; with --target also topological-v2, tp-global (`topoprune methods`).")] = "l1",
    sparsity: Annotated[Optional[float], typer.Option("--sparsity", help="Fraction of units removed per targeted layer, in [0, 1) (default 0.5; not with --target).")] = None,
    target: Annotated[Optional[str], typer.Option("--target", help="Prune to a count instead: METRIC=KEEP, e.g. flops=0.5 (keep half the FLOPs) or flops=4x; metrics flops, macs, params. Met within 1 %.")] = None,
    allocation: Annotated[str, typer.Option("--allocation", help="With --target, how many units each layer loses: uniform, global, eagleeye (needs --dataset), topological (`topoprune methods`).")] = "uniform",
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
    """Remove filters/neurons/heads physically and save the smaller model (load it with
    topoprune.load_model); optionally export it (ONNX, TorchScript, torch.export) and check the
    export's outputs against the model's."""
    _check_out("--out", out)  # before any pruning: a file at --out would fail only when saving
    _check_folder("--data-root", data_root)
    from .experiments import read_pruned, save_pruned
    from .pruning import prune_filters

    from .pruning.methods import method_class, resolve_method

    if checkpoint is None and model is None:
        raise TopopruneError("give exactly one of --checkpoint PATH or --model NAME (a pkg.module:factory "
                             "--model may come with --checkpoint: its weights)")
    if checkpoint is not None and model is not None and _model_kind(model) == "registry":
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
    from .pruning.allocation import resolve_allocation

    chosen_allocation = resolve_allocation(allocation)
    wants_labels = goal is not None and chosen_allocation.needs_data
    if wants_labels and dataset is None:
        raise TopopruneError(f"--allocation {allocation} judges candidates by accuracy: it needs --dataset NAME "
                             "(labelled training inputs)")
    if formats and "onnx" in formats:
        from .experiments.export import require_onnx

        require_onnx()  # a missing optional package is said before any work
    net = _load_net(model, checkpoint, model_kwargs=model_kwargs, input_shape=input_shape,
                    num_classes=num_classes, width=width, trust_pickle=trust_pickle)
    meta = getattr(net.model, "meta", None)
    x = _example_inputs(net, example_inputs, None if meta is not None else input_shape, "--model")
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
            labelled = _labelled_sample(dataset, data_root, shape, 2000, seed)
    elif chosen.needs().sample:
        raise TopopruneError(f"--method {method} ({chosen}) needs --dataset NAME: it looks at the "
                             "layers' outputs on a data sample")
    if goal is not None:
        pruned, info = prune_filters(net.model, x, method=chosen, target=goal, allocation=chosen_allocation,
                                     data=labelled if wants_labels else None, ignore=ignore or (), seed=seed,
                                     inputs=inputs)
    else:
        pruned, info = prune_filters(net.model, x, method=chosen, sparsity=sparsity, ignore=ignore or (),
                                     seed=seed, inputs=inputs)
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
        from .experiments.plots import plot_ga_trajectories

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
    """``--target flops=0.5`` / ``flops=4x`` as the mapping prune_filters takes (checked there)."""
    metric, sep, value = text.partition("=")
    if not sep:
        raise TopopruneError(f"--target: bad value {text!r}; allowed: METRIC=KEEP, e.g. flops=0.5 or flops=4x")
    value = value.strip()
    try:
        return {metric.strip(): float(value)}
    except ValueError:
        return {metric.strip(): value}


def _labelled_sample(dataset: str, root, input_shape, n: int, seed: int):
    """``n`` seeded training inputs with their labels, for allocations that measure accuracy."""
    import torch

    from .data import prepare_data

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
    """The quickstart config shipped inside the package (configs/quickstart.yaml in a checkout)."""
    from .experiments.config import shipped_configs

    return shipped_configs()["quickstart"]


@app.command("compare")
def compare_cmd(
    config: Annotated[Optional[Path], typer.Argument(help="Experiment YAML, or the name of a shipped one (default: quickstart).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Parent folder of the run folder.")] = Path("runs"),
    workers: Annotated[int, typer.Option("--workers", help="Cells run in parallel processes (--executor local).")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display (CI logs).")] = False,
    device: DeviceOption = "auto",
    repair: Annotated[bool, typer.Option("--repair", help="Redo the stages whose artefacts no longer match the run's manifest (and what used them).")] = False,
    executor: Annotated[str, typer.Option("--executor", help="local (processes on this machine) or ray (each cell a Ray task with the config's resources; pip install \"topoprune[ray]\").")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help="--executor ray: auto (a running cluster) or HOST:PORT; default: start a local cluster.")] = None,
) -> None:
    """Prune a model with every method, let it recover, compare (resumable: rerun to continue).
    Training runs on --device; pruning and the latency columns stay on the CPU."""
    from .experiments.config import load_config
    from .experiments.runner import run_experiment

    cfg = load_config(config or _default_config())
    run_dir = run_experiment(cfg, out, workers=workers, quiet=quiet, device=device, repair=repair,
                             executor=executor, address=address)
    console.print(f"results: {run_dir / 'results.jsonl'}\nreport:  {run_dir / 'report.md'} and {run_dir / 'report.html'}")


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `topoprune compare` or `topoprune study`.")],
) -> None:
    """(Re)build report.md and report.html from a run folder's results (a comparison, the damage
    study or the activation study)."""
    from .experiments.report import build_report
    from .experiments.store import read_json_file

    if not (run_dir / "config.json").is_file():
        raise TopopruneError(f"{run_dir} is not a run folder (no config.json)")
    config = read_json_file(run_dir / "config.json", "config file")
    if isinstance(config, dict) and {"experiment", "damage"} <= set(config):
        from .experiments.study.damage import build_damage_report as build
    elif isinstance(config, dict) and "activations" in config:
        from .experiments.study import build_study_report as build
    else:
        build = build_report
    md, page = build(run_dir)
    console.print(f"wrote {md} and {page}")


study_app = typer.Typer(help="Studies: topology through the layers (Kochar et al.), and whether topology explains "
                         "pruning damage (Perera).", no_args_is_help=True)
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


@study_app.command("damage")
def study_damage_cmd(
    config: Annotated[Path, typer.Argument(help="Damage-study YAML, e.g. configs/digits-damage.yaml (or a "
                                                "shipped name: digits-damage).")],
    out: Annotated[Path, typer.Option("--out", help="Parent folder of the run folder.")] = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
    device: DeviceOption = "auto",
    repair: Annotated[bool, typer.Option("--repair", help="Redo the candidates (or the baseline and every candidate) whose files no longer match the run's manifest.")] = False,
) -> None:
    """Draw candidate prunings of a trained model (random ones and each method's choice), score
    each before retraining (topological and magnitude scores), measure accuracy raw, after BN
    recalibration and after K recovery epochs, and correlate (resumable)."""
    from .experiments.study.damage import damage_summary, load_damage_config, run_damage_study

    _check_out("--out", out)
    cfg = load_damage_config(config)
    run_dir = run_damage_study(cfg, out, quiet=quiet, device=device, repair=repair,
                               command=" ".join(["topoprune study damage", str(config), "--out", str(out)]))
    summary = damage_summary(run_dir)
    for sentence in summary["verdicts"]:
        console.print(sentence)
    if summary["verdicts_random_only"]:
        console.print("Among the random candidates only (the method choices left out):")
        for sentence in summary["verdicts_random_only"]:
            console.print(sentence)
    console.print(f"results: {run_dir / 'results.jsonl'}\nreport:  {run_dir / 'report.md'} and {run_dir / 'report.html'}")


@app.command("version")
def version_cmd() -> None:
    """Print the topoprune version."""
    print(__version__)


def _fail(message: str) -> None:
    """Print an error as one line (whitespace folded) and exit with status 2."""
    import re

    message = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", message)  # colour codes some libraries put in
    message = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", message)  # and any other control character
    print(f"topoprune: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: turns every user error into one line and exit code 2."""
    import warnings

    args = sys.argv[1:] if argv is None else argv
    # torch.load's warning before it refuses a TorchScript file would be a second stderr line
    warnings.filterwarnings("ignore", message=r".*looks like a TorchScript archive", category=UserWarning)
    try:
        code = app(args=args, prog_name="topoprune", standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool) and code:  # typer.Exit(n) inside a command
            sys.exit(code)
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
