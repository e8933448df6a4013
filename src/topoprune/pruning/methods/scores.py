"""Score-based filter pruning: an importance per unit, the lowest ``int(C_out * sparsity)`` go.

Each class names one entry of the importance registry
(:data:`~topoprune.pruning.importance.IMPORTANCES`). A layer coupled to others through a residual
addition is scored by the sum of the coupled layers' scores, so they lose the same units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from .base import LayerRequest, PruneContext, StructuredMethod, register_method

__all__ = ["ScoreMethod", "L1", "L2", "FPGM", "RandomFilters"]


class ScoreMethod(StructuredMethod):
    """Remove the units with the lowest importance (``importance`` names a registered one)."""

    importance: ClassVar[str]

    def choose(self, ctx: PruneContext, layer: LayerRequest) -> Sequence[int]:
        from ..importance import IMPORTANCES  # torch: imported when pruning, not when listing
        from ..selection import filters_to_prune

        score = IMPORTANCES.get(self.importance)
        layout = layer.units()  # one weight row per unit: filter, neuron or attention head
        members = [layer.module] + [ctx.modules[n] for n in layer.coupled]
        scores = sum(score(layout.weight(m), seed=ctx.seed) for m in members)
        return filters_to_prune(scores.numpy(), layer.sparsity)


@register_method("l1")
class L1(ScoreMethod):
    """L1 filter pruning (Li et al., ICLR 2017): the smallest ``sum |W[j]|`` go."""

    importance: ClassVar[str] = "l1"
    summary: ClassVar[str] = "smallest L1 norm of the filter/neuron goes (Li et al. 2017)"


@register_method("l2")
class L2(ScoreMethod):
    """L2 filter pruning (NNI's L2FilterPruner): the smallest ``||W[j]||_2`` go."""

    importance: ClassVar[str] = "l2"
    summary: ClassVar[str] = "smallest L2 norm goes (NNI's L2FilterPruner)"


@register_method("fpgm")
class FPGM(ScoreMethod):
    """FPGM (He et al., CVPR 2019): the filters nearest the geometric median go."""

    importance: ClassVar[str] = "fpgm"
    summary: ClassVar[str] = "filters nearest the geometric median go (He et al. 2019)"


@register_method("random")
class RandomFilters(ScoreMethod):
    """Uniformly random units, seeded: the baseline any criterion must beat."""

    importance: ClassVar[str] = "random"
    summary: ClassVar[str] = "seeded random filters/neurons: the baseline to beat"
