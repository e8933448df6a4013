"""Layers as weighted bipartite graphs, without torch.

A network is handed to the topology code as a list of plain layer descriptions
(:class:`DenseLayer`, :class:`ConvLayer`) holding numpy arrays, so this package stays free of
torch and its tests run in milliseconds. ``topoprune.models.introspect`` builds them from an
``nn.Module``.

Graph modes for a conv layer:

- ``"channel"``: a ``C_out x C_in`` bipartite graph whose edge value is the p-norm of the kernel
  slice ``W[o, i]`` (default p = 2, the Frobenius norm, the same norm as L2 filter pruning).
  Grouped convs have edges only inside each group.
- ``"toeplitz"``: the exact unrolled graph at a given input size (:class:`ConvToeplitzGraph`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba as nb
import numpy as np

from ..errors import TopopruneError
from .spanning import _union

__all__ = [
    "DenseLayer",
    "ConvLayer",
    "Layer",
    "ConvToeplitzGraph",
    "channel_matrix",
    "dense_matrix",
    "conv_output_size",
]


@dataclass(frozen=True)
class DenseLayer:
    """A fully connected layer: ``weight`` is ``(n_out, n_in)`` like torch's ``Linear.weight``.

    ``kind`` is ``"linear"``, or ``"recurrent"`` for a hidden-to-hidden matrix (one graph, the
    weights being shared across time).
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray | None = None
    kind: str = "linear"

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class ConvLayer:
    """A 2-D convolution (1-D convs are stored with a kernel height of 1).

    ``weight`` is ``(C_out, C_in / groups, k_h, k_w)``. ``input_size`` is the spatial size
    ``(H, W)`` of the layer's input, needed only by the Toeplitz graph and critical compression.
    Padding is zero padding.
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    input_size: tuple[int, int] | None = None
    padding_mode: str = "zeros"
    kind: str = field(default="conv")

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1]) * self.groups

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    def require_input_size(self) -> tuple[int, int]:
        if self.input_size is None:
            raise TopopruneError(
                f"layer {self.name!r}: the input size is unknown; pass input_shape=(C, H, W) so "
                "the conv's spatial size can be traced"
            )
        return self.input_size

    @property
    def output_size(self) -> tuple[int, int]:
        h, w = self.require_input_size()
        kh, kw = self.kernel_size
        return (
            conv_output_size(h, kh, self.stride[0], self.padding[0], self.dilation[0]),
            conv_output_size(w, kw, self.stride[1], self.padding[1], self.dilation[1]),
        )


Layer = DenseLayer | ConvLayer


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis (torch's formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def dense_matrix(layer: DenseLayer, include_bias: bool = False) -> np.ndarray:
    """The layer's ``(n_out, n_in)`` matrix; with ``include_bias`` the bias is one more input
    vertex (an extra column), as in the reference code of Rieck et al."""
    w = np.asarray(layer.weight)
    if include_bias and layer.bias is not None:
        w = np.concatenate([w, np.asarray(layer.bias, dtype=w.dtype).reshape(-1, 1)], axis=1)
    return w


def channel_matrix(layer: ConvLayer, norm: float = 2.0, include_bias: bool = False) -> np.ndarray:
    """``(C_out, C_in)`` matrix of kernel-slice p-norms: the conv's channel graph.

    For grouped convs the entries linking channels of different groups are zero (no edge).
    """
    if not norm > 0:
        raise TopopruneError(f"channel norm must be > 0 (1, 2, inf, ...), got {norm}")
    w = np.asarray(layer.weight)
    c_out, c_in_g = w.shape[:2]
    flat = np.abs(w.reshape(c_out, c_in_g, -1))
    if np.isinf(norm):
        slices = flat.max(axis=2)
    elif norm == 1:
        slices = flat.sum(axis=2)
    elif norm == 2:
        slices = np.sqrt(np.einsum("oik,oik->oi", flat, flat))
    else:
        slices = (flat**norm).sum(axis=2) ** (1.0 / norm)
    if layer.groups == 1:
        m = slices
    else:
        m = np.zeros((c_out, c_in_g * layer.groups), dtype=slices.dtype)
        out_per_group = c_out // layer.groups
        for g in range(layer.groups):
            rows = slice(g * out_per_group, (g + 1) * out_per_group)
            m[rows, g * c_in_g : (g + 1) * c_in_g] = slices[rows]
    if include_bias and layer.bias is not None:
        m = np.concatenate([m, np.abs(np.asarray(layer.bias, dtype=m.dtype)).reshape(-1, 1)], 1)
    return m


def _valid_positions(size: int, out: int, kernel: int, stride: int, pad: int, dil: int):
    """For each kernel offset, the first and one-past-last output index whose tap lands inside
    the unpadded input: ``0 <= o * stride - pad + d * dil < size``."""
    lo = np.empty(kernel, np.int64)
    hi = np.empty(kernel, np.int64)
    for d in range(kernel):
        shift = d * dil - pad
        first = 0 if shift >= 0 else -(shift // stride)  # ceil(-shift / stride)
        last = min((size - 1 - shift) // stride, out - 1)
        lo[d] = first
        hi[d] = max(first, last + 1)
    return lo, hi


class ConvToeplitzGraph:
    """The exact unrolled graph of a conv layer at one input size.

    Input vertices are the ``C_in * H * W`` entries of the layer's (unpadded) input, output
    vertices the ``C_out * H_out * W_out`` entries of its output, and there is one edge per
    nonzero of the unrolled matrix, valued ``|w|``. Stride, zero padding, dilation and groups are
    honoured. Zero padding contributes no edge: a padded position is a constant, not an input, so
    it is not a vertex either. The same kernel weight sits on many edges; the spanning-forest
    kernel walks that structure instead of materialising the matrix.
    """

    def __init__(self, layer: ConvLayer) -> None:
        if layer.padding_mode != "zeros":
            raise TopopruneError(
                f"layer {layer.name!r}: the exact Toeplitz graph needs zero padding, got "
                f"padding_mode={layer.padding_mode!r} (allowed: 'zeros')"
            )
        self.layer = layer
        self.weight = np.ascontiguousarray(np.asarray(layer.weight))
        self.h, self.w = layer.require_input_size()
        self.h_out, self.w_out = layer.output_size
        if self.h_out < 1 or self.w_out < 1:
            raise TopopruneError(
                f"layer {layer.name!r}: input {self.h}x{self.w} gives an empty output"
            )
        kh, kw = layer.kernel_size
        self._lo_y, self._hi_y = _valid_positions(
            self.h, self.h_out, kh, layer.stride[0], layer.padding[0], layer.dilation[0]
        )
        self._lo_x, self._hi_x = _valid_positions(
            self.w, self.w_out, kw, layer.stride[1], layer.padding[1], layer.dilation[1]
        )

    @property
    def n_inputs(self) -> int:
        return self.layer.in_channels * self.h * self.w

    @property
    def n_outputs(self) -> int:
        return self.layer.out_channels * self.h_out * self.w_out

    @property
    def n_vertices(self) -> int:
        return self.n_inputs + self.n_outputs

    def _taps(self) -> np.ndarray:
        """Number of output positions each kernel offset ``(dy, dx)`` reaches: ``(k_h, k_w)``."""
        return np.outer(self._hi_y - self._lo_y, self._hi_x - self._lo_x)

    @property
    def n_edges(self) -> int:
        """Edges of the graph of the actual weights: nonzeros of the unrolled matrix."""
        nonzero = (self.weight != 0).sum(axis=(0, 1))
        return int((nonzero * self._taps()).sum())

    @property
    def n_structural_edges(self) -> int:
        """Edges if every kernel weight were nonzero: the architecture's graph."""
        c_out, c_in_g = self.weight.shape[:2]
        return int(c_out * c_in_g * self._taps().sum())

    def structural_forest_size(self) -> int:
        """Size of a spanning forest of the architecture's graph (all kernel weights nonzero).

        Channels inside a group are completely connected at every tap, so a group's graph
        splits exactly like the one-channel spatial graph: each spatial component with ``a``
        inputs and ``b`` outputs gives ``c_in_g * a + c_out_g * b - 1`` tree edges per group.
        """
        kh, kw = self.layer.kernel_size
        n_in = self.h * self.w
        n_out = self.h_out * self.w_out
        parent = np.arange(n_in + n_out, dtype=np.int64)
        size = np.ones(n_in + n_out, np.int64)
        sy, sx = self.layer.stride
        py, px = self.layer.padding
        dy_, dx_ = self.layer.dilation
        _spatial_union(
            parent, size, self.w, self.w_out, kh, kw, sy, sx, py, px, dy_, dx_,
            self._lo_y, self._hi_y, self._lo_x, self._hi_x, n_in,
        )
        roots = _roots(parent)
        touched = np.zeros(n_in + n_out, bool)
        touched[n_in:] = True  # every output position has at least one in-bounds tap
        touched[_touched_inputs(self._lo_y, self._hi_y, self._lo_x, self._hi_x, self.h, self.w,
                                sy, sx, py, px, dy_, dx_)] = True
        c_out, c_in_g = self.weight.shape[:2]
        c_out_g = c_out // self.layer.groups
        n = n_in + n_out
        a = np.bincount(roots[:n_in][touched[:n_in]], minlength=n)  # inputs per component
        b = np.bincount(roots[n_in:], minlength=n)  # outputs per component
        real = (a > 0) & (b > 0)
        total = int((c_in_g * a[real] + c_out_g * b[real] - 1).sum())
        return total * self.layer.groups

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Materialise ``(out_vertex, in_vertex, |w|)`` for every edge. For tests and small
        layers: a VGG layer has tens of millions of edges."""
        c_out, c_in_g, kh, kw = self.weight.shape
        c_out_g = c_out // self.layer.groups
        sy, sx = self.layer.stride
        py, px = self.layer.padding
        dly, dlx = self.layer.dilation
        outs, ins, vals = [], [], []
        for o in range(c_out):
            g = o // c_out_g
            for ig in range(c_in_g):
                i = g * c_in_g + ig
                for dy in range(kh):
                    for dx in range(kw):
                        v = self.weight[o, ig, dy, dx]
                        if v == 0:
                            continue
                        oy = np.arange(self._lo_y[dy], self._hi_y[dy])
                        ox = np.arange(self._lo_x[dx], self._hi_x[dx])
                        if oy.size == 0 or ox.size == 0:
                            continue
                        yy, xx = np.meshgrid(oy, ox, indexing="ij")
                        iy = yy * sy - py + dy * dly
                        ix = xx * sx - px + dx * dlx
                        outs.append((o * self.h_out + yy) * self.w_out + xx)
                        ins.append((i * self.h + iy) * self.w + ix)
                        vals.append(np.full(yy.size, abs(v), dtype=self.weight.dtype))
        if not outs:
            empty = np.empty(0, np.int64)
            return empty, empty, np.empty(0, self.weight.dtype)
        return (
            np.concatenate([x.ravel() for x in outs]),
            np.concatenate([x.ravel() for x in ins]),
            np.concatenate(vals),
        )

    def maximum_spanning_tree(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Maximum spanning forest as ``(out_vertex, in_vertex, |w|)``, value descending.

        Kruskal over the kernel weights sorted once (``C_out * C_in/g * k_h * k_w`` of them);
        each weight's edges are its in-bounds output positions. Stops as soon as the forest
        spans every vertex.
        """
        flat = np.abs(self.weight.reshape(-1))
        if not np.isfinite(flat).all():
            raise TopopruneError(
                f"layer {self.layer.name!r}: weights contain NaN or infinite values; only "
                "finite weights are allowed"
            )
        order = np.argsort(-flat, kind="stable")
        order = order[flat[order] > 0]
        c_out, c_in_g, kh, kw = self.weight.shape
        return _toeplitz_kruskal(
            order, flat, c_out, c_in_g, kh, kw, c_out // self.layer.groups,
            self.h, self.w, self.h_out, self.w_out,
            self.layer.stride[0], self.layer.stride[1],
            self.layer.padding[0], self.layer.padding[1],
            self.layer.dilation[0], self.layer.dilation[1],
            self._lo_y, self._hi_y, self._lo_x, self._hi_x,
        )


@nb.njit(cache=True, nogil=True)
def _roots(parent):
    out = np.empty(parent.shape[0], np.int64)
    for v in range(parent.shape[0]):
        x = v
        while parent[x] != x:
            x = parent[x]
        out[v] = x
    return out


@nb.njit(cache=True, nogil=True)
def _spatial_union(parent, size, w, w_out, kh, kw, sy, sx, py, px, dly, dlx,
                   lo_y, hi_y, lo_x, hi_x, n_in):
    for dy in range(kh):
        for dx in range(kw):
            for oy in range(lo_y[dy], hi_y[dy]):
                iy = oy * sy - py + dy * dly
                for ox in range(lo_x[dx], hi_x[dx]):
                    ix = ox * sx - px + dx * dlx
                    _union(parent, size, iy * w + ix, n_in + oy * w_out + ox)


@nb.njit(cache=True, nogil=True)
def _touched_inputs(lo_y, hi_y, lo_x, hi_x, h, w, sy, sx, py, px, dly, dlx):
    hit = np.zeros(h * w, np.bool_)
    for dy in range(lo_y.shape[0]):
        for dx in range(lo_x.shape[0]):
            for oy in range(lo_y[dy], hi_y[dy]):
                iy = oy * sy - py + dy * dly
                for ox in range(lo_x[dx], hi_x[dx]):
                    hit[iy * w + ox * sx - px + dx * dlx] = True
    return np.nonzero(hit)[0]


@nb.njit(cache=True, nogil=True)
def _toeplitz_kruskal(order, flat, c_out, c_in_g, kh, kw, c_out_g, h, w, h_out, w_out,
                      sy, sx, py, px, dly, dlx, lo_y, hi_y, lo_x, hi_x):
    c_in = c_in_g * (c_out // c_out_g)
    n_in = c_in * h * w
    n_vertices = n_in + c_out * h_out * w_out
    parent = np.arange(n_vertices, dtype=np.int64)
    size = np.ones(n_vertices, np.int64)
    out_o = np.empty(n_vertices - 1, np.int64)
    out_i = np.empty(n_vertices - 1, np.int64)
    out_v = np.empty(n_vertices - 1, flat.dtype)
    n = 0
    per_o = c_in_g * kh * kw
    for k in range(order.shape[0]):
        if n >= n_vertices - 1:
            break
        e = order[k]
        o = e // per_o
        rem = e - o * per_o
        ig = rem // (kh * kw)
        rem -= ig * kh * kw
        dy = rem // kw
        dx = rem - dy * kw
        i = (o // c_out_g) * c_in_g + ig
        v = flat[e]
        for oy in range(lo_y[dy], hi_y[dy]):
            iy = oy * sy - py + dy * dly
            in_row = (i * h + iy) * w
            out_row = (o * h_out + oy) * w_out
            for ox in range(lo_x[dx], hi_x[dx]):
                ov = out_row + ox
                iv = in_row + ox * sx - px + dx * dlx
                if _union(parent, size, n_in + ov, iv):
                    out_o[n] = ov
                    out_i[n] = iv
                    out_v[n] = v
                    n += 1
    return out_o[:n].copy(), out_i[:n].copy(), out_v[:n].copy()
