"""Deep graph persistence (Girrbach, Christensen, Winther, Akata and Koepke, TMLR 2023,
"Addressing caveats of neural persistence with deep graph persistence").

Neural persistence looks at one layer at a time; DGP summarises a whole chain of layers
``W_1 ... W_L`` (``W_l`` is ``n_l x n_{l-1}``) by the strength of the best bottleneck path from
every input to every output:

1. standardize each layer, ``(W - mean(W)) / std(W)`` with the population standard deviation
   (``ddof=0``), and take absolute values;
2. divide every layer by the largest value over all layers, so all values lie in ``[0, 1]``;
3. collapse the chain into one ``n_0 x n_L`` matrix by max-min products: ``S = A_1``, then
   ``S[i, j] = max_k min(S[i, k], A_{l+1}[k, j])``, where ``A_l`` is layer ``l`` from step 2
   transposed to ``(n_{l-1}, n_l)``;
4. DGP is the neural persistence (p = 2, births at 1) of the bipartite graph with edge values
   ``S / max(S)``, the never-dying class counted as one more point with death 0, divided by
   ``sqrt(n_0 + n_L - 1)``. (The authors' code calls this ``dnp_exact_norm``.)

A conv layer enters through its channel graph (``C_out x C_in`` kernel-slice p-norms, 2 by
default; for a grouped conv only the channel pairs that share a group are edges, and only they are
standardized). Across a flatten, a linear layer reading ``C * P`` features from a conv's ``C``
channels (channel-major, ``P`` positions each) is standardized as it is, and after step 2 a
channel's edge to an output is the largest value over that channel's ``P`` positions.

Biases are not part of the graph. Residual connections and attention are out of scope; this
module only sees a list of layers, so the caller must make sure they form a chain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .connectivity import channel_mask
from .graphs import ConvLayer, DenseLayer, Layer, channel_matrix
from .spanning import maximum_spanning_tree

__all__ = ["DGPResult", "deep_graph_persistence_of_network", "maxmin_product"]

_BLOCK = 1 << 22  # entries of the (rows, k, cols) temporary of one max-min block


@dataclass(frozen=True)
class DGPResult:
    """Deep graph persistence of a chain of layers.

    ``dgp`` lies in ``[0, 1]``. ``n_inputs`` / ``n_outputs`` are the vertices of the collapsed
    graph (``inputs`` says whether the first layer's inputs are ``"units"`` or conv
    ``"channels"``); ``n_tree_edges`` are the finite points of its diagram; ``layers`` names the
    chain in order.
    """

    dgp: float
    n_inputs: int
    n_outputs: int
    n_tree_edges: int
    layers: tuple[str, ...]
    inputs: str = "units"

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {"dgp": self.dgp, "n_inputs": self.n_inputs, "n_outputs": self.n_outputs,
                "n_tree_edges": self.n_tree_edges, "layers": list(self.layers), "inputs": self.inputs}


def maxmin_product(a: np.ndarray, b: np.ndarray, *, block: int = _BLOCK) -> np.ndarray:
    """The max-min matrix product ``out[i, j] = max_k min(a[i, k], b[k, j])``, computed in row
    blocks so the ``(rows, k, cols)`` temporary holds at most about ``block`` entries."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"max-min product needs (n, k) and (k, m) matrices, got {a.shape} and {b.shape}")
    out = np.empty((a.shape[0], b.shape[1]))
    rows = max(1, block // max(1, b.shape[0] * b.shape[1]))
    for start in range(0, a.shape[0], rows):
        out[start:start + rows] = np.minimum(a[start:start + rows, :, None], b[None]).max(axis=1)
    return out


def _as_layer(x: np.ndarray | Layer, index: int) -> Layer:
    if isinstance(x, (DenseLayer, ConvLayer)):
        return x
    w = np.asarray(x)
    name = f"layer{index}"
    if w.ndim == 2:
        return DenseLayer(name, w)
    if w.ndim in (3, 4):
        return ConvLayer(name, w if w.ndim == 4 else w[:, :, None, :])
    raise ValueError(f"{name}: a layer is a 2-D (n_out, n_in) or a 3-/4-D conv weight array, got shape {w.shape}")


def _graph(layer: Layer, channel_norm: float) -> tuple[np.ndarray, np.ndarray]:
    """The layer's ``(n_out, n_in)`` matrix of step 1's inputs and the mask of its edges."""
    w = np.asarray(layer.weight, dtype=np.float64)
    if w.size == 0 or not np.isfinite(w).all():
        raise ValueError(f"layer {layer.name!r}: weights must be non-empty and finite, got shape {w.shape}")
    if isinstance(layer, DenseLayer):
        if w.ndim != 2:
            raise ValueError(f"layer {layer.name!r}: a dense weight must be 2-D (n_out, n_in), got shape {w.shape}")
        return w, np.ones(w.shape, bool)
    m = channel_matrix(ConvLayer(layer.name, w, groups=layer.groups), channel_norm)
    return m, channel_mask(np.ones(w.shape, bool), layer.groups)


def _standardized(layer: Layer, m: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Step 1: ``|W - mean| / std`` (population std) over the layer's edges; 0 off them."""
    values = m[edges]
    sd = float(values.std())  # ddof = 0
    if not sd > 0:
        raise ValueError(f"layer {layer.name!r}: all its weights are equal, so they cannot be standardized "
                         "(deep graph persistence needs a standard deviation > 0)")
    z = np.zeros(m.shape)
    z[edges] = np.abs(values - values.mean()) / sd
    return z


def deep_graph_persistence_of_network(layers: Sequence[np.ndarray | Layer], *, channel_norm: float = 2.0) -> DGPResult:
    """Deep graph persistence of a feed-forward chain of layers, first to last (see the module
    docstring for the definition).

    Args:
        layers: :class:`DenseLayer` / :class:`ConvLayer` descriptions, or arrays: 2-D
            ``(n_out, n_in)`` for a linear layer, 4-D ``(C_out, C_in, k_h, k_w)`` (or 3-D for a
            1-D conv) for a conv. Each layer's inputs must be the previous layer's outputs; a
            linear layer after a conv may read ``C * P`` features (a flatten of ``P`` positions).
        channel_norm: the p-norm of a conv's kernel slices in its channel graph.

    Raises:
        ValueError: for an empty chain, a layer whose inputs do not match the previous layer's
            outputs, a conv after a linear layer, or a layer whose weights are all equal.
    """
    chain = [_as_layer(x, i) for i, x in enumerate(layers)]
    if not chain:
        raise ValueError("deep graph persistence needs at least one layer")
    graphs = [_graph(x, channel_norm) for x in chain]
    z = [_standardized(x, m, e) for x, (m, e) in zip(chain, graphs)]
    top = max(float(a.max()) for a in z)
    z = [a / top for a in z]  # step 2
    for i in range(1, len(chain)):
        prev, layer = chain[i - 1], chain[i]
        width = z[i - 1].shape[0]
        n_in = z[i].shape[1]
        if n_in == width:
            continue
        if isinstance(prev, ConvLayer) and isinstance(layer, DenseLayer):
            if n_in % width:
                raise ValueError(f"layer {layer.name!r} reads {n_in} features after {width} channels of "
                                 f"{prev.name!r}: a flatten needs a multiple of the channel count")
            z[i] = z[i].reshape(z[i].shape[0], width, n_in // width).max(axis=2)  # the flatten rule
            continue
        conv_after_linear = isinstance(prev, DenseLayer) and isinstance(layer, ConvLayer)
        raise ValueError(f"layer {layer.name!r} is a conv after the linear layer {prev.name!r}: deep graph "
                         "persistence follows conv -> linear chains only" if conv_after_linear else
                         f"layer {layer.name!r} has {n_in} inputs but {prev.name!r} has {width} outputs: the "
                         "layers must form a chain")
    s = z[0].T
    for a in z[1:]:
        s = maxmin_product(s, a.T)  # step 3
    peak = float(s.max())
    if not peak > 0:
        raise ValueError("no input reaches an output along nonzero standardized weights")
    _, _, values = maximum_spanning_tree(s / peak)  # step 4
    n_inputs, n_outputs = s.shape
    pers = 1.0 - values
    dgp = math.sqrt(float(np.sum(pers * pers)) + 1.0) / math.sqrt(n_inputs + n_outputs - 1)
    return DGPResult(dgp, int(n_inputs), int(n_outputs), int(values.size), tuple(x.name for x in chain),
                     "channels" if isinstance(chain[0], ConvLayer) else "units")
