"""The Topological Pruner (Perera 2022): a genetic algorithm with a
persistent-homology fitness chooses which units of each layer to remove.

Per layer the search space is every set of exactly ``k = int(C_out * sparsity)`` units; a
chromosome is that set. Tournament selection, crossover repaired back to ``k`` units, swap
mutation and elitism; the initial population holds the L1, L2 and FPGM choices plus random
sets, so the GA can only match or beat them on its own objective.

Fitness (lower is better), selectable by name:

- ``"diagram"`` (default): the 1-Wasserstein distance between the 0-dimensional persistence
  diagram of the layer's graph before and after removing the units, plus the same for each
  consumer's graph (whose input vertices go). Both diagrams are normalized by the original
  graph's largest edge, so weakening the graph costs.
- ``"np"``: the change of normalized neural persistence over the same graphs.
- ``"activation"``: the 1-Wasserstein distance between the ``H_0`` diagrams of the layer's
  activations on a data sample (per-channel means, one point per input) with all channels and
  with the kept channels only. Costly; for study.

Conv layers enter through their channel graphs (kernel-slice 2-norms). Salience is judged with
respect to each layer on the original model, so layers are independent and are searched in
parallel threads (``workers``). Threads, never processes: spawned children would re-run a user
script that has no ``if __name__ == "__main__":`` guard. The fitness kernels (spanning forests,
the Wasserstein DP) are numba functions that release the GIL, so the threads overlap; each
worker thread runs them on one numba thread (numba keeps that count per thread, so the caller's
setting is untouched). Fitness values are cached per chromosome. Everything is deterministic for
a seed, and the result does not depend on ``workers``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..errors import TopopruneError
from ..models.introspect import layer_graph
from ..models.layers import out_in_weight
from ..topology import SortedEdges, maximum_spanning_tree, persistence_norm, wasserstein_same_birth
from ..topology.persistence import forest_wasserstein, wasserstein_same_birth_dp
from ..train.scoped import usable_cores
from .ga_config import GAConfig, fitness_names  # GAConfig lives torch-free; re-exported here
from .importance import fpgm_scores, l1_scores, l2_scores
from .selection import filters_to_prune
from .surgery import Surgeon
from .units import UnitLayout, layout_of, unit_points

__all__ = ["GAConfig", "LayerProblem", "LayerSearch", "search_layer", "fitness_names", "layer_problems", "run_searches",
           "removal_loss", "graph_loss", "activation_loss", "worker_count"]


@dataclass
class LayerProblem:
    """Everything one layer's search needs, as plain arrays (the search itself is torch-free).

    ``own`` is the layer's ``(C_out, C_in)`` graph matrix (rows = the units being chosen);
    ``consumers`` the matrices whose *columns* are those units; ``activations`` the per-channel
    sample means ``(N, C_out)`` for the activation fitness.
    """

    name: str
    k: int
    own: np.ndarray
    consumers: list[np.ndarray]
    seeds: dict[str, list[int]]
    activations: np.ndarray | None = None


@dataclass
class LayerSearch:
    """The outcome of one layer's search."""

    name: str
    removed: list[int]
    fitness: float
    heuristics: dict[str, float]
    best_by_generation: list[float]
    mean_by_generation: list[float]
    evaluations: int
    cache_hits: int

    def to_dict(self) -> dict:
        return asdict(self)


class _Fitness:
    """Topological loss of removing a unit set from one layer; cached per chromosome."""

    def __init__(self, problem: LayerProblem, kind: str, *, reference: bool = False):
        self.p, self.kind = problem, kind
        self.cache: dict[tuple[int, ...], float] = {}
        self.hits = 0
        self.reference = reference  # True: rebuild each forest from its submatrix (the slow form)
        if kind == "activation":
            if problem.activations is None:
                raise TopopruneError("fitness 'activation' needs a data sample (context 'inputs')")
            self.base = _h0_deaths(problem.activations)
        else:
            self.base = [self._reference(m) for m in [problem.own] + problem.consumers]
            # each graph's edges sorted once: a chromosome's forests are then one Kruskal scan
            # each over a list (SortedEdges), not a new tree per submatrix
            self.edges = None if reference else [SortedEdges(m) if m.size and m.any() else None
                                                 for m in [problem.own] + problem.consumers]
            self.ascending = [np.ascontiguousarray(ref[1][::-1], np.float64) for ref in self.base]

    @staticmethod
    def _reference(m: np.ndarray):
        _, _, values = maximum_spanning_tree(m)
        scale = float(values[0]) if values.size else 1.0
        return scale, values / scale, m.shape[0] + m.shape[1]

    def __call__(self, removed: tuple[int, ...]) -> float:
        if removed in self.cache:
            self.hits += 1
            return self.cache[removed]
        alive = np.ones(self.p.own.shape[0], np.bool_)
        alive[list(removed)] = False
        if self.kind == "activation":
            value = wasserstein_same_birth(self.base, _h0_deaths(self.p.activations[:, alive]), birth=0.0)
        elif self.reference:  # the reference evaluation: a new forest per submatrix, the O(nm) DP
            value = _graph_loss(self.kind, self.p.own[alive], self.base[0], wasserstein_same_birth_dp)
            for m, ref in zip(self.p.consumers, self.base[1:]):
                value += _graph_loss(self.kind, m[:, alive], ref, wasserstein_same_birth_dp)
        else:
            value = self._fast(0, alive, row_alive=alive)
            for i in range(1, len(self.base)):
                value += self._fast(i, alive, col_alive=alive)
        self.cache[removed] = value
        return value

    def _fast(self, i: int, alive: np.ndarray, **mask: np.ndarray) -> float:
        """Graph ``i``'s loss (0: the layer's own, rows = units; else a consumer, columns = units)."""
        edges, ref = self.edges[i], self.base[i]
        if self.kind == "diagram" and edges is not None:  # Kruskal + W1 in one GIL-free call
            return forest_wasserstein(edges, self.ascending[i], ref[0], **mask)
        forest = np.empty(0) if edges is None else edges.forest_values(**mask)
        shape = self.p.own.shape if i == 0 else self.p.consumers[i - 1].shape
        kept = int(alive.sum())
        n_vertices = kept + shape[1] if i == 0 else shape[0] + kept
        return _forest_loss(self.kind, forest, n_vertices, ref)


def _graph_loss(kind: str, m: np.ndarray, ref, distance: Callable = wasserstein_same_birth) -> float:
    """``diagram`` or ``np`` loss of graph ``m`` against a reference from :meth:`_Fitness._reference`."""
    forest = np.empty(0) if m.size == 0 or not m.any() else maximum_spanning_tree(m)[2]
    return _forest_loss(kind, forest, m.shape[0] + m.shape[1], ref, distance)


def _forest_loss(kind: str, forest: np.ndarray, n_vertices: int, ref,
                 distance: Callable = wasserstein_same_birth) -> float:
    """``diagram`` or ``np`` loss of a pruned graph with ``n_vertices`` vertices whose maximum
    spanning forest has edge values ``forest``, against a reference from :meth:`_Fitness._reference`."""
    scale, deaths, n_before = ref
    pruned = forest / scale
    if kind == "diagram":
        if distance is wasserstein_same_birth:  # both in Kruskal's order (descending): reversed, sorted
            return wasserstein_same_birth(np.ascontiguousarray(deaths[::-1], np.float64),
                                          np.ascontiguousarray(pruned[::-1], np.float64), presorted=True)
        return distance(deaths, pruned)
    before = persistence_norm(deaths, n_before, normalized=True)
    after = persistence_norm(np.minimum(pruned, 1.0), n_vertices, normalized=True)
    return abs(before - after)


def removal_loss(problem: LayerProblem, kind: str) -> Callable[[Sequence[int]], float]:
    """The GA's fitness of one layer as a function of a removed unit set (lower = less
    topological damage): what the search minimises, exposed so that any candidate pruning can be
    scored the same way (the damage study). Cached per set, like the search's."""
    fitness = _Fitness(problem, kind)
    return lambda removed: fitness(tuple(sorted(int(i) for i in removed)))


def graph_loss(reference: np.ndarray, graph: np.ndarray, kind: str) -> float:
    """The ``diagram`` or ``np`` fitness for a graph whose *edges* were removed (a masked layer,
    unstructured pruning) rather than its rows: ``reference`` and ``graph`` have the same shape,
    and the diagrams are normalised by the reference's largest edge, as in the search."""
    if kind not in ("diagram", "np"):
        raise TopopruneError(f"graph_loss kind must be 'diagram' or 'np', got {kind!r}")
    return _graph_loss(kind, graph, _Fitness._reference(reference))


def activation_loss(reference: np.ndarray, points: np.ndarray) -> float:
    """The ``activation`` fitness between two point clouds of the same points (rows): the
    1-Wasserstein distance of their Rips ``H_0`` diagrams (e.g. a layer's per-unit mean outputs
    before and after pruning)."""
    return wasserstein_same_birth(_h0_deaths(reference), _h0_deaths(points), birth=0.0)


def _h0_deaths(points: np.ndarray) -> np.ndarray:
    """Deaths of the Rips ``H_0`` diagram of a point cloud: its Euclidean minimum spanning tree's
    edge lengths (all births 0)."""
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial.distance import pdist, squareform

    d = squareform(pdist(np.asarray(points, dtype=np.float64)))
    return np.sort(minimum_spanning_tree(d).data)


def _fill(mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Bring a chromosome (a boolean mask over the units) to exactly ``k`` genes: keep ``k``
    random genes, or add random units that are not genes."""
    have = int(mask.sum())
    if have > k:
        out = np.zeros_like(mask)
        out[rng.choice(np.flatnonzero(mask), size=k, replace=False)] = True
        return out
    if have < k:
        mask[rng.choice(np.flatnonzero(~mask), size=k - have, replace=False)] = True
    return mask


def search_layer(problem: LayerProblem, config: GAConfig, layer_index: int = 0) -> LayerSearch:
    """Run the GA on one layer and return the best unit set found (exactly ``problem.k`` units).

    Chromosomes are sorted index tuples (the fitness cache's keys); the genetic operators work on
    boolean masks, so each one is a few vectorised passes over the units rather than Python loops.
    The random draws are those of the equivalent set-based operators, in the same order, so a
    seed gives the same search either way.
    """
    n, k = problem.own.shape[0], problem.k
    rng = np.random.default_rng([config.seed, layer_index])
    fit = _Fitness(problem, config.fitness)
    heuristics = {name: tuple(sorted(idx)) for name, idx in problem.seeds.items() if len(idx) == k}
    population: list[tuple[int, ...]] = list(dict.fromkeys(heuristics.values()))
    tries = 0
    while len(population) < config.population and tries < 50 * config.population:
        tries += 1
        cand = tuple(sorted(rng.choice(n, size=k, replace=False).tolist()))
        if cand not in population:
            population.append(cand)
    scores = [fit(c) for c in population]
    best_ever = min(zip(scores, population))
    best_hist, mean_hist = [best_ever[0]], [float(np.mean(scores))]
    stale = 0

    def as_mask(genes: tuple[int, ...]) -> np.ndarray:
        mask = np.zeros(n, np.bool_)
        mask[list(genes)] = True
        return mask

    for _ in range(config.generations):
        order = np.argsort(scores, kind="stable")
        children = [population[i] for i in order[: config.elitism]]

        def pick() -> tuple[int, ...]:
            contestants = rng.choice(len(population), size=min(config.tournament, len(population)), replace=False)
            return population[min(contestants, key=lambda i: (scores[i], i))]

        while len(children) < config.population:
            a, b = pick(), pick()
            if rng.random() < config.crossover_rate:
                ma, mb = as_mask(a), as_mask(b)
                genes = ma & mb
                either = np.flatnonzero(ma ^ mb)
                if either.size:
                    genes[rng.choice(either, size=either.size // 2, replace=False)] = True
                genes = _fill(genes, k, rng)
            else:
                genes = as_mask(a)
            while True:  # at least one swap, more with probability mutation_rate each
                if 0 < k < n:
                    out_gene = int(rng.choice(np.flatnonzero(genes)))
                    in_gene = int(rng.choice(np.flatnonzero(~genes)))
                    genes[out_gene] = False
                    genes[in_gene] = True
                if rng.random() >= config.mutation_rate:
                    break
            children.append(tuple(np.flatnonzero(genes).tolist()))
        population = children
        scores = [fit(c) for c in population]
        best_ever = min(best_ever, min(zip(scores, population)))
        best_hist.append(best_ever[0])
        mean_hist.append(float(np.mean(scores)))
        stale = stale + 1 if best_hist[-1] >= best_hist[-2] - 1e-15 else 0
        if stale >= config.patience:
            break
    return LayerSearch(
        name=problem.name, removed=list(best_ever[1]), fitness=float(best_ever[0]),
        heuristics={name: fit(idx) for name, idx in heuristics.items()},
        best_by_generation=[float(x) for x in best_hist], mean_by_generation=mean_hist,
        evaluations=len(fit.cache), cache_hits=fit.hits,
    )


# --- building the problems from a model ---------------------------------------------------------


def _consumer_columns(module: nn.Module, channels: int) -> np.ndarray | None:
    """A consumer's graph with one column per input unit, or None if its inputs do not map
    onto the units (e.g. an unexpected reshape). A unit owning several input columns (a flatten
    after a conv, an attention head's features) gets the 2-norm of its columns."""
    w = out_in_weight(module).detach().double()
    if w.ndim > 2:
        if getattr(module, "groups", 1) != 1 or w.shape[1] != channels:
            return None
        return w.reshape(w.shape[0], w.shape[1], -1).norm(dim=2).abs().numpy()
    if w.shape[1] % channels:
        return None
    per = w.shape[1] // channels  # a flatten after the conv: each channel owns `per` columns
    return w.reshape(w.shape[0], channels, per).norm(dim=2).abs().numpy()


def _own_graph(module: nn.Module, layout: UnitLayout) -> np.ndarray:
    """The layer's bipartite graph with one row per unit: ``|W|`` (linear), the channel graph
    (conv), or a head's 2-norm per input feature (attention heads)."""
    if layout.grouped:  # a position set's rows side by side: (parts * count, in) -> (count, parts * in)
        g = layer_graph(module)
        return g.reshape(layout.parts, layout.count, -1).transpose(1, 0, 2).reshape(layout.count, -1)
    if layout.kind == "filter":
        return layer_graph(module)
    w = layout.weight(module).detach().double()
    return (w.norm(dim=2) if w.ndim > 2 else w.abs()).numpy()


def layer_problems(model: nn.Module, modules: Mapping[str, nn.Module], targets: Mapping[str, float], *,
                   surgeon: Surgeon | torch.Tensor, inputs: object | None,
                   fitness: str, layouts: Mapping[str, UnitLayout] | None = None,
                   samples: int = 256, seed: int = 0, workers: int = 1,
                   heuristics: bool = True) -> list[LayerProblem]:
    """One search problem per targeted layer, from the model before any removal (the
    :class:`~topoprune.pruning.methods.Topological` method calls this once per prune).

    ``surgeon`` is ``model``'s dependency graph (a :class:`Surgeon`; given example inputs
    instead, one is traced, which costs a second trace): a layer's consumers are the weighted
    modules whose input channels torch-pruning removes with its output units
    (:meth:`Surgeon.consumers`). ``layouts`` says what a unit is per layer (default: filters and
    neurons; attention projections: heads). ``inputs`` is the data sample for
    ``fitness="activation"``: each unit's mean output per point, the points being samples (conv)
    or (sample, token) pairs, at most ``samples`` of them (seeded by ``seed``). ``workers``
    threads build the layers' problems (the result does not depend on it). ``heuristics``: also
    compute the L1/L2/FPGM removal sets that seed the GA's population; a caller that only scores
    removal sets (the layer budgets' fitness curves) leaves them out (FPGM's distances were about
    a fifth of the topological allocation's time on full-width VGG-16).
    """
    if not isinstance(surgeon, Surgeon):
        surgeon = Surgeon(model, surgeon)
    layouts = {n: (layouts or {}).get(n) or layout_of(modules[n]) for n in targets}
    acts: dict[str, np.ndarray] = {}
    if fitness == "activation" and inputs is not None:
        clouds = unit_points(model, inputs, modules=modules, layouts=layouts, names=list(targets),
                             limit=samples, seed=seed)
        acts = {n: o.mean(2).double().numpy() for n, o in clouds.items()}
    # the dependency graph is walked here, in this thread (torch-pruning's graph is not shared
    # across threads); the arithmetic per layer (FPGM's distances above all) runs in threads
    consumers = {name: [c for c in surgeon.consumers(name)] for name in targets}

    def build(name: str) -> LayerProblem:
        sparsity, module, layout = targets[name], modules[name], layouts[name]
        c_out = layout.count
        k = min(int(c_out * sparsity), c_out - 1)
        graphs = [cols for cols in (_consumer_columns(c, c_out) for c in consumers[name])  # fused
                  if cols is not None] if not layout.grouped else []  # q/k/v: it reads the v heads; a
        # position set's input columns are spread over the groups: its own graph alone is judged
        unit_weight = layout.weight(module).detach()
        seeds = {label: filters_to_prune(fn(unit_weight).numpy(), sparsity)
                 for label, fn in (("l1", l1_scores), ("l2", l2_scores), ("fpgm", fpgm_scores))} if heuristics else {}
        return LayerProblem(name, max(k, 0), _own_graph(module, layout), graphs, seeds, acts.get(name))

    names = list(targets)
    if workers <= 1 or len(names) <= 1:
        return [build(n) for n in names]
    with ThreadPoolExecutor(max_workers=min(workers, len(names)), thread_name_prefix="topoprune-ga") as pool:
        return list(pool.map(build, names))


def _run(problem: LayerProblem, config: GAConfig, index: int) -> LayerSearch:
    if problem.k < 1 or problem.own.shape[0] < 2:
        return LayerSearch(problem.name, [], 0.0, {}, [0.0], [0.0], 0, 0)
    return search_layer(problem, config, index)


def _one_numba_thread() -> None:
    """Worker-thread initializer: the layers are the parallelism, so each worker runs the numba
    kernels serially (numba's thread count is per thread; the caller's is untouched). This also
    keeps two threads from launching parallel kernels at once, which numba's fallback
    ``workqueue`` threading layer does not allow."""
    import numba

    numba.set_num_threads(1)


def worker_count(config: GAConfig) -> int:
    """Threads for the layers: ``config.workers``, or with 0 as many as torch may use here (the
    entry point or a cell worker set that share)."""
    return config.workers or min(usable_cores(), torch.get_num_threads())


def run_searches(problems: Sequence[LayerProblem], config: GAConfig) -> dict[str, LayerSearch]:
    """Search every layer; unless ``config.workers`` is 1, in a pool of threads.

    Every search is seeded by ``(config.seed, layer index)`` and layers are independent, so the
    result is the same for any number of workers. Threads, not processes: nothing is pickled and
    the caller's ``__main__`` is never re-imported; the fitness kernels release the GIL.
    """
    workers = worker_count(config)
    if workers <= 1 or len(problems) <= 1:
        results = [_run(p, config, i) for i, p in enumerate(problems)]
    else:
        # biggest layers first, so no thread is left alone with a big layer at the end
        order = sorted(range(len(problems)), key=lambda i: -problems[i].own.size)
        pool = ThreadPoolExecutor(max_workers=min(workers, len(problems)), thread_name_prefix="topoprune-ga",
                                  initializer=_one_numba_thread)
        try:
            futures = {pool.submit(_run, problems[i], config, i): i for i in order}
            done = {futures[f]: f.result() for f in as_completed(futures)}  # raises at the first error
            results = [done[i] for i in range(len(problems))]
        finally:
            # on an error or Ctrl-C, layers not yet started are dropped (running ones finish)
            pool.shutdown(wait=True, cancel_futures=True)
    return {r.name: r for r in results}
