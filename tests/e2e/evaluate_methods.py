"""Candidate methods for the ``topoprune evaluate`` tests: one that works, and ones that break
the contract in the ways the command must survive."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from topoprune import StructuredMethod, UnstructuredMethod
from topoprune.pruning.methods import PruneOutcome


class LowVariance(StructuredMethod):
    """Units whose weights vary least go."""

    summary: ClassVar[str] = "the units whose weights vary least go"

    def choose(self, ctx, layer):
        units = layer.units()
        w = units.weight(layer.module).detach().flatten(1)
        return torch.argsort(w.var(dim=1))[: int(units.count * layer.sparsity)].tolist()


class LayerMagnitude(UnstructuredMethod):
    """The smallest |w| of each layer go (per-layer magnitude), through topoprune's own masks."""

    summary: ClassVar[str] = "the smallest |w| of each layer go"

    def apply(self, model, request):
        from topoprune import prune_weights

        _, record = prune_weights(model, request.sparsity, scope="local", inplace=True)
        return PruneOutcome(model, {"rounds": [record.to_dict()]})


class OneUnit(StructuredMethod):
    """Always removes one unit, whatever the sparsity (the wrong number)."""

    def choose(self, ctx, layer):
        return [0]


class Raises(StructuredMethod):
    """Raises inside choose (a bug in the user's code)."""

    def choose(self, ctx, layer):
        raise ValueError("boom in the candidate")


class DiesInWorker(StructuredMethod):
    """Ends its process at once (a crash that no except clause sees): for worker processes only."""

    def choose(self, ctx, layer):
        import os

        os._exit(3)


class Unpicklable(StructuredMethod):
    """Raises an exception that cannot be rebuilt from its pickle (its __init__ needs two values)."""

    def choose(self, ctx, layer):
        raise OddError("the method's own words", 7)


class OddError(Exception):
    def __init__(self, text: str, code: int) -> None:
        super().__init__(f"{text} (code {code})")


class WrongMask(UnstructuredMethod):
    """Masks each Linear layer with a mask of the wrong shape that torch would broadcast."""

    def apply(self, model, request):
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.utils.prune.identity(m, "weight")
                m.weight_mask = torch.ones(1, m.weight_orig.shape[1])
        return PruneOutcome(model, {})


class NeedsSetting(StructuredMethod):
    """A setting without a default: cannot be built from its class alone."""

    k: int = Field(description="no default")

    def choose(self, ctx, layer):
        return []


class NotAMethod:
    """Not a pruning method at all."""


class BareMasks(UnstructuredMethod):
    """Masks every Linear layer with torch's own l1_unstructured and records nothing but the
    layers: a user's method need not record per-layer counts for its controls."""

    summary: ClassVar[str] = "the smallest |w| of each Linear layer go (torch's l1_unstructured)"

    def apply(self, model, request):
        names = []
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.utils.prune.l1_unstructured(m, "weight", amount=request.sparsity)
                names.append(name)
        return PruneOutcome(model, {"targets": names})
