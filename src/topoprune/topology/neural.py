"""Neural persistence of a layer and of a network (Rieck et al., ICLR 2019).

``NP_p(G) = (sum over diagram points of (birth - death)^p)^(1/p)``, which with births at 1 is
``|| 1 - w'_e ||_p`` over the maximum spanning forest's edges. Normalized NP divides by
``(|V| - 1)^(1/p)``, the largest value a graph on ``|V|`` vertices can reach, so it lies in
``[0, 1]``. With ``essential=True`` the never-dying class adds a point ``(1, 0)``; the bound then
becomes ``|V|^(1/p)`` and that is what normalization divides by, keeping the value in ``[0, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import TopopruneError
from .graphs import ConvToeplitzGraph, DenseLayer, Layer, channel_matrix, dense_matrix
from .spanning import as_matrix, maximum_spanning_tree

__all__ = [
    "neural_persistence_of_layer",
    "persistence_norm",
    "LayerPersistence",
    "PersistenceResult",
    "neural_persistence_of_network",
    "NORMALIZATIONS",
    "CONV_GRAPHS",
]

NORMALIZATIONS = ("layer", "global")
CONV_GRAPHS = ("channel", "toeplitz")


def check_p(p: float) -> float:
    """Validate the norm exponent: any ``p > 0``, ``inf`` included."""
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise TopopruneError(f"p must be a number > 0 (e.g. 1, 2, inf), got {p!r}") from None
    if not p > 0:
        raise TopopruneError(f"p must be > 0 (e.g. 1, 2, inf), got {p}")
    return p


def persistence_norm(
    deaths: np.ndarray, n_vertices: int, p: float = 2.0, normalized: bool = False,
    essential: bool = False,
) -> float:
    """``|| 1 - deaths ||_p`` (plus the essential class's 1), optionally normalized."""
    p = check_p(p)
    pers = 1.0 - np.asarray(deaths, dtype=np.float64)
    if essential:
        pers = np.append(pers, 1.0)
    if pers.size == 0:
        return 0.0
    if math.isinf(p):
        value = float(pers.max())
    else:
        value = float(np.sum(pers**p) ** (1.0 / p))
    if normalized:
        n_points = n_vertices if essential else n_vertices - 1
        if n_points <= 0:
            return 0.0
        value /= 1.0 if math.isinf(p) else n_points ** (1.0 / p)
    return value


def neural_persistence_of_layer(
    weights: np.ndarray, p: float = 2.0, *, normalized: bool = False, essential: bool = False
) -> float:
    """Neural persistence of one weight matrix ``(n_out, n_in)``, normalized by its own largest
    ``|w|`` (layer normalization). For a whole model see :func:`topoprune.neural_persistence`.

    Raises:
        TopopruneError (a ValueError): for a non-2-D or empty array, NaN or inf weights, or ``p <= 0``.
    """
    p = check_p(p)
    a = as_matrix(weights)
    _, _, values = maximum_spanning_tree(a)
    scale = float(values[0]) if values.size else 0.0
    deaths = values / scale if scale > 0 else values
    return persistence_norm(deaths, a.shape[0] + a.shape[1], p, normalized, essential)


@dataclass(frozen=True)
class LayerPersistence:
    """One layer's neural persistence, and the graph it was computed on."""

    name: str
    kind: str
    graph: str
    n_vertices: int
    n_tree_edges: int
    np: float
    normalized: float

    def to_dict(self) -> dict:
        """Plain JSON-ready data, as its result's ``to_dict()`` lists it."""
        return asdict(self)


@dataclass(frozen=True)
class PersistenceResult:
    """Per-layer and network neural persistence.

    ``total`` is the sum of raw NP over layers, ``mean_normalized`` the mean of the normalized
    values (the quantity Rieck et al. track for early stopping).
    """

    layers: list[LayerPersistence]
    p: float
    normalization: str
    conv_graph: str
    include_bias: bool
    essential: bool
    total: float = field(init=False)
    mean_normalized: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", float(sum(x.np for x in self.layers)))
        mean = float(np.mean([x.normalized for x in self.layers])) if self.layers else 0.0
        object.__setattr__(self, "mean_normalized", mean)

    def to_dict(self) -> dict:
        """A JSON-ready dict; keys are stable (the CLI's ``--json`` prints exactly this)."""
        return {
            "p": _json_float(self.p),
            "normalization": self.normalization,
            "conv_graph": self.conv_graph,
            "include_bias": self.include_bias,
            "essential": self.essential,
            "layers": [asdict(x) for x in self.layers],
            "total": self.total,
            "mean_normalized": self.mean_normalized,
        }


def _json_float(x: float) -> float | str:
    return "inf" if math.isinf(x) else x


def _layer_graph(
    layer: Layer, conv_graph: str, include_bias: bool, channel_norm: float
) -> tuple[str, int, np.ndarray]:
    """(graph name, |V|, tree values |w| descending) for one layer."""
    if isinstance(layer, DenseLayer):
        m = dense_matrix(layer, include_bias)
        _, _, values = maximum_spanning_tree(m)
        return "dense", m.shape[0] + m.shape[1], values
    if conv_graph == "channel":
        m = channel_matrix(layer, channel_norm, include_bias)
        _, _, values = maximum_spanning_tree(m)
        return "channel", m.shape[0] + m.shape[1], values
    if include_bias and layer.bias is not None:
        raise TopopruneError(
            f"layer {layer.name!r}: include_bias is supported for dense and channel graphs, not "
            "for conv_graph='toeplitz' (a bias vertex would join every output position)"
        )
    graph = ConvToeplitzGraph(layer)
    _, _, values = graph.maximum_spanning_tree()
    n_vertices = graph.n_vertices
    return "toeplitz", n_vertices, values


def scaled_deaths(values: np.ndarray, scale: float | None = None) -> np.ndarray:
    """A layer's spanning-tree edge values (descending) divided by ``scale``, the normalizing
    maximum: the layer's own largest value when None (layer normalization), the network's for
    global normalization. An all-zero layer is returned as is."""
    if scale is None:
        scale = float(values[0]) if values.size else 0.0
    return values / scale if scale > 0 else values.astype(np.float64)


def check_graph_settings(normalization: str, conv_graph: str) -> None:
    """Refuse a ``normalization`` or ``conv_graph`` that :func:`neural_persistence_of_network`
    (and its permutation null) does not know."""
    if normalization not in NORMALIZATIONS:
        raise TopopruneError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if conv_graph not in CONV_GRAPHS:
        raise TopopruneError(f"conv_graph must be one of {CONV_GRAPHS}, got {conv_graph!r}")


def neural_persistence_of_network(
    layers: Sequence[Layer],
    p: float = 2.0,
    *,
    normalization: str = "layer",
    include_bias: bool = False,
    essential: bool = False,
    conv_graph: str = "channel",
    channel_norm: float = 2.0,
) -> PersistenceResult:
    """Neural persistence of every layer of a network given as torch-free layer descriptions.

    Args:
        layers: :class:`DenseLayer` / :class:`ConvLayer` objects, in network order.
        p: norm exponent, ``> 0`` (``inf`` allowed).
        normalization: ``"layer"`` divides each layer by its own largest edge value (Balwani &
            Krzyston); ``"global"`` by the largest over the whole network (Rieck et al.'s code).
        include_bias: fold each bias in as one extra input vertex.
        essential: record the never-dying class as ``(1, 0)``.
        conv_graph: ``"channel"`` (kernel-slice norms, cheap) or ``"toeplitz"`` (exact unrolled
            graph; conv layers need ``input_size``).
        channel_norm: the p-norm of kernel slices in the channel graph (default 2).
    """
    p = check_p(p)
    check_graph_settings(normalization, conv_graph)
    graphs = [_layer_graph(x, conv_graph, include_bias, channel_norm) for x in layers]
    global_max = max((float(v[0]) for _, _, v in graphs if v.size), default=0.0)
    out = []
    for layer, (gname, n_vertices, values) in zip(layers, graphs):
        deaths = scaled_deaths(values, global_max if normalization == "global" else None)
        out.append(
            LayerPersistence(
                name=layer.name,
                kind=layer.kind,
                graph=gname,
                n_vertices=int(n_vertices),
                n_tree_edges=int(values.size),
                np=persistence_norm(deaths, n_vertices, p, False, essential),
                normalized=persistence_norm(deaths, n_vertices, p, True, essential),
            )
        )
    return PersistenceResult(out, p, normalization, conv_graph, include_bias, essential)


# Old names, kept working for one minor release (see CHANGELOG.md).
from .._deprecation import deprecated_module_names as _deprecated  # noqa: E402

__getattr__ = _deprecated(__name__, {
    "layer_neural_persistence": ("neural_persistence_of_layer", lambda: neural_persistence_of_layer),
    "network_persistence": ("neural_persistence_of_network", lambda: neural_persistence_of_network),
    "PersistenceReport": ("PersistenceResult", lambda: PersistenceResult),
})
