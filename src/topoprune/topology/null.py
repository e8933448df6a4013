"""The permutation null of neural persistence (Girrbach et al., TMLR 2023, "Addressing caveats
of neural persistence with deep graph persistence").

A layer's NP is compared with the NP of the same weights permuted uniformly at random inside the
layer, ``k`` times (seeded). The permutation keeps the layer's weight distribution and moves only
*where* each weight sits, so the observed NP's position in that null distribution says how much
NP measures the arrangement of the large weights rather than the distribution alone:

- ``z = (observed - mean) / sd`` (sample sd of the ``k`` null values; NaN when they do not vary);
- ``quantile``: the observed value's mid-rank among the null values,
  ``(#below + #equal / 2) / k``, in ``[0, 1]`` (0.5 when every permutation gives the same NP).

Raw and normalized NP differ by a constant factor, so ``z`` and ``quantile`` are the same for
both.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import TopopruneError
from .graphs import Layer
from .neural import (
    _layer_graph,
    check_graph_settings,
    check_p,
    neural_persistence_of_layer,
    persistence_norm,
    scaled_deaths,
)

__all__ = ["NullResult", "neural_persistence_null_of_network", "neural_persistence_null_of_layer"]

Seed = int | np.random.SeedSequence | np.random.Generator | None


@dataclass(frozen=True)
class NullResult:
    """The observed NP of a layer and the permutation null around it (see the module docstring)."""

    observed: float
    mean: float
    sd: float
    z: float
    quantile: float
    k: int

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN as None)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in dataclasses.asdict(self).items()}


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise TopopruneError(f"k: bad value {k!r}; allowed: a number of permutations, an integer >= 1")
    return int(k)


def _null(observed: float, score: Callable[[np.ndarray], float], weights: np.ndarray, k: int,
          seed: Seed) -> NullResult:
    """Score ``k`` random permutations of ``weights`` (all entries, shape kept) and place
    ``observed`` among them."""
    rng = np.random.default_rng(seed)
    flat = np.asarray(weights).reshape(-1)
    values = np.array([score(rng.permutation(flat).reshape(np.shape(weights))) for _ in range(k)])
    mean = float(values.mean())
    sd = float(values.std(ddof=1)) if k > 1 else math.nan
    tol = 1e-12 * max(1.0, abs(observed))  # the same tree summed in another order is a tie
    below = int(np.sum(values < observed - tol))
    equal = int(np.sum(np.abs(values - observed) <= tol))
    z = (observed - mean) / sd if sd > tol else math.nan
    return NullResult(float(observed), mean, sd, float(z), (below + equal / 2) / k, k)


def neural_persistence_null_of_layer(weights: np.ndarray, k: int, *, seed: Seed = 0, p: float = 2.0,
                                     normalized: bool = False, essential: bool = False) -> NullResult:
    """NP of one ``(n_out, n_in)`` weight matrix (:func:`neural_persistence_of_layer`, layer
    normalization) against ``k`` random permutations of its entries.

    Args:
        weights: the layer's weights.
        k: number of permutations, ``>= 1``.
        seed: an int, a :class:`numpy.random.SeedSequence` or a Generator.
        p: the norm exponent, as for :func:`neural_persistence_of_layer`.
        normalized: as for :func:`neural_persistence_of_layer`.
        essential: as for :func:`neural_persistence_of_layer`.
    """
    k = _check_k(k)

    def score(w: np.ndarray) -> float:
        return neural_persistence_of_layer(w, p, normalized=normalized, essential=essential)

    return _null(score(weights), score, np.asarray(weights), k, seed)


def neural_persistence_null_of_network(
    layers: Sequence[Layer],
    k: int,
    *,
    seed: int = 0,
    p: float = 2.0,
    normalization: str = "layer",
    include_bias: bool = False,
    essential: bool = False,
    conv_graph: str = "channel",
    channel_norm: float = 2.0,
) -> list[NullResult]:
    """The permutation null of every layer of a network, on the graphs and settings of
    :func:`topoprune.topology.neural_persistence_of_network` (``observed`` equals that report's raw
    ``np``).

    Each layer's weight tensor (a conv's whole kernel tensor; never the bias) is permuted, its
    graph rebuilt (channel or Toeplitz for a conv) and its NP computed as in the report. With
    ``normalization="global"`` the permuted layer is divided by the largest edge value of the
    network it would be part of: the other layers' largest and its own. Layers draw from
    independent streams spawned from the integer ``seed``.
    """
    k = _check_k(k)
    p = check_p(p)
    check_graph_settings(normalization, conv_graph)
    graphs = [_layer_graph(x, conv_graph, include_bias, channel_norm) for x in layers]
    maxima = [float(v[0]) if v.size else 0.0 for _, _, v in graphs]
    streams = np.random.SeedSequence(seed).spawn(len(layers))
    out = []
    for i, layer in enumerate(layers):
        others = max((m for j, m in enumerate(maxima) if j != i), default=0.0)

        def np_of(values: np.ndarray, n_vertices: int, others: float = others) -> float:
            top = float(values[0]) if values.size else 0.0
            deaths = scaled_deaths(values, max(others, top) if normalization == "global" else None)
            return persistence_norm(deaths, n_vertices, p, False, essential)

        def score(w: np.ndarray, layer: Layer = layer, np_of=np_of) -> float:
            _, n_vertices, values = _layer_graph(dataclasses.replace(layer, weight=w), conv_graph, include_bias,
                                                 channel_norm)
            return np_of(values, n_vertices)

        _, n_vertices, values = graphs[i]
        out.append(_null(np_of(values, n_vertices), score, np.asarray(layer.weight), k, streams[i]))
    return out
