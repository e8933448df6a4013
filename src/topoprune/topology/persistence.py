"""Persistence: 0-dimensional diagrams of layer graphs and Betti numbers of point clouds at one
scale (through ripser).

Diagrams are ``(k, 2)`` float arrays of ``(birth, death)``, as ripser and gudhi return them.
Under the superlevel filtration of normalized weights every vertex is born at 1 and each edge of
the maximum spanning forest kills one class at its value, so a layer's diagram is
``{(1, w'_e) : e in tree}``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ..errors import TopopruneError
from .spanning import SortedEdges, _masked_kruskal, as_matrix, maximum_spanning_tree

__all__ = [
    "persistence_diagram",
    "diagram_from_deaths",
    "betti_numbers",
    "betti_from_distances",
    "knn_geodesic",
    "BETTI_METHODS",
    "wasserstein_same_birth",
    "wasserstein_same_birth_dp",
    "forest_wasserstein",
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
        raise TopopruneError(f"scale must be > 0, got {scale}")
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
        raise TopopruneError(f"k must be in [1, {n - 1}] for {n} points, got {k}")
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
        TopopruneError (a ValueError): too few points for ``max_dim`` (a loop needs 4), NaN/inf, bad options.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise TopopruneError(f"points must be a 2-D array (n_points, dim), got shape {x.shape}")
    if not isinstance(max_dim, int) or max_dim < 0:
        raise TopopruneError(f"max_dim must be an integer >= 0, got {max_dim!r}")
    need = 1 if max_dim == 0 else max_dim + 3
    if x.shape[0] < need:
        raise TopopruneError(
            f"{x.shape[0]} points are too few for homology up to dimension {max_dim}; need at "
            f"least {need}"
        )
    if not np.isfinite(x).all():
        raise TopopruneError("points contain NaN or inf; only finite coordinates are allowed")
    if method not in BETTI_METHODS:
        raise TopopruneError(f"method must be one of {BETTI_METHODS}, got {method!r}")
    if not 0 < quantile < 1:
        raise TopopruneError(f"quantile must be in (0, 1), got {quantile}")
    if scale is not None and not scale >= 0:
        raise TopopruneError(f"scale must be >= 0, got {scale}")
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


@nb.njit(cache=True, nogil=True, inline="always")
def _heap_push(heap, n, value):
    """Push ``value`` onto the binary min-heap ``heap[:n]``; returns the new size."""
    i = n
    heap[i] = value
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent] <= heap[i]:
            break
        heap[parent], heap[i] = heap[i], heap[parent]
        i = parent
    return n + 1


@nb.njit(cache=True, nogil=True, inline="always")
def _heap_pushpop(heap, n, value):
    """Push ``value`` onto the binary min-heap ``heap[:n]`` and pop the smallest entry (the size
    stays ``n``): ``value`` itself when it is the smallest, else one sift-down."""
    if n == 0 or value <= heap[0]:
        return value
    top = heap[0]
    heap[0] = value
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        child = left
        if left + 1 < n and heap[left + 1] < heap[left]:
            child = left + 1
        if heap[i] <= heap[child]:
            break
        heap[i], heap[child] = heap[child], heap[i]
        i = child
    return top


@nb.njit(cache=True, nogil=True)
def _line_wasserstein_flow(a, b, birth):
    """The same distance as :func:`_line_wasserstein`, in ``O((n + m) log(n + m))``.

    The matching is a min-cost flow on the line: each point of ``a`` sends one unit, each point of
    ``b`` takes one, moving a unit costs the distance, and a point may instead go to (or come
    from) the diagonal at its deletion cost ``c = |birth - death| / 2``. Sweeping the points from
    left to right, ``V(f)`` is the least cost so far with net flow ``f`` crossing to the right; it
    is convex, so it is kept as its sorted slopes ("slope trick"): the slopes left of ``f = 0`` in
    a max-heap ``L`` (stored negated), those right of it in a min-heap ``R``, each with a lazy
    offset. A segment of length ``len`` adds ``len * |f|`` (``L`` -= len, ``R`` += len); a point
    of ``a`` is an infimal convolution with ``{0: c, 1: 0}`` (merge slope ``-c``), a point of
    ``b`` one with ``{-1: 0, 0: c}`` (merge slope ``+c``). ``V(0)`` is tracked exactly through
    each step; at the end it is the distance. Equal to the DP up to rounding (tested)."""
    n, m = a.shape[0], b.shape[0]
    if n == m:  # equal diagrams are exactly 0 apart (the sweep would leave rounding noise)
        same = True
        for k in range(n):
            if a[k] != b[k]:
                same = False
                break
        if same:
            return 0.0
    neg_left = np.empty(n + m + 1)  # the max-heap L, stored as a min-heap of -(slope - offL)
    right = np.empty(n + m + 1)
    nl = 0
    nr = 0
    off_l = 0.0
    off_r = 0.0
    v0 = 0.0
    i = 0
    j = 0
    prev = 0.0
    started = False
    while i < n or j < m:
        from_a = j >= m or (i < n and a[i] <= b[j])
        if from_a:
            x = a[i]
            i += 1
        else:
            x = b[j]
            j += 1
        if started:
            length = x - prev
            off_l -= length
            off_r += length
        started = True
        prev = x
        c = abs(birth - x) / 2
        if from_a:
            if nl > 0:  # V'(0) = min(V(0) + c, V(-1)), V(-1) = V(0) - max(L)
                s = -neg_left[0] + off_l
                v0 = min(v0 + c, v0 - s)
            else:
                v0 = v0 + c
            top = -_heap_pushpop(neg_left, nl, c + off_l) + off_l  # merge slope -c; L keeps its size
            nr = _heap_push(right, nr, top - off_r)
        else:
            if nr > 0:  # V'(0) = min(V(0) + c, V(1)), V(1) = V(0) + min(R)
                v0 = v0 + min(c, right[0] + off_r)
            else:
                v0 = v0 + c
            low = _heap_pushpop(right, nr, c - off_r) + off_r  # merge slope +c; L grows by one
            nl = _heap_push(neg_left, nl, -(low - off_l))
    return max(v0, 0.0)


def wasserstein_same_birth(deaths_a: np.ndarray, deaths_b: np.ndarray, birth: float = 1.0, *,
                           presorted: bool = False) -> float:
    """1-Wasserstein distance between the diagrams ``{(birth, d) : d in deaths_a}`` and
    ``{(birth, d) : d in deaths_b}`` (L-inf ground metric, unmatched points go to the diagonal).

    This is the shape of every layer graph's 0-dimensional diagram (all births 1), and of a Rips
    ``H_0`` diagram (all births 0). Exact, ``O((n + m) log(n + m))`` by a min-cost flow on the
    line (:func:`_line_wasserstein_flow`); it equals the ``O(n m)`` dynamic programme over the
    sorted deaths (:func:`wasserstein_same_birth_dp`, kept as the reference) up to rounding. The
    Topological Pruner's ``diagram`` fitness calls this hundreds of times per layer, which is why
    the faster form exists (about 0.1 ms instead of 1 ms for 1,000-point diagrams).
    ``presorted=True`` promises both arrays are float64 and ascending already (not checked).
    """
    if presorted:
        return float(_line_wasserstein_flow(deaths_a, deaths_b, float(birth)))
    a = np.sort(np.asarray(deaths_a, dtype=np.float64).reshape(-1))
    b = np.sort(np.asarray(deaths_b, dtype=np.float64).reshape(-1))
    return float(_line_wasserstein_flow(a, b, float(birth)))


def wasserstein_same_birth_dp(deaths_a: np.ndarray, deaths_b: np.ndarray, birth: float = 1.0) -> float:
    """:func:`wasserstein_same_birth` by the ``O(n m)`` dynamic programme over the sorted deaths
    (an optimal matching on a line never crosses): the reference the faster form is tested
    against."""
    a = np.sort(np.asarray(deaths_a, dtype=np.float64).reshape(-1))
    b = np.sort(np.asarray(deaths_b, dtype=np.float64).reshape(-1))
    return float(_line_wasserstein(a, b, float(birth)))


@nb.njit(cache=True, nogil=True)
def _forest_wasserstein(rows, cols, vals, row_alive, col_alive, n_rows, need, reference, scale, complete):
    """Kruskal over pre-sorted edges, then the same-birth W1 of the forest's diagram (values
    divided by ``scale``) against ``reference`` (ascending), in one GIL-free call. Returns -1 when
    ``complete`` is set and the forest did not reach ``need`` edges (more edges are needed)."""
    out = np.empty(max(need, 0), vals.dtype)
    n_tree = _masked_kruskal(rows, cols, vals, row_alive, col_alive, n_rows, need, out)
    if complete and n_tree < need:
        return -1.0
    pruned = np.empty(n_tree)
    for i in range(n_tree):
        pruned[i] = out[n_tree - 1 - i] / scale
    return _line_wasserstein_flow(reference, pruned, 1.0)


def forest_wasserstein(edges: SortedEdges, reference: np.ndarray, scale: float, *,
                       row_alive: np.ndarray | None = None, col_alive: np.ndarray | None = None) -> float:
    """``wasserstein_same_birth(reference, edges.forest_values(row_alive, col_alive) / scale)``
    (birth 1) in one compiled call that holds no GIL: the Topological Pruner's ``diagram``
    fitness per graph. ``reference`` must be float64 deaths in ascending order."""
    n_rows, n_cols = edges.shape
    rows = np.ones(n_rows, np.bool_) if row_alive is None else np.asarray(row_alive, np.bool_)
    cols = np.ones(n_cols, np.bool_) if col_alive is None else np.asarray(col_alive, np.bool_)
    need = int(rows.sum()) + int(cols.sum()) - 1
    scale = edges.vals.dtype.type(scale)  # divide in the edges' precision, as numpy would
    value = _forest_wasserstein(edges.rows, edges.cols, edges.vals, rows, cols, n_rows, need,
                                reference, scale, edges.partial)
    if value < 0:  # the heaviest edges did not span the kept vertices: sort the rest, once
        edges.sort_rest()
        value = _forest_wasserstein(edges.rows, edges.cols, edges.vals, rows, cols, n_rows, need,
                                    reference, scale, False)
    return float(value)
