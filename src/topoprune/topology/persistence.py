"""Persistence: 0-dimensional diagrams of layer graphs (METHODS.md section 1) and Betti numbers
of point clouds at one scale (section 7, through ripser).

Diagrams are ``(k, 2)`` float arrays of ``(birth, death)``, as ripser and gudhi return them.
Under the superlevel filtration of normalized weights every vertex is born at 1 and each edge of
the maximum spanning forest kills one class at its value, so a layer's diagram is
``{(1, w'_e) : e in tree}``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .spanning import as_matrix, maximum_spanning_tree

__all__ = [
    "persistence_diagram",
    "diagram_from_deaths",
    "betti_numbers",
    "betti_from_distances",
    "knn_geodesic",
    "BETTI_METHODS",
    "wasserstein_same_birth",
]


def diagram_from_deaths(deaths: np.ndarray, essential: bool = False) -> np.ndarray:
    """Build the diagram ``[(1, d) for d in deaths]``; ``essential`` appends the class that never
    dies as ``(1, 0)``, as the reference code of Rieck et al. does."""
    deaths = np.asarray(deaths, dtype=np.float64).reshape(-1)
    if essential:
        deaths = np.append(deaths, 0.0)
    return np.column_stack([np.ones_like(deaths), deaths])


def persistence_diagram(
    weights: np.ndarray, scale: float | None = None, essential: bool = False
) -> np.ndarray:
    """0-dimensional persistence diagram of the bipartite graph of a weight matrix.

    Args:
        weights: 2-D array ``(n_out, n_in)``.
        scale: the ``W_max`` weights are divided by. ``None`` (the default) is the layer's own
            largest ``|w|`` (``normalization="layer"``); pass the network's largest for
            ``"global"``.
        essential: also record the class that never dies as ``(1, 0)``.

    Returns:
        ``(k, 2)`` array of ``(birth, death)`` with births 1 and deaths in ``[0, 1]``, most
        persistent last; ``k = n_out + n_in - 1`` for a connected graph.
    """
    a = as_matrix(weights)
    _, _, values = maximum_spanning_tree(a)
    if scale is None:
        scale = float(values[0]) if values.size else 0.0
    elif not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    deaths = values / scale if scale > 0 else values.astype(np.float64)
    return diagram_from_deaths(deaths, essential)


BETTI_METHODS = ("rips", "knn-geodesic")


def _pairwise(points: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import pdist, squareform

    return squareform(pdist(points))


def knn_geodesic(distances: np.ndarray, k: int) -> np.ndarray:
    """Hop-count geodesic distances on the symmetrised k-nearest-neighbour graph (Naitzat et al.
    2020): the graph that survives only local, trusted distances. Unreachable pairs get ``inf``."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import shortest_path

    n = distances.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} points, got {k}")
    order = np.argsort(distances, axis=1, kind="stable")[:, 1 : k + 1]
    rows = np.repeat(np.arange(n), k)
    graph = csr_matrix((np.ones(n * k), (rows, order.reshape(-1))), shape=(n, n))
    return shortest_path(graph, directed=False, unweighted=True)


def betti_from_distances(distances: np.ndarray, max_dim: int = 1, scale: float | None = None,
                         quantile: float = 0.1) -> tuple[list[int], float]:
    """Betti numbers ``[b_0, ..., b_max_dim]`` of the Vietoris-Rips complex of a distance matrix
    at one scale (ripser), and the scale used (``quantile`` of the pairwise distances unless
    ``scale`` is given). ``b_k`` counts the bars ``(birth, death)`` with ``birth <= scale < death``."""
    from ripser import ripser

    d = np.asarray(distances, dtype=np.float64)
    n = d.shape[0]
    if scale is None:
        finite = d[np.triu_indices(n, 1)]
        finite = finite[np.isfinite(finite)]
        scale = float(np.quantile(finite, quantile)) if finite.size else 0.0
    big = np.where(np.isfinite(d), d, 2 * scale + 1.0)  # unreachable pairs never join at `scale`
    dgms = ripser(big, maxdim=max_dim, distance_matrix=True, thresh=scale)["dgms"]
    return [int(np.sum((g[:, 0] <= scale) & (g[:, 1] > scale))) for g in dgms], float(scale)


def betti_numbers(
    points: np.ndarray,
    max_dim: int = 1,
    *,
    scale: float | None = None,
    method: str = "rips",
    quantile: float = 0.1,
    k: int = 10,
) -> list[int]:
    """Betti numbers ``[b_0, ..., b_max_dim]`` of a point cloud at one scale.

    Args:
        points: ``(n, d)`` array, one point per row.
        max_dim: highest homology dimension (1: components and loops).
        scale: the Rips scale. Default: for ``"rips"`` the ``quantile`` of the pairwise
            Euclidean distances; for ``"knn-geodesic"`` 1 hop, i.e. the clique complex of the
            k-NN graph.
        method: ``"rips"`` (Euclidean distances) or ``"knn-geodesic"`` (hop distances on the
            k-NN graph, Naitzat et al. 2020).
        quantile: see ``scale``; in (0, 1).
        k: neighbours of the k-NN graph.

    Raises:
        ValueError: too few points for ``max_dim`` (a loop needs 4), NaN/inf, bad options.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n_points, dim), got shape {x.shape}")
    if not isinstance(max_dim, int) or max_dim < 0:
        raise ValueError(f"max_dim must be an integer >= 0, got {max_dim!r}")
    need = 1 if max_dim == 0 else max_dim + 3
    if x.shape[0] < need:
        raise ValueError(
            f"{x.shape[0]} points are too few for homology up to dimension {max_dim}; need at "
            f"least {need}"
        )
    if not np.isfinite(x).all():
        raise ValueError("points contain NaN or inf; only finite coordinates are allowed")
    if method not in BETTI_METHODS:
        raise ValueError(f"method must be one of {BETTI_METHODS}, got {method!r}")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if scale is not None and not scale >= 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    d = _pairwise(x)
    if method == "knn-geodesic":
        d = knn_geodesic(d, k)
        scale = 1.0 if scale is None else scale
    return betti_from_distances(d, max_dim, scale, quantile)[0]


@nb.njit(cache=True, nogil=True)
def _line_wasserstein(a, b, birth):
    """Exact 1-Wasserstein distance (L-inf ground metric) between two diagrams whose points all
    have the same birth: an optimal matching on a line never crosses, so a DP over the sorted
    deaths is exact. Deleting a point (matching it to the diagonal) costs |birth - death| / 2."""
    n, m = a.shape[0], b.shape[0]
    prev = np.empty(m + 1)
    cur = np.empty(m + 1)
    prev[0] = 0.0
    for j in range(1, m + 1):
        prev[j] = prev[j - 1] + abs(birth - b[j - 1]) / 2
    for i in range(1, n + 1):
        da = abs(birth - a[i - 1]) / 2
        cur[0] = prev[0] + da
        for j in range(1, m + 1):
            best = prev[j] + da
            alt = cur[j - 1] + abs(birth - b[j - 1]) / 2
            if alt < best:
                best = alt
            alt = prev[j - 1] + abs(a[i - 1] - b[j - 1])
            if alt < best:
                best = alt
            cur[j] = best
        prev, cur = cur, prev
    return prev[m]


def wasserstein_same_birth(deaths_a: np.ndarray, deaths_b: np.ndarray, birth: float = 1.0) -> float:
    """1-Wasserstein distance between the diagrams ``{(birth, d) : d in deaths_a}`` and
    ``{(birth, d) : d in deaths_b}`` (L-inf ground metric, unmatched points go to the diagonal).

    This is the shape of every layer graph's 0-dimensional diagram (all births 1), and of a Rips
    ``H_0`` diagram (all births 0). Exact, ``O(n m)``.
    """
    a = np.sort(np.asarray(deaths_a, dtype=np.float64).reshape(-1))
    b = np.sort(np.asarray(deaths_b, dtype=np.float64).reshape(-1))
    return float(_line_wasserstein(a, b, float(birth)))
