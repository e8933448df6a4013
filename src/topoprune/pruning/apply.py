"""One entry point for every method: what a runner calls for one cell.

Structured methods go through :func:`~topoprune.pruning.filters.prune_units` (a smaller copy of
the model); unstructured ones mask the model through their own ``apply``. Kept apart from
``methods/`` so that the method types never import the pruning engine that uses them.
"""

from __future__ import annotations

from torch import nn

from .filters import prune_units
from .methods.base import ApplyRequest, Method, PruneOutcome, StructuredMethod

__all__ = ["apply_method"]


def apply_method(method: Method, model: nn.Module, request: ApplyRequest) -> PruneOutcome:
    """Prune ``model`` with ``method`` at ``request.sparsity`` (structured: a pruned copy;
    unstructured: ``model`` masked in place)."""
    if isinstance(method, StructuredMethod):
        if request.target is not None:  # a budget comparison: the allocation sets each layer's sparsity
            pruned, info = prune_units(model, request.example_inputs, method=method, target=request.target,
                                       allocation=request.allocation or "uniform", labelled_sample=request.labelled,
                                       seed=request.seed, data_sample=request.sample)
        else:
            labelled = request.labelled if method.needs().labelled else None
            pruned, info = prune_units(model, request.example_inputs, method=method, sparsity=request.sparsity,
                                       seed=request.seed, data_sample=request.sample, labelled_sample=labelled)
        return PruneOutcome(pruned, {"info": info.to_dict()}, steps=info.steps)
    return method.apply(model, request)
