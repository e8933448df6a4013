"""Scores of a candidate pruning for the damage study, as a registry users can add to.

A score is a number computed from the trained dense model and one candidate pruning *before*
any retraining: the question the study asks is whether it predicts what happens next (accuracy
right after pruning, after BN recalibration, after K recovery epochs, epochs to recover).

Built-in scores, by family:

- **topological** (the claim under test): ``ga-diagram``, ``ga-np``, ``ga-activation`` (the
  Topological Pruner's fitness kinds, summed over the targeted layers; for an unstructured
  candidate the diagram / NP loss of each masked layer graph, and the activation loss between the
  dense and the pruned model's per-unit outputs), ``np-retained`` (mean normalized neural
  persistence after / before), ``betti-removed`` (share of the targeted units' Betti numbers that
  went; structured), ``tree-kept`` (share of the dense layer graphs' maximum-spanning-tree weight
  still present; unstructured);
- **magnitude** (the baselines): ``l1-mass-removed`` (THE baseline), ``l2-mass-removed`` (share of
  squared L2 norm), ``layer-mass-removed-max`` (the worst layer's share of L1 mass removed),
  ``fpgm-removed`` (share of the FPGM redundancy score removed; structured);
- **control**: ``params-removed`` (share of parameters, or non-zero weights, gone).

Add your own with :func:`register_damage_score`; the study computes every registered score that
applies to its kind unless the config lists ``scores``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ...errors import TopopruneError
from ...registry import Registry


def _layer_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Modules by name, and the layers named after a weight rather than a module
    (``nn.MultiheadAttention``'s ``<module>.in_proj``, held by the attention module)."""
    from ...models.layers import maskable_layers

    return {**dict(model.named_modules()), **maskable_layers(model)}

__all__ = ["DamageScore", "DamageContext", "Candidate", "DAMAGE_SCORES", "register_damage_score",
           "list_damage_scores", "score_family", "score_direction", "layer_mass_removed"]

Kind = Literal["structured", "unstructured"]
Family = Literal["topological", "magnitude", "control", "user"]


@dataclass
class DamageContext:
    """What every score of one sparsity sees: the trained dense model (never modified), its
    example inputs, a fixed data sample, the kind of pruning, and the targeted layers with their
    unit counts (structured) or weight counts (unstructured). ``cache`` holds what several
    candidates share (the GA's layer problems, Betti tables, the dense NP), computed on first use."""

    model: nn.Module
    example_inputs: Any
    sample: torch.Tensor | None
    kind: Kind
    targets: dict[str, int]
    seed: int = 0
    layouts: dict = field(default_factory=dict)  # layer -> UnitLayout (heads for attention projections)
    cache: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.layouts:
            from ...pruning.units import unit_layouts

            self.layouts = unit_layouts(self.model)

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    @property
    def modules(self) -> dict[str, nn.Module]:
        return _layer_modules(self.model)


@dataclass
class Candidate:
    """One whole-network pruning: ``removed`` (structured: unit indices per targeted layer, in the
    dense model's numbering) and ``model``, the pruned model before any retraining (structured:
    physically smaller; unstructured: masked through ``torch.nn.utils.prune``)."""

    id: str
    source: str
    sparsity: float
    model: nn.Module
    removed: dict[str, list[int]] | None = None


@dataclass(frozen=True)
class DamageScore:
    """A registered score. ``direction``: +1 if a higher value means more damage (a share
    removed, a topological loss), -1 if it means less (NP retained, tree kept), 0 if unknown; the
    verdicts use it to say when a correlation runs the wrong way."""

    name: str
    family: Family
    kinds: tuple[str, ...]
    description: str
    fn: Callable[[DamageContext, Candidate], float | None]
    direction: int = 0


DAMAGE_SCORES: Registry[DamageScore] = Registry("damage score")


def register_damage_score(name: str, *, family: Family = "user", kinds: tuple[str, ...] = ("structured", "unstructured"),
                          description: str = "", direction: int = 0) -> Callable:
    """Decorator: register ``fn(ctx: DamageContext, candidate: Candidate) -> float | None`` as a
    damage score (``None``: not defined for this candidate). ``direction``: +1 if higher means
    more damage, -1 if less, 0 if you do not say. Define it in an importable module and import
    that module before the study runs."""
    if family not in ("topological", "magnitude", "control", "user"):
        raise TopopruneError(f"family must be one of topological, magnitude, control, user, got {family!r}")
    if direction not in (-1, 0, 1):
        raise TopopruneError(f"direction must be -1, 0 or 1, got {direction!r}")
    bad = [k for k in kinds if k not in ("structured", "unstructured")]
    if bad or not kinds:
        raise TopopruneError(f"kinds must name 'structured' and/or 'unstructured', got {kinds!r}")

    def add(fn: Callable) -> Callable:
        DAMAGE_SCORES.register(name, DamageScore(name, family, tuple(kinds), description or (fn.__doc__ or "").strip(), fn,
                                                 direction))
        return fn

    return add


def list_damage_scores(kind: str | None = None) -> list[str]:
    """Registered score names (in registration order), those for ``kind`` only if given."""
    return [n for n in DAMAGE_SCORES.names() if kind is None or kind in DAMAGE_SCORES.get(n).kinds]


def score_family(name: str) -> str:
    return DAMAGE_SCORES.get(name).family


def score_direction(name: str) -> int:
    return DAMAGE_SCORES.get(name).direction


# --- shared pieces ---------------------------------------------------------------------------------


def _layout(ctx: DamageContext, name: str):
    """What a unit of this layer is, as ``prune_units`` counts them (filters, neurons, heads)."""
    return ctx.layouts[name]


def _unit_weight(ctx: DamageContext, name: str) -> torch.Tensor:
    """``(units, ...)``: one row per unit of a targeted layer (filter, neuron or head)."""
    layout = _layout(ctx, name)
    w = layout.weight(ctx.modules[name]).detach().double()
    return w.reshape(layout.count, -1)


def _masked(model: nn.Module) -> dict[str, np.ndarray]:
    """The effective (masked) weight of every prunable layer, ``(out, in, ...)`` layout."""
    from ...models.introspect import effective_weight
    from ...models.layers import out_in_weight
    from ...pruning.masks import prunable_layers

    return {n: out_in_weight(m, effective_weight(m)).detach().double().numpy() for n, m in prunable_layers(model).items()}


def layer_mass_removed(ctx: DamageContext, cand: Candidate, power: int = 1) -> dict[str, float]:
    """Per targeted layer, the share of its weight mass (``sum |w|^power``) the candidate removed."""
    out = {}
    if ctx.kind == "structured":
        for name, gone in (cand.removed or {}).items():
            mass = (_unit_weight(ctx, name).abs() ** power).sum(1).numpy()
            out[name] = float(mass[list(gone)].sum() / mass.sum()) if mass.sum() > 0 else 0.0
        return out
    dense = ctx.cached("masked-dense", lambda: _masked(ctx.model))
    pruned = _masked(cand.model)
    for name in ctx.targets:
        before = (np.abs(dense[name]) ** power).sum()
        after = (np.abs(pruned[name]) ** power).sum()
        out[name] = float(1 - after / before) if before > 0 else 0.0
    return out


def layer_fraction_removed(ctx: DamageContext, cand: Candidate) -> dict[str, float]:
    """Per targeted layer, the share of its units (structured) or weights (unstructured) the
    candidate removed: the density vector the partial correlations control for."""
    if ctx.kind == "structured":
        return {name: len(gone) / _unit_weight(ctx, name).shape[0] for name, gone in (cand.removed or {}).items()}
    dense = ctx.cached("masked-dense", lambda: _masked(ctx.model))
    pruned = _masked(cand.model)
    out = {}
    for name in ctx.targets:
        alive = np.count_nonzero(dense[name])
        out[name] = float(1 - np.count_nonzero(pruned[name]) / alive) if alive else 0.0
    return out


def _total_share(ctx: DamageContext, cand: Candidate, power: int) -> float:
    if ctx.kind == "structured":
        num = den = 0.0
        for name in ctx.targets:
            mass = (_unit_weight(ctx, name).abs() ** power).sum(1).numpy()
            num += float(mass[list((cand.removed or {}).get(name, []))].sum())
            den += float(mass.sum())
        return num / den if den else 0.0
    dense = ctx.cached("masked-dense", lambda: _masked(ctx.model))
    pruned = _masked(cand.model)
    den = sum(float((np.abs(dense[n]) ** power).sum()) for n in ctx.targets)
    num = sum(float((np.abs(dense[n]) ** power).sum() - (np.abs(pruned[n]) ** power).sum()) for n in ctx.targets)
    return num / den if den else 0.0


def _problems(ctx: DamageContext, kind: str) -> dict:
    """The GA's fitness for ``kind`` on the dense model, one function of the removed unit set per
    targeted layer (built once per study setting; each caches its values)."""
    from ...pruning.genetic import layer_problems, removal_loss
    from ...pruning.surgery import Surgeon

    def make():
        model = copy.deepcopy(ctx.model)
        surgeon = Surgeon(model, ctx.example_inputs)
        probs = layer_problems(model, surgeon.modules, {n: 0.5 for n in ctx.targets}, surgeon=surgeon,
                               inputs=ctx.sample if kind == "activation" else None, fitness=kind,
                               layouts={n: ctx.layouts[n] for n in ctx.targets},
                               samples=ctx.sample.shape[0] if ctx.sample is not None else 256, seed=ctx.seed,
                               heuristics=False)  # only removal sets are scored here
        return {p.name: removal_loss(p, kind) for p in probs}  # one cached fitness per layer

    return ctx.cached(f"problems-{kind}", make)


def _unit_means(model: nn.Module, ctx: DamageContext) -> dict[str, np.ndarray]:
    """Each targeted layer's per-unit mean output on the sample: ``(points, units)``."""
    from ...pruning.units import unit_points

    modules = dict(model.named_modules())
    names = list(ctx.targets)
    layouts = {n: ctx.layouts[n] for n in names}
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            clouds = unit_points(model, ctx.sample, modules=modules, layouts=layouts, names=names,
                                 limit=ctx.sample.shape[0], seed=ctx.seed)
    finally:
        model.train(was)
    return {n: o.mean(2).double().numpy() for n, o in clouds.items()}


def _ga_score(kind: str) -> Callable[[DamageContext, Candidate], float | None]:
    def score(ctx: DamageContext, cand: Candidate) -> float | None:
        from ...models.introspect import layer_graph
        from ...pruning.genetic import activation_loss, graph_loss

        if kind == "activation" and ctx.sample is None:
            return None
        if ctx.kind == "structured":
            losses = _problems(ctx, kind)
            removed = cand.removed or {}
            return float(sum(losses[n](removed[n]) for n in ctx.targets if n in losses and removed.get(n)))
        if kind == "activation":
            dense = ctx.cached("unit-means", lambda: _unit_means(ctx.model, ctx))
            pruned = _unit_means(cand.model, ctx)
            return float(sum(activation_loss(dense[n], pruned[n]) for n in ctx.targets))
        graphs = ctx.cached("dense-graphs", lambda: {n: layer_graph(ctx.modules[n]) for n in ctx.targets})
        modules = _layer_modules(cand.model)
        return float(sum(graph_loss(graphs[n], layer_graph(modules[n]), kind) for n in ctx.targets))

    score.__doc__ = f"the Topological Pruner's {kind!r} fitness of the removal, summed over targeted layers"
    return score


for _kind in ("diagram", "np", "activation"):
    register_damage_score(f"ga-{_kind}", family="topological", direction=1)(_ga_score(_kind))


@register_damage_score("np-retained", family="topological", direction=-1)
def _np_retained(ctx: DamageContext, cand: Candidate) -> float | None:
    """mean normalized neural persistence of the pruned model / the dense model's"""
    from ...analysis import neural_persistence

    dense = ctx.cached("np-dense", lambda: neural_persistence(ctx.model).mean_normalized)
    return float(neural_persistence(cand.model).mean_normalized / dense) if dense else None


@register_damage_score("betti-removed", family="topological", kinds=("structured",), direction=-1)
def _betti_removed(ctx: DamageContext, cand: Candidate) -> float | None:
    """share of the targeted units' Betti numbers (b0 + b1 of each unit's outputs on the sample,
    Rips at the 0.1 distance quantile, as the betti method) that the removal takes. Direction -1:
    Kochar et al. remove the units with the MOST Betti numbers as the harmless ones, so their
    claim is that a larger share removed means less damage"""
    from ...pruning.betti import betti_table
    from ...pruning.units import unit_points

    if ctx.sample is None:
        return None

    def make():
        modules = ctx.modules
        names = list(ctx.targets)
        was = ctx.model.training
        ctx.model.eval()
        try:
            with torch.no_grad():
                clouds = unit_points(ctx.model, ctx.sample, modules=modules,
                                     layouts={n: _layout(ctx, n) for n in names}, names=names,
                                     limit=ctx.sample.shape[0], seed=ctx.seed)
        finally:
            ctx.model.train(was)
        return {n: np.array([r["total"] for r in betti_table(o, 1)], dtype=float) for n, o in clouds.items()}

    tables = ctx.cached("betti", make)
    total = sum(float(t.sum()) for t in tables.values())
    gone = sum(float(tables[n][list(idx)].sum()) for n, idx in (cand.removed or {}).items() if n in tables)
    return gone / total if total else None


@register_damage_score("tree-kept", family="topological", kinds=("unstructured",), direction=-1)
def _tree_kept(ctx: DamageContext, cand: Candidate) -> float | None:
    """share of the dense layer graphs' maximum-spanning-tree weight whose edges survive the masks"""
    from ...models.introspect import layer_graph
    from ...topology import maximum_spanning_tree

    def make():
        out = {}
        for n in ctx.targets:
            g = layer_graph(ctx.modules[n])
            rows, cols, values = maximum_spanning_tree(g)
            out[n] = (np.asarray(rows), np.asarray(cols), np.asarray(values))
        return out

    trees = ctx.cached("trees", make)
    modules = _layer_modules(cand.model)
    kept = total = 0.0
    for n, (rows, cols, values) in trees.items():
        g = layer_graph(modules[n])
        total += float(values.sum())
        kept += float(values[g[rows, cols] > 0].sum())
    return kept / total if total else None


@register_damage_score("l1-mass-removed", family="magnitude", direction=1)
def _l1(ctx: DamageContext, cand: Candidate) -> float:
    """share of the targeted layers' L1 weight mass removed (the baseline every score must beat)"""
    return _total_share(ctx, cand, 1)


@register_damage_score("l2-mass-removed", family="magnitude", direction=1)
def _l2(ctx: DamageContext, cand: Candidate) -> float:
    """share of the targeted layers' squared L2 norm removed"""
    return _total_share(ctx, cand, 2)


@register_damage_score("layer-mass-removed-max", family="magnitude", direction=1)
def _layer_max(ctx: DamageContext, cand: Candidate) -> float | None:
    """the largest share of one layer's L1 mass removed (the worst-hit layer)"""
    per = layer_mass_removed(ctx, cand)
    return max(per.values()) if per else None


@register_damage_score("fpgm-removed", family="magnitude", kinds=("structured",), direction=1)
def _fpgm(ctx: DamageContext, cand: Candidate) -> float | None:
    """share of the FPGM score (distance to the layer's other units) of the removed units"""
    from ...pruning.importance import fpgm_scores

    def make():
        return {n: fpgm_scores(_layout(ctx, n).weight(ctx.modules[n]).detach()).double().numpy() for n in ctx.targets}

    scores = ctx.cached("fpgm", make)
    total = sum(float(s.sum()) for s in scores.values())
    gone = sum(float(scores[n][list(idx)].sum()) for n, idx in (cand.removed or {}).items() if n in scores)
    return gone / total if total else None


@register_damage_score("params-removed", family="control", direction=1)
def _params(ctx: DamageContext, cand: Candidate) -> float:
    """share of the parameters (structured) or non-zero weights (unstructured) gone"""
    from ...metrics import count_parameters

    dense = ctx.cached("params", lambda: count_parameters(ctx.model))
    after = count_parameters(cand.model)
    i = 0 if ctx.kind == "structured" else 1
    return 1 - after[i] / dense[i] if dense[i] else 0.0
