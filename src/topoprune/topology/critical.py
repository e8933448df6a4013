"""Topologically critical compression ratio and tree/magnitude overlap (Balwani & Krzyston 2022).

Keeping a layer's whole maximum spanning tree is the least a pruned layer can keep and still have
the same 0-dimensional persistence, so ``eta(G) = |E| / |MST(G)|`` is the largest compression that
can preserve it. These counts are structural (every weight of the architecture is an edge); a
model's ``final`` ratio is total edges over total tree sizes, not the mean of the ratios.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import TopopruneError
from .graphs import ConvToeplitzGraph, DenseLayer, Layer
from .spanning import as_matrix, maximum_spanning_tree

__all__ = [
    "CONVENTIONS",
    "LayerCritical",
    "CriticalResult",
    "critical_compression_of_layer",
    "critical_compression_of_network",
    "OverlapResult",
    "overlap_bound",
    "mst_overlap",
]

CONVENTIONS = ("paper", "exact")


@dataclass(frozen=True)
class LayerCritical:
    """One layer's edge count, spanning-tree size and their ratio."""

    name: str
    kind: str
    edges: int
    tree_size: int
    ratio: float

    def to_dict(self) -> dict:
        """Plain JSON-ready data, as its result's ``to_dict()`` lists it."""
        return asdict(self)


@dataclass(frozen=True)
class CriticalResult:
    """Per-layer critical compression and the model's ``final`` ratio."""

    convention: str
    layers: list[LayerCritical]
    final: float

    def to_dict(self) -> dict:
        return {
            "convention": self.convention,
            "layers": [asdict(x) for x in self.layers],
            "final": self.final,
        }


def _ratio(edges: int, tree: int) -> float:
    return edges / tree if tree > 0 else float("nan")


def critical_compression_of_layer(layer: Layer, convention: str = "paper") -> LayerCritical:
    """Critical compression of one layer.

    - Dense ``n_in = m``, ``n_out = n``: ``m n / (m + n - 1)``; a recurrent ``l x l`` matrix gives
      ``l^2 / (2l - 1)``.
    - Conv, ``"paper"``: one input and one output channel as a 2-D Toeplitz graph at the output
      resolution: ``n = H_out W_out`` outputs, ``m = (H_out + 2p_h)(W_out + 2p_w)`` inputs,
      ``k_h k_w n`` edges. Channel counts cancel.
    - Conv, ``"exact"``: the full multichannel unrolled graph; edges that would land on zero
      padding are not counted, and the tree is the spanning forest of that graph.
    """
    if convention not in CONVENTIONS:
        raise TopopruneError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if isinstance(layer, DenseLayer):
        m, n = layer.n_in, layer.n_out
        edges, tree = m * n, m + n - 1
    elif convention == "paper":
        h_out, w_out = layer.output_size
        kh, kw = layer.kernel_size
        ph, pw = layer.padding
        n = h_out * w_out
        m = (h_out + 2 * ph) * (w_out + 2 * pw)
        edges, tree = kh * kw * n, m + n - 1
    else:
        graph = ConvToeplitzGraph(layer)
        edges, tree = graph.n_structural_edges, graph.structural_forest_size()
    return LayerCritical(layer.name, layer.kind, int(edges), int(tree), _ratio(edges, tree))


def critical_compression_of_network(layers: Sequence[Layer], convention: str = "paper") -> CriticalResult:
    """Critical compression of every layer, and the model's ratio ``sum edges / sum trees``."""
    per_layer = [critical_compression_of_layer(x, convention) for x in layers]
    edges = sum(x.edges for x in per_layer)
    trees = sum(x.tree_size for x in per_layer)
    return CriticalResult(convention, per_layer, _ratio(edges, trees))


@dataclass(frozen=True)
class OverlapResult:
    """Overlap between a layer's maximum spanning tree and its ``alpha`` largest weights.

    ``measured`` is ``|MST ∩ top-alpha| / alpha``; ``bound`` the paper's lower bound on its
    expectation (Theorem 3.3); ``random`` the overlap two random alpha-subsets of the layer's
    nonzero edges would have (hypergeometric mean, as a fraction of alpha).
    """

    n_in: int
    n_out: int
    alpha: int
    density: float
    tree_size: int
    measured: float
    bound: float
    random: float

    def to_dict(self) -> dict:
        return asdict(self)


def overlap_bound(m: int, n: int, density: float = 1.0) -> float:
    """The lower bound ``(1/alpha) sum_{i=0}^{min(m,n)} (m-i)(n-i) / (rho m n - i)``.

    ``alpha = m + n - 1``; a layer with a fraction ``rho`` of nonzero weights has ``rho m n``
    edges in the denominators. ``min(m, n) == 1`` gives 1 exactly (the tree is every edge).
    The value is capped at 1: on very sparse layers the formula passes 1 and is vacuous.
    """
    if m < 1 or n < 1:
        raise TopopruneError(f"m and n must be >= 1, got m={m}, n={n}")
    if not 0 < density <= 1:
        raise TopopruneError(f"density must be in (0, 1], got {density}")
    if min(m, n) == 1:
        return 1.0
    alpha = m + n - 1
    i = np.arange(min(m, n) + 1, dtype=np.float64)
    denom = density * m * n - i
    valid = denom > 0
    terms = (m - i[valid]) * (n - i[valid]) / denom[valid]
    # With rho m n edges in the denominators the sum can pass 1 on sparse layers, where the
    # bound says nothing; an overlap is a fraction, so report at most 1.
    return float(min(1.0, terms.sum() / alpha))


def _top_indices(flat: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the ``k`` largest values, ties broken by lower index (the spanning-tree
    kernel's order), without sorting the whole array."""
    if k >= flat.size:
        return np.arange(flat.size)
    kth = np.partition(flat, flat.size - k)[flat.size - k]
    above = np.flatnonzero(flat > kth)
    equal = np.flatnonzero(flat == kth)
    return np.concatenate([above, equal[: k - above.size]])


def mst_overlap(weights: np.ndarray) -> OverlapResult:
    """Measured tree/top-alpha overlap of a weight matrix ``(n_out, n_in)``, beside the paper's
    bound and the random-chance value."""
    a = np.abs(as_matrix(weights))
    n_out, n_in = a.shape
    alpha = n_in + n_out - 1
    nnz = int(np.count_nonzero(a))
    if nnz == 0:
        raise TopopruneError("weights are all zero: the layer graph has no edges")
    density = nnz / a.size
    rows, cols, _ = maximum_spanning_tree(a)
    tree = rows * n_in + cols
    top = _top_indices(a.reshape(-1), alpha)
    top = top[a.reshape(-1)[top] > 0]
    measured = np.intersect1d(tree, top, assume_unique=True).size / alpha
    return OverlapResult(
        n_in=n_in,
        n_out=n_out,
        alpha=alpha,
        density=density,
        tree_size=int(tree.size),
        measured=float(measured),
        bound=overlap_bound(n_in, n_out, density),
        random=float(min(1.0, alpha / nnz)),
    )


# Old names, kept working for one minor release (see CHANGELOG.md).
from .._deprecation import deprecated_module_names as _deprecated  # noqa: E402

__getattr__ = _deprecated(__name__, {
    "layer_critical": ("critical_compression_of_layer", lambda: critical_compression_of_layer),
    "network_critical": ("critical_compression_of_network", lambda: critical_compression_of_network),
    "CriticalReport": ("CriticalResult", lambda: CriticalResult),
    "OverlapReport": ("OverlapResult", lambda: OverlapResult),
})
