"""Running a model for inspection: eval mode without gradients, and capturing layer outputs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["inspecting", "capture_outputs"]


@contextmanager
def inspecting(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``torch.no_grad()`` for the block; the model's training flag is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def capture_outputs(model: nn.Module, modules: Mapping[str, nn.Module], names: Iterable[str],
                    inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs of the named layers for one forward pass of ``inputs`` (detached)."""
    outs: dict[str, torch.Tensor] = {}
    hooks = [modules[n].register_forward_hook(lambda m, a, o, n=n: outs.__setitem__(n, o.detach()))
             for n in names]
    try:
        with inspecting(model):
            model(inputs)
    finally:
        for h in hooks:
            h.remove()
    return outs
