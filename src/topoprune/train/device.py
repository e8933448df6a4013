"""Which device training runs on.

Training and evaluation may run on a GPU; everything else in topoprune (spanning trees,
persistence, the GA's fitness, surgery, metrics, latency) works on CPU copies. So
:func:`~topoprune.train.train` takes a ``device``, moves the model there for the epochs and
hands it back on the device it came on: callers never have to care where it trained.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import TopopruneError

__all__ = ["resolve_device", "model_device", "describe_device", "DEVICE_HELP"]

DEVICE_HELP = "auto (cuda if available, else cpu), cpu, cuda, cuda:N or mps"


def _cuda_missing(spec: str) -> TopopruneError:
    build = torch.__version__
    why = ("this torch is a CPU-only build" if torch.version.cuda is None
           else "no CUDA device is visible")
    return TopopruneError(f"device {spec!r} asked for, but {why} (torch {build}); use one of: {DEVICE_HELP}")


def resolve_device(spec: str | torch.device | None, default: torch.device | None = None) -> torch.device:
    """Turn a user's device setting into a :class:`torch.device` that exists here.

    ``None`` gives ``default`` (or the CPU); ``"auto"`` picks CUDA when available, else the CPU.
    An explicit device that this machine lacks is refused with a message that says why (a
    CPU-only torch build, or no visible GPU) instead of failing later inside a kernel.
    """
    if spec is None:
        return default if default is not None else torch.device("cpu")
    if isinstance(spec, torch.device):
        spec = str(spec)
    device = check_device_name(spec)
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise _cuda_missing(spec)
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise TopopruneError(f"device {spec!r} asked for, but only {count} CUDA device(s) are visible")
        return device
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):  # mps
        raise TopopruneError(f"device {spec!r} asked for, but MPS is not available here; "
                             f"use one of: {DEVICE_HELP}")
    return device


def check_device_name(spec: str | torch.device) -> torch.device | None:
    """The device ``spec`` names (None for ``"auto"``), whether or not this machine has it: a
    plan for another machine (``--dry-run``) may name a GPU this one lacks, but never a device
    topoprune cannot train on. An unknown or unsupported name is refused in one line."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise TopopruneError(f"device must be a string, got {type(spec).__name__}; allowed: {DEVICE_HELP}")
    text = spec.strip().lower()
    if text == "auto":
        return None
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise TopopruneError(f"unknown device {spec!r}; allowed: {DEVICE_HELP}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise TopopruneError(f"unsupported device {spec!r}; allowed: {DEVICE_HELP}")
    return device


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def describe_device(spec: str | torch.device | None) -> str:
    """A device for logs and results: ``"cpu"``, or e.g. ``"cuda:0 (NVIDIA H100 80GB HBM3)"``."""
    device = resolve_device(spec)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)
