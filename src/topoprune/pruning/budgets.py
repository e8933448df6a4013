"""From a target to per-layer sparsities: the step ``prune_units(..., target=...)`` adds.

It finds the prunable groups (a leader layer and the layers coupled to it), measures the cost
model (:mod:`topoprune.pruning.targets`), gives the allocation (:mod:`topoprune.pruning.allocation`)
each group's per-unit importance and, when asked, a topological loss per group and an adaptive-BN
evaluator on labelled data, and turns the returned counts into the sparsities the method then
works with.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import TopopruneError
from .allocation import Allocation, Budget, BudgetProblem
from .methods.base import StructuredMethod
from .surgery import Surgeon
from .targets import CostModel, Group, Target, build_cost_model
from .units import UnitLayout

__all__ = ["BudgetPlan", "plan_budget", "sparsity_for", "AdaptiveBNEvaluator"]


def sparsity_for(removed: int, units: int) -> float:
    """A sparsity whose NNI count ``int(units * s)`` is exactly ``removed`` (float-safe)."""
    return 0.0 if removed <= 0 else (removed + 0.5) / units


@dataclass
class BudgetPlan:
    """The allocation's outcome: sparsities for the method, the counts, and the record."""

    sparsities: dict[str, float]
    fractions: dict[str, float]  # layer -> removed / units, for the per-layer record
    budget: Budget
    cost: CostModel
    groups: list[Group]
    record: dict = field(default_factory=dict)


def unit_scores(method: StructuredMethod, modules: Mapping[str, nn.Module], groups: list[Group],
                layouts: Mapping[str, UnitLayout], seed: int) -> tuple[list[np.ndarray], str]:
    """Each group's per-unit importance (coupled layers summed): the method's own importance
    when it has one (L1, L2, FPGM, random), else L1."""
    from .importance import IMPORTANCES

    name = getattr(type(method), "importance", None) or "l1"
    if not isinstance(name, str):
        name = "l1"
    score = IMPORTANCES.get(name)
    out = []
    for g in groups:
        layout = layouts[g.leader]
        members = [modules[g.leader]] + [modules[c] for c in g.coupled]
        out.append(sum(score(layout.weight(m).detach(), seed=seed) for m in members).double().numpy())
    return out, name


class AdaptiveBNEvaluator:
    """Accuracy of a candidate budget after adaptive BN (EagleEye): prune a copy of the model by
    the groups' importance, re-estimate its BatchNorm statistics on ``batches`` batches of the
    given inputs, and measure accuracy on ``eval_samples`` others (disjoint). ``data`` is
    ``(inputs, labels)``; the first ``eval_samples`` are the evaluation set, the rest feed BN."""

    def __init__(self, model: nn.Module, example_inputs: Any, groups: list[Group], scores: list[np.ndarray],
                 layouts: Mapping[str, UnitLayout], data: tuple, *, batches: int = 20, batch_size: int = 64,
                 eval_samples: int = 1000, seed: int = 0) -> None:
        x, y = data
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.shape[0] != y.shape[0]:
            raise TopopruneError("data: bad value; allowed: a pair (inputs, labels) of tensors with as many "
                                 "labels as inputs")
        n_eval = min(eval_samples, x.shape[0] // 2)
        if n_eval < 1:
            raise TopopruneError(f"data: {x.shape[0]} inputs are too few; allowed: at least 2 (half are held "
                                 "out to evaluate, half feed BatchNorm)")
        self.eval_x, self.eval_y = x[:n_eval], y[:n_eval]
        rest = x[n_eval:]
        g = torch.Generator().manual_seed(seed)
        self.calibration = [rest[torch.randint(0, rest.shape[0], (min(batch_size, rest.shape[0]),), generator=g)]
                            for _ in range(batches)]
        self.model, self.example_inputs, self.groups, self.layouts = model, example_inputs, groups, layouts
        self.orders = [np.argsort(s, kind="stable") for s in scores]
        self.calls = 0

    def prune_copy(self, removed, units: Mapping[str, list[int]] | None = None) -> nn.Module:
        """A copy of the model with ``removed[i]`` least important units of group ``i`` gone (or
        the given unit sets)."""
        work = copy.deepcopy(self.model)
        surgeon = Surgeon(work, self.example_inputs)
        for g, k, order in zip(self.groups, removed, self.orders):
            chosen = (units or {}).get(g.leader)
            if chosen is None:
                chosen = sorted(int(u) for u in order[: int(k)])
            if chosen:
                surgeon.remove(g.leader, self.layouts[g.leader].features_of(chosen))
        return work

    def __call__(self, removed, units: Mapping[str, list[int]] | None = None) -> float:
        from ..train.bn import recalibrate_bn

        self.calls += 1
        work = self.prune_copy(removed, units)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a model without BatchNorm: recalibration is a no-op
            recalibrate_bn(work, self.calibration, batches=len(self.calibration))
        work.eval()
        device = next(work.parameters()).device
        correct = 0
        with torch.no_grad():
            for i in range(0, self.eval_x.shape[0], 256):
                out = work(self.eval_x[i:i + 256].to(device))
                if not isinstance(out, torch.Tensor):
                    from ..models.inputs import output_tensors

                    out = output_tensors(out)[0]
                correct += int((out.argmax(-1).cpu() == self.eval_y[i:i + 256]).sum())
        return correct / self.eval_x.shape[0]


def plan_budget(*, model: nn.Module, example_inputs: Any, surgeon: Surgeon, layouts: Mapping[str, UnitLayout],
                targets: Mapping[str, float], method: StructuredMethod, target: Target, allocation: Allocation,
                data: tuple | None, seed: int, skip: Callable[[str, Any], str | None],
                inputs: Any = None) -> BudgetPlan:
    """Per-layer sparsities meeting ``target`` by ``allocation`` (``skip(name, group_info)`` says
    why a targeted layer cannot lose units, as ``prune_units`` decides it)."""
    modules = surgeon.modules
    search = getattr(method, "search_budget", None)  # a method that chooses budgets and units together
    max_ratio = getattr(method, "max_ratio", None) if search is not None else None
    max_ratio = max_ratio or allocation.max_ratio
    groups: list[Group] = []
    taken: set[str] = set()
    for name in targets:
        if name in taken:
            continue
        try:
            info = surgeon.inspect(name)
        except ValueError:
            continue
        if skip(name, info):
            continue
        units = layouts[name].count
        if units < 2:
            continue
        cap = min(int(units * max_ratio), units - 1)
        groups.append(Group(name, units, tuple(info.coupled), cap))
        taken.update(info.coupled)
    if not groups:
        raise TopopruneError(f"target {target}: no targeted layer can lose units (see the per-layer notes "
                             "of a plain prune_units call)")
    features = {g.leader: layouts[g.leader].features_of([0]) for g in groups}
    cost = build_cost_model(model, example_inputs, surgeon, groups, features, target.metric)
    scores, importance = unit_scores(method, modules, groups, layouts, seed)
    problem = BudgetProblem(target, cost, groups, scores, seed, model=model, example_inputs=example_inputs,
                            layouts=layouts)
    if data is not None:
        settings = {k: getattr(allocation, k) for k in ("batches", "batch_size", "eval_samples")
                    if hasattr(allocation, k)}
        problem.evaluate = AdaptiveBNEvaluator(model, example_inputs, groups, scores, layouts, data,
                                               seed=seed, **settings)
    elif getattr(allocation, "needs_data", False):
        raise TopopruneError(f"allocation {allocation.name!r} evaluates candidates on labelled data: pass "
                             "prune_units(..., labelled_sample=(x, y)) (labelled training inputs)")
    problem.topo_losses = _topological_losses(model, modules, groups, surgeon, layouts, seed, inputs,
                                              getattr(method, "samples", 256))
    full = problem.cost.count([g.max_remove for g in groups])
    if full > problem.goal * 1.01:
        raise TopopruneError(
            f"target {target} cannot be met: removing {max_ratio:g} of every prunable layer leaves "
            f"{full / cost.dense:.3f} of the {target.metric}; allowed: a target above that (or raise max_ratio)")
    budget = search(problem) if search is not None else allocation.allocate(problem)
    sparsities, fractions = {}, {}
    for g, r in zip(groups, budget.removed):
        for name in (g.leader, *g.coupled):
            sparsities[name] = sparsity_for(int(r), g.units)
            fractions[name] = int(r) / g.units
    predicted = cost.count(budget.removed)
    record = {
        "allocation": None if search is not None else allocation.name,
        "settings": {} if search is not None else allocation.settings(), "target": target.to_dict(),
        "importance": importance, "dense": cost.dense, "predicted": predicted,
        "predicted_fraction": predicted / cost.dense,
        "layers": {g.leader: {"units": g.units, "removed": int(r), "coupled": list(g.coupled)}
                   for g, r in zip(groups, budget.removed)},
        "notes": cost.notes, **({"evaluations": problem.evaluate.calls} if problem.evaluate is not None else {}),
        "searched_by": method.name if search is not None else allocation.name,
        "details": budget.record,
    }
    return BudgetPlan(sparsities, fractions, budget, cost, groups, record)


def _topological_losses(model: nn.Module, modules: Mapping[str, nn.Module], groups: list[Group],
                        surgeon: Surgeon, layouts: Mapping[str, UnitLayout], seed: int, inputs: Any = None,
                        samples: int = 256):
    """``losses(i, kind)``: group ``i``'s GA fitness of a removed unit set (built on first use)."""
    cache: dict[tuple[int, str], Callable] = {}

    def losses(i: int, kind: str) -> Callable:
        if (i, kind) not in cache:
            from .genetic import layer_problems, removal_loss

            g = groups[i]
            problem = layer_problems(model, modules, {g.leader: 0.5}, surgeon=surgeon, inputs=inputs,
                                     fitness=kind, layouts={g.leader: layouts[g.leader]}, samples=samples,
                                     seed=seed, heuristics=False)[0]
            cache[(i, kind)] = removal_loss(problem, kind)
        return cache[(i, kind)]

    return losses
