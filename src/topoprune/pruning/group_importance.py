"""Unit scores from Torch-Pruning's public importance classes, over each layer's coupled group.

A layer's group (from the dependency graph of :class:`~topoprune.pruning.surgery.Surgeon`) holds
every slice its output units touch: its own weight rows, the next layers' input columns, the
BatchNorm channels, residual partners. The importance object reduces the scores of all of them
to one score per output unit of the layer. Gradient-based importances (Taylor) read each
parameter's ``.grad``: :func:`accumulated_gradients` fills them from labelled batches first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .snip import _logits

__all__ = ["group_scores", "accumulated_gradients"]


def group_scores(surgeon, names: Sequence[str], importance) -> dict[str, np.ndarray]:
    """One float64 score per output unit of each layer ``names`` (a layer torch-pruning cannot
    reach as a module, or whose group holds no scored layer, is left out)."""
    out = {}
    for name in names:
        module = surgeon.modules[name]
        try:
            group = surgeon.group(name, range(int(module.weight.shape[0])))
        except ValueError:
            continue
        with torch.no_grad():
            scores = importance(group)
        if scores is not None:
            out[name] = scores.detach().double().cpu().numpy()
    return out


@contextlib.contextmanager
def accumulated_gradients(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], *,
                          seed: int = 0) -> Iterator[None]:
    """Inside the block every parameter's ``.grad`` is the sum over ``batches`` of the gradient of
    that batch's mean cross-entropy (Torch-Pruning's usage: one ``backward()`` per batch). The
    model runs in training mode with dropout seeded; on exit its gradients, ``requires_grad``
    flags, mode and buffers (BatchNorm statistics) are as before."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    was_training = model.training
    try:
        for p in params:
            p.requires_grad_(True)
            p.grad = None
        device = params[0].device if params else torch.device("cpu")
        model.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for x, y in batches:
                F.cross_entropy(_logits(model(x.to(device))), y.to(device)).backward()
        yield
    finally:
        for p, f, g in zip(params, flags, grads):
            p.grad = g
            p.requires_grad_(f)
        with torch.no_grad():
            for k, v in model.named_buffers():
                if k in buffers:
                    v.copy_(buffers[k])
        model.train(was_training)
