"""The Topological Pruner's GA settings, torch-free: the method class, the CLI and configs read
their defaults and help text from here without importing the search."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import TopopruneError

__all__ = ["GAConfig", "FITNESSES", "fitness_names"]

FITNESSES = ("diagram", "np", "activation")


@dataclass(frozen=True)
class GAConfig:
    """Hyperparameters of the Topological Pruner's genetic algorithm."""

    population: int = field(default=24, metadata={"help": "chromosomes per generation, >= 4"})
    generations: int = field(default=25, metadata={"help": "generations at most, >= 1"})
    crossover_rate: float = field(default=0.9, metadata={"help": "chance a child mixes two parents"})
    mutation_rate: float = field(default=0.3, metadata={"help": "chance of each further swap mutation"})
    tournament: int = field(default=3, metadata={"help": "contestants per tournament selection"})
    elitism: int = field(default=2, metadata={"help": "best chromosomes copied unchanged"})
    patience: int = field(default=8, metadata={"help": "stop after this many generations without improvement"})
    fitness: str = field(default="diagram", metadata={"help": "diagram, np or activation"})
    workers: int = field(default=0, metadata={"help": "threads searching layers at once; 0 = torch's "
                                                  "thread count (one per core unless set), 1 = serial "
                                                  "(the result is the same)"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice"})

    def __post_init__(self) -> None:
        checks = [
            (self.population >= 4, "population", ">= 4"),
            (self.generations >= 1, "generations", ">= 1"),
            (0 <= self.crossover_rate <= 1, "crossover_rate", "in [0, 1]"),
            (0 <= self.mutation_rate < 1, "mutation_rate", "in [0, 1)"),
            (2 <= self.tournament <= self.population, "tournament", "in [2, population]"),
            (0 <= self.elitism < self.population, "elitism", "in [0, population)"),
            (self.patience >= 1, "patience", ">= 1"),
            (self.fitness in FITNESSES, "fitness", f"one of {FITNESSES}"),
            (self.workers >= 0, "workers", ">= 0"),
        ]
        for ok, name, allowed in checks:
            if not ok:
                raise TopopruneError(f"bad GA setting {name}={getattr(self, name)!r}: must be {allowed}")


def fitness_names() -> tuple[str, ...]:
    return FITNESSES
