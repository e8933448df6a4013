"""The first layer and the classifier of any model, found by following the data.

A pruner leaves the stem (the layer that reads the input) and the head (the layer that writes the
output) alone by default. Registration order says nothing about either: a head may be registered
first, a stem last. One forward pass on the example inputs records which weighted layer received
one of the model's input tensors and which one produced one of its output tensors.

- **first layer**: a weighted layer whose input *is* an input tensor; else, the first weighted
  layer to run, provided no other parameterised module (an embedding, a normalisation) ran before
  it; else none (a token model's first weighted layer reads embeddings, not the input).
- **classifier**: a weighted layer whose output *is* an output tensor (``logits``); else the last
  weighted layer to run.

``model.meta`` (registry models) wins over both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import TopopruneError
from .hooks import inspecting
from .inputs import Inputs, call_model, example_inputs_for, output_tensors
from .layers import is_weighted_layer

__all__ = ["Ends", "find_ends"]


@dataclass(frozen=True)
class Ends:
    """The model's first layer and classifier (qualified names, or None), and how each was found
    (``"meta"``, ``"reads the input"``, ``"writes the output"``, ``"runs first"``, ``"runs last"``)."""

    first_layer: str | None
    classifier: str | None
    how: tuple[str, str]


def _tensors(value) -> list[torch.Tensor]:
    return output_tensors(value)


def find_ends(model: nn.Module, example_inputs: Inputs | None = None) -> Ends:
    """The first layer and the classifier of ``model`` (see the module docstring)."""
    meta = getattr(model, "meta", None)
    if meta is not None and getattr(meta, "first_layer", None) and getattr(meta, "classifier", None):
        return Ends(meta.first_layer, meta.classifier, ("meta", "meta"))
    x = example_inputs_for(model, example_inputs)
    names = {m: n for n, m in model.named_modules()}
    inputs = {id(t) for t in _tensors(x)}
    order: list[str] = []  # weighted layers, in the order they ran (first call only)
    reads_input: list[str] = []
    produced: dict[int, tuple[torch.Tensor, str]] = {}  # the tensor is kept: ids of freed tensors are reused
    state = {"other_first": False}  # a parameterised non-weighted module ran before any layer

    def pre(module, args, kwargs):
        name = names[module]
        if is_weighted_layer(module):
            if name not in order:
                order.append(name)
            if any(id(t) in inputs for t in _tensors(args) + _tensors(kwargs)):
                reads_input.append(name)
        elif not order and any(True for _ in module.parameters(recurse=False)):
            state["other_first"] = True

    def post(module, args, out):
        if is_weighted_layer(module):
            for t in _tensors(out):
                produced[id(t)] = (t, names[module])

    hooks = []
    for m in model.modules():
        hooks.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        if is_weighted_layer(m):
            hooks.append(m.register_forward_hook(post))
    try:
        with inspecting(model):
            out = call_model(model, x)
    except TopopruneError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's model rejected the inputs
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise TopopruneError(f"the model does not run on the example inputs: {first}") from None
    finally:
        for h in hooks:
            h.remove()
    if reads_input:
        first, how_first = reads_input[0], "reads the input"
    elif order and not state["other_first"]:
        first, how_first = order[0], "runs first"
    else:
        first, how_first = None, "none: no weighted layer reads the input"
    writers = [produced[id(t)][1] for t in _tensors(out) if id(t) in produced and produced[id(t)][0] is t]
    if writers:
        head, how_head = writers[0], "writes the output"
    elif order:
        head, how_head = order[-1], "runs last"
    else:
        head, how_head = None, "none"
    return Ends(first, head, (how_first, how_head))
