"""Per-layer budgets under a target: how many units each prunable group loses.

A structured method answers *which* units of a layer go; an allocation answers *how many* go
from each layer so that the pruned model meets a target count (:mod:`topoprune.pruning.targets`).
Any allocation combines with any method: ``prune_units(model, x, method="fpgm",
target={"flops_kept": 0.5}, allocation="global")``.

Registered allocations (``@register_allocation``; typed pydantic settings like methods):

- ``uniform``: every layer loses the same fraction (the one that meets the target), as
  ``sparsity=`` does; a few single units are then moved to land within 1 %.
- ``global``: Torch-Pruning's global pruning. Every unit gets the method's importance (L1 for
  methods without per-unit scores), divided by its layer's mean importance; units go in one
  ranking, lowest first, until the target is met, no layer losing more than ``max_ratio``.
- ``eagleeye``: EagleEye (Li et al., ECCV 2020): ``candidates`` random layer-wise ratios, each
  scaled to the target; each is pruned (by the method's importance), its BatchNorm statistics
  re-estimated on training batches (adaptive BN) and its accuracy measured on a disjoint set
  of training inputs (EagleEye's sub-training set); the best is kept. Needs labelled data
  (``labelled_sample=(x, y)``).
- ``topological`` (ours): each layer's topological sensitivity, the GA fitness (``diagram`` or
  ``np``) of removing its least important units, is computed once per layer on a grid of
  fractions; removals then go, one grid step at a time, where the loss grows least per unit of
  the target metric saved.

Every allocation is deterministic for a seed and returns the removed-unit counts per group and
a JSON-able record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import TopopruneError
from ..registry import Registry
from .targets import TOLERANCE, CostModel, Group, Target

__all__ = [
    "Allocation",
    "BudgetProblem",
    "Budget",
    "ALLOCATIONS",
    "register_allocation",
    "list_allocations",
    "resolve_allocation",
    "Uniform",
    "Global",
    "EagleEye",
    "TopologicalAllocation",
    "settle",
]


@dataclass
class BudgetProblem:
    """What an allocation sees: the target, the cost model, the groups (with their caps), each
    group's per-unit importance (``scores[i]``, coupled layers summed; lower goes first), the
    model before any removal, and, when given, labelled data ``(x, y)`` for allocations that
    evaluate candidates."""

    target: Target
    cost: CostModel
    groups: list[Group]
    scores: list[np.ndarray]
    seed: int
    model: Any = None
    example_inputs: Any = None
    evaluate: Any = None  # removed counts -> accuracy after adaptive BN (set by prune_units when labelled data is given)
    topo_losses: Any = None  # group index -> (removed set -> topological loss), set by prune_units
    layouts: Any = None  # layer -> UnitLayout (what a unit is)

    @property
    def goal(self) -> float:
        """The target count."""
        return self.target.keep * self.cost.dense

    def caps(self) -> np.ndarray:
        return np.array([g.max_remove for g in self.groups], dtype=np.int64)

    def on_target(self, removed: Sequence[int]) -> bool:
        """At most the target count, and within :data:`TOLERANCE` below it: every strategy lands
        in this band, so no method is compared with a few more FLOPs than another."""
        now = self.cost.count(removed)
        return self.goal * (1 - TOLERANCE) <= now <= self.goal


@dataclass
class Budget:
    """Units removed per group (``groups`` order) and what the allocation wants recorded."""

    removed: list[int]
    record: dict = field(default_factory=dict)
    units: dict[str, list[int]] | None = None  # a joint search's own unit choices (GA v2)


class Allocation(BaseModel):
    """Base of every allocation; subclasses add settings as fields and implement ``allocate``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs_data: ClassVar[bool] = False

    max_ratio: float = Field(0.9, gt=0, lt=1, description="at most this fraction of a layer's units go")

    def allocate(self, problem: BudgetProblem) -> Budget:
        raise NotImplementedError(f"{type(self).__name__} must implement allocate()")

    def settings(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, mode="json")

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{self.name}({args})"


ALLOCATIONS: Registry[type[Allocation]] = Registry("allocation")


def register_allocation(name: str):
    """Class decorator: register an :class:`Allocation` subclass under ``name``."""

    def add(cls: type[Allocation]) -> type[Allocation]:
        if not (isinstance(cls, type) and issubclass(cls, Allocation)):
            raise TopopruneError(f"@register_allocation({name!r}) needs an Allocation subclass, got {cls!r}")
        cls.name = name
        ALLOCATIONS.register(name, cls)
        return cls

    return add


def list_allocations() -> list[str]:
    """Registered allocation names (how a target is split into per-layer budgets), in
    registration order."""
    return ALLOCATIONS.names()


def resolve_allocation(allocation: str | Allocation | Mapping[str, Any]) -> Allocation:
    """An allocation object from a name, an instance, or ``{"name": ..., **settings}``."""
    from .methods.base import resolve_registered

    return resolve_registered(allocation, registry=ALLOCATIONS, base=Allocation, kind="allocation")


# --- landing on the target ------------------------------------------------------------------


def settle(problem: BudgetProblem, removed: Sequence[int], *, tol: float = TOLERANCE,
           prefer: np.ndarray | None = None) -> list[int]:
    """Move units until the predicted count is at most the goal and within ``tol`` below it
    (one-sided, so every strategy keeps at most the target), where the unit sizes allow: while
    above, the group with the lowest ``prefer`` value (default: the lowest fraction removed) among
    those below their cap loses one more unit; while below the band, the group whose unit adds the
    most without passing the goal gets one back; if still outside, one unit back in one group and
    one more out of another, whichever pair lands closest."""
    r = np.array(removed, dtype=np.int64)
    caps = problem.caps()
    sizes = np.array([g.units for g in problem.groups], dtype=np.float64)
    goal, cost = problem.goal, problem.cost
    hi, lo = goal, goal * (1 - tol)
    for _ in range(int(caps.sum()) + 1):
        now = cost.count(r)
        if now <= hi:
            break
        open_ = np.flatnonzero(r < caps)
        if open_.size == 0:
            break
        key = (r / sizes) if prefer is None else prefer
        g = open_[np.argmin(key[open_])]
        r[g] += 1
    for _ in range(int(r.sum()) + 1):
        now = cost.count(r)
        if now >= lo:
            break
        best, best_add = None, None
        for g in np.flatnonzero(r > 0):
            r[g] -= 1
            add = cost.count(r) - now
            r[g] += 1
            if now + add <= hi and (best_add is None or add > best_add):
                best, best_add = g, add  # the largest step that still fits gets closest
        if best is None:
            break
        r[best] -= 1
    def gap(count: float) -> float:  # distance to the band [lo, hi]
        return max(lo - count, count - hi, 0.0)

    for _ in range(len(r)):  # still outside: one unit back to one group and one more from another
        now = cost.count(r)
        if lo <= now <= hi:
            break
        best_pair, best_gap = None, gap(now)
        for a in np.flatnonzero(r > 0):
            for b in np.flatnonzero(r < caps):
                if a == b:
                    continue
                r[a] -= 1
                r[b] += 1
                g = gap(cost.count(r))
                r[a] += 1
                r[b] -= 1
                if g < best_gap:
                    best_pair, best_gap = (a, b), g
        if best_pair is None:
            break
        r[best_pair[0]] -= 1
        r[best_pair[1]] += 1
    return [int(x) for x in r]


def _uniform_counts(problem: BudgetProblem, fraction: float) -> np.ndarray:
    sizes = np.array([g.units for g in problem.groups])
    return np.minimum((sizes * fraction).astype(np.int64), problem.caps())


@register_allocation("uniform")
class Uniform(Allocation):
    """Every layer loses the same fraction: the one that meets the target."""

    summary: ClassVar[str] = "the same fraction from every layer, chosen to meet the target"

    def allocate(self, problem: BudgetProblem) -> Budget:
        lo, hi = 0.0, self.max_ratio
        if problem.cost.count(_uniform_counts(problem, hi)) > problem.goal:
            r = _uniform_counts(problem, hi)
            return Budget(settle(problem, r), {"fraction": hi, "note": "the target needs more than max_ratio"})
        for _ in range(60):
            mid = (lo + hi) / 2
            if problem.cost.count(_uniform_counts(problem, mid)) > problem.goal:
                lo = mid
            else:
                hi = mid
        r = _uniform_counts(problem, hi)
        return Budget(settle(problem, r), {"fraction": hi})


@register_allocation("global")
class Global(Allocation):
    """One ranking of every unit by importance over its layer's mean importance (Torch-Pruning's
    global pruning with its ``mean`` normalizer); the lowest go until the target is met."""

    summary: ClassVar[str] = "one threshold over mean-normalized importances (Torch-Pruning's global pruning)"

    def allocate(self, problem: BudgetProblem) -> Budget:
        entries = []
        for gi, s in enumerate(problem.scores):
            s = np.asarray(s, dtype=np.float64)
            mean = float(np.mean(s)) if s.size else 1.0
            norm = s / mean if mean > 0 else s
            order = np.argsort(norm, kind="stable")
            # within a layer the units go lowest first, so a unit's rank key is its own score
            entries += [(float(norm[u]), gi, rank) for rank, u in enumerate(order)]
        entries.sort()
        r = np.zeros(len(problem.groups), dtype=np.int64)
        caps = problem.caps()
        goal = problem.goal
        for value, gi, _ in entries:
            if problem.cost.count(r) <= goal:
                break
            if r[gi] < caps[gi]:
                r[gi] += 1
        return Budget(settle(problem, r), {"normalizer": "mean"})


def _scaled_to_target(problem: BudgetProblem, ratios: np.ndarray) -> np.ndarray:
    """Per-group counts ``min(ratio * alpha, max) * units`` with ``alpha`` bisected to the goal."""
    sizes = np.array([g.units for g in problem.groups])
    caps = problem.caps()

    def counts(alpha: float) -> np.ndarray:
        return np.minimum((sizes * np.minimum(ratios * alpha, 1.0)).astype(np.int64), caps)

    lo, hi = 0.0, 1.0
    while problem.cost.count(counts(hi)) > problem.goal and hi < 1e6:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if problem.cost.count(counts(mid)) > problem.goal:
            lo = mid
        else:
            hi = mid
    return counts(hi)


@register_allocation("eagleeye")
class EagleEye(Allocation):
    """EagleEye (Li et al., ECCV 2020): random layer-wise ratios on the target, each judged by its
    accuracy after adaptive BN on training batches; the best of ``candidates`` is kept."""

    summary: ClassVar[str] = "best of N random layer-wise budgets by accuracy after adaptive BN (Li et al. 2020)"
    # (its data: the labelled inputs given as labelled_sample=(x, y); a compare cell draws them from the
    # training split, as EagleEye evaluates on a sub-training set)
    needs_data: ClassVar[bool] = True

    candidates: int = Field(50, ge=1, le=10_000, description="random budgets to evaluate")
    batches: int = Field(20, ge=1, le=10_000, description="training batches for adaptive BN")
    batch_size: int = Field(64, ge=1, le=100_000, description="inputs per adaptive-BN batch")
    eval_samples: int = Field(1000, ge=1, le=1_000_000, description="labelled inputs each candidate is scored on (disjoint from the BN batches)")

    def allocate(self, problem: BudgetProblem) -> Budget:
        if problem.evaluate is None:
            raise TopopruneError("allocation 'eagleeye' evaluates candidates on labelled data: pass "
                                 "prune_units(..., labelled_sample=(x, y)) (training inputs and labels)")
        rng = np.random.default_rng([problem.seed, 7])
        best, best_acc, tried = None, -1.0, []
        for c in range(self.candidates):
            ratios = rng.uniform(0.0, self.max_ratio, size=len(problem.groups))
            r = settle(problem, _scaled_to_target(problem, ratios))
            acc = float(problem.evaluate(r))
            tried.append(acc)
            if acc > best_acc:
                best, best_acc = r, acc
        return Budget(best, {"candidates": self.candidates, "best_accuracy": best_acc,
                             "accuracies": tried})


@register_allocation("topological-budget")
class TopologicalAllocation(Allocation):
    """Removals go where the layer's topology loses least per unit of the target metric saved."""

    summary: ClassVar[str] = ("removals where each layer's persistence diagram (or NP) degrades least per "
                              "FLOP saved (ours)")

    fitness: str = Field("diagram", pattern="^(diagram|np)$", description="the topological loss: diagram or np")
    steps: int = Field(20, ge=2, le=200, description="grid points per layer's sensitivity curve")

    def curves(self, problem: BudgetProblem) -> list[np.ndarray]:
        """Per group: the loss of removing its ``k`` least important units, at ``k`` on a grid
        from 0 to its cap (interpolated linearly in between)."""
        out = []
        for gi, g in enumerate(problem.groups):
            loss = problem.topo_losses(gi, self.fitness)
            order = np.argsort(np.asarray(problem.scores[gi], dtype=np.float64), kind="stable")
            grid = np.unique(np.linspace(0, g.max_remove, self.steps).round().astype(np.int64))
            values = np.array([0.0 if k == 0 else loss(order[:k].tolist()) for k in grid])
            values = np.maximum.accumulate(values)  # a loss curve may wiggle; budgets need it monotone
            out.append(np.interp(np.arange(g.max_remove + 1), grid, values))
        return out

    def allocate(self, problem: BudgetProblem) -> Budget:
        curves = self.curves(problem)
        r = np.zeros(len(problem.groups), dtype=np.int64)
        caps = problem.caps()
        goal = problem.goal
        sizes = np.array([g.units for g in problem.groups])
        step = np.maximum(1, sizes // self.steps)
        while problem.cost.count(r) > goal:
            open_ = np.flatnonzero(r < caps)
            if open_.size == 0:
                break
            now = problem.cost.count(r)
            best, best_key = None, None
            for g in open_:
                k = min(int(step[g]), int(caps[g] - r[g]))
                r[g] += k
                saved = now - problem.cost.count(r)
                r[g] -= k
                grow = curves[g][r[g] + k] - curves[g][r[g]]
                key = (grow / saved if saved > 0 else np.inf, -saved)  # ties: the step that saves most
                if best_key is None or key < best_key:
                    best, best_key = g, key
            r[best] += min(int(step[best]), int(caps[best] - r[best]))
        # land on the target: extra units come from the layers whose curve is flattest (units given
        # back go where one unit is worth the most, see settle)
        slope = np.array([(c[-1] - c[0]) / max(len(c) - 1, 1) for c in curves])
        r = settle(problem, r, prefer=slope)
        return Budget(r, {"fitness": self.fitness, "steps": self.steps,
                          "curves": {g.leader: [float(v) for v in c] for g, c in zip(problem.groups, curves)}})


# "topological" also names the Topological Pruner method; the allocation's old name keeps working
# for one minor release (see CHANGELOG.md).
ALLOCATIONS.rename("topological", "topological-budget")
