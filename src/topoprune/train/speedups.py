"""Speed options of training and evaluation: bfloat16 autocast, channels-last memory, torch.compile.

Each is asked for in :class:`~topoprune.train.TrainConfig` (``precision``, ``channels_last``,
``compile``). :func:`resolve_speedups` decides what can run on the device at hand: an option this
machine cannot run (bfloat16 on a CPU without fast bfloat16 kernels, ``torch.compile`` without the
C++ compiler its inductor backend needs) falls back with a one-line warning, and the
:class:`Speedups` it returns (recorded with the results) say what actually ran.

Numerics:

- ``bf16``: the forward pass and the loss run under ``torch.autocast(dtype=torch.bfloat16)``;
  convolutions and matrix products take bfloat16 inputs and accumulate in float32. The weights
  (master copies), their gradients, the optimizer's state, the loss value and BatchNorm's running
  statistics stay float32; the backward pass runs outside the autocast region.
- ``channels_last``: the model's 4-D parameters and the 4-D input batches are stored NHWC. The
  values are the same; only the memory layout (and so the convolution kernels chosen) changes.
- ``compile``: the training step's forward runs through ``torch.compile`` of the model; the
  original module keeps the weights, so state dicts and checkpoints are the module's own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from ..errors import TopopruneError
from .config import PRECISIONS

__all__ = ["PRECISIONS", "Speedups", "check_precision", "bf16_support", "compile_support", "resolve_speedups",
           "autocast", "as_channels_last", "channels_last_model", "compile_module", "compile_fallback"]

# torch's CPU capability levels with vector bfloat16 kernels (x86 AVX-512 and AMX, Arm SVE)
FAST_BF16_CPUS = ("AVX512", "AMX", "SVE")


def check_precision(value: object) -> str:
    """``value`` if it is a precision this package knows; otherwise a one-line error."""
    if not isinstance(value, str) or value not in PRECISIONS:
        raise TopopruneError(f"precision: bad value {value!r}; allowed: {', '.join(PRECISIONS)}")
    return value


@dataclass(frozen=True)
class Speedups:
    """The speed options that run (after any fallback): what a result records."""

    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_capability() -> str:
    """torch's CPU capability level (``"AVX512"``, ``"AVX2"``, ``"DEFAULT"``, ...)."""
    return str(torch.backends.cpu.get_cpu_capability())


def bf16_support(device: torch.device) -> str:
    """Why bfloat16 autocast should not run on ``device`` (empty when it can).

    A GPU must report bfloat16 support; a CPU must have vector bfloat16 kernels (AVX-512, AMX or
    SVE: elsewhere torch emulates bfloat16 slower than float32). On every device a tiny autocast
    matrix product must come out in bfloat16."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return f"this GPU ({torch.cuda.get_device_name(device)}) has no bfloat16 support"
    if device.type == "cpu":
        capability = cpu_capability()
        if not capability.upper().startswith(FAST_BF16_CPUS):
            return f"this CPU ({capability}) has no fast bfloat16 kernels"
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            probe = torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
    except (RuntimeError, ValueError, TypeError) as exc:
        return f"bfloat16 autocast fails on {device.type} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    if probe.dtype != torch.bfloat16:
        return f"autocast on {device.type} does not compute in bfloat16"
    return ""


def inductor_compiler() -> str:
    """The C++ compiler torch's inductor backend calls: ``$CXX``, else ``g++``."""
    return os.environ.get("CXX") or "g++"


def compile_support(device: torch.device) -> str:
    """Why ``torch.compile`` (inductor) cannot run on ``device`` (empty when it can): it needs a
    C++ compiler, and Triton on a GPU. A failure found only when the first step compiles is
    handled by the training loop (:func:`compile_fallback`)."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    compiler = inductor_compiler()
    if shutil.which(compiler) is None:
        return f"no C++ compiler {compiler!r} on PATH (set CXX)"
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "Triton is not installed"
    return ""


def _fallback(what: str, why: str, instead: str) -> None:
    warnings.warn(f"{what}: {why}; {instead}", UserWarning, stacklevel=3)


def resolve_speedups(*, precision: str = "fp32", channels_last: bool = False, compile: bool = False,
                     device: torch.device | str = "cpu") -> Speedups:
    """The options that can run on ``device``: each one this machine cannot run is turned off
    with a one-line warning (``precision bf16: this CPU (AVX2) has no fast bfloat16 kernels;
    running in fp32``)."""
    check_precision(precision)
    device = torch.device(device)
    if precision == "bf16":
        why = bf16_support(device)
        if why:
            _fallback("precision bf16", why, "running in fp32")
            precision = "fp32"
    if compile:
        why = compile_support(device)
        if why:
            _fallback("compile", why, "training without torch.compile")
            compile = False
    return Speedups(precision=precision, channels_last=bool(channels_last), compile=bool(compile))


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast region of a forward pass at ``precision`` (nothing for ``fp32``)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def as_channels_last(inputs: Any) -> Any:
    """The 4-D floating tensors of ``inputs`` (a tensor, tuple or dict) in channels-last memory;
    everything else as it is."""
    def one(v: Any) -> Any:
        if isinstance(v, torch.Tensor) and v.ndim == 4 and v.is_floating_point():
            return v.contiguous(memory_format=torch.channels_last)
        return v

    if isinstance(inputs, Mapping):
        return {k: one(v) for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(one(v) for v in inputs)
    return one(inputs)


def _four_d(model: nn.Module) -> list[torch.Tensor]:
    return [t for t in (*model.parameters(), *model.buffers()) if t.ndim == 4]


@contextlib.contextmanager
def channels_last_model(model: nn.Module, on: bool) -> Iterator[nn.Module]:
    """Within the block, ``model``'s 4-D parameters and buffers are channels-last (when ``on``);
    afterwards they are contiguous again if they were before. A model without 4-D tensors (no
    convolution) is left alone. The parameters stay the same objects (an optimizer made in the
    block keeps them)."""
    tensors = _four_d(model) if on else []
    if not tensors:
        yield model
        return
    restore = all(t.is_contiguous() for t in tensors)
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        if restore:
            model.to(memory_format=torch.contiguous_format)


def compile_module(net: nn.Module) -> tuple[nn.Module, str]:
    """``(torch.compile(net), "")``, or ``(net, why)`` when compiling cannot even start."""
    try:
        return torch.compile(net), ""
    except Exception as exc:  # noqa: BLE001 - any failure means: train without it
        return net, _first_line(exc)


def compile_fallback(error: BaseException | str, speedups: Speedups, when: str) -> Speedups:
    """After ``torch.compile`` failed (``when``: ``"at the first step"``, ...): a one-line
    warning, and the options without ``compile``."""
    why = error if isinstance(error, str) else _first_line(error)
    _fallback("compile", f"torch.compile failed {when} ({why})", "training without torch.compile")
    return replace(speedups, compile=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:200]
