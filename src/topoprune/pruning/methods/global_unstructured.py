"""One-shot global unstructured baselines: LAMP (data-free), SNIP (labelled data) and PHEW
(data-free, path-based). Each masks the model through :func:`~topoprune.pruning.prune_weights`
and ranks every targeted weight together (global scope only); the kept count is exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from ...errors import TopopruneError
from .base import ApplyRequest, Needs, PruneOutcome, UnstructuredMethod, register_method

if TYPE_CHECKING:
    import torch

__all__ = ["LAMP", "SNIP", "PHEW"]


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


@register_method("snip")
class SNIP(UnstructuredMethod):
    """SNIP (Lee, Ajanthan & Torr, ICLR 2019): connection sensitivity |g * w|, global, one shot.

    ``g`` is the cross-entropy gradient averaged over ``batches`` batches of ``batch_size``
    labelled training examples (the cell's seeded labelled sample, split in order); works at
    initialisation or on a trained network. Equal scores go in global order (see
    :func:`~topoprune.pruning.prune_weights`).
    """

    summary: ClassVar[str] = ("one-shot, needs labelled data: the lowest |g * w| go, global (Lee, Ajanthan & "
                              "Torr, ICLR 2019)")
    batches: int = Field(1, ge=1, le=1000, description="labelled training batches the gradient is averaged over")
    batch_size: int = Field(128, ge=1, le=100_000, description="examples per batch")

    def needs(self) -> Needs:
        return Needs(labelled=self.batches * self.batch_size)

    def apply(self, model: torch.nn.Module, request: ApplyRequest) -> PruneOutcome:
        from ..masks import prune_weights
        from ..snip import draw_labelled, labelled_batches

        labelled = request.labelled
        if labelled is None and request.data is not None:
            labelled = draw_labelled(request.data, self.batches * self.batch_size, request.seed)
        if labelled is None:
            raise TopopruneError("method 'snip' needs labelled training data: an ApplyRequest with "
                                 "labelled=(inputs, labels) or data=")
        batches = labelled_batches(labelled, self.batch_size)[: self.batches]
        _, rec = prune_weights(model, request.sparsity, method="snip", inplace=True, seed=request.seed,
                               labelled_sample=batches)
        return _outcome(model, rec, batches=len(batches))


@register_method("phew")
class PHEW(UnstructuredMethod):
    """PHEW (Patil & Dovrolis, ICML 2021): keep the weights on |w|-biased random input-output walks.

    Data-free and seeded by the cell's seed; conv layers are walked on their channel graph and
    keep whole kernel slices; the kept count is exact (see :mod:`topoprune.pruning.phew`). Works
    on models whose prunable layers form a chain (MLPs, plain CNNs).
    """

    summary: ClassVar[str] = ("one-shot, data-free: keeps the weights on random input-output walks biased by "
                              "|w| (Patil & Dovrolis, ICML 2021)")

    def apply(self, model: torch.nn.Module, request: ApplyRequest) -> PruneOutcome:
        from ..masks import prune_weights

        _, rec = prune_weights(model, request.sparsity, method="phew", inplace=True, seed=request.seed)
        return _outcome(model, rec)
