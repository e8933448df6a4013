"""An in-memory batch iterator: the whole split is one tensor, batches are index slices.

Faster than ``torch.utils.data.DataLoader`` for data that fits in memory (no per-sample
collation, no worker processes), and deterministic: the order of epoch ``e`` depends only on
``(seed, e)``, so a resumed run sees exactly the batches the killed one would have.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .transforms import random_crop_flip

__all__ = ["BatchLoader"]


class BatchLoader:
    """Iterate ``(x, y)`` batches of in-memory tensors.

    Args:
        x, y: the split's inputs ``(N, C, H, W)`` and labels ``(N,)``.
        batch_size: samples per batch.
        shuffle: a new seeded permutation each epoch (call :meth:`set_epoch`).
        seed: base seed of the permutation and the augmentation.
        augment: apply random crop + horizontal flip (CIFAR style) to each batch.
        rank, world: data-parallel training (DDP): process ``rank`` of ``world`` gets every
            ``world``-th sample of each batch (``batch[rank::world]``), so the ranks' shards of one
            step make up exactly the batch a single process would see, augmentation included
            (drawn for the whole batch from the same ``(seed, epoch)`` generator).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128, *,
                 shuffle: bool = False, seed: int = 0, augment: bool = False,
                 drop_last: bool = False, rank: int = 0, world: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, world), got rank {rank} of {world}")
        if batch_size < world:
            raise ValueError(f"batch_size {batch_size} cannot be split over {world} processes")
        self.rank, self.world = rank, world
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.augment = augment
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.x.shape[0]
        if self.drop_last:
            return n // self.batch_size
        full, tail = divmod(n, self.batch_size)
        return full + (1 if tail >= self.world else 0) if tail else full

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.x.shape[0]
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(n, generator=g) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            if self.drop_last and stop - start < self.batch_size:
                break
            if stop - start < self.world:  # a tail too small to give every rank a sample
                break
            if order is None:
                xb, yb = self.x[start:stop], self.y[start:stop]
            else:
                idx = order[start:stop]
                xb, yb = self.x[idx], self.y[idx]
            if self.augment:
                xb = random_crop_flip(xb, g)
            if self.world > 1:
                xb, yb = xb[self.rank::self.world], yb[self.rank::self.world]
            yield xb, yb
