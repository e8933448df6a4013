"""Betti-number filter pruning (Kochar et al. 2021) as a registered method.

The Betti tables come from :func:`topoprune.pruning.betti.betti_table`, computed once per call on
the original model's layer outputs over a fixed data sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field

from ...errors import TopopruneError
from .base import LayerRequest, Needs, PruneContext, StructuredMethod, register_method

__all__ = ["Betti"]


@register_method("betti")
class Betti(StructuredMethod):
    """Units whose outputs on a data sample have the most Betti numbers go (Kochar et al.)."""

    summary: ClassVar[str] = ("units whose outputs on a data sample have the highest Betti "
                              "numbers go (Kochar et al. 2021)")

    samples: int = Field(256, ge=4, le=4096, description="training inputs in the data sample (a loop needs 4 points)")
    threshold: float | None = Field(None, ge=0, description="remove every unit above T; None: rank by sparsity")
    dim: Literal["total", "b0", "b1"] = Field("total", description="which Betti number ranks the units")
    quantile: float = Field(0.1, gt=0, lt=1, description="Rips scale: this quantile of pairwise distances")
    method: Literal["rips", "knn-geodesic"] = Field("rips", description="Rips at one scale, or one hop on the k-NN graph")
    k: int = Field(10, ge=1, le=1024, description="neighbours of the k-NN graph (method knn-geodesic)")

    def needs(self) -> Needs:
        return Needs(sample=self.samples)

    def sets_own_counts(self) -> bool:
        return self.threshold is not None  # every unit above the threshold goes, however many

    def prepare(self, ctx: PruneContext) -> None:
        # ctx.inputs is there: prune_units refuses a call without the sample needs() asks for.
        # Points: one per sample (conv) or per (sample, token) pair (a linear layer on tokens),
        # at most `samples` of them; a unit's cloud is its feature map, feature, or head's features.
        from ..betti import betti_table
        from ..units import unit_points

        layouts = {n: ctx.layout(n) for n in ctx.targets}
        clouds = unit_points(ctx.model, ctx.inputs, modules=ctx.modules, layouts=layouts,
                             names=list(ctx.targets), limit=self.samples, seed=ctx.seed)
        tables = {n: betti_table(o, 1, quantile=self.quantile, method=self.method, k=self.k)
                  for n, o in clouds.items()}
        ctx.state["betti"] = tables
        ctx.extra["betti"] = tables
        ctx.extra["betti_options"] = {"threshold": self.threshold, "dim": self.dim,
                                      "quantile": self.quantile, "method": self.method, "k": self.k,
                                      "samples": int(next(iter(clouds.values())).shape[0]) if clouds else 0}

    def choose(self, ctx: PruneContext, layer: LayerRequest) -> Sequence[int]:
        import numpy as np

        from ..selection import filters_to_prune

        rows = ctx.state["betti"][layer.name]
        values = np.array([r[self.dim] for r in rows], dtype=np.float64)
        if self.threshold is None:  # highest Betti numbers go (ties: lower index first)
            return filters_to_prune(-values, layer.sparsity)
        above = [j for j, v in enumerate(values) if v > self.threshold]
        if len(above) == len(values):
            raise TopopruneError(
                f"betti threshold={self.threshold:g} would remove all {len(values)} units of "
                f"{layer.name!r} ({self.dim} ranges {int(values.min())}..{int(values.max())}); at least "
                "one unit must stay: raise the threshold or prune by rank (no threshold)")
        return above
