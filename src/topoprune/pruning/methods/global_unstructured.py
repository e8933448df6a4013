"""One-shot global unstructured baselines: LAMP (data-free), SNIP (labelled data) and PHEW
(data-free, path-based). Each masks the model through :func:`~topoprune.pruning.prune_weights`
and ranks every targeted weight together (global scope only); the kept count is exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .base import ApplyRequest, PruneOutcome, UnstructuredMethod, register_method

if TYPE_CHECKING:
    import torch

__all__ = ["LAMP"]


def _outcome(model, rec, **extra) -> PruneOutcome:
    from ..masks import prunable_layers

    return PruneOutcome(model, {"rounds": [rec.to_dict()], "targets": list(prunable_layers(model)),
                                "warnings": rec.warnings, **extra})


@register_method("lamp")
class LAMP(UnstructuredMethod):
    """LAMP (Lee, Park, Mo, Ahn & Shin, ICLR 2021): layer-adaptive magnitude scores, global."""

    summary: ClassVar[str] = ("one-shot, data-free: the lowest LAMP scores u_i / sum_{j>=i} u_j go, global "
                              "(Lee et al., ICLR 2021)")

    def apply(self, model: torch.nn.Module, request: ApplyRequest) -> PruneOutcome:
        from ..masks import prune_weights

        _, rec = prune_weights(model, request.sparsity, method="lamp", inplace=True)
        return _outcome(model, rec)
