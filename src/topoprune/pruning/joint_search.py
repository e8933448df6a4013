"""The Topological Pruner v2's search: layer budgets and units together, under a target.

A chromosome is one removed-unit set per prunable group; its cost (the target metric, from the
:class:`~topoprune.pruning.targets.CostModel`) must stay within the tolerance of the goal, so
every child is repaired onto the target. The objective (lower is better) is the sum over groups
of the GA's topological loss of each group's set (``diagram``, ``np`` or ``activation``, cached
per set, so a child that changes two groups costs two evaluations), plus, optionally,
``data_weight * (1 - accuracy after adaptive BN on labelled training inputs)``.

The initial population holds the other allocations' solutions (their counts, with each group's
least important units), then random perturbations of them. Elitism keeps the best, and only
solutions on the target can become the result, so the search never returns anything worse on its
own objective than the best solution it was seeded with. Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .allocation import BudgetProblem, settle

__all__ = ["JointConfig", "JointResult", "joint_search"]

Chromosome = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class JointConfig:
    population: int = 24
    generations: int = 30
    crossover_rate: float = 0.9
    mutation_rate: float = 0.5
    tournament: int = 3
    elitism: int = 2
    patience: int = 10
    data_weight: float = 0.0
    seed: int = 0


@dataclass
class JointResult:
    removed: dict[str, list[int]]
    objective: float
    seeds: dict[str, float]  # seed name -> its objective
    best_by_generation: list[float] = field(default_factory=list)
    evaluations: int = 0

    def to_dict(self) -> dict:
        return {"objective": self.objective, "seeds": self.seeds, "best_by_generation": self.best_by_generation,
                "evaluations": self.evaluations,
                "removed_counts": {k: len(v) for k, v in self.removed.items()}}


def joint_search(problem: BudgetProblem, losses: Sequence[Callable[[Sequence[int]], float]],
                 seeds: Mapping[str, Sequence[int]], config: JointConfig) -> JointResult:
    """Search removed-unit sets per group meeting ``problem``'s target; ``losses[i]`` scores group
    ``i``'s set, ``seeds`` maps a name to removed counts per group (e.g. each allocation's)."""
    groups = problem.groups
    n_groups = len(groups)
    rng = np.random.default_rng([config.seed, 16])
    orders = [np.argsort(np.asarray(s, dtype=np.float64), kind="stable") for s in problem.scores]
    caps = problem.caps()
    goal = problem.goal
    cache: list[dict[tuple[int, ...], float]] = [{} for _ in range(n_groups)]
    data_cache: dict[Chromosome, float] = {}

    def group_loss(i: int, genes: tuple[int, ...]) -> float:
        if genes not in cache[i]:
            cache[i][genes] = float(losses[i](list(genes))) if genes else 0.0
        return cache[i][genes]

    def objective(c: Chromosome) -> float:
        value = sum(group_loss(i, g) for i, g in enumerate(c))
        if config.data_weight > 0 and problem.evaluate is not None:
            if c not in data_cache:
                counts = [len(g) for g in c]
                units = {grp.leader: list(g) for grp, g in zip(groups, c)}
                data_cache[c] = float(problem.evaluate(counts, units))
            value += config.data_weight * (1.0 - data_cache[c])
        return value

    def counts(c: Chromosome) -> list[int]:
        return [len(g) for g in c]

    def on_target(c: Chromosome) -> bool:
        return problem.on_target(counts(c))

    def from_counts(r: Sequence[int]) -> Chromosome:
        return tuple(tuple(sorted(int(u) for u in orders[i][: int(k)])) for i, k in enumerate(r))

    def repair(sets: list[set[int]]) -> Chromosome:
        """Bring the counts onto the target (settle), changing random units of the groups whose
        count moves."""
        want = settle(problem, [len(s) for s in sets], prefer=rng.random(n_groups))
        out = []
        for i, (s, k) in enumerate(zip(sets, want)):
            s = set(s)
            if len(s) > k:
                s -= set(rng.choice(sorted(s), size=len(s) - k, replace=False).tolist())
            elif len(s) < k:
                free = [u for u in range(groups[i].units) if u not in s]
                s |= set(rng.choice(free, size=k - len(s), replace=False).tolist())
            out.append(tuple(sorted(int(u) for u in s)))
        return tuple(out)

    population: list[Chromosome] = []
    seed_scores: dict[str, float] = {}
    for name, r in seeds.items():
        c = from_counts(r)
        if not on_target(c):
            c = repair([set(g) for g in c])
        seed_scores[name] = objective(c)
        if c not in population:
            population.append(c)
    if not population:
        population.append(repair([set() for _ in groups]))
    base = list(population)
    tries = 0
    while len(population) < config.population and tries < 20 * config.population:
        tries += 1
        parent = base[int(rng.integers(len(base)))]
        c = _mutate(parent, rng, groups, caps, repair, swaps=1 + int(rng.integers(4)))
        if c not in population:
            population.append(c)
    scores = [objective(c) for c in population]
    feasible = [(s, c) for s, c in zip(scores, population) if on_target(c)]
    best = min(feasible) if feasible else None  # only an on-target solution can be the result
    history = [best[0] if best else float("inf")]
    stale = 0
    for _ in range(config.generations):
        order = np.argsort(scores, kind="stable")
        children = [population[i] for i in order[: config.elitism]]

        def pick() -> Chromosome:
            contestants = rng.choice(len(population), size=min(config.tournament, len(population)), replace=False)
            return population[min(contestants, key=lambda i: (scores[i], i))]

        while len(children) < config.population:
            a, b = pick(), pick()
            if rng.random() < config.crossover_rate:
                take = rng.random(n_groups) < 0.5
                child = repair([set(a[i]) if take[i] else set(b[i]) for i in range(n_groups)])
            else:
                child = a
            swaps = 1
            while rng.random() < config.mutation_rate and swaps < 8:
                swaps += 1
            children.append(_mutate(child, rng, groups, caps, repair, swaps=swaps))
        population = children
        scores = [objective(c) for c in population]
        for s, c in zip(scores, population):
            if on_target(c) and (best is None or (s, c) < best):
                best = (s, c)
        history.append(best[0] if best else float("inf"))
        stale = stale + 1 if history[-1] >= history[-2] - 1e-15 else 0
        if stale >= config.patience:
            break
    if best is None:  # units too coarse for the band: the closest solution, and prune_units warns
        best = min(zip(scores, population), key=lambda sc: abs(problem.cost.count(counts(sc[1])) - goal))
    return JointResult({g.leader: list(genes) for g, genes in zip(groups, best[1])}, float(best[0]),
                       seed_scores, [float(x) for x in history],
                       sum(len(c) for c in cache) + len(data_cache))


def _mutate(c: Chromosome, rng: np.random.Generator, groups, caps: np.ndarray, repair, *, swaps: int) -> Chromosome:
    """``swaps`` random moves: a unit swapped within a group, or a unit's removal moved from one
    group to another; then repaired onto the target."""
    sets = [set(g) for g in c]
    n = len(sets)
    for _ in range(swaps):
        if rng.random() < 0.5:  # swap within a group
            i = int(rng.integers(n))
            if 0 < len(sets[i]) < groups[i].units:
                out = int(rng.choice(sorted(sets[i])))
                free = [u for u in range(groups[i].units) if u not in sets[i]]
                sets[i].discard(out)
                sets[i].add(int(rng.choice(free)))
        else:  # move budget: one unit back in group a, one more out of group b
            a, b = int(rng.integers(n)), int(rng.integers(n))
            if a != b and sets[a] and len(sets[b]) < caps[b]:
                sets[a].discard(int(rng.choice(sorted(sets[a]))))
                free = [u for u in range(groups[b].units) if u not in sets[b]]
                sets[b].add(int(rng.choice(free)))
    return repair(sets)
