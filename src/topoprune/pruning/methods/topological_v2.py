"""The Topological Pruner v2: the GA chooses each layer's budget and its units
together, under a target count. The search is :mod:`topoprune.pruning.joint_search`; this class
holds its validated settings and seeds it with the other allocations' solutions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from .base import LayerRequest, Needs, PruneContext, StructuredMethod, register_method

__all__ = ["TopologicalV2"]


@register_method("topological-v2")
class TopologicalV2(StructuredMethod):
    """A GA over layer budgets and units together, under a target; seeded with the uniform,
    global and topological allocations (and EagleEye's when data is given)."""

    summary: ClassVar[str] = ("GA over layer budgets and units together under a FLOPs/params target, "
                              "seeded with the other allocations (ours; needs target=)")
    needs_target: ClassVar[bool] = True

    population: int = Field(24, ge=4, le=10_000, description="chromosomes per generation")
    generations: int = Field(30, ge=1, le=10_000, description="generations at most")
    crossover_rate: float = Field(0.9, ge=0, le=1, description="chance a child mixes two parents (per layer)")
    mutation_rate: float = Field(0.5, ge=0, lt=1, description="chance of each further mutation move")
    patience: int = Field(10, ge=1, description="stop after this many generations without improvement")
    fitness: Literal["diagram", "np", "activation"] = Field("diagram", description="the topological loss per layer")
    data_weight: float = Field(0.0, ge=0, description="weight of (1 - accuracy after adaptive BN on labelled "
                                                      "batches); needs labelled_sample=(x, y); 0: topology only")
    seed_allocations: list[str] = Field(["uniform", "global", "topological-budget"], min_length=1,
                                        description="allocations whose solutions seed the population")
    samples: int = Field(256, ge=2, le=100_000, description="data-sample points for fitness 'activation'")

    @field_validator("seed_allocations")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        from ..allocation import ALLOCATIONS

        unknown = [n for n in names if n not in ALLOCATIONS]
        if unknown:
            raise ValueError(f"registered allocations ({', '.join(ALLOCATIONS.names())}); unknown: {unknown}")
        return [ALLOCATIONS.canonical(n) for n in names]

    def needs(self) -> Needs:
        return Needs(sample=self.samples if self.fitness == "activation" else 0)

    def search_budget(self, problem):
        """Counts and units per group for ``problem`` (a :class:`~topoprune.pruning.allocation.BudgetProblem`)."""
        from ..allocation import Budget, resolve_allocation
        from ..joint_search import JointConfig, joint_search

        names = list(dict.fromkeys(self.seed_allocations))
        if problem.evaluate is not None and "eagleeye" not in names:
            names.append("eagleeye")
        seeds, seed_records = {}, {}
        for name in names:
            allocation = resolve_allocation(name)
            if allocation.needs_data and problem.evaluate is None:
                continue
            budget = allocation.allocate(problem)
            seeds[name] = budget.removed
            seed_records[name] = budget.removed
        losses = [problem.topo_losses(i, self.fitness) for i in range(len(problem.groups))]
        config = JointConfig(population=self.population, generations=self.generations,
                             crossover_rate=self.crossover_rate, mutation_rate=self.mutation_rate,
                             patience=self.patience, data_weight=self.data_weight, seed=problem.seed)
        result = joint_search(problem, losses, seeds, config)
        removed = [len(result.removed[g.leader]) for g in problem.groups]
        return Budget(removed, {"search": result.to_dict(), "seed_counts": seed_records, "config": asdict(config)},
                      units=result.removed)

    def choose(self, ctx: PruneContext, layer: LayerRequest) -> Sequence[int]:
        plan = ctx.state.get("budget")
        if plan is None or plan.budget.units is None:
            return []
        return plan.budget.units.get(layer.name, [])
