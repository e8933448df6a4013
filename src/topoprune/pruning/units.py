"""The units a structured method chooses among, for any layer: filters, neurons or attention heads.

A conv layer's units are its filters (output channels); a linear layer's are its output features
(neurons); an attention projection's are its heads, each ``head_dim`` consecutive features (of
each of the q, k and v segments when one layer computes all three). Every method sees a layer
through its :class:`UnitLayout`:

- :meth:`UnitLayout.weight` gives one row per unit: ``(C_out, C_in, k, k)`` for a conv,
  ``(out, in)`` for a linear layer (Hugging Face ``Conv1D`` transposed), ``(heads, in, d)`` for
  heads (``d`` = head size times segments), so L1/L2/FPGM score a head by all its weights and the
  channel graph of a head is the 2-norm of its block per input feature.
- :meth:`UnitLayout.points` turns a layer's output into a point cloud per unit, ``(points,
  units, dims)``: a conv's points are the samples and each point is the filter's feature map; a
  linear layer on tokens ``(N, T, F)`` has one point per (sample, token) pair and one dimension
  per unit (a head: its ``d`` features). This is what Betti pruning and the GA's activation
  fitness look at, so a transformer's units are features, not tokens.
- :meth:`UnitLayout.features` maps chosen units back to the output-feature indices the surgeon
  removes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..models.layers import layer_kind, out_in_weight, out_units

__all__ = ["UnitLayout", "layout_of", "unit_points", "unit_layouts", "grouped_layouts"]


@dataclass(frozen=True)
class UnitLayout:
    """How a layer's ``features`` output features group into units: ``size`` consecutive features
    per unit in each of ``parts`` equal segments (fused q/k/v: 3)."""

    kind: str  # "filter" (conv), "neuron" (linear), "head" (attention projection)
    features: int
    size: int = 1
    parts: int = 1

    @property
    def count(self) -> int:
        """Units of the layer."""
        return self.features // (self.size * self.parts)

    def features_of(self, units: Sequence[int]) -> list[int]:
        """The output-feature indices of ``units`` (sorted)."""
        if self.size == 1 and self.parts == 1:
            return sorted(int(u) for u in units)
        seg = self.features // self.parts
        return sorted(p * seg + int(u) * self.size + j for u in units for p in range(self.parts)
                      for j in range(self.size))

    @property
    def grouped(self) -> bool:
        """Filters or neurons that go as position sets, one at the same offset in each of
        ``parts`` channel groups (they feed or are a grouped convolution; see
        :func:`grouped_layouts`)."""
        return self.kind != "head" and self.parts > 1

    def weight(self, module: nn.Module, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's weight with one row per unit (see the module docstring)."""
        w = out_in_weight(module, weight)
        if self.grouped:  # (parts * count, in, ...) -> (count, parts * in, ...): a unit's filters side by side
            rest = tuple(w.shape[1:])
            return (w.reshape(self.parts, self.count, *rest).movedim(0, 1)
                    .reshape(self.count, self.parts * rest[0], *rest[1:]))
        if self.kind != "head":
            return w
        n_in = w.shape[1]
        # (parts * heads * d, in) -> (parts, heads, d, in) -> (heads, in, parts, d) -> (heads, in, parts*d)
        return (w.reshape(self.parts, self.count, self.size, n_in).permute(1, 3, 0, 2)
                .reshape(self.count, n_in, self.parts * self.size))

    def points(self, output: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """A layer output as per-unit point clouds ``(points, units, dims)``; ``mask`` (one bool
        per point, e.g. a flattened attention mask) drops padding tokens."""
        if self.grouped and self.kind == "filter":  # a unit's maps in every group, side by side
            n = output.shape[0]
            return (output.reshape(n, self.parts, self.count, -1).movedim(1, 2)
                    .reshape(n, self.count, -1))
        if self.kind == "filter":
            return output.reshape(output.shape[0], output.shape[1], -1)
        flat = output.reshape(-1, output.shape[-1])  # (sample, token) pairs as points
        if mask is not None and mask.numel() == flat.shape[0]:
            flat = flat[mask.reshape(-1).bool()]
        if self.grouped:
            return flat.reshape(flat.shape[0], self.parts, self.count).permute(0, 2, 1)
        if self.kind == "neuron":
            return flat[:, :, None]
        p = flat.shape[0]
        return flat.reshape(p, self.parts, self.count, self.size).permute(0, 2, 1, 3).reshape(
            p, self.count, self.parts * self.size)


def layout_of(module: nn.Module, *, head_dim: int | None = None, parts: int = 1) -> UnitLayout:
    """The unit layout of a weighted layer; ``head_dim`` makes its units attention heads."""
    n = out_units(module)
    if head_dim:
        return UnitLayout("head", n, head_dim, parts)
    return UnitLayout("filter" if layer_kind(module) == "conv" else "neuron", n)


def _token_mask(inputs: object) -> torch.Tensor | None:
    """The attention mask of dict inputs (``attention_mask``), as one bool per (sample, token)."""
    if isinstance(inputs, dict) and isinstance(inputs.get("attention_mask"), torch.Tensor):
        return inputs["attention_mask"].reshape(-1) > 0
    return None


def unit_points(model: nn.Module, inputs: object, *, modules: dict[str, nn.Module],
                layouts: dict[str, UnitLayout], names: Sequence[str], limit: int,
                seed: int) -> dict[str, torch.Tensor]:
    """Each named layer's outputs on the data sample ``inputs`` as per-unit point clouds
    ``(points, units, dims)`` (:meth:`UnitLayout.points`). Padding tokens (``attention_mask`` 0)
    are dropped; when (sample, token) pairs outnumber ``limit``, a seeded subset of ``limit``
    points is kept (the same positions for every layer of one sample size)."""
    from ..models.hooks import capture_outputs

    outs = capture_outputs(model, modules, list(names), inputs)
    mask = _token_mask(inputs)
    clouds = {}
    for n, o in outs.items():
        layout = layouts[n]
        pts = layout.points(o, mask if layout.kind != "filter" else None)
        if pts.shape[0] > limit:
            g = torch.Generator().manual_seed(seed)
            pick = torch.randperm(pts.shape[0], generator=g)[:limit].sort().values
            pts = pts[pick]
        clouds[n] = pts
    return clouds


def unit_layouts(model: nn.Module, blocks: Sequence | None = None) -> dict[str, UnitLayout]:
    """What a unit is in every weighted layer of ``model``, as :func:`~topoprune.pruning.
    prune_units` sees it: a filter or a neuron, and for an attention block's projections a
    head (``blocks``: the model's :func:`~topoprune.models.attention.find_attention`, found here
    if not given). Unit indices in a prune's record count these units."""
    from ..models.attention import find_attention
    from ..models.layers import weighted_layers

    modules = dict(model.named_modules())
    layouts = {n: layout_of(modules[n]) for n in weighted_layers(model)}
    for b in find_attention(model) if blocks is None else blocks:
        for p in b.projections:
            layouts[p] = layout_of(modules[p], head_dim=b.head_dim, parts=b.parts)
    return layouts


def grouped_layouts(layouts: dict[str, UnitLayout], surgeon, names: Sequence[str]) -> dict[str, UnitLayout]:
    """``layouts`` with each named filter/neuron layer whose units pass through a grouped
    convolution (RegNet, ResNeXt: :meth:`~topoprune.pruning.surgery.Surgeon.channel_groups`)
    turned into position sets: a unit is one channel at the same offset in each of the ``g``
    groups, so every group keeps the same width and the grouped conv stays valid. A layer has
    ``features // g`` such units; all layers coupled with it get the same ``g``."""
    out = dict(layouts)
    for name in names:
        layout = layouts[name]
        if layout.kind == "head" or layout.parts != 1:
            continue
        try:
            groups = surgeon.channel_groups(name)
        except ValueError:  # not in torch-pruning's graph (called functionally): prune_units says so
            continue
        if groups > 1 and layout.features % groups == 0:
            out[name] = UnitLayout(layout.kind, layout.features, 1, groups)
    return out
