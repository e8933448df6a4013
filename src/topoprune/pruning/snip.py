"""SNIP scores (Lee, Ajanthan and Torr, ICLR 2019): connection sensitivity ``|g * w|``.

``g`` is the gradient of the cross-entropy loss with respect to each effective (masked) weight,
averaged over the given labelled batches, and ``w`` the weight. The gradients are taken on a copy
of the model in training mode (batch statistics, as SNIP scores a network about to be trained;
dropout seeded); :func:`~topoprune.pruning.prune_weights` scores a copy, so the model's masks and
BatchNorm statistics are left untouched.
It works the same at initialisation and on a trained network.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from ..errors import TopopruneError
from ..models.layers import out_in_weight

__all__ = ["snip_scores", "labelled_batches", "draw_labelled"]


def labelled_batches(labelled: object, batch_size: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(inputs, labels)`` (one batch, or split into batches of ``batch_size``; a smaller last
    batch is dropped unless it is the only one) or a list of such pairs, checked."""
    def pair(x: object) -> bool:
        return (isinstance(x, (tuple, list)) and len(x) == 2 and all(isinstance(t, torch.Tensor) for t in x)
                and x[0].shape[0] == x[1].shape[0] and x[0].shape[0] > 0)

    if pair(labelled):
        x, y = labelled
        if batch_size is None or batch_size >= x.shape[0]:
            return [(x, y)]
        n = x.shape[0] // batch_size
        return [(x[i * batch_size:(i + 1) * batch_size], y[i * batch_size:(i + 1) * batch_size]) for i in range(n)]
    if isinstance(labelled, (list, tuple)) and labelled and all(pair(b) for b in labelled):
        return [tuple(b) for b in labelled]
    raise TopopruneError(f"labelled_sample: bad value {type(labelled).__name__}; allowed: a pair (inputs, labels) "
                         "of tensors with the same first dimension, or a list of such pairs")


def draw_labelled(data: object, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training inputs of ``data`` (a :class:`~topoprune.data.DataSplits`; at most all of
    them) and their labels, drawn with ``seed``."""
    n = min(n, data.train_x.shape[0])
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(data.train_x.shape[0], generator=g)[:n]
    return data.train_x[idx], data.train_y[idx]


def _logits(out: object) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise TopopruneError(f"the model returns {type(out).__name__}; allowed: class logits (a tensor, or an "
                         "output with .logits) for the cross-entropy loss")


def snip_scores(model: nn.Module, names: Sequence[str], batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                *, seed: int = 0) -> dict[str, np.ndarray]:
    """``|g * w|`` of every weight of the layers ``names`` (float64, ``(out, in, ...)`` layout),
    ``g`` the loss gradient averaged over ``batches``. Works on ``model`` itself (its masks are
    made permanent, its gradients set): pass a copy (:func:`~topoprune.pruning.masks.copy_model`)."""
    work = model
    modules = dict(work.named_modules())
    for n in names:
        if hasattr(modules[n], "weight_mask"):
            prune.remove(modules[n], "weight")  # weight = orig * mask, a plain parameter
    for p in work.parameters():
        p.requires_grad_(True)
        p.grad = None
    device = next(work.parameters()).device
    work.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for x, y in batches:
            loss = F.cross_entropy(_logits(work(x.to(device))), y.to(device))
            (loss / len(batches)).backward()
    out = {}
    for n in names:
        m = modules[n]
        g = m.weight.grad if m.weight.grad is not None else torch.zeros_like(m.weight)
        out[n] = out_in_weight(m, (g.double() * m.weight.detach().double()).abs()).cpu().numpy()
    return out
