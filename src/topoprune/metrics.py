"""Size and cost of a model: parameters, MACs, FLOPs, bytes on disk, CPU latency.

Units are never mixed: **MACs** follow NNI's counting rule for conv and linear layers only
(``C_out H_out W_out k_h k_w C_in / groups`` per conv, ``in * out`` per linear or Hugging Face
``Conv1D``, per output position, bias excluded); **FLOPs** are what ``torch.utils.flop_counter``
counts for the whole forward pass (2 per multiply-add, every op it knows). Both are per single
input: for ``example_inputs`` of batch ``B`` (a tensor, a tuple or a dict of keyword inputs such
as token ids and an attention mask) the count is divided by ``B``; without them a registry model
runs on zeros of its ``input_shape`` at batch 1.

Parameters shared by several modules (tied embeddings) are counted once.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .models.hooks import inspecting
from .models.inputs import Inputs, batch_size, call_model, example_inputs_for
from .models.layers import is_hf_conv1d

__all__ = [
    "CostResult",
    "count_parameters",
    "count_macs",
    "count_flops",
    "model_size_bytes",
    "measure_latency",
    "model_cost",
]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, nonzero)`` parameters. For weights masked with ``torch.nn.utils.prune`` the
    nonzero count uses the effective (masked) weight. A parameter shared by several modules (a
    tied embedding and output layer) is counted once."""
    total = nonzero = 0
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            base = name[: -len("_orig")]
            eff = p * getattr(module, f"{base}_mask") if name.endswith("_orig") and hasattr(module, f"{base}_mask") else p
            nonzero += int(torch.count_nonzero(eff.detach()))
    return total, nonzero


def count_macs(model: nn.Module, input_shape: Sequence[int] | None = None, *,
               example_inputs: Inputs | None = None) -> int:
    """Multiply-accumulates of conv and linear layers for one input, by NNI's rule.

    ``example_inputs`` (any structure the model takes) is used as given and the count divided by
    its batch size; else zeros of ``input_shape`` (default ``model.meta.input_shape``)."""
    x = example_inputs_for(model, example_inputs, input_shape=input_shape)
    total = 0

    def conv_hook(m: nn.Module, args, out) -> None:
        nonlocal total
        k = 1
        for s in m.kernel_size:
            k *= s
        total += out.numel() * k * (m.in_channels // m.groups)

    def linear_hook(m: nn.Linear, args, out) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    def conv1d_hook(m: nn.Module, args, out) -> None:  # Hugging Face Conv1D: weight (in, out)
        nonlocal total
        total += out.numel() * m.weight.shape[0]

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif is_hf_conv1d(m):
            hooks.append(m.register_forward_hook(conv1d_hook))
    try:
        _forward_once(model, x)
    finally:
        for h in hooks:
            h.remove()
    return int(total) // batch_size(x)


def count_flops(model: nn.Module, input_shape: Sequence[int] | None = None, *,
                example_inputs: Inputs | None = None) -> int:
    """Total FLOPs of one forward pass per input, as ``torch.utils.flop_counter`` counts them
    (inputs as in :func:`count_macs`)."""
    x = example_inputs_for(model, example_inputs, input_shape=input_shape)
    counter = FlopCounterMode(display=False)
    with counter:
        _forward_once(model, x)
    return int(counter.get_total_flops()) // batch_size(x)


def _forward_once(model: nn.Module, x: Inputs) -> None:
    with inspecting(model):
        call_model(model, x)


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of the model's ``state_dict`` as ``torch.save`` writes it (its size on disk)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    batch_sizes: Sequence[int] = (1, 64),
    *,
    example_inputs: Inputs | None = None,
    warmup: int = 5,
    repeats: int = 30,
    channels_last: bool = False,
) -> dict[int, dict[str, float]]:
    """CPU inference latency per batch size: median, 10th/90th percentile and IQR in ms, after
    ``warmup`` untimed runs. Eval mode, ``torch.inference_mode``; ``channels_last`` feeds 4-D
    inputs in that layout (for models prepared with ``optimize_for_inference``).

    With ``example_inputs`` (a tensor, tuple or dict of keyword inputs) the model is timed on
    exactly those, keyed by their batch size, and ``batch_sizes`` is not used; otherwise on
    random inputs of ``input_shape`` (default ``model.meta.input_shape``) per batch size."""
    if repeats < 3:
        raise ValueError(f"repeats must be >= 3 for a spread, got {repeats}")
    was_training = model.training
    model.eval()
    out: dict[int, dict[str, float]] = {}
    try:
        with torch.inference_mode():
            if example_inputs is not None:
                given = example_inputs_for(model, example_inputs)
                runs = [(batch_size(given), given)]
            else:
                shape = input_shape if input_shape is not None else getattr(getattr(model, "meta", None),
                                                                            "input_shape", None)
                example_inputs_for(model, None, input_shape=shape)  # a clear error without a shape
                runs = [(b, torch.randn(b, *shape)) for b in batch_sizes]
            for b, x in runs:
                if channels_last and isinstance(x, torch.Tensor) and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                for _ in range(warmup):
                    call_model(model, x)
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    call_model(model, x)
                    times.append((time.perf_counter() - t0) * 1e3)
                q = statistics.quantiles(times, n=20)  # 5% steps
                quart = statistics.quantiles(times, n=4)
                out[b] = {"median_ms": statistics.median(times), "p10_ms": q[1], "p90_ms": q[17],
                          "iqr_ms": quart[2] - quart[0]}
    finally:
        model.train(was_training)
    return out


@dataclass(frozen=True)
class CostResult:
    """Size and cost of one model for one input shape."""

    params: int
    nonzero_params: int
    macs: int
    flops: int
    size_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def model_cost(model: nn.Module, input_shape: Sequence[int] | None = None, *,
               example_inputs: Inputs | None = None) -> CostResult:
    """Parameters (total, nonzero), MACs (NNI rule), FLOPs (torch flop counter), bytes; inputs
    as in :func:`count_macs`."""
    total, nonzero = count_parameters(model)
    kw = dict(example_inputs=example_inputs)
    return CostResult(total, nonzero, count_macs(model, input_shape, **kw),
                     count_flops(model, input_shape, **kw), model_size_bytes(model))


# Old names, kept working for one minor release (see CHANGELOG.md).
from ._deprecation import deprecated_module_names as _deprecated  # noqa: E402

__getattr__ = _deprecated(__name__, {"ModelCost": ("topoprune.CostResult", lambda: CostResult)})
