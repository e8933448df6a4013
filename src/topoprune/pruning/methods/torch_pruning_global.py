"""Torch-Pruning's own global pruning, as a peer under the same target.

``MetaPruner(global_pruning=True)`` with its group-norm importance (``GroupMagnitudeImportance``,
p=2, over each whole coupled group, BatchNorm included) ranks every channel of the model with
one threshold; its ``pruning_ratio`` is searched by bisection until the pruned model meets the
target count (it has no FLOPs target of its own). Only torch-pruning's public API is used: the
pruner is stepped interactively and each group's root layer and indices are read, without
pruning, from a copy of the model; the removal itself is done by topoprune's surgeon like every
other method's, so the counts, the record and the saved model are directly comparable.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from .base import LayerRequest, PruneContext, StructuredMethod, register_method

__all__ = ["TorchPruningGlobal"]


@register_method("tp-global")
class TorchPruningGlobal(StructuredMethod):
    """Torch-Pruning's ``MetaPruner(global_pruning=True)`` with group-norm importance, at the target."""

    summary: ClassVar[str] = ("torch-pruning's global pruning (group-norm importance, one threshold) at the "
                              "same target (peer; needs target=)")
    needs_target: ClassVar[bool] = True

    max_ratio: float = Field(0.9, gt=0, lt=1, description="torch-pruning's max_pruning_ratio per layer")
    iterations: int = Field(30, ge=4, le=200, description="bisection steps on pruning_ratio")

    def _choice(self, problem, ratio: float) -> dict[str, list[int]]:
        """Units per group that torch-pruning removes at ``ratio`` (read, not applied)."""
        import torch_pruning as tpr

        model = copy.deepcopy(problem.model)
        names = {m: n for n, m in model.named_modules()}
        members = {n: g.leader for g in problem.groups for n in (g.leader, *g.coupled)}
        from ...models.layers import weighted_layers

        modules = dict(model.named_modules())
        ignored = [modules[n] for n in weighted_layers(model) if n not in members]
        example = problem.example_inputs
        from ..trace_memory import guard_memory

        pruner = guard_memory(lambda: tpr.pruner.MetaPruner(
            model, example, importance=tpr.importance.GroupMagnitudeImportance(p=2), global_pruning=True,
            pruning_ratio=ratio, max_pruning_ratio=self.max_ratio, ignored_layers=ignored), model=model)
        chosen: dict[str, list[int]] = {}
        for group in pruner.step(interactive=True):
            dep, idxs = group[0]
            leader = members.get(names.get(dep.target.module))
            if leader is not None:
                chosen[leader] = sorted(int(i) for i in idxs)
        return chosen

    def search_budget(self, problem):
        from ..allocation import Budget

        heads = [g.leader for g in problem.groups if (problem.layouts or {}).get(g.leader) is not None
                 and problem.layouts[g.leader].kind == "head"]
        if heads:
            from ...errors import TopopruneError

            raise TopopruneError(f"tp-global reads torch-pruning's channel choice, and {heads[0]!r} loses whole "
                                 "attention heads here; leave attention projections out (exclude=[...]) or use "
                                 "another method")
        lo, hi = 0.0, self.max_ratio
        best = None

        def rank(now: float) -> tuple:  # on the target band first, then the closest
            return (not problem.goal * 0.99 <= now <= problem.goal, abs(now - problem.goal))

        for _ in range(self.iterations):
            mid = (lo + hi) / 2
            chosen = self._choice(problem, mid)
            counts = [len(chosen.get(g.leader, [])) for g in problem.groups]
            now = problem.cost.count(counts)
            if best is None or rank(now) < rank(best[0]):
                best = (now, mid, chosen, counts)
            if problem.goal * 0.998 <= now <= problem.goal:
                break
            if now > problem.goal:
                lo = mid
            else:
                hi = mid
        _, ratio, chosen, counts = best
        units = {g.leader: chosen.get(g.leader, []) for g in problem.groups}
        return Budget(counts, {"pruning_ratio": ratio, "importance": "GroupMagnitudeImportance(p=2)"}, units=units)

    def choose(self, ctx: PruneContext, layer: LayerRequest) -> Sequence[int]:
        plan = ctx.state.get("budget")
        if plan is None or plan.budget.units is None:
            return []
        return plan.budget.units.get(layer.name, [])
