"""Structured pruning: choose filters/neurons, then remove them physically.

``prune_filters`` composes the three parts of ARCHITECTURE.md: a registered structured method
(:mod:`topoprune.pruning.methods`) picks the units of each targeted layer, the NNI one-shot rule fixes how many, and
:class:`~topoprune.pruning.surgery.Surgeon` removes them with torch-pruning's dependency graph,
so the result is a smaller ``nn.Module`` that runs faster, not a masked one.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..errors import TopopruneError
from ..metrics import count_flops, count_macs, count_parameters
from .config import check_sparsity, resolve_config_list
from .methods.base import LayerRequest, PruneContext, StructuredMethod, resolve_method
from .surgery import Surgeon

__all__ = [
    "prune_filters",
    "FilterPruneInfo",
    "LayerPruneInfo",
    "default_targets",
    "apply_steps",
]


@dataclass
class LayerPruneInfo:
    """One layer's outcome: units before/after, the original indices kept, and why if skipped."""

    name: str
    kind: str
    sparsity: float
    before: int
    after: int
    kept: list[int] = field(default_factory=list)
    coupled_with: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class FilterPruneInfo:
    """What ``prune_filters`` did: per-layer outcome, the replayable removal steps, and the
    parameters, MACs (NNI rule) and FLOPs (torch counter) before and after."""

    method: str
    input_shape: tuple[int, ...]
    layers: list[LayerPruneInfo]
    steps: list[dict]
    params: tuple[int, int]
    macs: tuple[int, int]
    flops: tuple[int, int]
    seconds: float
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "method": self.method, "input_shape": list(self.input_shape),
            "layers": [asdict(x) for x in self.layers], "steps": self.steps,
            "params": {"before": self.params[0], "after": self.params[1]},
            "macs": {"before": self.macs[0], "after": self.macs[1]},
            "flops": {"before": self.flops[0], "after": self.flops[1]},
            "seconds": self.seconds, "extra": self.extra,
        }


def _candidates(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear))}


def default_targets(model: nn.Module) -> list[str]:
    """Every conv/linear layer but the model's first layer and its classifier (from
    ``model.meta``; without metadata, the last layer is taken as the classifier)."""
    names = list(_candidates(model))
    meta = getattr(model, "meta", None)
    skip = {meta.first_layer, meta.classifier} if meta is not None else {names[-1]} if names else set()
    return [n for n in names if n not in skip]


def prune_filters(
    model: nn.Module,
    example_inputs: torch.Tensor | None = None,
    *,
    method: str | StructuredMethod | Mapping = "l1",
    sparsity: float = 0.5,
    config_list: Sequence[Mapping] | None = None,
    ignore: Sequence[str] = (),
    inplace: bool = False,
    seed: int = 0,
    inputs: torch.Tensor | None = None,
) -> tuple[nn.Module, FilterPruneInfo]:
    """Remove filters (conv) and neurons (linear) physically; return the smaller model and a record.

    Args:
        model: the model; left untouched unless ``inplace=True``.
        example_inputs: one batch to trace the model with (default: zeros of
            ``model.meta.input_shape``).
        method: a registered structured method by name (``"l1"``, ``"l2"``, ``"fpgm"``,
            ``"random"``, ``"topological"``, ``"betti"``, or your own), a method object with its
            settings (``topoprune.pruning.methods.Topological(fitness="np")``), or a mapping
            ``{"name": ..., **settings}``.
        sparsity: fraction of each targeted layer's units to remove (NNI:
            ``int(C_out * sparsity)``), in [0, 1).
        config_list: NNI-style entries (``op_types``, ``op_names``, ``exclude_op_names``,
            ``sparse_ratio``); when given, it alone decides targets and sparsities.
        ignore: layer names never to prune (added to the default first layer and classifier).
        seed: seed of random choices.
        inputs: a data sample, for methods that look at the layers' outputs (``betti``, the
            Topological Pruner with ``fitness="activation"``).

    Layers coupled through a residual addition are pruned together (scores summed over the
    coupled layers); a layer coupled to a zero-padding shortcut (CIFAR ResNet option A) or to a
    layer that must stay is left alone, and the record says why.
    """
    if not isinstance(model, nn.Module):
        raise TopopruneError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    chosen = resolve_method(method, kind="structured")
    sparsity = check_sparsity(sparsity)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise TopopruneError(f"seed must be an integer >= 0, got {seed!r}")
    if inputs is not None and not isinstance(inputs, torch.Tensor):
        raise TopopruneError(f"inputs must be a tensor (a batch of samples), got {type(inputs).__name__}")
    if chosen.needs().sample and inputs is None:
        raise TopopruneError(f"method {chosen.name!r} ({chosen}) looks at the layers' outputs: pass a "
                             "data sample, prune_filters(..., inputs=x) (the CLI takes --dataset)")
    candidates = _candidates(model)
    if ignore is None:
        ignore = ()
    if isinstance(ignore, str):
        ignore = (ignore,)
    if not isinstance(ignore, (list, tuple, set, frozenset)) or not all(isinstance(n, str) for n in ignore):
        raise TopopruneError(f"ignore must be layer names (a list of strings), got {ignore!r}")
    for n in ignore:
        if n not in candidates:
            raise TopopruneError(f"ignore names {n!r}, not a prunable layer; prunable layers: "
                                 f"{', '.join(candidates)}")
    if config_list is not None:
        targets = resolve_config_list(model, config_list, candidates)
    else:
        targets = {n: sparsity for n in default_targets(model)}
    targets = {n: s for n, s in targets.items() if n not in ignore}
    if example_inputs is None:
        meta = getattr(model, "meta", None)
        if meta is None:
            raise TopopruneError("example_inputs is required for a model without .meta")
        example_inputs = torch.zeros(1, *meta.input_shape)
    if not isinstance(example_inputs, torch.Tensor):
        raise TopopruneError(f"example_inputs must be a tensor batch, got {type(example_inputs).__name__}")
    input_shape = tuple(example_inputs.shape[1:])

    t0 = time.perf_counter()
    work = model if inplace else copy.deepcopy(model)
    try:
        params0, macs0, flops0 = (count_parameters(work)[0], count_macs(work, input_shape),
                                  count_flops(work, input_shape))
        surgeon = Surgeon(work, example_inputs)
    except Exception as exc:  # noqa: BLE001 - tracing failures come in many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TopopruneError(f"the model does not run on example inputs of shape "
                             f"{tuple(example_inputs.shape)}: {first}") from None
    modules = surgeon.modules
    original = {n: modules[n].weight.shape[0] for n in candidates}
    done: dict[str, str] = {}  # layer -> the leader whose group removed its units
    ctx = PruneContext(model=work, modules=modules, targets=targets, example_inputs=example_inputs,
                       inputs=inputs, seed=seed, surgeon=surgeon)
    chosen.prepare(ctx)  # model-wide work, on the model before any removal
    layers, steps = [], []
    for name, layer_sparsity in targets.items():
        module = modules[name]
        kind = "conv" if isinstance(module, nn.modules.conv._ConvNd) else "linear"
        rec = LayerPruneInfo(name, kind, layer_sparsity, original[name], module.weight.shape[0],
                             list(range(module.weight.shape[0])))
        layers.append(rec)
        if name in done:
            rec.note = f"pruned together with {done[name]} (residual coupling)"
            continue
        group = surgeon.inspect(name)
        rec.coupled_with = list(group.coupled)
        if group.through_padding:
            rec.note = ("not pruned: its channels are coupled through a zero-padding shortcut "
                        "(option A), whose channel offsets torch-pruning does not model")
            continue
        outside = [c for c in group.coupled if c not in targets]
        if outside:
            rec.note = f"not pruned: coupled with {', '.join(outside)}, which is not targeted"
            continue
        request = LayerRequest(name, module, layer_sparsity, tuple(group.coupled))
        idxs = sorted(int(i) for i in chosen.choose(ctx, request))
        c_out = module.weight.shape[0]
        if any(i < 0 or i >= c_out for i in idxs) or len(set(idxs)) != len(idxs):
            raise TopopruneError(f"method {chosen.name!r} chose invalid units {idxs} for {name!r} ({c_out} units)")
        if len(idxs) >= c_out:
            idxs = idxs[: c_out - 1]
            rec.note = "kept 1 unit: the choice would have emptied the layer"
        if not idxs:
            rec.note = rec.note or f"not pruned: int({c_out} * {layer_sparsity}) < 1 or fewer than 2 units"
            continue
        surgeon.remove(name, idxs)
        steps.append({"layer": name, "pruned": idxs})
        keep = [i for i in range(c_out) if i not in set(idxs)]
        rec.kept, rec.after = keep, len(keep)
        for other in group.coupled:
            done[other] = name
    for rec in layers:  # coupled layers: report their final size
        if rec.name in done:
            rec.after = modules[rec.name].weight.shape[0]
            leader = next(x for x in layers if x.name == done[rec.name])
            rec.kept = list(leader.kept)
    if targets and not steps:
        import warnings

        warnings.warn(f"prune_filters({chosen.name}, sparsity={sparsity}) removed nothing: see the "
                      "per-layer notes in info.layers", stacklevel=2)
    info = FilterPruneInfo(
        chosen.name, input_shape, layers, steps,
        (params0, count_parameters(work)[0]),
        (macs0, count_macs(work, input_shape)),
        (flops0, count_flops(work, input_shape)),
        time.perf_counter() - t0,
        ctx.extra,
    )
    return work, info


def apply_steps(model: nn.Module, steps: Sequence[Mapping], example_inputs: torch.Tensor) -> nn.Module:
    """Replay recorded removals on a fresh model of the same architecture (in place)."""
    surgeon = Surgeon(model, example_inputs)
    for step in steps:
        if step["layer"] not in surgeon.modules:
            raise TopopruneError(f"pruning step names layer {step['layer']!r}, not in this model")
        surgeon.remove(step["layer"], [int(i) for i in step["pruned"]])
    return model
