"""PHEW (Patil and Dovrolis, ICML 2021): data-free pruning that keeps the weights on
input-to-output paths drawn by random walks biased by ``|w|``.

The network is read as a chain of layers (the prunable layers in order, each feeding the next:
MLPs and plain CNNs; other graphs are refused). Each layer is a bipartite graph between its input
and output units: a Linear layer's edge ``(o, i)`` is the weight ``w[o, i]``; a conv layer works
on its channel graph, edge ``(o, i)`` standing for the kernel slice ``w[o, i]`` with weight
``sum |w[o, i]|``; a Linear layer after a flatten whose input is ``C`` channels of ``s`` features
takes channel ``c`` as one input unit, the edge ``(o, c)`` standing for the columns
``w[o, c*s:(c+1)*s]``.

Walks alternate direction: even walks start at a uniformly drawn input unit of the first layer
and step forward, odd walks start at a uniformly drawn output unit of the last layer and step
backward; each step picks an edge of the current unit with probability proportional to its
weight (masked weights count as 0). A walk reaching a unit without remaining edges is dropped.
Each completed walk is added in walk order (first layer to last, for both directions) in two
passes: first each of its edges without a kept weight yet gets its slice's largest remaining
``|w|`` (so a walk becomes a kept path even when whole kernel slices would not fit the budget),
then each edge adds the rest of its slice. When an edge would overshoot the budget, only the
largest ``|w|`` of its new weights are kept (lower flat index first on equal magnitudes), so
exactly the budget is kept. Should walks stop finding paths (after
``50 * budget + 1000`` tries), the rest of the budget goes to the largest remaining ``|w|``, with a
warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import TopopruneError

__all__ = ["phew_keeps"]


def _edges(weights: Sequence[np.ndarray], names: Sequence[str]) -> tuple[list[np.ndarray], list[int]]:
    """Per layer: the unit graph ``(out, in_units)`` of summed ``|w|``, and the input block size
    (1, or ``s`` features per channel after a flatten)."""
    graphs, blocks = [], []
    for li, w in enumerate(weights):
        a = np.abs(w.astype(np.float64))
        inputs = a.shape[1]
        block = 1
        if li > 0:
            prev = weights[li - 1].shape[0]
            if inputs != prev:
                if a.ndim == 2 and inputs % prev == 0:
                    block = inputs // prev
                else:
                    raise TopopruneError(
                        f"method 'phew' walks a chain of layers: {names[li]!r} takes {inputs} inputs but "
                        f"{names[li - 1]!r} gives {prev}; allowed: models whose prunable layers feed each other "
                        "in order (MLPs, plain CNNs)")
        g = a.reshape(a.shape[0], a.shape[1], -1).sum(axis=2)
        if block > 1:
            g = g.reshape(g.shape[0], -1, block).sum(axis=2)
        graphs.append(g)
        blocks.append(block)
    return graphs, blocks


def _slice(shape: tuple, o: int, i: int, block: int) -> np.ndarray:
    """Flat indices (in a weight of ``shape``) of the weights edge ``(o, i)`` stands for."""
    inputs, inner = shape[1], int(np.prod(shape[2:], dtype=np.int64))
    if block > 1:  # a 2-D weight: columns i*block .. (i+1)*block - 1 of row o
        return o * inputs + np.arange(i * block, (i + 1) * block)
    return (o * inputs + i) * inner + np.arange(inner)


def phew_keeps(weights: Sequence[np.ndarray], masks: Sequence[np.ndarray], keep: int, *, seed: int = 0,
               names: Sequence[str] | None = None) -> list[np.ndarray]:
    """Keep masks (``(out, in, ...)`` layout) holding exactly ``keep`` of the remaining weights."""
    names = list(names) if names is not None else [str(i) for i in range(len(weights))]
    effective = [np.asarray(w, np.float64) * (np.asarray(m) > 0) for w, m in zip(weights, masks)]
    alive = [np.asarray(m).reshape(-1) > 0 for m in masks]
    remaining = sum(int(a.sum()) for a in alive)
    if not 0 <= keep <= remaining:
        raise TopopruneError(f"keep: bad value {keep}; allowed: 0 to the {remaining} remaining weights")
    graphs, blocks = _edges(effective, names)
    rng = np.random.default_rng(seed)
    kept = [np.zeros(a.size, bool) for a in alive]
    flat_abs = [np.abs(w).reshape(-1) for w in effective]
    count = 0
    tries, limit = 0, 50 * keep + 1000
    forward = [np.cumsum(g, axis=0) for g in graphs]  # per input unit: cumulative over outputs
    backward = [np.cumsum(g, axis=1) for g in graphs]  # per output unit: cumulative over inputs

    def step(cum: np.ndarray) -> int | None:
        total = cum[-1]
        if total <= 0:
            return None
        return int(np.searchsorted(cum, rng.random() * total, side="right").clip(max=cum.size - 1))

    while count < keep and tries < limit:
        tries += 1
        path: list[tuple[int, int]] = []  # (o, i) per layer, first layer first
        if tries % 2 == 1:  # forward from an input unit
            u = int(rng.integers(graphs[0].shape[1]))
            for f in forward:
                o = step(f[:, u])
                if o is None:
                    break
                path.append((o, u))
                u = o
        else:  # backward from an output unit
            o = int(rng.integers(graphs[-1].shape[0]))
            for b in reversed(backward):
                i = step(b[o, :])
                if i is None:
                    break
                path.append((o, i))
                o = i
            path.reverse()
        if len(path) < len(graphs):
            continue
        slices = [_slice(effective[li].shape, o, i, blocks[li]) for li, (o, i) in enumerate(path)]
        for first in (True, False):  # the strongest weight of each new edge, then the rest of the slices
            for li, idx in enumerate(slices):
                if count == keep:
                    break
                new = idx[alive[li][idx] & ~kept[li][idx]]
                if first and (kept[li][idx].any() or not new.size):
                    continue
                limit_now = 1 if first else keep - count
                if new.size > limit_now:
                    new = new[np.lexsort((new, -flat_abs[li][new]))[:limit_now]]
                kept[li][new] = True
                count += new.size
    if count < keep:
        warnings.warn(f"phew: the walks found no new path after {tries} tries; the last {keep - count} of "
                      f"{keep} kept weights are the largest remaining |w|", stacklevel=3)
        flat = np.concatenate(flat_abs)
        free = np.flatnonzero(np.concatenate(alive) & ~np.concatenate(kept))
        fill = free[np.lexsort((free, -flat[free]))[: keep - count]]
        starts = np.cumsum([0] + [a.size for a in alive])
        for li in range(len(alive)):
            sel = fill[(fill >= starts[li]) & (fill < starts[li + 1])] - starts[li]
            kept[li][sel] = True
    return [k.reshape(np.shape(w)) for k, w in zip(kept, weights)]
