"""LAMP scores (Lee, Park, Mo, Ahn and Shin, ICLR 2021): layer-adaptive magnitude pruning.

In each layer the squared weights of the remaining (unmasked) entries are sorted ascending,
``u_1 <= u_2 <= ... <= u_n``; the weight at rank ``i`` scores ``u_i / sum_{j >= i} u_j``,
computed in float64. Equal squared weights are ranked by flat index (the lower index gets the
lower rank, hence the lower score), so every score is defined without ties inside a layer. The
largest weight (rank ``n``) scores exactly 1; a tail of zeros (``0 / 0``) scores 0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lamp_scores", "lamp_top"]


def lamp_scores(weight: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """LAMP score of every entry of ``weight`` (float64, same shape); masked entries (``mask``
    0) score 0 and take no part in the others' sums."""
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    alive = np.ones(w.size, bool) if mask is None else np.asarray(mask).reshape(-1) > 0
    idx = np.flatnonzero(alive)
    out = np.zeros(w.size, np.float64)
    if idx.size:
        u = w[idx] ** 2
        order = np.argsort(u, kind="stable")  # ascending; equal values keep the flat order
        ranked = u[order]
        tail = np.cumsum(ranked[::-1])[::-1]  # tail[i] = sum_{j >= i} u_j
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(tail > 0, ranked / np.where(tail > 0, tail, 1.0), 0.0)
        s[-1] = 1.0  # the largest weight: u_n / u_n (and the layer's survivor even if all are zero)
        out[idx[order]] = s
    return out.reshape(np.shape(weight))


def lamp_top(weight: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the layer's top-ranked remaining weight (the one scoring 1)."""
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    alive = np.ones(w.size, bool) if mask is None else np.asarray(mask).reshape(-1) > 0
    out = np.zeros(w.size, bool)
    idx = np.flatnonzero(alive)
    if idx.size:
        order = np.argsort(w[idx] ** 2, kind="stable")
        out[idx[order[-1]]] = True
    return out.reshape(np.shape(weight))
