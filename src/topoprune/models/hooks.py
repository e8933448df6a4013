"""Running a model for inspection: eval mode without gradients, and capturing layer outputs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from .inputs import Inputs, call_model

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
                    inputs: Inputs) -> dict[str, torch.Tensor]:
    """The outputs of the named layers for one forward pass of ``inputs`` (a tensor, a tuple or
    a dict of keyword inputs), detached. A layer called more than once keeps its first output."""
    outs: dict[str, torch.Tensor] = {}

    def keep(n: str, o: torch.Tensor) -> None:
        outs.setdefault(n, o.detach())

    hooks = [modules[n].register_forward_hook(lambda m, a, o, n=n: keep(n, o)) for n in names]
    try:
        with inspecting(model):
            call_model(model, inputs)
    finally:
        for h in hooks:
            h.remove()
    return outs
