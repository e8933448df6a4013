"""Tensor transforms applied once, in memory: scaling to a model's input shape, channel
replication, normalization, validation splits; and batch-level CIFAR augmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import TopopruneError

__all__ = ["fit_to_shape", "channel_stats", "normalize", "split_indices", "random_crop_flip"]


def fit_to_shape(x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Bring ``(N, C, H, W)`` images to ``(C', H', W')``.

    - Channels: equal, or 1 -> C' by replication (grey to RGB); anything else is an error.
    - Size: a larger target with an even margin is zero-padded centrally (28 -> 32 for
      Fashion-MNIST in a CIFAR net keeps every pixel as it is); otherwise bilinear resizing.
    """
    c, h, w = shape
    n, c0, h0, w0 = x.shape
    if c0 != c:
        if c0 != 1:
            raise TopopruneError(
                f"cannot turn {c0}-channel images into {c} channels; only 1 -> C replication is "
                f"supported (data shape {(c0, h0, w0)}, model input shape {shape})"
            )
        x = x.expand(n, c, h0, w0)
    if (h0, w0) == (h, w):
        return x.contiguous()
    dh, dw = h - h0, w - w0
    if dh >= 0 and dw >= 0 and dh % 2 == 0 and dw % 2 == 0:
        return F.pad(x, (dw // 2, dw // 2, dh // 2, dh // 2))
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``(N, C, H, W)`` images."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    return tuple(flat.mean(1).tolist()), tuple(flat.std(1).clamp_min(1e-8).tolist())


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def split_indices(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(n)`` into (kept, held-out) with ``round(n * fraction)``
    held out."""
    if not 0 <= fraction < 1:
        raise TopopruneError(f"val_fraction must be in [0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    k = int(round(n * fraction))
    return perm[k:].sort().values, perm[:k].sort().values


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation on a batch: zero-pad by ``padding``, crop back at a random
    offset per image, and flip half the images horizontally. Vectorised: no per-sample Python."""
    n, c, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :]
    out = xp[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)
