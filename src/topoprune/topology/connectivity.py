"""Layer collapse and input-to-output connectivity of a masked network (Tanaka et al. 2020),
the fraction of each layer's maximum spanning tree a mask keeps, and where a sparsity stands
against the critical compression ratio (Balwani & Krzyston 2022).

Masks in, numbers out; no torch. A network is a **feed-forward chain** of layers, each given by
its mask ``(n_out, n_in)`` (True/nonzero = the weight is kept):

- A conv layer's mask ``(C_out, C_in / groups, *kernel)`` is read at channel level: the edge
  ``o <- i`` exists iff any kernel weight of the slice ``[o, i]`` is kept (:func:`channel_mask`;
  pass grouped convs through it with their ``groups`` first). Its units are channels.
- Between two layers, the next layer's ``n_in`` is the previous ``n_out`` (units feed units),
  or a multiple of it: a channel-major flatten (``nn.Flatten`` of ``(C, H, W)``), so input
  column ``j`` belongs to channel ``j // per`` with ``per = n_in // n_out_prev``.
- Element-wise and per-channel modules between layers (activations, BatchNorm, pooling,
  dropout) neither add nor remove edges and are not part of the chain.

Reachability is exact for that graph: one sparse boolean product per layer forward (which units
some input reaches) and one backward (which units reach some output). At channel level a conv
path is a path of the channel graph; whether its kept kernel taps also line up spatially (the
unrolled Toeplitz graph) is not checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import TopopruneError
from .critical import CriticalResult, critical_compression_of_network
from .graphs import ConvLayer, Layer, channel_matrix
from .spanning import maximum_spanning_tree

__all__ = ["Connectivity", "channel_mask", "connectivity", "tree_kept", "against_critical"]


def channel_mask(mask: np.ndarray, groups: int = 1) -> np.ndarray:
    """A conv mask ``(C_out, C_in / groups, *kernel)`` as its channel graph's ``(C_out, C_in)``
    boolean mask: an edge exists iff any kernel weight of its slice is kept. Grouped convs have
    edges only inside each group."""
    a = np.asarray(mask) != 0
    if a.ndim < 3:
        raise TopopruneError(f"a conv mask is (C_out, C_in/groups, *kernel), got shape {a.shape}")
    c_out, c_in_g = a.shape[:2]
    slices = a.reshape(c_out, c_in_g, -1).any(axis=2)
    if groups == 1:
        return slices
    if groups < 1 or c_out % groups:
        raise TopopruneError(f"groups must be a positive divisor of C_out={c_out}, got {groups}")
    out = np.zeros((c_out, c_in_g * groups), bool)
    per = c_out // groups
    for g in range(groups):
        out[g * per:(g + 1) * per, g * c_in_g:(g + 1) * c_in_g] = slices[g * per:(g + 1) * per]
    return out


def _graph_mask(mask: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(mask)
    if a.ndim < 2 or a.size == 0:
        raise TopopruneError(f"layer {name!r}: a mask must be a non-empty 2-D (n_out, n_in) array or a conv "
                         f"mask (C_out, C_in, *kernel), got shape {a.shape}")
    return channel_mask(a) if a.ndim > 2 else a != 0


def _names(names: Sequence[str] | None, n: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"layer{k}" for k in range(n))
    names = tuple(str(x) for x in names)
    if len(names) != n:
        raise TopopruneError(f"got {len(names)} names for {n} layers; give one name per layer")
    return names


@dataclass(frozen=True)
class Connectivity:
    """What survives of a masked chain.

    - ``weights_left`` / ``weights_total``: kept and all entries of each mask as given (weights
      for a conv mask, not channel edges); a layer with none left has **collapsed**.
    - ``units_on_path``: each layer's output units (neurons, channels) that lie on some
      input-to-output path, of ``units_total``.
    - ``inputs_connected``: first-layer inputs from which some path reaches an output;
      ``outputs_connected``: last-layer outputs that some input reaches. Both are 0 exactly when
      ``path`` is False.
    """

    names: tuple[str, ...]
    weights_left: tuple[int, ...]
    weights_total: tuple[int, ...]
    units_on_path: tuple[int, ...]
    units_total: tuple[int, ...]
    path: bool
    inputs_connected: int
    inputs_total: int
    outputs_connected: int
    outputs_total: int

    @property
    def collapsed(self) -> list[str]:
        """Layers that lost every weight, in chain order."""
        return [n for n, k in zip(self.names, self.weights_left) if k == 0]

    @property
    def any_collapsed(self) -> bool:
        return bool(self.collapsed)

    def to_dict(self) -> dict:
        return {
            "collapsed_layers": self.collapsed,
            "any_collapsed": self.any_collapsed,
            "path": self.path,
            "inputs_connected": self.inputs_connected,
            "inputs_total": self.inputs_total,
            "outputs_connected": self.outputs_connected,
            "outputs_total": self.outputs_total,
            "weights_left": dict(zip(self.names, self.weights_left)),
            "units_on_path": dict(zip(self.names, self.units_on_path)),
        }


def connectivity(masks: Sequence[np.ndarray], *, names: Sequence[str] | None = None) -> Connectivity:
    """Collapse and input-to-output connectivity of a feed-forward chain of masked layers.

    Args:
        masks: one mask per layer in forward order, ``(n_out, n_in)`` (bool or 0/1), or a conv
            mask ``(C_out, C_in, *kernel)`` read at channel level (grouped convs: reduce with
            :func:`channel_mask` first). See the module docstring for how layers link.
        names: a name per layer (default ``layer0, layer1, ...``).

    Raises:
        TopopruneError (a ValueError): on an empty chain, a mask that is not 2-D (or conv-shaped), or a layer whose
            ``n_in`` is neither the previous ``n_out`` nor a multiple of it.
    """
    if len(masks) == 0:
        raise TopopruneError("no layers: give at least one mask")
    names = _names(names, len(masks))
    graphs = [_graph_mask(m, n) for m, n in zip(masks, names)]
    per = [1]
    for k in range(1, len(graphs)):
        prev, n_in = graphs[k - 1].shape[0], graphs[k].shape[1]
        if n_in % prev:
            raise TopopruneError(
                f"layer {names[k]!r} has {n_in} inputs but {names[k - 1]!r} has {prev} outputs: in a "
                "chain a layer reads the previous layer's units, or a channel-major flatten of them "
                "(a multiple)")
        per.append(n_in // prev)
    mats = []
    for g in graphs:
        rows, cols = np.nonzero(g)
        mats.append(sp.csr_array((np.ones(rows.size, np.int64), (rows, cols)), shape=g.shape))

    reached = []  # per layer: output units some input reaches
    fwd = np.ones(graphs[0].shape[1], np.int64)
    for k, m in enumerate(mats):
        if k:
            fwd = np.repeat(reached[-1], per[k]).astype(np.int64)
        reached.append((m @ fwd) > 0)
    reaching = [np.zeros(0, bool)] * len(mats)  # per layer: output units that reach an output
    back = np.ones(graphs[-1].shape[0], bool)
    for k in range(len(mats) - 1, -1, -1):
        reaching[k] = back
        back_in = (mats[k].T @ back.astype(np.int64)) > 0
        back = back_in.reshape(-1, per[k]).any(axis=1) if k else back_in
    inputs_connected = int(back.sum())
    outputs_connected = int(reached[-1].sum())
    return Connectivity(
        names=names,
        weights_left=tuple(int(np.count_nonzero(m)) for m in masks),
        weights_total=tuple(int(np.size(m)) for m in masks),
        units_on_path=tuple(int((a & b).sum()) for a, b in zip(reached, reaching)),
        units_total=tuple(g.shape[0] for g in graphs),
        path=outputs_connected > 0,
        inputs_connected=inputs_connected,
        inputs_total=graphs[0].shape[1],
        outputs_connected=outputs_connected,
        outputs_total=graphs[-1].shape[0],
    )


def _edge_values(weight: np.ndarray, k: int) -> np.ndarray:
    a = np.asarray(weight)
    if a.ndim < 2 or a.size == 0:
        raise TopopruneError(f"weights {k}: a non-empty 2-D (n_out, n_in) array or a conv weight "
                         f"(C_out, C_in, *kernel) is needed, got shape {a.shape}")
    if a.ndim == 2:
        return np.abs(a)
    return channel_matrix(ConvLayer(f"layer{k}", a))


def tree_kept(weights: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> list[float]:
    """Per layer, the fraction of the maximum spanning tree of ``|weights|`` whose edges
    ``masks`` keeps.

    ``weights`` are the layer's weights before pruning (the tree is the dense layer's), as
    ``(n_out, n_in)``, or conv weights ``(C_out, C_in, *kernel)``, whose graph is the channel
    graph of kernel-slice 2-norms (as ``preserve="mst"`` uses); a channel edge is kept if any
    weight of its slice is (grouped convs: pass the channel graph and :func:`channel_mask`).
    ``masks`` have the weights' shapes. A layer whose weights are all zero has no tree: NaN.
    """
    if len(weights) != len(masks):
        raise TopopruneError(f"give as many masks as weights, got {len(masks)} masks for {len(weights)} "
                         "weights")
    out = []
    for k, (w, m) in enumerate(zip(weights, masks)):
        if np.shape(w) != np.shape(m):
            raise TopopruneError(f"layer {k}: mask shape {np.shape(m)} differs from the weight shape {np.shape(w)}")
        graph = _edge_values(w, k)
        keep = _graph_mask(m, f"layer{k}")
        rows, cols, _ = maximum_spanning_tree(graph)
        out.append(float(keep[rows, cols].mean()) if rows.size else math.nan)
    return out


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _entry(sparsity: float, critical: float) -> dict:
    """Compression ``1 / (1 - s)`` against a critical ratio; None for infinite or undefined."""
    compression = math.inf if sparsity >= 1.0 else 1.0 / (1.0 - sparsity)
    crit = _finite(critical)
    if crit is None:
        beyond = over = None
    else:
        over = _finite(compression / crit)
        beyond = bool(compression > crit)
    return {"sparsity": float(sparsity), "compression": _finite(compression), "critical": crit,
            "over_critical": over, "beyond": beyond}


def _check_sparsity(s, what: str) -> float:
    if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)) or not 0 <= s <= 1:
        raise TopopruneError(f"sparsity of {what} must be a number in [0, 1], got {s!r}")
    return float(s)


def against_critical(
    sparsity: float | Mapping[str, float],
    critical: CriticalResult | Sequence[Layer],
    *,
    overall: float | None = None,
    convention: str = "paper",
) -> dict:
    """Where a sparsity stands against each layer's and the model's critical compression ratio.

    Compression is ``1 / (1 - sparsity)``. Each entry holds ``sparsity``, ``compression``, the
    ``critical`` ratio, ``over_critical = compression / critical`` and ``beyond`` (compression
    strictly above the critical ratio: the budget cannot hold the layer's spanning tree). Values
    that are infinite or undefined (everything pruned; a layer without a tree) are None, so the
    result is strict JSON.

    Args:
        sparsity: one sparsity for every layer and the model, or ``{layer: sparsity}`` (layers
            left out are not reported).
        critical: a :class:`~topoprune.topology.CriticalResult`, or the layers to compute it
            from (with ``convention``).
        overall: the model's sparsity. Default: ``sparsity`` when it is one number; with a
            mapping and layers, the sparsity of the mapped layers' weights together (the mean
            weighted by weight count); with a mapping
            and a report it must be given.

    Returns:
        ``{"convention", "model": entry, "layers": {name: entry}}``; ``model.critical`` is the
        report's ``final`` ratio (total edges over total tree sizes).
    """
    layers = None
    if isinstance(critical, CriticalResult):
        report = critical
    else:
        layers = list(critical)
        report = critical_compression_of_network(layers, convention)
    known = [x.name for x in report.layers]
    if isinstance(sparsity, Mapping):
        unknown = [n for n in sparsity if n not in known]
        if unknown:
            raise TopopruneError(f"no layer named {unknown[0]!r} in the critical report; layers: {known}")
        per = {n: _check_sparsity(s, f"layer {n!r}") for n, s in sparsity.items()}
        if overall is None:
            if layers is None:
                raise TopopruneError("with per-layer sparsities and a CriticalResult, pass overall= (the model's "
                                 "sparsity): the report does not know each layer's weight count")
            sizes = {x.name: x.weight.size for x in layers}
            total = sum(sizes[n] for n in per)
            overall = sum(per[n] * sizes[n] for n in per) / total
    else:
        s = _check_sparsity(sparsity, "the model")
        per = {n: s for n in known}
        overall = s if overall is None else overall
    overall = _check_sparsity(overall, "the model (overall)")
    return {
        "convention": report.convention,
        "model": _entry(overall, report.final),
        "layers": {x.name: _entry(per[x.name], x.ratio) for x in report.layers if x.name in per},
    }
