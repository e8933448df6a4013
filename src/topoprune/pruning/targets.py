"""Pruning to a target count: what the target means, and what a choice of per-layer budgets costs.

``prune_units(..., target={"flops_kept": 0.5})`` asks for a pruned model whose FLOPs are half the
dense model's (``"macs"`` and ``"params"`` work the same way; ``"2x"`` and ``"4x"`` are accepted as
reductions). An allocation (:mod:`topoprune.pruning.allocation`) then chooses how many units
each prunable group loses; to compare thousands of candidate budgets it needs their cost without
pruning anything, which is :class:`CostModel`:

- Each weighted module's cost (parameters, NNI-rule MACs, torch-counter FLOPs) is measured once
  on the dense model, per module.
- Removing one unit of a group shrinks some modules' outputs and some modules' inputs by a
  number of channels that torch-pruning's dependency graph reports (a residual partner loses the
  same outputs, a BatchNorm its entries, the next layer its inputs; a depthwise conv loses
  output channels only). So a module's cost scales with ``kept_out / out`` and ``kept_in / in``
  (a depthwise conv's and a vector parameter's with ``kept_out / out`` alone).
- What is not a weighted module (attention's matrix products, for FLOPs) is held constant.

For convolutional networks this is exact (tested against pruning and counting); for attention
the FLOPs of the score products are not modelled, and ``prune_units`` says so when the measured
count misses the target.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import TopopruneError
from ..models.inputs import Inputs, batch_size, call_model
from ..models.hooks import inspecting
from ..models.layers import is_weighted_layer

__all__ = ["Target", "parse_target", "CostModel", "Group", "build_cost_model", "METRICS", "TOLERANCE"]

METRICS = ("flops", "macs", "params")
TOLERANCE = 0.01  # a target is met when the pruned count is within 1 % of it


@dataclass(frozen=True)
class Target:
    """Keep ``keep`` (a fraction in (0, 1)) of the dense model's ``metric``."""

    metric: str
    keep: float

    @property
    def reduction(self) -> float:
        """The dense count over the pruned count (2.0 for ``keep = 0.5``)."""
        return 1.0 / self.keep

    def to_dict(self) -> dict:
        return {"metric": self.metric, "keep": self.keep, "reduction": self.reduction}

    def __str__(self) -> str:
        return f"{self.metric} x{self.keep:g} ({self.reduction:g}x fewer)"


def parse_target(target: object) -> Target:
    """A :class:`Target` from ``{"flops_kept": 0.25}`` (the fraction of the dense count kept),
    ``{"flops": "4x"}`` (a reduction factor), or a :class:`Target`. One metric, one of ``flops``,
    ``macs``, ``params``. The older ``{"flops": 0.25}`` (a bare fraction kept) still works, with
    a ``DeprecationWarning``: it read too easily as the fraction removed."""
    if isinstance(target, Target):
        return target
    allowed = ('one metric, as the fraction kept, e.g. {"flops_kept": 0.5}, or as a reduction, e.g. '
               '{"flops": "4x"}; metrics: ' + ", ".join(METRICS))
    if not isinstance(target, Mapping) or len(target) != 1:
        raise TopopruneError(f"target: bad value {target!r}; allowed: {allowed}")
    (key, value), = target.items()
    kept_key = isinstance(key, str) and key.endswith("_kept")
    metric = key[: -len("_kept")] if kept_key else key
    if metric not in METRICS:
        raise TopopruneError(f"target: unknown metric {key!r}; allowed: {allowed}")
    keep = None
    is_fraction = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1
    if kept_key:
        if is_fraction:
            keep = float(value)
        else:
            raise TopopruneError(f"target {key}: bad value {value!r}; allowed: the fraction kept, in (0, 1)")
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*x\s*", value)
        if m and float(m.group(1)) > 1:
            keep = 1.0 / float(m.group(1))
    elif is_fraction:
        from .._deprecation import warn_deprecated

        warn_deprecated(f"target={{{metric!r}: {value!r}}} (a bare fraction kept)",
                        f"target={{{metric + '_kept'!r}: {value!r}}} or a reduction such as {{{metric!r}: "
                        f"'{1 / value:.3g}x'}}")
        keep = float(value)
    if keep is None:
        raise TopopruneError(f"target {metric}: bad value {value!r}; allowed: a reduction such as '2x' (more "
                             f"than 1x), or {{{metric + '_kept'!r}: fraction kept in (0, 1)}}")
    return Target(metric, keep)


@dataclass
class Group:
    """A prunable group: its leader layer (the one whose units a method chooses), the units it
    has, and the coupled layers that lose the same units."""

    leader: str
    units: int
    coupled: tuple[str, ...] = ()
    max_remove: int = 0  # at most this many units may go (a per-layer cap; at least one stays)


@dataclass
class CostModel:
    """The cost of a pruned model as a function of how many units each group loses.

    ``count(removed)`` (one integer per group, in ``groups`` order) predicts the metric;
    ``dense`` is the measured dense count.
    """

    metric: str
    dense: int
    groups: list[Group]
    rest: float  # the part no group changes
    cost: np.ndarray  # per term: the dense cost
    out_coef: np.ndarray  # (terms, groups): output channels lost per unit removed, over out size
    in_coef: np.ndarray  # (terms, groups): input channels lost per unit removed, over in size
    notes: list[str] = field(default_factory=list)

    def count(self, removed: Sequence[int] | np.ndarray) -> float:
        """Predicted count with ``removed[i]`` units gone from group ``i``."""
        r = np.asarray(removed, dtype=np.float64)
        keep_out = 1.0 - self.out_coef @ r
        keep_in = 1.0 - self.in_coef @ r
        return float(self.rest + np.sum(self.cost * keep_out * keep_in))


def _module_costs(model: nn.Module, example_inputs: Inputs, metric: str,
                  names: dict[nn.Module, str]) -> tuple[dict[str, float], int]:
    """Per weighted module: its dense cost; and the model's measured total (per input)."""
    from ..metrics import count_flops, count_macs, count_parameters

    costs: dict[str, float] = {}
    n = batch_size(example_inputs)
    if metric == "params":
        return costs, count_parameters(model)[0]  # parameters are split per tensor in build_cost_model
    if metric == "macs":
        def hook(m: nn.Module, args, out) -> None:
            if isinstance(m, nn.modules.conv._ConvNd):
                k = int(np.prod(m.kernel_size)) * (m.in_channels // m.groups)
            elif isinstance(m, nn.Linear):
                k = m.in_features
            else:  # Hugging Face Conv1D: weight (in, out)
                k = m.weight.shape[0]
            costs[names[m]] = costs.get(names[m], 0.0) + out.numel() * k / n

        handles = [m.register_forward_hook(hook) for m in model.modules() if is_weighted_layer(m)]
        try:
            with inspecting(model), torch.no_grad():
                call_model(model, example_inputs)
        finally:
            for h in handles:
                h.remove()
        return costs, count_macs(model, example_inputs=example_inputs)
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, inspecting(model), torch.no_grad():
        call_model(model, example_inputs)
    root = type(model).__name__
    by_name = {f"{root}.{n}": n for m, n in names.items() if is_weighted_layer(m)}
    for key, ops in counter.get_flop_counts().items():
        if key in by_name:
            costs[by_name[key]] = sum(ops.values()) / n
    return costs, count_flops(model, example_inputs=example_inputs)


def build_cost_model(model: nn.Module, example_inputs: Inputs, surgeon, groups: Sequence[Group],
                     features: Mapping[str, Sequence[int]], metric: str) -> CostModel:
    """The :class:`CostModel` of ``model`` (before any removal) for ``groups``.

    ``surgeon`` is the model's :class:`~topoprune.pruning.surgery.Surgeon`; ``features[leader]``
    the output-feature indices of one unit of that leader (a head is several features), used to
    ask torch-pruning which channels of which modules one unit takes with it.
    """
    if metric not in METRICS:
        raise TopopruneError(f"metric: bad value {metric!r}; allowed: {', '.join(METRICS)}")
    names = {m: n for n, m in model.named_modules()}
    module_cost, dense = _module_costs(model, example_inputs, metric, names)
    graph = surgeon.graph
    # per module: output and input channels lost per unit of each group
    out_loss: dict[str, np.ndarray] = {}
    in_loss: dict[str, np.ndarray] = {}
    for gi, g in enumerate(groups):
        for dep, idxs in surgeon.group(g.leader, features[g.leader]):
            name = names.get(dep.target.module)
            if name is None:
                continue
            if graph.is_out_channel_pruning_fn(dep.handler):
                out_loss.setdefault(name, np.zeros(len(groups)))[gi] = len(idxs)
            elif graph.is_in_channel_pruning_fn(dep.handler):
                in_loss.setdefault(name, np.zeros(len(groups)))[gi] = len(idxs)
    modules = dict(model.named_modules())
    terms: list[tuple[float, np.ndarray, np.ndarray]] = []
    zero = np.zeros(len(groups))

    def size_out(m: nn.Module) -> int:
        return int(graph.get_out_channels(m) or 0) if graph.get_pruner_of_module(m) else 0

    def size_in(m: nn.Module) -> int:
        return int(graph.get_in_channels(m) or 0) if graph.get_pruner_of_module(m) else 0

    if metric == "params":
        seen: set[int] = set()
        for name, m in modules.items():
            for p in m.parameters(recurse=False):
                if id(p) in seen:
                    continue
                seen.add(id(p))
                o = out_loss.get(name, zero)
                i = in_loss.get(name, zero)
                o_n, i_n = size_out(m), size_in(m)
                oc = o / o_n if o_n and o.any() else zero
                depthwise = getattr(m, "groups", 1) > 1 and getattr(m, "groups", 1) == getattr(m, "in_channels", 0)
                ic = i / i_n if (p.ndim >= 2 and i_n and i.any() and not depthwise) else zero
                terms.append((float(p.numel()), oc, ic))
    else:
        for name, c in module_cost.items():
            m = modules[name]
            o, i = out_loss.get(name, zero), in_loss.get(name, zero)
            o_n, i_n = size_out(m), size_in(m)
            depthwise = getattr(m, "groups", 1) > 1 and getattr(m, "groups", 1) == getattr(m, "in_channels", 0)
            oc = o / o_n if o_n and o.any() else zero
            ic = i / i_n if i_n and i.any() and not depthwise else zero
            terms.append((float(c), oc, ic))
    cost = np.array([t[0] for t in terms])
    out_coef = np.array([t[1] for t in terms]).reshape(len(terms), len(groups))
    in_coef = np.array([t[2] for t in terms]).reshape(len(terms), len(groups))
    rest = float(dense) - float(cost.sum())
    notes = []
    if metric == "flops" and rest > 0.01 * dense:
        notes.append(f"{100 * rest / dense:.1f}% of the FLOPs are outside conv/linear layers (e.g. attention "
                     "products) and are held constant by the budget model")
    return CostModel(metric, int(dense), list(groups), rest, cost, out_coef, in_coef, notes)
