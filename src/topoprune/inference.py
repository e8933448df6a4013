"""Preparing a model for CPU inference, the same way for a dense and a pruned model.

Folding BatchNorm into the preceding convolution (eval mode only) removes a memory-bound pass
per layer, and the channels-last layout is what oneDNN's CPU convolutions prefer. Both keep the
outputs (up to float rounding); benchmarks apply them to the dense and the pruned model alike.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["optimize_for_inference"]


def optimize_for_inference(model: nn.Module, fold_bn: bool = True, channels_last: bool = True) -> nn.Module:
    """A copy of ``model`` in eval mode with conv+BatchNorm folded (``torch.fx``) and weights in
    channels-last layout. If the model cannot be traced, folding is skipped."""
    out = copy.deepcopy(model).eval()
    if fold_bn:
        from torch.fx.experimental.optimization import fuse

        try:
            out = fuse(out)
        except Exception:  # noqa: BLE001 - untraceable models simply stay unfolded
            pass
    if channels_last:
        out = out.to(memory_format=torch.channels_last)
    return out
