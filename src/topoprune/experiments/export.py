"""Export a (pruned) model to ONNX, TorchScript or ``torch.export``, and check the artefact.

A pruned model is only useful where it runs, and an exporter can change what a model computes
(a traced branch, an unsupported op replaced), so :func:`export_model` runs the exported file on
the example inputs and compares every output tensor with the eager model's: the record says how
far apart they are.

- ``"onnx"`` (``.onnx``): checked with onnxruntime. The ``onnx`` and ``onnxruntime`` packages are
  the optional extra ``topoprune[export]``. Dict inputs become named graph inputs (the dict's
  keys); the batch dimension is dynamic (with the TorchScript-based exporter, tried first; the
  ``dynamo`` fallback keeps the example's shapes).
- ``"torchscript"`` (``.pt``, ``torch.jit.trace``): checked with ``torch.jit.load``.
- ``"torch.export"`` (``.pt2``, an ``ExportedProgram``): checked with ``torch.export.load``.

The model is exported in eval mode (dropout off, BatchNorm on its running statistics) and handed
back in the mode it came in. Writes are atomic: a failed export leaves no partial file.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import TopopruneError
from ..models.inputs import Inputs, as_inputs, call_model, move_inputs, output_tensors, without_cache

__all__ = ["export_model", "ExportResult", "EXPORT_FORMATS", "export_suffix", "require_onnx"]

EXPORT_FORMATS = ("onnx", "torchscript", "torch.export")
_SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "torch.export": ".pt2"}


def export_suffix(fmt: str) -> str:
    """The file suffix topoprune gives each format (``model`` + suffix in ``topoprune prune``)."""
    return _SUFFIX[_check_format(fmt)]


@dataclass
class ExportResult:
    """One export: the file, how far its outputs are from the eager model's (``None`` when not
    checked), whether that is within ``atol``, and the seconds spent exporting and checking."""

    format: str
    path: str
    max_abs_diff: float | None
    ok: bool | None
    seconds: float
    outputs: int = 0  # output tensors compared
    exporter: str = ""  # which exporter wrote the file (ONNX: "torchscript" or "dynamo")
    notes: list[str] = field(default_factory=list)  # exporter warnings worth reading

    def to_dict(self) -> dict:
        return asdict(self)


def _check_format(fmt: object) -> str:
    if fmt not in EXPORT_FORMATS:
        raise TopopruneError(f"export format {fmt!r} is not known; allowed: {', '.join(EXPORT_FORMATS)}")
    return fmt  # type: ignore[return-value]


def _first_line(exc: BaseException) -> str:
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", str(exc)).strip()
    return (text.splitlines() or [""])[0][:200] or type(exc).__name__


def _split(inputs: Inputs) -> tuple[tuple, dict]:
    """Positional and keyword arguments of a call with these inputs."""
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, tuple):
        return inputs, {}
    return (inputs,), {}


@contextmanager
def _eval_mode(model: nn.Module):
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


@contextmanager
def _atomic_path(path: Path, suffix: str):
    """A temporary file beside ``path``, moved onto it only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def _quiet_exporters():
    """Keep exporters from printing: torch.export prints a failing trace's partial graph to
    stderr and logs warnings, the dynamo ONNX exporter prints progress. What matters reaches the
    caller as the one-line error or the record's notes. Restored on exit."""
    import contextlib
    import io
    import logging

    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _notes(caught: list[warnings.WarningMessage]) -> list[str]:
    """Exporter warnings that say the file may not generalise (a traced branch on a tensor's
    value), once each; deprecation chatter is dropped."""
    seen: list[str] = []
    for w in caught:
        if issubclass(w.category, (DeprecationWarning, FutureWarning)):
            continue
        text = " ".join(str(w.message).split()).split(". ")[0][:200]
        if text not in seen and ("Tracer" in w.category.__name__ or "trace" in text.lower()):
            seen.append(text)
    return seen[:5]


def require_onnx():
    """The onnxruntime module (and onnx importable), or a one-line error saying how to install them."""
    try:
        import onnx  # noqa: F401 - the exporter needs it
        import onnxruntime
    except ImportError as exc:
        raise TopopruneError(f"ONNX export needs the onnx and onnxruntime packages ({exc.name} is missing); "
                             "install them with: pip install 'topoprune[export]'") from None
    return onnxruntime


def _names(prefix: str, n: int) -> list[str]:
    return [prefix] if n == 1 else [f"{prefix}_{i}" for i in range(n)]


def _export_onnx(model: nn.Module, inputs: Inputs, path: Path, n_out: int, notes: list[str]) -> str:
    """Write ``path``; returns which exporter did (a fallback is said in ``notes``).

    The TorchScript-based exporter (``dynamo=False``) goes first: in torch 2.13 it exports the
    CNNs and Hugging Face models we test in well under a second, without printing, and takes
    ``dynamic_axes`` for a dynamic batch. It is deprecated (its DeprecationWarning is silenced
    here), so when it fails or is gone, the ``torch.export``-based exporter (``dynamo=True``,
    needs ``onnxscript``; a few seconds) is tried before giving up.
    """
    args, kwargs = _split(inputs)
    input_names = list(kwargs) if kwargs else _names("input", len(args))
    output_names = _names("output", n_out)
    dynamic = {n: {0: "batch"} for n in input_names + output_names}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, args, str(path), kwargs=kwargs or None, input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic, dynamo=False)
        return "torchscript"
    except Exception as legacy:  # noqa: BLE001 - the legacy exporter raises many types
        first = _first_line(legacy)
    try:
        program = torch.onnx.export(model, args, kwargs=kwargs or None, dynamo=True, verbose=False)
        program.save(str(path))
        notes.append(f"the TorchScript-based exporter failed ({first}); exported with dynamo=True")
        return "dynamo"
    except Exception as exc:  # noqa: BLE001
        raise TopopruneError(f"ONNX export failed: {first} (dynamo exporter: {_first_line(exc)}); "
                             "allowed: a model both exporters can trace, or another format "
                             f"({', '.join(EXPORT_FORMATS)})") from None


def _run_onnx(path: Path, inputs: Inputs) -> list[torch.Tensor]:
    ort = require_onnx()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    args, kwargs = _split(inputs)
    named = [(n, v) for n, v in (zip(kwargs, kwargs.values()) if kwargs else zip(_names("input", len(args)), args))
             if isinstance(v, torch.Tensor)]
    wanted = [i.name for i in session.get_inputs()]  # an input the graph does not use is dropped
    if not set(wanted) <= {n for n, _ in named}:  # the dynamo exporter names inputs after forward's
        named = list(zip(wanted, (v for _, v in named)))  # parameters: feed them in order
    feed = {n: v.detach().cpu().numpy() for n, v in named if n in wanted}
    return [torch.from_numpy(a) for a in session.run(None, feed)]


def _export_torchscript(model: nn.Module, inputs: Inputs, path: Path) -> None:
    args, kwargs = _split(inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still used
        if kwargs:
            traced = torch.jit.trace(model, example_kwarg_inputs=kwargs, strict=False)
        else:
            traced = torch.jit.trace(model, args, strict=False)
        torch.jit.save(traced, str(path))


def _run_torchscript(path: Path, inputs: Inputs) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return call_model(loaded, inputs)


def _export_program(model: nn.Module, inputs: Inputs, path: Path) -> None:
    args, kwargs = _split(inputs)
    program = torch.export.export(model, args, kwargs=kwargs or None)
    torch.export.save(program, str(path))


def _run_program(path: Path, inputs: Inputs) -> Any:
    module = torch.export.load(str(path)).module()
    with torch.no_grad():
        return call_model(module, inputs)


def export_model(model: nn.Module, example_inputs: Inputs, path: str | Path, *, format: str = "onnx",  # noqa: A002
                 check: bool = True, atol: float = 1e-5) -> ExportResult:
    """Export ``model`` to ``path`` and (``check``) compare the file's outputs with the eager
    model's on ``example_inputs``.

    Args:
        model: any ``nn.Module`` (a pruned one is an ordinary module).
        example_inputs: a tensor, a tuple of tensors, or a dict of keyword inputs (e.g. token
            ids and an attention mask), as for :func:`topoprune.prune_units`.
        path: the file to write (its folder is created).
        format: ``"onnx"``, ``"torchscript"`` or ``"torch.export"``.
        check: run the exported file on ``example_inputs`` and compare every output tensor.
        atol: the largest absolute difference that counts as equal.

    Returns:
        An :class:`ExportResult`; ``ok`` is False (and a warning says so) when the outputs differ
        by more than ``atol``.

    Raises:
        TopopruneError: an unknown format, bad inputs, a missing optional package, or an export
            the exporter refuses (one line naming the format and why).
    """
    fmt = _check_format(format)
    if isinstance(model, torch.jit.ScriptModule) or not isinstance(model, nn.Module):
        raise TopopruneError(f"export_model needs a torch.nn.Module (Python code), got {type(model).__name__}")
    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not atol >= 0:
        raise TopopruneError(f"atol must be a number >= 0, got {atol!r}")
    if isinstance(path, bool) or not isinstance(path, (str, Path)) or not str(path):
        raise TopopruneError(f"export path must be a file path, got {path!r}")
    path = Path(path)
    if path.is_dir():
        raise TopopruneError(f"export path {path} is a folder; allowed: a file path such as "
                             f"{path / ('model' + _SUFFIX[fmt])}")
    param = next(model.parameters(), None)
    inputs = move_inputs(as_inputs(example_inputs), param.device if param is not None else "cpu")
    if fmt != "torchscript":  # a decoder's key/value cache is no output a file can hold
        inputs = without_cache(model, inputs)
    if fmt == "onnx":
        require_onnx()  # a missing package is said before any work
    t0 = time.perf_counter()
    fallback: list[str] = []
    exporter = "torch.jit.trace" if fmt == "torchscript" else "torch.export"
    with _eval_mode(model):
        with torch.no_grad():
            expected = [t.detach().cpu() for t in output_tensors(call_model(model, inputs))]
        if not expected:
            raise TopopruneError("the model's output holds no tensor; nothing to export")
        with _atomic_path(path, _SUFFIX[fmt]) as tmp, warnings.catch_warnings(record=True) as caught, \
                _quiet_exporters():
            warnings.simplefilter("always")
            try:
                if fmt == "onnx":
                    exporter = _export_onnx(model, inputs, tmp, len(expected), fallback)
                elif fmt == "torchscript":
                    _export_torchscript(model, inputs, tmp)
                else:
                    _export_program(model, inputs, tmp)
            except TopopruneError:
                raise
            except Exception as exc:  # noqa: BLE001 - exporters raise many types
                raise TopopruneError(f"{fmt} export failed: {type(exc).__name__}: {_first_line(exc)}; "
                                     f"allowed: another format ({', '.join(EXPORT_FORMATS)})") from None
    notes = fallback + _notes(caught)
    diff: float | None = None
    ok: bool | None = None
    if check:
        cpu_inputs = move_inputs(inputs, "cpu")
        try:
            if fmt == "onnx":
                got = _run_onnx(path, cpu_inputs)
            else:
                got = output_tensors(_run_torchscript(path, cpu_inputs) if fmt == "torchscript"
                                     else _run_program(path, cpu_inputs))
        except TopopruneError:
            raise
        except Exception as exc:  # noqa: BLE001 - runtimes raise many types
            raise TopopruneError(f"the exported {fmt} file {path} does not run on the example inputs: "
                                 f"{_first_line(exc)}") from None
        diff = _max_abs_diff(expected, got, fmt)
        ok = diff <= atol
        if not ok:
            warnings.warn(f"the {fmt} export {path} differs from the eager model by {diff:.3g} "
                          f"(> atol {atol:g}) on the example inputs", stacklevel=2)
    return ExportResult(fmt, str(path), diff, ok, time.perf_counter() - t0, len(expected), exporter, notes)


def _max_abs_diff(expected: list[torch.Tensor], got: list[torch.Tensor], fmt: str) -> float:
    """The largest absolute difference over the output tensors, paired in order. An exporter
    may drop outputs it finds constant; then only the first (the model's main output) is paired."""
    if len(got) != len(expected):
        expected, got = expected[:1], got[:1]
    worst = 0.0
    for e, g in zip(expected, got):
        if tuple(e.shape) != tuple(g.shape):
            raise TopopruneError(f"the exported {fmt} file returns shape {tuple(g.shape)} where the model "
                                 f"returns {tuple(e.shape)}")
        if e.numel():
            worst = max(worst, float((e.double() - g.double().reshape(e.shape)).abs().max()))
    return worst
