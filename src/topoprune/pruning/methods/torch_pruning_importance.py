"""Structured baselines scored by Torch-Pruning's public importance classes over the coupled
group: first-order Taylor (needs labelled data) and DepGraph's group norm (data-free).

Scores are computed once per call on the model before any removal; each layer then loses its
``int(units * sparsity)`` lowest-scored units (the NNI rule of the other score methods, ties by
the lower index). The scores are per channel, so attention projections (whose units are heads)
are refused: leave them out with ``exclude=[...]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field

from ...errors import TopopruneError
from .base import LayerRequest, Needs, PruneContext, StructuredMethod, register_method

__all__ = ["Taylor", "GroupNorm"]


class _GroupImportance(StructuredMethod):
    def importance(self):
        raise NotImplementedError

    def prepare(self, ctx: PruneContext) -> None:
        from ..group_importance import group_scores

        names = [n for n in ctx.targets if n in ctx.surgeon.modules]
        ctx.state["scores"] = group_scores(ctx.surgeon, names, self.importance())

    def choose(self, ctx: PruneContext, layer: LayerRequest) -> Sequence[int]:
        from ..selection import filters_to_prune

        layout = layer.units()
        if layout.kind == "head" or layout.grouped:
            raise TopopruneError(f"method {self.name!r} scores channels, and {layer.name!r} loses whole "
                                 f"{layout.kind}s; leave it out (exclude=[{layer.name!r}]) or use another method")
        scores = ctx.state.get("scores", {}).get(layer.name)
        if scores is None:
            return []
        return filters_to_prune(scores, layer.sparsity)


@register_method("taylor")
class Taylor(_GroupImportance):
    """First-order Taylor importance (Molchanov et al., CVPR 2019), via Torch-Pruning's ``TaylorImportance``.

    Settings passed to ``torch_pruning.importance.TaylorImportance``: ``group_reduction="mean"``,
    ``normalizer="mean"``, ``bias=False`` (its defaults), and ``multivariable`` (default
    ``False``: ``sum |g * w|`` over each unit's parameters; ``True``: ``|sum g * w|``). ``g`` is
    the cross-entropy gradient summed over ``batches`` labelled training batches of
    ``batch_size`` (one ``backward()`` each, training mode; BatchNorm statistics restored).
    Direct use: ``prune_units(..., labelled_sample=(x, y))``, split in order into the batches.
    """

    summary: ClassVar[str] = ("structured, needs labelled data: first-order Taylor |g * w| over the coupled "
                              "group (Molchanov et al., CVPR 2019; torch-pruning's TaylorImportance)")
    batches: int = Field(1, ge=1, le=1000, description="labelled training batches the gradient is accumulated over")
    batch_size: int = Field(128, ge=1, le=100_000, description="examples per batch")
    multivariable: bool = Field(False, description="score |sum g * w| per unit instead of sum |g * w|")

    def needs(self) -> Needs:
        return Needs(labelled=self.batches * self.batch_size)

    def importance(self):
        import torch_pruning as tpr

        return tpr.importance.TaylorImportance(group_reduction="mean", normalizer="mean",
                                               multivariable=self.multivariable)

    def prepare(self, ctx: PruneContext) -> None:
        from ..group_importance import accumulated_gradients
        from ..snip import labelled_batches

        if ctx.labelled is None:
            raise TopopruneError("method 'taylor' needs labelled training data: pass "
                                 "prune_units(..., labelled_sample=(inputs, labels))")
        batches = labelled_batches(ctx.labelled, self.batch_size)[: self.batches]
        with accumulated_gradients(ctx.model, batches, seed=ctx.seed):
            super().prepare(ctx)
        ctx.extra["taylor"] = {"batches": len(batches), "multivariable": self.multivariable}


@register_method("group-norm")
class GroupNorm(_GroupImportance):
    """Group norm (DepGraph, Fang et al., CVPR 2023), via Torch-Pruning's ``GroupMagnitudeImportance``.

    Settings passed to ``torch_pruning.importance.GroupMagnitudeImportance``: ``p`` (default 2),
    ``group_reduction="mean"``, ``normalizer="mean"``, ``bias=False`` (its defaults).
    """

    summary: ClassVar[str] = ("structured, data-free: the L2 norm over the whole coupled group (DepGraph, "
                              "Fang et al., CVPR 2023; torch-pruning's GroupMagnitudeImportance)")
    p: Literal[1, 2] = Field(2, description="norm degree of torch-pruning's GroupMagnitudeImportance")

    def importance(self):
        import torch_pruning as tpr

        return tpr.importance.GroupMagnitudeImportance(p=self.p, group_reduction="mean", normalizer="mean")
