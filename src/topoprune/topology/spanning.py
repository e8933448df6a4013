"""Maximum spanning forests of weighted bipartite layer graphs.

The 0-dimensional persistence of a layer graph under the superlevel filtration of its edge
values is carried entirely by its maximum spanning forest, so this module is the hot kernel
behind neural persistence, the critical compression ratio, tree/top-k overlap and T-IMP.

A dense ``n_out x n_in`` weight matrix is the complete bipartite graph with one edge per nonzero
weight; edge value is ``|w|`` and zero weights are absent edges. Vertices ``0..n_out-1`` are the
outputs (rows) and ``n_out..n_out+n_in-1`` the inputs (columns).

Algorithm (dense), chosen after measuring (see ``benchmarks/np_speed.py``):

1. Estimate from a fixed sample the value ``t`` above which roughly
   ``K = max(R, C) * (ln V + 3)`` edges lie: enough that a random layer's heaviest K edges already
   touch every vertex with high probability.
2. One parallel pass counts, a second gathers the edges with ``|w| > t``; they are sorted and run
   through Kruskal with union-find. Edges above ``t`` are then all processed, exactly as full
   Kruskal would have processed them.
3. Components still apart can only be joined by edges ``<= t``: Boruvka passes over the matrix
   add, for each component, its heaviest outgoing edge until nothing more joins.

All steps order edges by the same strict total order (value descending, then row-major index
ascending), so the result is the unique maximum spanning forest under that order and equals
full Kruskal's. The whole matrix is never sorted, which is what makes a 4096 x 4096 layer cost a
few passes over memory rather than an ``E log E`` sort.

Threads: every kernel releases the GIL (``nogil``), so several Python threads can build trees at
once (the Topological Pruner searches layers in a thread pool). Steps 2 and 3 run in parallel with
the calling thread's numba thread count (``numba.set_num_threads``, which numba keeps per thread);
with one thread they run as serial kernels that never enter numba's threading layer, because
its fallback ``workqueue`` layer (used where neither TBB nor OpenMP is available) is not
thread-safe: it aborts when two Python threads launch parallel kernels at once. The result does
not depend on the thread count.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ..errors import TopopruneError

__all__ = ["as_matrix", "maximum_spanning_tree", "SortedEdges"]

# Below this many entries the whole matrix is simply sorted: the threshold machinery costs more
# than it saves.
_SMALL_EDGES = 1 << 15
_SAMPLE = 1 << 16


@nb.njit(cache=True, nogil=True, inline="always")
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@nb.njit(cache=True, nogil=True, inline="always")
def _union(parent: np.ndarray, size: np.ndarray, a: int, b: int) -> bool:
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra == rb:
        return False
    if size[ra] < size[rb]:
        ra, rb = rb, ra
    parent[rb] = ra
    size[ra] += size[rb]
    return True


@nb.njit(cache=True, nogil=True, inline="always")
def _count_row(a, t, i, counts, bad):
    """Count the entries ``|a[i, j]| > t`` of row ``i``; flag a NaN or infinite entry."""
    c = 0
    flag = False
    for j in range(a.shape[1]):
        v = abs(a[i, j])
        if v > t:
            c += 1
            if v == np.inf:
                flag = True
        elif v != v:
            flag = True
    counts[i] = c
    bad[i] = flag


@nb.njit(parallel=True, cache=True, nogil=True)
def _count_above(a, t):
    """Per-row count of ``|a| > t``, and whether any entry is NaN or infinite."""
    counts = np.zeros(a.shape[0], np.int64)
    bad = np.zeros(a.shape[0], np.bool_)
    for i in nb.prange(a.shape[0]):
        _count_row(a, t, i, counts, bad)
    return counts, bad


@nb.njit(cache=True, nogil=True)
def _count_above_serial(a, t):
    """:func:`_count_above` on the calling thread only (no numba threading layer)."""
    counts = np.zeros(a.shape[0], np.int64)
    bad = np.zeros(a.shape[0], np.bool_)
    for i in range(a.shape[0]):
        _count_row(a, t, i, counts, bad)
    return counts, bad


@nb.njit(cache=True, nogil=True, inline="always")
def _gather_row(a, t, i, offsets, rows, cols, vals):
    k = offsets[i]
    for j in range(a.shape[1]):
        v = abs(a[i, j])
        if v > t:
            rows[k] = i
            cols[k] = j
            vals[k] = v
            k += 1


@nb.njit(parallel=True, cache=True, nogil=True)
def _gather_above(a, t, offsets, rows, cols, vals):
    """Write the entries ``|a| > t`` in row-major order at ``offsets[i]`` for row ``i``."""
    for i in nb.prange(a.shape[0]):
        _gather_row(a, t, i, offsets, rows, cols, vals)


@nb.njit(cache=True, nogil=True)
def _gather_above_serial(a, t, offsets, rows, cols, vals):
    """:func:`_gather_above` on the calling thread only."""
    for i in range(a.shape[0]):
        _gather_row(a, t, i, offsets, rows, cols, vals)


@nb.njit(cache=True, nogil=True)
def _kruskal(rows, cols, vals, order, n_rows, parent, size, out_r, out_c, out_v, n_tree):
    """Kruskal over pre-sorted candidate edges; appends tree edges after ``n_tree`` of them."""
    limit = out_r.shape[0]
    for k in range(order.shape[0]):
        if n_tree >= limit:
            break
        e = order[k]
        if _union(parent, size, rows[e], n_rows + cols[e]):
            out_r[n_tree] = rows[e]
            out_c[n_tree] = cols[e]
            out_v[n_tree] = vals[e]
            n_tree += 1
    return n_tree


@nb.njit(cache=True, nogil=True)
def _component_labels(parent):
    n = parent.shape[0]
    label = np.full(n, -1, np.int64)
    comp = np.empty(n, np.int64)
    nc = 0
    for v in range(n):
        r = _find(parent, v)
        if label[r] < 0:
            label[r] = nc
            nc += 1
        comp[v] = label[r]
    return comp, nc


@nb.njit(cache=True, nogil=True, inline="always")
def _boruvka_rows(a, comp, lo, hi, best_val, best_idx):
    """Scan rows ``lo..hi-1``: for each component, the heaviest edge leaving it among them."""
    n_rows, n_cols = a.shape
    for i in range(lo, hi):
        ci = comp[i]
        for j in range(n_cols):
            v = abs(a[i, j])
            if v == 0:
                continue
            cj = comp[n_rows + j]
            if ci == cj:
                continue
            # Rows are scanned in increasing flat index, so a strict '>' keeps the
            # smallest index among equal values inside one chunk.
            if v > best_val[ci]:
                best_val[ci] = v
                best_idx[ci] = i * n_cols + j
            if v > best_val[cj]:
                best_val[cj] = v
                best_idx[cj] = i * n_cols + j


@nb.njit(cache=True, nogil=True)
def _boruvka_merge(best_val, best_idx):
    """Combine per-chunk winners by the strict total order (value desc, then flat index asc), so
    the result does not depend on how the rows were split."""
    n_chunks, nc = best_val.shape
    out = np.full(nc, -1, np.int64)
    for c in range(nc):
        bv = -1.0
        bi = -1
        for t in range(n_chunks):
            v = best_val[t, c]
            idx = best_idx[t, c]
            if idx < 0:
                continue
            if v > bv or (v == bv and idx < bi):
                bv = v
                bi = idx
        out[c] = bi
    return out


@nb.njit(parallel=True, cache=True, nogil=True)
def _boruvka_pass(a, comp, nc, n_threads):
    """For each component, the heaviest edge leaving it (flat index, or -1 if none)."""
    n_rows = a.shape[0]
    best_val = np.full((n_threads, nc), -1.0)
    best_idx = np.full((n_threads, nc), -1, np.int64)
    chunk = (n_rows + n_threads - 1) // n_threads
    for t in nb.prange(n_threads):
        lo = t * chunk
        hi = min(n_rows, lo + chunk)
        _boruvka_rows(a, comp, lo, hi, best_val[t], best_idx[t])
    return _boruvka_merge(best_val, best_idx)


@nb.njit(cache=True, nogil=True)
def _boruvka_pass_serial(a, comp, nc):
    """:func:`_boruvka_pass` on the calling thread only (one chunk)."""
    best_val = np.full((1, nc), -1.0)
    best_idx = np.full((1, nc), -1, np.int64)
    _boruvka_rows(a, comp, 0, a.shape[0], best_val[0], best_idx[0])
    return _boruvka_merge(best_val, best_idx)


@nb.njit(cache=True, nogil=True)
def _add_boruvka_edges(a, best, parent, size, out_r, out_c, out_v, n_tree):
    n_cols = a.shape[1]
    n_rows = a.shape[0]
    for c in range(best.shape[0]):
        idx = best[c]
        if idx < 0:
            continue
        i = idx // n_cols
        j = idx - i * n_cols
        if _union(parent, size, i, n_rows + j):
            out_r[n_tree] = i
            out_c[n_tree] = j
            out_v[n_tree] = abs(a[i, j])
            n_tree += 1
    return n_tree


def as_matrix(weights: np.ndarray) -> np.ndarray:
    """Validate a layer's weights and return them as a C-contiguous float32/float64 matrix.

    The one place the topology functions check their input, so they all refuse the same things
    with the same message.

    Raises:
        TopopruneError (a ValueError): if ``weights`` is not a non-empty 2-D array of real numbers.
    """
    a = np.asarray(weights)
    if a.size == 0:
        raise TopopruneError(f"weights: bad value, an empty array (shape {a.shape}); allowed: a non-empty 2-D "
                             "array shaped (n_out, n_in), one row per output unit")
    if a.ndim != 2:
        raise TopopruneError(
            f"weights must be a 2-D array shaped (n_out, n_in), got shape {a.shape}"
            + ("; a 1-D array is one layer's row or a flattened layer: reshape it to (n_out, n_in)"
               if a.ndim == 1 else "")
        )
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise TopopruneError(f"weights must be real numbers, got dtype {a.dtype}")
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return np.ascontiguousarray(a)


def _refuse_non_finite(a: np.ndarray) -> None:
    """The one-line refusal of weights holding NaN or infinity, naming how many and the first."""
    bad = ~np.isfinite(a)
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise TopopruneError(f"weights contain NaN or infinite values ({int(bad.sum())} of {a.size}, the first "
                         f"{a[first]} at {first}); only finite weights are allowed")


def _threshold(a: np.ndarray) -> float:
    """A value with roughly ``K`` entries of ``|a|`` above it (see the module docstring)."""
    n_rows, n_cols = a.shape
    n_edges = a.size
    n_vertices = n_rows + n_cols
    k = max(4 * n_vertices, int(max(n_rows, n_cols) * (math.log(n_vertices) + 3.0)))
    if n_edges <= _SMALL_EDGES or k >= n_edges // 2:
        return 0.0
    rng = np.random.default_rng(0)
    sample = np.abs(a.reshape(-1)[rng.integers(0, n_edges, _SAMPLE)])
    q = 1.0 - k / n_edges
    rank = min(_SAMPLE - 1, int(q * _SAMPLE))
    t = float(np.partition(sample, rank)[rank])
    return t if math.isfinite(t) and t > 0.0 else 0.0


def maximum_spanning_tree(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum spanning forest of the bipartite graph of ``|weights|``.

    Args:
        weights: 2-D array shaped like a torch ``Linear`` weight, ``(n_out, n_in)``.

    Returns:
        ``(rows, cols, values)``: the forest's edges as output index, input index and ``|w|``,
        in the order Kruskal adds them (value descending). A connected graph gives
        ``n_out + n_in - 1`` edges; vertices that only touch zero weights stay isolated.

    Raises:
        TopopruneError (a ValueError): if ``weights`` is not a non-empty 2-D real array, or holds NaN or inf.

    Uses the calling thread's numba thread count; with one thread (e.g. inside the GA's worker
    threads) only serial kernels run. Both give the same forest.
    """
    a = as_matrix(weights)
    n_rows, n_cols = a.shape
    n_vertices = n_rows + n_cols
    t = _threshold(a)
    n_threads = nb.get_num_threads()
    parallel = n_threads > 1
    count, gather = (_count_above, _gather_above) if parallel else (_count_above_serial, _gather_above_serial)
    counts, bad = count(a, a.dtype.type(t))
    if bad.any():
        _refuse_non_finite(a)
    offsets = np.zeros(n_rows + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    n_cand = int(offsets[-1])
    rows = np.empty(n_cand, np.int64)
    cols = np.empty(n_cand, np.int64)
    vals = np.empty(n_cand, a.dtype)
    gather(a, a.dtype.type(t), offsets, rows, cols, vals)
    order = np.argsort(-vals, kind="stable")

    parent = np.arange(n_vertices, dtype=np.int64)
    size = np.ones(n_vertices, np.int64)
    out_r = np.empty(n_vertices - 1, np.int64)
    out_c = np.empty(n_vertices - 1, np.int64)
    out_v = np.empty(n_vertices - 1, a.dtype)
    n_tree = _kruskal(rows, cols, vals, order, n_rows, parent, size, out_r, out_c, out_v, 0)

    if t > 0.0:
        while n_tree < n_vertices - 1:
            comp, nc = _component_labels(parent)
            best = _boruvka_pass(a, comp, nc, n_threads) if parallel else _boruvka_pass_serial(a, comp, nc)
            before = n_tree
            n_tree = _add_boruvka_edges(a, best, parent, size, out_r, out_c, out_v, n_tree)
            if n_tree == before:
                break
        if n_tree > 0:
            # Boruvka appends in component order; restore Kruskal's order (value descending,
            # then row-major index), which callers and tests rely on.
            key = np.lexsort((out_r[:n_tree] * n_cols + out_c[:n_tree], -out_v[:n_tree]))
            return out_r[key], out_c[key], out_v[key]
    return out_r[:n_tree].copy(), out_c[:n_tree].copy(), out_v[:n_tree].copy()


@nb.njit(cache=True, nogil=True)
def _masked_kruskal(rows, cols, vals, row_alive, col_alive, n_rows, need, out):
    """Kruskal over pre-sorted edges, skipping those with a removed end; stops after ``need``
    tree edges (a connected induced subgraph's forest is then complete)."""
    n_vertices = n_rows + col_alive.shape[0]
    parent = np.arange(n_vertices)
    size = np.ones(n_vertices, np.int64)
    n_tree = 0
    if need <= 0:
        return 0
    for e in range(rows.shape[0]):
        r = rows[e]
        c = cols[e]
        if not row_alive[r] or not col_alive[c]:
            continue
        if _union(parent, size, r, n_rows + c):
            out[n_tree] = vals[e]
            n_tree += 1
            if n_tree == need:
                break
    return n_tree


class SortedEdges:
    """A layer graph's edges, sorted once, for the maximum spanning forests of its subgraphs.

    The Topological Pruner scores hundreds of unit sets per layer; each removes some rows (the
    layer's own units) or columns (a consumer's inputs) and needs the forest of what is left.
    Sorting the whole graph once (value descending, then row-major index: the order
    :func:`maximum_spanning_tree` uses) and running Kruskal over that list, skipping edges with a
    removed end, gives the same forest as rebuilding it from the submatrix (the order restricted
    to a submatrix is the submatrix's own order), and it stops as soon as the forest spans the
    kept vertices. Memory: three entries per nonzero weight.
    """

    def __init__(self, weights: np.ndarray) -> None:
        a = as_matrix(weights)
        if not np.isfinite(a).all():
            _refuse_non_finite(a)
        self.shape = a.shape
        flat = np.abs(a).reshape(-1)
        idx = np.flatnonzero(flat)
        vals = flat[idx]
        # Sort only the heaviest edges now (all those above the value of the K-th heaviest, K a
        # few times what a spanning forest usually needs); the rest are sorted the first time a
        # scan runs past them. Together that is exactly the full stable sort.
        k = 8 * (a.shape[0] + a.shape[1])
        if vals.size > 4 * k:
            t = np.partition(vals, vals.size - k)[vals.size - k]
            top = vals > t
            self._rest = (idx[~top], vals[~top])
            idx, vals = idx[top], vals[top]
        else:
            self._rest = None
        self._set(idx, vals, a.shape[1])

    def _set(self, idx: np.ndarray, vals: np.ndarray, n_cols: int) -> None:
        order = np.argsort(-vals, kind="stable")
        idx = idx[order]
        self.rows = (idx // n_cols).astype(np.int64)
        self.cols = (idx % n_cols).astype(np.int64)
        self.vals = vals[order]

    @property
    def partial(self) -> bool:
        """Whether only the heaviest edges are sorted so far."""
        return self._rest is not None

    def sort_rest(self) -> None:
        """Sort the remaining (lighter) edges into the list, once."""
        if self._rest is None:
            return
        idx_rest, vals_rest = self._rest
        n_cols = self.shape[1]
        order = np.argsort(-vals_rest, kind="stable")
        idx_rest = idx_rest[order]
        self.rows = np.concatenate([self.rows, idx_rest // n_cols]).astype(np.int64)
        self.cols = np.concatenate([self.cols, idx_rest % n_cols]).astype(np.int64)
        self.vals = np.concatenate([self.vals, vals_rest[order]])
        self._rest = None

    def forest_values(self, row_alive: np.ndarray | None = None,
                      col_alive: np.ndarray | None = None) -> np.ndarray:
        """The edge values of the maximum spanning forest of the subgraph on the alive rows and
        columns (boolean masks; ``None``: all), in Kruskal's order: exactly
        ``maximum_spanning_tree(weights[rows][:, cols])[2]``."""
        n_rows, n_cols = self.shape
        rows = np.ones(n_rows, np.bool_) if row_alive is None else np.asarray(row_alive, np.bool_)
        cols = np.ones(n_cols, np.bool_) if col_alive is None else np.asarray(col_alive, np.bool_)
        if rows.shape != (n_rows,) or cols.shape != (n_cols,):
            raise TopopruneError(f"alive masks must have shapes ({n_rows},) and ({n_cols},), got "
                             f"{rows.shape} and {cols.shape}")
        need = int(rows.sum()) + int(cols.sum()) - 1
        out = np.empty(max(need, 0), self.vals.dtype)
        n_tree = _masked_kruskal(self.rows, self.cols, self.vals, rows, cols, n_rows, need, out)
        if n_tree < need and self._rest is not None:  # the heaviest edges did not span: all of them
            self.sort_rest()
            n_tree = _masked_kruskal(self.rows, self.cols, self.vals, rows, cols, n_rows, need, out)
        return out[:n_tree].copy()
