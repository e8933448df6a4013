"""Turn an ``nn.Module`` into the torch-free layer descriptions of ``topoprune.topology``.

Linear layers, 1-D and 2-D convolutions and recurrent layers (RNN, LSTM, GRU) are graphs;
everything else (BatchNorm, pooling, activations, parameter-free shortcuts) carries no edges and
is skipped. A conv's input size is traced with one forward pass of zeros at ``input_shape``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import TopopruneError
from ..topology.graphs import ConvLayer, DenseLayer, Layer, channel_matrix

__all__ = ["extract_layers", "default_input_shape", "parse_shape", "effective_weight", "layer_graph"]

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


def effective_weight(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The weight a layer computes with. Under ``torch.nn.utils.prune`` that is
    ``weight_orig * weight_mask``, computed here: the ``weight`` attribute itself is only
    refreshed by the next forward pass, so it is stale right after ``load_state_dict``."""
    if hasattr(module, f"{name}_mask") and hasattr(module, f"{name}_orig"):
        return getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask")
    return getattr(module, name)


def layer_graph(module: nn.Module) -> np.ndarray:
    """A Linear/Conv layer's bipartite graph as an ``(n_out, n_in)`` matrix of edge values:
    ``|w|`` for a linear layer, the channel graph (kernel-slice 2-norms, block-diagonal for
    grouped convs) for a conv. Uses the effective (masked) weight."""
    w = effective_weight(module).detach().cpu().numpy()
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


def _trace_input_sizes(model: nn.Module, input_shape: Sequence[int]) -> dict[str, tuple[int, ...]]:
    sizes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            def hook(mod, args, _name=name):
                sizes[_name] = tuple(args[0].shape[2:])
            hooks.append(m.register_forward_pre_hook(hook))
    was_training = model.training
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else "cpu"
        dtype = param.dtype if param is not None else torch.float32
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device, dtype=dtype))
    except Exception as exc:  # the model rejected the shape: say which shape
        raise TopopruneError(
            f"the model does not accept inputs of shape {tuple(input_shape)}: {exc}"
        ) from None
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return sizes


def extract_layers(model: nn.Module, input_shape: Sequence[int] | None = None) -> list[Layer]:
    """The model's weighted layers as topology layer descriptions, in module order.

    Args:
        model: any ``nn.Module``.
        input_shape: ``(C, H, W)`` of one input (no batch). Needed for conv input sizes; the
            default is ``model.meta.input_shape`` for registry models. Without it conv layers
            have ``input_size=None`` (fine for the channel graph).

    Raises:
        TopopruneError: if the model rejects an input of ``input_shape``.
    """
    if input_shape is None:
        input_shape = default_input_shape(model)
    # One forward pass also checks that the model accepts the shape, conv or not.
    sizes = _trace_input_sizes(model, input_shape) if input_shape else {}
    layers: list[Layer] = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            layers.append(DenseLayer(name, _numpy(effective_weight(m)), _numpy(m.bias), "linear"))
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
    return layers


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
