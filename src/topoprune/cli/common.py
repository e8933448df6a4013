"""What several commands share: the console they print to, checks of option values made before
any work, and building or loading the model a command works on."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Optional

from rich.console import Console

from ..errors import TopopruneError

console = Console()


def field_default_help(model, name: str) -> tuple:
    """(default, help) of a field of a pydantic model: a CLI option and the config key or method
    setting it mirrors share one source."""
    f = model.model_fields[name]
    return f.default, f.description or ""


def deprecation_note(old: str, new: str) -> None:
    """One line on stderr for a deprecated option or spelling (the command still runs)."""
    import sys

    from .._deprecation import REMOVED_IN

    print(f"topoprune: note: {old} is deprecated since 0.2.0 and will be removed in {REMOVED_IN}; use {new}",
          file=sys.stderr)


def print_run_files(run_dir: Path) -> None:
    """The closing lines of a resumable run: where its results and its report are."""
    console.print(f"results: {run_dir / 'results.jsonl'}\n"
                  f"report:  {run_dir / 'report.md'} and {run_dir / 'report.html'}")


def check_range(option: str, value: float | None, low: float, high: float, *,
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


def check_out(option: str, out: Path) -> None:
    """A folder to write into: refuse a path that is a file, or lies under one, before any work."""
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                where = "is a file" if parent == out else f"lies under {parent}, which is a file"
                raise TopopruneError(f"{option} {out} {where}; allowed: a folder (created if missing)")
            return


def check_folder(option: str, path: Optional[Path]) -> None:
    """A folder to read from: refuse a path that exists but is not a folder."""
    if path is not None and path.exists() and not path.is_dir():
        raise TopopruneError(f"{option} {path} is a file; allowed: a folder")


_REGISTRY_ONLY = ("num_classes", "in_channels", "input_size", "width")


def model_kind(model: str) -> str:
    """``"factory"`` (``pkg.module:function``), ``"registry"`` or ``"file"`` (an existing path)."""
    from ..experiments.factory import is_factory
    from ..models import list_models

    if is_factory(model):
        return "factory"
    if model in list_models():
        return "registry"
    path = Path(model)
    if model and (path.is_file() or any((path / f).is_file() for f in ("pruned.json", "checkpoint.pt"))):
        return "file"
    return "registry"  # unknown: create_model names the registry's choices


def import_from_cwd() -> None:
    """Let ``--model mymodule:build`` find ``mymodule.py`` in the working directory, as
    ``python -m`` would (the console script's sys.path starts at its own folder)."""
    import os

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


def registry_shape(name: str, input_shape: Optional[str]) -> tuple[int, tuple[int, int]]:
    from ..models import model_defaults, parse_shape

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


def build_model(name: str, input_shape: Optional[str], num_classes: int, width: float,
                kwargs: Optional[dict] = None):
    """A registry model (``kwargs``: its extra options), or the model ``pkg.module:factory``
    returns for ``kwargs`` (the registry's --num-classes/--width/--input-shape do not apply)."""
    from ..experiments.factory import build_from_factory
    from ..models import create_model

    kwargs = dict(kwargs or {})
    if model_kind(name) == "factory":
        if width != 1.0 or num_classes != 10:
            which = "--width" if width != 1.0 else "--num-classes"
            raise TopopruneError(f"{which} applies to registry models; --model {name} takes its own "
                                 "arguments: pass them in --model-kwargs JSON")
        import_from_cwd()
        return build_from_factory(name, kwargs, what="--model")
    clash = sorted(set(kwargs) & set(_REGISTRY_ONLY))
    if clash:
        raise TopopruneError(f"--model-kwargs {clash[0]!r}: use the option --{clash[0].replace('_', '-')} "
                             "(or --input-shape) instead")
    try:
        in_channels, input_size = registry_shape(name, input_shape)
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


class Net:
    """The model a command works on and where it came from: ``source`` are the keyword arguments
    of ``save_pruned`` naming its architecture, ``steps`` the removals a pruned folder already
    holds, ``example_inputs`` the inputs that folder was traced with."""

    def __init__(self, model, label: str, source: dict, steps: list, example_inputs=None) -> None:
        self.model, self.label, self.source = model, label, source
        self.steps, self.example_inputs = steps, example_inputs


def load_net(model: Optional[str], checkpoint: Optional[Path], *, model_kwargs: Optional[str],
             input_shape: Optional[str], num_classes: int, width: float, trust_pickle: bool) -> Net:
    """The model of --model (registry, factory, or a model file) and/or --checkpoint (weights for
    --model; alone: a train checkpoint, a pruned folder or a model file)."""
    from ..experiments import load_inputs_file, load_model, read_pruned, require_python_model
    from ..experiments.factory import parse_kwargs

    kwargs = parse_kwargs(model_kwargs)
    if model is not None and model_kind(model) == "file":
        if checkpoint is not None:
            raise TopopruneError(f"--model {model} is a file and --checkpoint is given too; give the model "
                                 "file once, as --model FILE or --checkpoint FILE")
        model, checkpoint = None, Path(model)
    if model is None and checkpoint is None:
        raise TopopruneError("give --model NAME (a registry model or pkg.module:factory), --checkpoint PATH, or both")
    if model is None:
        if kwargs:
            raise TopopruneError("--model-kwargs needs --model (the factory or registry model it is for)")
        import_from_cwd()  # a pruned folder may name a factory in the working directory
        net = require_python_model(load_model(checkpoint, trust_pickle=trust_pickle), str(checkpoint))
        label = getattr(getattr(net, "meta", None), "name", None) or type(net).__name__
        source, steps, inputs = {}, [], None
    else:
        net = build_model(model, input_shape, num_classes, width, kwargs)
        label = model
        source = {"factory": model, "factory_kwargs": kwargs} if model_kind(model) == "factory" else {}
        steps, inputs = [], None
        if checkpoint is not None:
            net = load_model(checkpoint, model=net, trust_pickle=trust_pickle)
    if checkpoint is not None and (Path(checkpoint) / "pruned.json").is_file():
        record = read_pruned(checkpoint)
        steps = record.steps
        source = source or record.source()
        inputs = load_inputs_file(record.example_inputs) if record.example_inputs is not None else None
    return Net(net, label, source, steps, inputs)


def inputs_to_trace(net: Net, example_inputs: Optional[Path], input_shape: Optional[str], what: str):
    """The inputs to trace the model with: --example-inputs, else those of the pruned folder it
    came from, else (a registry model) None: zeros of its input shape; else zeros of
    --input-shape."""
    import torch

    from ..experiments import load_inputs_file
    from ..models import parse_shape

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
