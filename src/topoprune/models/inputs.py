"""Example inputs of any shape a model takes: a tensor, a tuple of tensors, or a dict of keyword
inputs (token ids, attention masks, pixel values).

Everything that runs a model to trace, count or time it goes through :func:`call_model`, so the
user's inputs are used as given: integer token ids stay integers, an attention mask goes with
them. Only a registry model (``model.meta``) may be run without inputs: zeros of its
``input_shape``. Outputs of any structure (a tensor, a tuple, a dict, a Hugging Face
``ModelOutput``) are flattened by :func:`output_tensors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

import torch
from torch import nn

from ..errors import TopopruneError

__all__ = [
    "Inputs",
    "as_inputs",
    "call_model",
    "example_inputs_for",
    "batch_size",
    "describe_inputs",
    "output_tensors",
    "first_tensor",
    "move_inputs",
    "take_batch",
    "without_cache",
]

# What users pass: one tensor, a tuple/list of tensors (positional), or a dict (keyword inputs).
Inputs = Union[torch.Tensor, tuple, Mapping[str, Any]]


def as_inputs(value: object, what: str = "example_inputs") -> Inputs:
    """Check ``value`` is a tensor, a tuple/list of tensors or a ``{name: tensor}`` mapping (a
    non-tensor value inside a tuple or dict, such as ``None`` or a flag, is passed through).
    Lists become tuples; a mapping becomes a plain dict."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        if not value or not any(isinstance(v, torch.Tensor) for v in value):
            raise TopopruneError(f"{what} must hold at least one tensor, got {_kind(value)}")
        return tuple(value)
    if isinstance(value, Mapping):
        if not value or not all(isinstance(k, str) for k in value):
            raise TopopruneError(f"{what} as a dict must map argument names (strings) to tensors, "
                                 f"got {_kind(value)}")
        if not any(isinstance(v, torch.Tensor) for v in value.values()):
            raise TopopruneError(f"{what} must hold at least one tensor, got {_kind(value)}")
        return dict(value)
    raise TopopruneError(f"{what} must be a tensor, a tuple of tensors or a dict of keyword inputs "
                         f"(e.g. {{'input_ids': ids, 'attention_mask': mask}}), got {_kind(value)}")


def _kind(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of {', '.join(_kind(v) for v in value[:4]) or 'nothing'}"
    if isinstance(value, Mapping):
        return "dict {" + ", ".join(f"{k!r}: {_kind(v)}" for k, v in list(value.items())[:6]) + "}"
    return type(value).__name__


def describe_inputs(inputs: Inputs) -> str:
    """A short human description (shapes and dtypes), for error messages and reports."""
    return _kind(inputs)


def call_model(model: nn.Module, inputs: Inputs) -> Any:
    """``model(x)``, ``model(*xs)`` or ``model(**kw)`` as the inputs' structure says."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def output_tensors(out: Any) -> list[torch.Tensor]:
    """Every tensor in a model's output, depth first: a tensor, tuple/list, dict or a Hugging
    Face ``ModelOutput`` (a dict). Caches and other objects are skipped."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        return [t for v in out.values() for t in output_tensors(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in output_tensors(v)]
    return []


def first_tensor(out: Any) -> torch.Tensor:
    """The model's main output: the tensor itself, ``logits`` of a Hugging Face output, or the
    first tensor found."""
    if isinstance(out, Mapping) and isinstance(out.get("logits"), torch.Tensor):
        return out["logits"]
    found = output_tensors(out)
    if not found:
        raise TopopruneError(f"the model's output holds no tensor ({type(out).__name__})")
    return found[0]


def _tensors(inputs: Inputs) -> list[torch.Tensor]:
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    values = inputs.values() if isinstance(inputs, Mapping) else inputs
    return [v for v in values if isinstance(v, torch.Tensor)]


def batch_size(inputs: Inputs) -> int:
    """The leading dimension of the inputs' first tensor (the batch)."""
    t = _tensors(inputs)[0]
    return int(t.shape[0]) if t.ndim else 1


def move_inputs(inputs: Inputs, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None) -> Inputs:
    """The inputs on ``device``; floating tensors (only) cast to ``dtype``. Integer token ids
    and boolean masks keep their dtype."""
    def one(v: Any) -> Any:
        if not isinstance(v, torch.Tensor):
            return v
        cast = dtype if (dtype is not None and v.is_floating_point()) else None
        return v.to(device=device, dtype=cast) if (device is not None or cast is not None) else v

    if isinstance(inputs, Mapping):
        return {k: one(v) for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(one(v) for v in inputs)
    return one(inputs)


def take_batch(inputs: Inputs, n: int) -> Inputs:
    """The first ``n`` samples of every tensor whose leading dimension is the batch."""
    b = batch_size(inputs)

    def one(v: Any) -> Any:
        return v[:n] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == b else v

    if isinstance(inputs, Mapping):
        return {k: one(v) for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(one(v) for v in inputs)
    return one(inputs)


def _param(model: nn.Module) -> torch.Tensor | None:
    return next(model.parameters(), None)


def example_inputs_for(model: nn.Module, example_inputs: object = None, *,
                       input_shape: Sequence[int] | None = None, batch: int = 1) -> Inputs:
    """The inputs to trace/count/time ``model`` with.

    ``example_inputs`` as given (checked, moved to the model's device; floating tensors keep
    their dtype); else zeros of ``input_shape`` (one input, no batch dimension); else zeros of
    ``model.meta.input_shape`` for a registry model. Anything else is a one-line error naming
    what to pass.
    """
    p = _param(model)
    device = p.device if p is not None else torch.device("cpu")
    if example_inputs is not None:
        return move_inputs(as_inputs(example_inputs), device)
    if input_shape is None:
        meta = getattr(model, "meta", None)
        input_shape = getattr(meta, "input_shape", None)
    if input_shape is None:
        raise TopopruneError(
            f"example_inputs is required for a {type(model).__name__} (a model without .meta): pass "
            "a batch the model takes, as a tensor, a tuple of tensors or a dict of keyword inputs "
            "(e.g. {'input_ids': ids, 'attention_mask': mask})")
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    return torch.zeros(batch, *tuple(input_shape), dtype=dtype, device=device)


def without_cache(model: nn.Module, inputs: Inputs) -> Inputs:
    """The inputs for tracing and exporting: as given, except that a model whose ``forward``
    takes ``use_cache`` (Hugging Face decoders) gets ``use_cache=False`` unless the inputs say
    otherwise: the key/value cache concatenates tensors whose channels torch-pruning cannot size
    and that exporters cannot return, and it plays no part in which channels are coupled or in
    the logits."""
    import inspect

    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return inputs
    if "use_cache" not in sig.parameters:
        return inputs
    if isinstance(inputs, dict):
        return inputs if "use_cache" in inputs else {**inputs, "use_cache": False}
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    try:
        bound = sig.bind_partial(*args)
    except TypeError:
        return inputs
    if "use_cache" in bound.arguments:
        return inputs
    return {**bound.arguments, "use_cache": False}
