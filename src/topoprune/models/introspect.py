"""Turn an ``nn.Module`` into the torch-free layer descriptions of ``topoprune.topology``.

Linear layers, Hugging Face ``Conv1D`` (GPT-2's linear layers, weight stored ``(in, out)`` and
handed on transposed to ``(out, in)``), 1-D and 2-D convolutions, recurrent layers (RNN, LSTM,
GRU) and ``nn.MultiheadAttention``'s packed q/k/v projection (layer ``<module>.in_proj``, its
``in_proj_weight`` ``(3E, E)``; see :mod:`topoprune.models.layers`) are graphs; everything else
(embeddings, normalisation, pooling, activations, parameter-free shortcuts) carries no edges and
is skipped. A conv's input size is traced with one forward pass of the user's ``example_inputs``
(a tensor, a tuple, or a dict of keyword inputs, used as given) or, for the registry models, of
zeros at ``input_shape``.

A weight shared by several weighted layers (tied parameters) is one graph: the first layer that
holds it, in module order, stands for all of them. :func:`layer_roles` names what each layer does
in a transformer (``attention.q`` ... ``mlp``), read from the module tree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import TopopruneError
from ..topology.graphs import ConvLayer, DenseLayer, Layer, channel_matrix
from .attention import find_attention
from .hooks import inspecting
from .inputs import call_model, describe_inputs, example_inputs_for
from .layers import (PACKED_SUFFIX, is_linear_like, is_packed_attention, is_weighted_layer, maskable_layers,
                     out_in_weight, weight_attr, weight_key)

__all__ = ["extract_layers", "default_input_shape", "parse_shape", "effective_weight", "layer_graph",
           "weight_parameter", "tied_layers", "layer_roles", "ROLES"]

_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


MAX_SIDE = 4096  # the largest channel count, height or width a shape may ask for


def parse_shape(text: str | Sequence[int], max_side: int = MAX_SIDE) -> tuple[int, ...]:
    """Parse ``"C,H,W"`` (or a sequence) into a tuple of positive ints, each at most
    ``max_side``, with a clear error."""
    bad = TopopruneError(
        f"malformed shape {text!r}: expected positive integers like C,H,W (e.g. 1,28,28), "
        f"each at most {max_side}"
    )
    try:
        if isinstance(text, str):
            shape = tuple(int(x) for x in text.replace("x", ",").split(","))
        elif isinstance(text, bytes) or any(isinstance(x, (bool, float)) for x in text):
            raise bad
        else:
            shape = tuple(int(x) for x in text)
    except (TypeError, ValueError, OverflowError):
        raise bad from None
    if not shape or any(not 1 <= x <= max_side for x in shape):
        raise bad
    return shape


def default_input_shape(model: nn.Module) -> tuple[int, ...] | None:
    """The input shape a registry model was built for (``model.meta``), else None."""
    meta = getattr(model, "meta", None)
    return tuple(meta.input_shape) if meta is not None else None


def effective_weight(module: nn.Module, name: str | None = None) -> torch.Tensor:
    """The weight a layer computes with (``name``, default :func:`~topoprune.models.layers.weight_attr`:
    ``weight``, or ``in_proj_weight`` of an ``nn.MultiheadAttention``). Under
    ``torch.nn.utils.prune`` that is ``weight_orig * weight_mask``, computed here: the ``weight``
    attribute itself is only refreshed by the next forward pass, so it is stale right after
    ``load_state_dict``."""
    name = weight_attr(module) if name is None else name
    if hasattr(module, f"{name}_mask") and hasattr(module, f"{name}_orig"):
        return getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask")
    return getattr(module, name)


def weight_parameter(module: nn.Module) -> torch.Tensor | None:
    """The parameter behind a layer's weight: ``weight_orig`` under ``torch.nn.utils.prune``,
    else ``weight`` (None if the module has no weight parameter)."""
    params = dict(module.named_parameters(recurse=False))
    attr = weight_attr(module)
    return params.get(f"{attr}_orig", params.get(attr))


def tied_layers(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Weighted layers whose weight parameter is also held by another module (tied weights, such
    as GPT-2's ``lm_head`` and its token embedding ``transformer.wte``): ``{layer: (the other
    modules holding it, ...)}``. A module registered under two names is one module, not a tie."""
    owners: dict[int, list[str]] = {}
    for name, module in model.named_modules():
        for param in dict(module.named_parameters(recurse=False)).values():
            owners.setdefault(id(param), [])
            if name not in owners[id(param)]:
                owners[id(param)].append(name)
    out = {}
    for name, module in maskable_layers(model).items():
        param = weight_parameter(module)
        owner = weight_key(name, module).rpartition(".")[0]  # "<mha>" for "<mha>.in_proj"
        others = tuple(n for n in owners.get(id(param), ()) if n != owner) if param is not None else ()
        if others:
            out[name] = others
    return out


def layer_graph(module: nn.Module) -> np.ndarray:
    """A Linear/Conv layer's bipartite graph as an ``(n_out, n_in)`` matrix of edge values:
    ``|w|`` for a linear layer (a Hugging Face ``Conv1D`` transposed to ``(out, in)``), the
    channel graph (kernel-slice 2-norms, block-diagonal for grouped convs) for a conv. Uses the
    effective (masked) weight."""
    w = out_in_weight(module, effective_weight(module)).detach().cpu().numpy()
    if w.ndim == 2:
        return np.abs(w)
    return channel_matrix(ConvLayer("layer", w, groups=getattr(module, "groups", 1)))


def _numpy(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy()


def _conv_padding(m: nn.Conv1d | nn.Conv2d) -> tuple[int, ...]:
    if not isinstance(m.padding, str):
        return tuple(m.padding)
    if m.padding == "valid":
        return (0,) * len(m.kernel_size)
    pads = []
    for k, d in zip(m.kernel_size, m.dilation):
        total = d * (k - 1)
        if total % 2:
            raise TopopruneError(
                f"conv padding='same' with an even effective kernel pads asymmetrically; "
                f"kernel {m.kernel_size}, dilation {m.dilation} is not supported"
            )
        pads.append(total // 2)
    return tuple(pads)


def _trace_input_sizes(model: nn.Module, input_shape: Sequence[int] | None = None, *,
                       example_inputs: object = None) -> dict[str, tuple[int, ...]]:
    """The spatial input size of every conv layer, from one forward pass of ``example_inputs``
    (as given) or of zeros at ``input_shape`` (one input, no batch)."""
    inputs = example_inputs_for(model, example_inputs, input_shape=input_shape)
    sizes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            def hook(mod, args, _name=name):
                if _name not in sizes:  # a conv called twice is sized by its first call
                    sizes[_name] = tuple(args[0].shape[2:])
            hooks.append(m.register_forward_pre_hook(hook))
    try:
        with inspecting(model):
            call_model(model, inputs)
    except TopopruneError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model rejected the inputs: say which
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if example_inputs is None:
            raise TopopruneError(
                f"the model does not accept inputs of shape {tuple(input_shape or inputs.shape[1:])}: "
                f"{first}; pass example_inputs (a tensor, a tuple of tensors or a dict of keyword "
                "inputs) the model takes") from None
        raise TopopruneError(f"the model does not run on the example inputs "
                             f"({describe_inputs(inputs)}): {first}") from None
    finally:
        for h in hooks:
            h.remove()
    return sizes


def extract_layers(model: nn.Module, input_shape: Sequence[int] | None = None, *,
                   example_inputs: object = None) -> list[Layer]:
    """The model's weighted layers as topology layer descriptions, in module order.

    Linear layers and Hugging Face ``Conv1D`` are :class:`DenseLayer` with the weight as
    ``(n_out, n_in)`` (``Conv1D`` transposed); the effective (masked) weight is used. A weight
    shared by several layers (tied) is extracted once, under the first layer holding it.

    Args:
        model: any ``nn.Module``.
        input_shape: ``(C, H, W)`` of one input (no batch), for models that take one float
            tensor; the default is ``model.meta.input_shape`` for registry models.
        example_inputs: instead of ``input_shape``, a batch the model takes, used as given: a
            tensor, a tuple of tensors or a dict of keyword inputs (token ids, attention mask).
            Either gives the conv layers' input sizes (one forward pass, which also checks that
            the model runs on them); with neither, conv layers have ``input_size=None`` (fine for
            the channel graph).

    Raises:
        TopopruneError: if both are given, or the model does not run on them.
    """
    if example_inputs is not None and input_shape is not None:
        raise TopopruneError("pass example_inputs or input_shape, not both: example_inputs is a batch "
                             "the model takes, input_shape the shape of one float input")
    if example_inputs is None and input_shape is None:
        input_shape = default_input_shape(model)
    # One forward pass also checks that the model accepts the inputs, conv or not.
    traced = example_inputs is not None or bool(input_shape)
    sizes = _trace_input_sizes(model, input_shape, example_inputs=example_inputs) if traced else {}
    layers: list[Layer] = []
    seen: set[int] = set()  # weight parameters already extracted (tied layers count once)
    for name, m in model.named_modules():
        if is_weighted_layer(m) or is_packed_attention(m):
            param = weight_parameter(m)
            if param is not None:
                if id(param) in seen:
                    continue
                seen.add(id(param))
        if is_linear_like(m):
            w = out_in_weight(m, effective_weight(m))
            layers.append(DenseLayer(name, _numpy(w), _numpy(m.bias), "linear"))
        elif isinstance(m, (nn.Conv1d, nn.Conv2d)):
            w = _numpy(effective_weight(m))
            pad = _conv_padding(m)
            stride, dil = tuple(m.stride), tuple(m.dilation)
            size = sizes.get(name)
            if isinstance(m, nn.Conv1d):
                w = w[:, :, None, :]
                pad, stride, dil = (0, *pad), (1, *stride), (1, *dil)
                size = (1, *size) if size is not None else None
            layers.append(
                ConvLayer(
                    name, w, _numpy(m.bias), stride=stride, padding=pad, dilation=dil,
                    groups=m.groups, input_size=size, padding_mode=m.padding_mode,
                )
            )
        elif isinstance(m, nn.RNNBase):
            layers.extend(_recurrent_layers(name, m))
        elif is_packed_attention(m):  # q, k, v rows of in_proj_weight, (3E, E)
            layers.append(DenseLayer(_packed_name(name), _numpy(effective_weight(m)), _numpy(m.in_proj_bias),
                                     "linear"))
    return layers


def _packed_name(name: str) -> str:
    return f"{name}.{PACKED_SUFFIX}" if name else PACKED_SUFFIX


def _recurrent_layers(name: str, m: nn.RNNBase) -> list[DenseLayer]:
    gates = _GATES.get(m.mode.split("_")[0], 1)
    prefix = f"{name}." if name else ""
    out: list[DenseLayer] = []
    for k in range(m.num_layers):
        for suffix in ([""] + (["_reverse"] if m.bidirectional else [])):
            ih = getattr(m, f"weight_ih_l{k}{suffix}")
            hh = getattr(m, f"weight_hh_l{k}{suffix}")
            out.append(DenseLayer(f"{prefix}weight_ih_l{k}{suffix}", _numpy(ih), None, "linear"))
            blocks = np.split(_numpy(hh), gates, axis=0)
            for g, block in enumerate(blocks):
                tag = f"[{g}]" if gates > 1 else ""
                out.append(DenseLayer(f"{prefix}weight_hh_l{k}{suffix}{tag}", block, None, "recurrent"))
    return out


ROLES = ("attention.q", "attention.k", "attention.v", "attention.qkv", "attention.out", "mlp",
         "classifier", "conv", "linear", "recurrent")


def _under(name: str, prefix: str) -> bool:
    return not prefix or name == prefix or name.startswith(prefix + ".")


def _parent(name: str) -> str | None:
    return name.rpartition(".")[0] if name else None


def layer_roles(model: nn.Module) -> dict[str, str]:
    """What each layer of :func:`extract_layers` does, read from the module tree (no forward
    pass): ``{layer name: role}`` with a role from :data:`ROLES`.

    - ``attention.q/k/v`` (``attention.qkv`` for a fused projection such as GPT-2's ``c_attn``):
      the projections of an attention module, found by
      :func:`topoprune.models.attention.find_attention` (a module with an integer head count and
      recognised q/k/v children).
    - ``nn.MultiheadAttention``: its packed projection ``<module>.in_proj`` is ``attention.qkv``,
      its ``out_proj`` ``attention.out``.
    - ``attention.out``: the one other weighted layer inside that attention module (GPT-2's
      ``attn.c_proj``, timm's ``attn.proj``), or, when the module holds only q/k/v, the one
      weighted layer beside it in its parent (BERT/ViT: ``attention.output.dense``).
    - ``mlp``: the other weighted layers of the transformer block holding the attention (the
      parent of the attention part above; BERT's ``intermediate.dense``/``output.dense``,
      GPT-2's ``mlp.c_fc``/``mlp.c_proj``, ``nn.TransformerEncoderLayer``'s ``linear1``/``linear2``).
    - ``classifier``: ``model.meta.classifier`` of a registry model.
    - otherwise ``conv``, ``linear`` or ``recurrent`` by layer type (a pooler, an LM head, an
      attention whose output projection cannot be told apart is ``linear``).
    """
    layers = maskable_layers(model)
    roles: dict[str, str] = {n: ("conv" if isinstance(m, (nn.Conv1d, nn.Conv2d)) else "linear")
                             for n, m in layers.items()}
    for name, m in model.named_modules():
        if isinstance(m, nn.RNNBase):
            prefix = f"{name}." if name else ""
            for k in range(m.num_layers):
                for suffix in ([""] + (["_reverse"] if m.bidirectional else [])):
                    roles[f"{prefix}weight_ih_l{k}{suffix}"] = "recurrent"
                    gates = _GATES.get(m.mode.split("_")[0], 1)
                    for tag in ([f"[{g}]" for g in range(gates)] if gates > 1 else [""]):
                        roles[f"{prefix}weight_hh_l{k}{suffix}{tag}"] = "recurrent"
    meta = getattr(model, "meta", None)
    blocks = find_attention(model)
    parts: list[str] = []  # the attention part of each block: q/k/v and the output projection
    for block in blocks:
        projections = set(block.projections)
        if block.fused:
            roles[block.projections[0]] = "attention.qkv"
        else:
            for proj, role in zip(block.projections, ("attention.q", "attention.k", "attention.v")):
                roles[proj] = role
        inside = [n for n in layers if _under(n, block.name) and n not in projections]
        part = block.name
        if not inside and block.name:
            parent = _parent(block.name)
            beside = [n for n in layers if _under(n, parent) and not _under(n, block.name)]
            if len(beside) == 1:
                inside, part = beside, parent
        if len(inside) == 1:  # else the output projection cannot be told apart: no mlp either
            roles[inside[0]] = "attention.out"
            parts.append(part)
    packed = [n for n, m in layers.items() if isinstance(m, nn.MultiheadAttention)]
    for n in packed:  # nn.MultiheadAttention: in_proj (q, k, v) and its out_proj
        roles[n] = "attention.qkv"
        owner = _parent(n) or ""
        out = f"{owner}.out_proj" if owner else "out_proj"
        if out in roles:
            roles[out] = "attention.out"
        parts.append(owner)
    owners = [b.name for b in blocks] + [_parent(n) or "" for n in packed]
    attention = {n for n, r in roles.items() if r.startswith("attention.")}
    for part in parts:
        block_name = _parent(part) if part else None
        # never the whole model, nor a container of several attention blocks (a ModuleList)
        if not block_name or sum(_under(o, block_name) for o in owners) != 1:
            continue
        for n in layers:
            if _under(n, block_name) and n not in attention:
                roles[n] = "mlp"
    classifier = getattr(meta, "classifier", None)
    if classifier in roles:
        roles[classifier] = "classifier"
    return roles
