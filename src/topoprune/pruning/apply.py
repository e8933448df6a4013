"""One entry point for every method: what a runner calls for one cell.

Structured methods go through :func:`~topoprune.pruning.filters.prune_units` (a smaller copy of
the model); unstructured ones mask the model through their own ``apply``. Kept apart from
``methods/`` so that the method types never import the pruning engine that uses them.
"""

from __future__ import annotations

from torch import nn

from ..errors import TopopruneError
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
    return checked_outcome(method, method.apply(model, request), sparsity=request.sparsity)


def checked_outcome(method: Method, outcome: object, *, sparsity: float | None = None) -> PruneOutcome:
    """An unstructured method's outcome, refused in one line naming the class when it is not a
    :class:`PruneOutcome` holding a module, when a mask does not have its weight's shape (torch
    would broadcast some of those silently), or, given the ``sparsity`` asked for, when the masks
    of its layers leave a share of weights more than 1 % (relative) away from ``1 - sparsity``, and
    more than half a weight per layer (or one weight) away in count (a per-layer count is rounded):
    a row compares methods at its sparsity, so it must hold that many weights. A record without
    ``targets`` gets the masked layers."""
    from ..models.layers import maskable_layers, weight_attr
    from .methods.unstructured import lands_on

    who = f"method {method.name!r} ({type(method).__name__})"
    if not isinstance(outcome, PruneOutcome) or not isinstance(outcome.model, nn.Module):
        got = type(outcome).__name__ if not isinstance(outcome, PruneOutcome) else type(outcome.model).__name__
        raise TopopruneError(f"{who}.apply returned {got}; allowed: a PruneOutcome(model=<the masked "
                             "nn.Module>, record={...})")
    if not isinstance(outcome.record, dict):
        raise TopopruneError(f"{who}.apply returned a record of type {type(outcome.record).__name__}; "
                             "allowed: a dict")
    masks = {}
    for name, m in maskable_layers(outcome.model).items():
        attr = weight_attr(m)
        mask = getattr(m, f"{attr}_mask", None)
        orig = getattr(m, f"{attr}_orig", None)
        if mask is None or orig is None:
            continue
        if tuple(mask.shape) != tuple(orig.shape):
            raise TopopruneError(f"{who} returned a mask of shape {tuple(mask.shape)} for layer {name!r}, "
                                 f"whose weight has shape {tuple(orig.shape)}; allowed: a mask of the "
                                 "weight's shape (torch.nn.utils.prune.custom_from_mask)")
        masks[name] = mask
    outcome.record.setdefault("targets", list(masks))
    targets = outcome.record["targets"]
    chosen = [masks[n] for n in masks if isinstance(targets, list) and n in targets] or list(masks.values())
    if sparsity and not chosen:
        raise TopopruneError(f"{who} masked no layer where sparsity {sparsity:g} was asked; allowed: "
                             "masks on its layers' weights (torch.nn.utils.prune.custom_from_mask)")
    if sparsity is not None and chosen:
        kept, total = sum(int((k != 0).sum()) for k in chosen), sum(k.numel() for k in chosen)
        got = 1 - kept / total
        # or off by rounding: each layer's count (local scope, torch's amount) is rounded by up to half a weight
        if not (lands_on(got, sparsity) or abs(kept - (1 - sparsity) * total) <= max(1.0, len(chosen) / 2)):
            raise TopopruneError(f"{who} left {kept} of {total} weights (sparsity {got:.4f}) where "
                                 f"{sparsity:g} was asked; allowed: masks that remove that share of the "
                                 "weights of its layers, within 1 % (or half a weight per layer)")
    return outcome
