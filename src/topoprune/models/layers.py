"""Which modules are weighted layers, and their weights in one orientation.

Linear layers, 1-D/2-D convolutions and Hugging Face's ``Conv1D`` (GPT-2's linear layers, whose
weight is stored transposed as ``(in, out)``) are the layers topoprune prunes and analyses.
:func:`out_in_weight` gives every one of them as ``(out, in, ...)``, so NP, critical compression,
scores and masks see GPT-2 the way they see a ``nn.Linear``.

``Conv1D`` is recognised by its class name and module (``transformers.pytorch_utils``), without
importing ``transformers``, which stays an optional extra.

``nn.MultiheadAttention`` computes q, k and v with one packed parameter, ``in_proj_weight``
``(3E, E)``, called functionally (its ``out_proj`` is an ordinary ``nn.Linear``). For
unstructured masks and the topology analyses it is one more layer, named ``<module>.in_proj``
(``in_proj`` for a bare ``nn.MultiheadAttention``): the rows are q's, then k's, then v's outputs,
as GPT-2's fused ``c_attn``. :func:`maskable_layers` lists it with the weighted layers, and
:func:`weight_attr` names the parameter a layer computes with (``"in_proj_weight"`` there,
``"weight"`` everywhere else), which is what ``torch.nn.utils.prune`` masks. An
``nn.MultiheadAttention`` built with ``kdim``/``vdim`` different from ``embed_dim`` has three
separate q/k/v parameters instead and is not listed. Structured pruning cannot remove its heads:
``head_dim * num_heads`` must equal ``embed_dim``, the width of its input and of its output.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import TopopruneError

__all__ = ["require_module", "is_hf_conv1d", "is_linear_like", "is_weighted_layer", "out_in_weight", "out_units",
           "weighted_layers", "layer_kind", "maskable_layers", "weight_attr", "is_packed_attention", "PACKED_SUFFIX",
           "weight_key"]

PACKED_SUFFIX = "in_proj"  # nn.MultiheadAttention's packed q/k/v projection: layer "<module>.in_proj"

_CONVS = (nn.Conv1d, nn.Conv2d)


def require_module(model: object, what: str = "model") -> nn.Module:
    """``model`` if it is a ``torch.nn.Module``; anything else (a registry name, a state dict, a
    path) is refused in one line instead of failing later on a missing attribute."""
    if isinstance(model, nn.Module):
        return model
    hint = ""
    if isinstance(model, str):
        hint = f" (a model name? build it first: topoprune.create_model({model!r}))"
    elif isinstance(model, dict):
        hint = " (a state dict? load it into the model it belongs to: model.load_state_dict(...))"
    shown = repr(model) if isinstance(model, (str, int, float)) else f"a {type(model).__name__}"
    raise TopopruneError(f"{what}: bad value {shown[:80]}; allowed: a torch.nn.Module{hint}")


def is_hf_conv1d(module: nn.Module) -> bool:
    """Hugging Face's transposed linear layer (``transformers.pytorch_utils.Conv1D``)."""
    cls = type(module)
    return (cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers")
            and isinstance(getattr(module, "weight", None), torch.Tensor))


def is_linear_like(module: nn.Module) -> bool:
    """A ``nn.Linear`` or a Hugging Face ``Conv1D``."""
    return isinstance(module, nn.Linear) or is_hf_conv1d(module)


def is_weighted_layer(module: nn.Module) -> bool:
    """A layer topoprune prunes: linear, conv (1-D, 2-D) or Hugging Face ``Conv1D``."""
    return isinstance(module, (nn.Linear, *_CONVS)) or is_hf_conv1d(module)


def layer_kind(module: nn.Module) -> str:
    """``"conv"`` or ``"linear"``."""
    return "conv" if isinstance(module, _CONVS) else "linear"


def is_packed_attention(module: nn.Module) -> bool:
    """An ``nn.MultiheadAttention`` whose q, k and v share one packed ``in_proj_weight``."""
    return (isinstance(module, nn.MultiheadAttention) and bool(getattr(module, "_qkv_same_embed_dim", False))
            and (getattr(module, "in_proj_weight", None) is not None or hasattr(module, "in_proj_weight_orig")))


def weight_attr(module: nn.Module) -> str:
    """The name of the weight a layer computes with: ``"in_proj_weight"`` for a packed
    ``nn.MultiheadAttention`` (layer ``<module>.in_proj``), ``"weight"`` otherwise."""
    return "in_proj_weight" if isinstance(module, nn.MultiheadAttention) else "weight"


def weight_key(name: str, module: nn.Module) -> str:
    """The state-dict key of a maskable layer's weight: ``"<module>.in_proj_weight"`` for
    ``"<module>.in_proj"``, ``"<name>.weight"`` otherwise."""
    if isinstance(module, nn.MultiheadAttention):
        owner = name[: -len(PACKED_SUFFIX)].rstrip(".")
        return f"{owner}.in_proj_weight" if owner else "in_proj_weight"
    return f"{name}.weight" if name else "weight"


def out_in_weight(module: nn.Module, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The layer's weight (or ``weight``, e.g. an effective masked one) as ``(out, in, ...)``:
    transposed for a Hugging Face ``Conv1D``, as stored otherwise (a packed attention projection:
    ``in_proj_weight``, ``(3E, E)``). A view, not a copy."""
    w = getattr(module, weight_attr(module)) if weight is None else weight
    return w.t() if is_hf_conv1d(module) else w


def out_units(module: nn.Module) -> int:
    """Output units (filters/neurons) of a weighted layer."""
    return int(out_in_weight(module).shape[0])


def weighted_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every weighted layer of ``model`` by qualified name, in module order."""
    require_module(model)
    return {n: m for n, m in model.named_modules() if is_weighted_layer(m)}



def maskable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers whose weights can be masked and analysed, by name, in module order: every
    weighted layer, and each packed ``nn.MultiheadAttention`` as ``<module>.in_proj`` (its
    module is the attention; its weight is :func:`weight_attr`)."""
    require_module(model)
    out = {}
    for n, m in model.named_modules():
        if is_weighted_layer(m):
            out[n] = m
        elif is_packed_attention(m):
            out[f"{n}.{PACKED_SUFFIX}" if n else PACKED_SUFFIX] = m
    return out
