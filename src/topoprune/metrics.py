"""Size and cost of a model: parameters, MACs, FLOPs, bytes on disk, CPU latency.

Units are never mixed: **MACs** follow NNI's counting rule for conv and linear layers only
(``C_out H_out W_out k_h k_w C_in / groups`` per conv, ``in * out`` per linear, bias excluded);
**FLOPs** are what ``torch.utils.flop_counter`` counts for the whole forward pass (2 per
multiply-add, every op it knows). Both are per single input (batch 1).
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

__all__ = [
    "ModelCost",
    "count_parameters",
    "count_macs",
    "count_flops",
    "model_size_bytes",
    "measure_latency",
    "model_cost",
]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, nonzero)`` parameters. For weights masked with ``torch.nn.utils.prune`` the
    nonzero count uses the effective (masked) weight."""
    total = nonzero = 0
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            total += p.numel()
            base = name[: -len("_orig")]
            eff = p * getattr(module, f"{base}_mask") if name.endswith("_orig") and hasattr(module, f"{base}_mask") else p
            nonzero += int(torch.count_nonzero(eff.detach()))
    return total, nonzero


def _example(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    p = next(model.parameters(), None)
    return torch.zeros(1, *input_shape, dtype=p.dtype if p is not None else torch.float32,
                       device=p.device if p is not None else "cpu")


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of conv and linear layers for one input, by NNI's rule."""
    total = 0

    def conv_hook(m: nn.Module, args, out) -> None:
        nonlocal total
        k = 1
        for s in m.kernel_size:
            k *= s
        total += out[0].numel() * k * (m.in_channels // m.groups)

    def linear_hook(m: nn.Linear, args, out) -> None:
        nonlocal total
        total += out[0].numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    try:
        _forward_once(model, _example(model, input_shape))
    finally:
        for h in hooks:
            h.remove()
    return int(total)


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Total FLOPs of one forward pass at batch 1, as ``torch.utils.flop_counter`` counts them."""
    counter = FlopCounterMode(display=False)
    with counter:
        _forward_once(model, _example(model, input_shape))
    return int(counter.get_total_flops())


def _forward_once(model: nn.Module, x: torch.Tensor) -> None:
    with inspecting(model):
        model(x)


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of the model's ``state_dict`` as ``torch.save`` writes it (its size on disk)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 64),
    *,
    warmup: int = 5,
    repeats: int = 30,
    channels_last: bool = False,
) -> dict[int, dict[str, float]]:
    """CPU inference latency per batch size: median, 10th/90th percentile and IQR in ms, after
    ``warmup`` untimed runs. Eval mode, ``torch.inference_mode``; ``channels_last`` feeds 4-D
    inputs in that layout (for models prepared with ``optimize_for_inference``)."""
    if repeats < 3:
        raise ValueError(f"repeats must be >= 3 for a spread, got {repeats}")
    was_training = model.training
    model.eval()
    out: dict[int, dict[str, float]] = {}
    try:
        with torch.inference_mode():
            for b in batch_sizes:
                x = torch.randn(b, *input_shape)
                if channels_last and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                for _ in range(warmup):
                    model(x)
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    model(x)
                    times.append((time.perf_counter() - t0) * 1e3)
                q = statistics.quantiles(times, n=20)  # 5% steps
                quart = statistics.quantiles(times, n=4)
                out[b] = {"median_ms": statistics.median(times), "p10_ms": q[1], "p90_ms": q[17],
                          "iqr_ms": quart[2] - quart[0]}
    finally:
        model.train(was_training)
    return out


@dataclass(frozen=True)
class ModelCost:
    """Size and cost of one model for one input shape."""

    params: int
    nonzero_params: int
    macs: int
    flops: int
    size_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def model_cost(model: nn.Module, input_shape: Sequence[int]) -> ModelCost:
    """Parameters (total, nonzero), MACs (NNI rule), FLOPs (torch flop counter), bytes."""
    total, nonzero = count_parameters(model)
    return ModelCost(total, nonzero, count_macs(model, input_shape), count_flops(model, input_shape),
                     model_size_bytes(model))
