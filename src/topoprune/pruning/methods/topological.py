"""The Topological Pruner (Perera 2022) as a registered method.

The genetic algorithm itself lives in :mod:`topoprune.pruning.genetic` (torch-free search over
plain arrays); this class holds its validated settings, builds one search problem per targeted
layer from the original model, runs the searches once per call (layers in threads), and answers
each layer's choice from the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ..ga_config import GAConfig
from .base import LayerRequest, Needs, PruneContext, StructuredMethod, register_method

__all__ = ["Topological"]


def _ga(name: str, **constraints: Any) -> Any:
    """A field with GAConfig's default and help text (one source for both)."""
    f = GAConfig.__dataclass_fields__[name]
    return Field(f.default, description=f.metadata.get("help", ""), **constraints)


@register_method("topological")
class Topological(StructuredMethod):
    """A GA with a persistent-homology fitness picks each layer's units (Perera 2022)."""

    summary: ClassVar[str] = ("genetic algorithm with a persistent-homology fitness, seeded with "
                              "L1/L2/FPGM (Perera 2022)")

    population: int = _ga("population", ge=4, le=10_000)
    generations: int = _ga("generations", ge=1, le=10_000)
    crossover_rate: float = _ga("crossover_rate", ge=0, le=1)
    mutation_rate: float = _ga("mutation_rate", ge=0, lt=1)
    tournament: int = _ga("tournament", ge=2)
    elitism: int = _ga("elitism", ge=0)
    patience: int = _ga("patience", ge=1, le=10_000)
    fitness: Literal["diagram", "np", "activation"] = _ga("fitness")
    workers: int = _ga("workers", ge=0, le=256)
    samples: int = Field(256, ge=4, le=4096, description="training inputs in the data sample (fitness 'activation')")

    @model_validator(mode="after")
    def _fits_population(self) -> Topological:
        self.ga_config(0)  # GAConfig's own cross-field checks (tournament, elitism <= population)
        return self

    def ga_config(self, seed: int) -> GAConfig:
        """The GA's settings for one seeded search."""
        fields = self.model_dump(exclude={"samples"})
        return GAConfig(**fields, seed=seed)

    def needs(self) -> Needs:
        return Needs(sample=self.samples if self.fitness == "activation" else 0)

    def prepare(self, ctx: PruneContext) -> None:
        config = self.ga_config(ctx.seed)  # a sample for fitness 'activation': checked by prune_units
        from ..genetic import layer_problems, run_searches, worker_count

        problems = layer_problems(ctx.model, ctx.modules, ctx.targets, surgeon=ctx.surgeon,
                                  inputs=ctx.inputs, fitness=config.fitness,
                                  layouts={n: ctx.layout(n) for n in ctx.targets},
                                  samples=self.samples, seed=ctx.seed, workers=worker_count(config))
        results = run_searches(problems, config)
        ctx.state["searches"] = results
        ctx.extra["topological"] = {n: r.to_dict() for n, r in results.items()}
        ctx.extra["ga"] = asdict(config)

    def choose(self, ctx: PruneContext, layer: LayerRequest) -> Sequence[int]:
        result = ctx.state["searches"].get(layer.name)
        if result is None or math.isnan(result.fitness):
            return []
        return result.removed
