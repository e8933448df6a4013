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

:func:`weighted_chain` follows the same pass's autograd graph to say whether the weighted layers
form a feed-forward chain (no residual adds, no layer run twice), for connectivity measurements
that are exact only on chains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import TopopruneError
from .hooks import inspecting
from .inputs import Inputs, call_model, example_inputs_for, output_tensors
from .layers import is_weighted_layer

__all__ = ["Chain", "Ends", "find_ends", "weighted_chain"]


@dataclass(frozen=True)
class Ends:
    """The model's first layer and classifier (qualified names, or None), and how each was found
    (``"meta"``, ``"reads the input"``, ``"writes the output"``, ``"runs first"``, ``"runs last"``)."""

    first_layer: str | None
    classifier: str | None
    how: tuple[str, str]


def _run(model: nn.Module, x: Inputs):
    """``call_model``, with a model that rejects the inputs reported in one line."""
    try:
        return call_model(model, x)
    except TopopruneError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's model rejected the inputs
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise TopopruneError(f"the model does not run on the example inputs: {first}") from None


def find_ends(model: nn.Module, example_inputs: Inputs | None = None) -> Ends:
    """The first layer and the classifier of ``model`` (see the module docstring)."""
    meta = getattr(model, "meta", None)
    if meta is not None and getattr(meta, "first_layer", None) and getattr(meta, "classifier", None):
        return Ends(meta.first_layer, meta.classifier, ("meta", "meta"))
    x = example_inputs_for(model, example_inputs)
    names = {m: n for n, m in model.named_modules()}
    inputs = {id(t) for t in output_tensors(x)}
    order: list[str] = []  # weighted layers, in the order they ran (first call only)
    reads_input: list[str] = []
    produced: dict[int, tuple[torch.Tensor, str]] = {}  # the tensor is kept: ids of freed tensors are reused
    state = {"other_first": False}  # a parameterised non-weighted module ran before any layer

    def pre(module, args, kwargs):
        name = names[module]
        if is_weighted_layer(module):
            if name not in order:
                order.append(name)
            if any(id(t) in inputs for t in output_tensors(args) + output_tensors(kwargs)):
                reads_input.append(name)
        elif not order and any(True for _ in module.parameters(recurse=False)):
            state["other_first"] = True

    def post(module, args, out):
        if is_weighted_layer(module):
            for t in output_tensors(out):
                produced[id(t)] = (t, names[module])

    hooks = []
    for m in model.modules():
        hooks.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        if is_weighted_layer(m):
            hooks.append(m.register_forward_hook(post))
    try:
        with inspecting(model):
            out = _run(model, x)
    finally:
        for h in hooks:
            h.remove()
    if reads_input:
        first, how_first = reads_input[0], "reads the input"
    elif order and not state["other_first"]:
        first, how_first = order[0], "runs first"
    else:
        first, how_first = None, "none: no weighted layer reads the input"
    writers = [produced[id(t)][1] for t in output_tensors(out) if id(t) in produced and produced[id(t)][0] is t]
    if writers:
        head, how_head = writers[0], "writes the output"
    elif order:
        head, how_head = order[-1], "runs last"
    else:
        head, how_head = None, "none"
    return Ends(first, head, (how_first, how_head))


@dataclass(frozen=True)
class Chain:
    """The weighted layers in the order they first ran, and why they are not a feed-forward chain
    (``reason``; None when they are: each layer runs once, the first reads only the model's
    input, every other one only the previous layer's output, and the output depends only on the
    last layer's)."""

    order: tuple[str, ...]
    reason: str | None

    @property
    def is_chain(self) -> bool:
        return self.reason is None


def weighted_chain(model: nn.Module, example_inputs: Inputs | None = None, *,
                   input_shape=None) -> Chain:
    """Whether ``model``'s weighted layers form a chain, found by following the autograd graph
    of one forward pass (eval mode, the mode restored after; nothing is trained, no BatchNorm
    statistic moves).

    Each weighted layer's input is traced back through the operations between layers
    (activations, normalisation, pooling, reshapes) to the layer outputs or model inputs it was
    computed from. A residual add, a concatenation with an earlier tensor, a layer run twice or a
    layer that does not run makes the layers no chain, and ``reason`` says where. Reshapes and
    permutations between layers are not inspected: a chain only says which tensor each layer
    reads.
    """
    x = example_inputs_for(model, example_inputs, input_shape=input_shape)
    leaves: list[torch.Tensor] = []  # keeps every traced tensor and node alive (ids stay unique)

    def mark(t):
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            leaf = t.detach().requires_grad_(True)
            marked = leaf.clone()  # its node stands for "the model's input"
            leaves.extend([leaf, marked])
            return marked
        return t

    if isinstance(x, torch.Tensor):
        x = mark(x)
    elif isinstance(x, tuple):
        x = tuple(mark(t) for t in x)
    else:
        x = {k: mark(v) for k, v in x.items()}
    inputs = {id(t.grad_fn) for t in output_tensors(x) if t.grad_fn is not None}
    layers = {m: n for n, m in model.named_modules() if is_weighted_layer(m)}
    calls: list[list] = []  # [name, input nodes, output node]

    def pre(module, args):
        calls.append([layers[module], [t.grad_fn for t in output_tensors(args)], None])

    def post(module, args, out):
        tensors = output_tensors(out)
        calls[-1][2] = tensors[0].grad_fn if tensors else None
        leaves.extend(tensors)

    hooks = []
    for m in layers:
        hooks.append(m.register_forward_pre_hook(pre))
        hooks.append(m.register_forward_hook(post))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            out = _run(model, x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    order = tuple(dict.fromkeys(c[0] for c in calls))
    return Chain(order, _chain_reason(calls, order, set(layers.values()), inputs, output_tensors(out)))


def _chain_reason(calls, order, all_layers, inputs, outputs) -> str | None:
    if not calls:
        return "no weighted layer ran"
    twice = [n for n in order if sum(c[0] == n for c in calls) > 1]
    if twice:
        return f"layer {twice[0]!r} runs more than once"
    idle = sorted(all_layers - set(order))
    if idle:
        return f"layer {idle[0]!r} does not run on the inputs"
    if any(c[2] is None for c in calls):
        missing = next(c[0] for c in calls if c[2] is None)
        return f"the data cannot be followed through layer {missing!r} (its output has no autograd node)"
    produced = {id(c[2]): c[0] for c in calls}  # the calls hold these nodes: their ids stay unique

    def sources(nodes) -> set[str]:
        found: set[str] = set()
        seen = {}  # id -> node: holding every visited node keeps the ids unique
        stack = [n for n in nodes if n is not None]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen[id(node)] = node
            if id(node) in produced:
                found.add(produced[id(node)])
            elif id(node) in inputs:
                found.add("the input")
            else:
                stack.extend(f for f, _ in node.next_functions if f is not None)
        return found

    def say(found: set[str]) -> str:
        return ", ".join(sorted(found)) or "only constants and parameters"

    expected = "the input"
    for name, nodes, _ in calls:
        found = sources(nodes)
        if found != {expected}:
            return f"layer {name!r} reads {say(found)}, not only {expected}"
        expected = name
    found = sources([t.grad_fn for t in outputs])
    if found != {expected}:
        return f"the output depends on {say(found)}, not only on the last layer {expected!r}"
    return None
