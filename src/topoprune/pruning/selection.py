"""Which weights stay: scores + amount + constraints -> keep masks.

Spanning-tree preservation (T-IMP, Balwani & Krzyston) is a constraint here, not a score: the
layer graph's maximum spanning forest is kept first, then the budget is filled by score.
Tie-breaking is deterministic (lower flat index first among equal scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..topology import maximum_spanning_tree

__all__ = ["resolve_amount", "tree_mask", "keep_top", "select_global", "remove_lowest"]


def resolve_amount(amount: float | int, remaining: int, what: str = "layer") -> int:
    """How many of ``remaining`` entries to prune, with torch's meaning of ``amount``: a float is
    a fraction in [0, 1), an int a count in [0, remaining]."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float, np.integer, np.floating)):
        raise ValueError(f"amount must be a float fraction in [0, 1) or an int count, got {amount!r}")
    if isinstance(amount, (float, np.floating)):
        if not 0.0 <= amount < 1.0:
            raise ValueError(f"amount must be in [0, 1) as a fraction, got {amount}")
        return int(round(amount * remaining))
    if amount < 0:
        raise ValueError(f"amount: bad value {amount}; allowed: a count of weights to prune, from 0 to the "
                         f"{remaining} remaining in the {what}, or a fraction in [0, 1)")
    if amount > remaining:
        raise ValueError(f"amount={amount} weights is more than the {remaining} remaining in the {what}; "
                         f"allowed: a count in [0, {remaining}], or a fraction in [0, 1)")
    return int(amount)


def tree_mask(weight: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Boolean mask of the weights that carry the current layer graph's maximum spanning forest.

    Dense ``(n_out, n_in)`` weights: the forest's edges. Conv weights ``(C_out, C_in/g, k, k)``:
    the channel graph (kernel-slice 2-norms) is used, and every weight of a tree slice is kept,
    so the channel graph's tree edges keep their exact values while other edges can only shrink,
    which leaves its 0-dimensional persistence unchanged.
    """
    w = np.abs(weight) * mask
    if w.ndim == 2:
        rows, cols, _ = maximum_spanning_tree(w)
        out = np.zeros(w.shape, bool)
        out[rows, cols] = True
        return out
    slices = np.sqrt((w.reshape(w.shape[0], w.shape[1], -1) ** 2).sum(axis=2))
    rows, cols, _ = maximum_spanning_tree(slices)
    out = np.zeros(w.shape, bool)
    out[rows, cols] = True
    return out & (mask > 0)


def keep_top(scores: np.ndarray, eligible: np.ndarray, n_keep: int) -> np.ndarray:
    """Boolean mask keeping the ``n_keep`` highest scores among ``eligible`` entries."""
    flat_scores = scores.reshape(-1)
    idx = np.flatnonzero(eligible.reshape(-1))
    out = np.zeros(flat_scores.size, bool)
    if n_keep > 0 and idx.size:
        order = np.argsort(-flat_scores[idx], kind="stable")[:n_keep]
        out[idx[order]] = True
    return out.reshape(scores.shape)


@dataclass
class Selection:
    """A layer's new keep mask and what the tree constraint did."""

    keep: np.ndarray
    tree_size: int | None = None
    tree_kept: int | None = None
    warning: str | None = None


def select_layer(scores: np.ndarray, mask: np.ndarray, n_prune: int, weight: np.ndarray,
                 preserve: str | None, name: str) -> Selection:
    """Keep ``remaining - n_prune`` entries of one layer: its tree first when
    ``preserve == "mst"``, then the highest scores."""
    alive = mask > 0
    n_keep = int(alive.sum()) - n_prune
    if preserve != "mst":
        return Selection(keep_top(scores, alive, n_keep))
    tree = tree_mask(weight, mask)
    t = int(tree.sum())
    if t > n_keep:
        # The budget cannot hold the tree: keep its strongest edges, and say so.
        keep = keep_top(np.abs(weight), tree, n_keep)
        return Selection(keep, t, n_keep, f"{name}: keep budget {n_keep} is smaller than the "
                         f"spanning tree ({t} weights); kept the tree's {n_keep} strongest, so the "
                         "layer's 0-dimensional topology is not preserved")
    keep = tree | keep_top(scores, alive & ~tree, n_keep - t)
    return Selection(keep, t, t)


def select_global(scores: Sequence[np.ndarray], masks: Sequence[np.ndarray], n_prune: int,
                  protected: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """Keep masks for several layers ranked together: the ``n_prune`` lowest-scored unprotected
    remaining weights across all layers go. Protected weights are kept unless the budget is
    smaller than them, in which case the strongest protected weights are kept."""
    sizes = [s.size for s in scores]
    flat_s = np.concatenate([s.reshape(-1) for s in scores])
    alive = np.concatenate([m.reshape(-1) > 0 for m in masks])
    prot = (np.concatenate([p.reshape(-1) for p in protected]) & alive
            if protected is not None else np.zeros_like(alive))
    n_keep = int(alive.sum()) - n_prune
    if prot.sum() >= n_keep:
        keep = keep_top(flat_s, prot, n_keep)
    else:
        keep = prot | keep_top(flat_s, alive & ~prot, n_keep - int(prot.sum()))
    out, start = [], 0
    for s, n in zip(scores, sizes):
        out.append(keep[start : start + n].reshape(s.shape))
        start += n
    return out


def remove_lowest(scores: Sequence[np.ndarray], masks: Sequence[np.ndarray], n_prune: int,
                  protected: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """Keep masks for several layers ranked together: the ``n_prune`` remaining, unprotected
    weights with the lowest scores go, equal scores going in global flat order (the layers in
    the order given, then each layer's flat index: the lower position goes first). Raises
    ``ValueError`` when fewer than ``n_prune`` weights may go."""
    sizes = [s.size for s in scores]
    flat_s = np.concatenate([np.asarray(s, np.float64).reshape(-1) for s in scores])
    alive = np.concatenate([m.reshape(-1) > 0 for m in masks])
    prot = (np.concatenate([p.reshape(-1) for p in protected]) if protected is not None
            else np.zeros_like(alive))
    idx = np.flatnonzero(alive & ~prot)
    if n_prune > idx.size:
        raise ValueError(f"the budget removes {n_prune} weights but only {idx.size} may go (each layer "
                         "keeps at least one); allowed: a lower sparsity")
    order = np.lexsort((idx, flat_s[idx]))  # by score, then by global position
    keep = alive.copy()
    keep[idx[order[:max(n_prune, 0)]]] = False
    out, start = [], 0
    for s, n in zip(scores, sizes):
        out.append(keep[start : start + n].reshape(np.shape(s)))
        start += n
    return out


def filters_to_prune(scores, sparsity: float) -> list[int]:
    """NNI one-shot rule: ``num_prune = int(C_out * sparsity)`` lowest scores go (ties: lower
    index first); a layer with ``C_out < 2`` or ``num_prune < 1`` is left alone, and at least one
    unit always stays."""
    scores = np.asarray(scores, dtype=np.float64)
    c_out = scores.shape[0]
    num_prune = min(int(c_out * sparsity), c_out - 1)
    if c_out < 2 or num_prune < 1:
        return []
    order = np.argsort(scores, kind="stable")
    return sorted(int(i) for i in order[:num_prune])
