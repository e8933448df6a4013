"""Structured pruning: choose filters/neurons, then remove them physically.

``prune_units`` (also reachable as ``prune_filters``) composes three parts: a registered structured method
(:mod:`topoprune.pruning.methods`) picks the units of each targeted layer, the NNI one-shot rule fixes how many, and
:class:`~topoprune.pruning.surgery.Surgeon` removes them with torch-pruning's dependency graph,
so the result is a smaller ``nn.Module`` that runs faster, not a masked one.

Any model: example inputs may be a tensor, a tuple or a dict of keyword inputs (token ids and an
attention mask stay as given); Hugging Face ``Conv1D`` layers are linear layers; the first layer
and the classifier are found by following the data (:mod:`topoprune.models.dataflow`) unless
``model.meta`` names them; attention projections lose whole heads (:mod:`topoprune.models.attention`),
and the module's head count is updated so the pruned model runs. An attention whose forward does
not survive losing a head (timm's ``Attention`` reshapes to the input's width) is found by a trial
on a throwaway copy (:mod:`topoprune.pruning.head_trial`) and keeps its heads, with a note. A
transformer's residual stream (a group that would also narrow an embedding) is left alone.
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
from ..models.attention import find_attention, sync_head_counts
from ..models.dataflow import find_ends
from ..models.inputs import Inputs, as_inputs, describe_inputs, example_inputs_for
from ..models.introspect import tied_layers
from ..models.layers import layer_kind, weighted_layers
from .config import check_sparsity, resolve_config_list
from .targets import TOLERANCE
from .methods.base import LayerRequest, PruneContext, StructuredMethod, resolve_method
from .head_trial import heads_that_stay
from .surgery import Surgeon
from .units import UnitLayout, grouped_layouts, unit_layouts

__all__ = [
    "prune_units",
    "prune_filters",
    "StructuredResult",
    "LayerStructured",
    "default_targets",
    "apply_steps",
]


@dataclass
class LayerStructured:
    """One layer's outcome: units before/after, the original indices kept, and why if skipped.

    ``unit`` says what a unit is (``filter``, ``neuron``, ``head``, or ``filter set of G`` /
    ``neuron set of G`` where the channels pass through a grouped convolution of ``G`` groups:
    one channel at the same offset in each group); ``before``/``after``/``kept`` count units, so
    an attention projection reports heads."""

    name: str
    kind: str
    sparsity: float
    before: int
    after: int
    kept: list[int] = field(default_factory=list)
    coupled_with: list[str] = field(default_factory=list)
    note: str = ""
    unit: str = "filter"

    def to_dict(self) -> dict:
        """Plain JSON-ready data, as its result's ``to_dict()`` lists it."""
        return asdict(self)


@dataclass
class StructuredResult:
    """What :func:`prune_units` did: per-layer outcome, the replayable removal steps, and the
    parameters, MACs (NNI rule) and FLOPs (torch counter) before and after."""

    method: str
    input_shape: tuple[int, ...] | None  # one tensor's shape without the batch; None for tuple/dict inputs
    layers: list[LayerStructured]
    steps: list[dict]
    params: tuple[int, int]
    macs: tuple[int, int]
    flops: tuple[int, int]
    seconds: float
    extra: dict = field(default_factory=dict)
    inputs: str = ""  # the example inputs, described (shapes and dtypes)
    first_layer: str | None = None
    classifier: str | None = None
    heads: dict = field(default_factory=dict)  # attention module -> {"before": n, "after": n}
    warnings: list[str] = field(default_factory=list)
    # the inputs it was traced with (for save_pruned to replay the removals); not in to_dict()
    example_inputs: object = field(default=None, repr=False, compare=False)

    @property
    def skipped(self) -> list[str]:
        """Targeted layers that lost nothing (each with its reason in ``layers[i].note``)."""
        return [x.name for x in self.layers if x.after == x.before]

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "input_shape": list(self.input_shape) if self.input_shape is not None else None,
            "inputs": self.inputs, "first_layer": self.first_layer, "classifier": self.classifier,
            "layers": [asdict(x) for x in self.layers], "steps": self.steps,
            "params": {"before": self.params[0], "after": self.params[1]},
            "macs": {"before": self.macs[0], "after": self.macs[1]},
            "flops": {"before": self.flops[0], "after": self.flops[1]},
            "heads": self.heads, "warnings": self.warnings,
            "seconds": self.seconds, "extra": self.extra,
        }


def default_targets(model: nn.Module, example_inputs: Inputs | None = None) -> list[str]:
    """Every weighted layer (conv, linear, Hugging Face ``Conv1D``) but the model's first layer
    and its classifier: ``model.meta`` names them for registry models; otherwise they are found
    by following the data on ``example_inputs`` (:func:`topoprune.models.dataflow.find_ends`)."""
    ends = find_ends(model, example_inputs)
    return [n for n in weighted_layers(model) if n not in (ends.first_layer, ends.classifier)]


def prune_units(
    model: nn.Module,
    example_inputs: Inputs | None = None,
    *,
    method: str | StructuredMethod | Mapping = "l1",
    sparsity: float | None = None,
    target: Mapping | None = None,
    allocation: str | Mapping | object = "uniform",
    layers: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    config_list: Sequence[Mapping] | None = None,
    data_sample: Inputs | None = None,
    labelled_sample: tuple | None = None,
    inplace: bool = False,
    seed: int = 0,
) -> tuple[nn.Module, StructuredResult]:
    """Remove units physically: filters (conv), neurons (linear) and attention heads. Returns the
    smaller model and a :class:`StructuredResult`.

    Args:
        model: any ``nn.Module``.
        example_inputs: one batch the model takes, used as given to trace it and count MACs and
            FLOPs: a tensor, a tuple of tensors, or a dict of keyword inputs (e.g.
            ``{"input_ids": ids, "attention_mask": mask}``). Default for registry models: zeros
            of ``model.meta.input_shape``.
        method: a registered structured method by name (``"l1"``, ``"l2"``, ``"fpgm"``,
            ``"random"``, ``"topological"``, ``"betti"``, or your own; see
            :func:`topoprune.list_methods`), a method object with its settings
            (``topoprune.pruning.methods.Topological(fitness="np")``), or a mapping
            ``{"name": ..., **settings}``.
        sparsity: the fraction of each targeted layer's units to remove (NNI's rule:
            ``int(units * sparsity)``; an attention projection's units are its heads), in [0, 1);
            default 0.5. Not with ``target``.
        target: prune to a count instead: ``{"flops_kept": 0.5}`` keeps half the dense model's
            FLOPs, ``{"flops": "4x"}`` asks for 4x fewer (metrics ``flops``, ``macs``,
            ``params``): at most the target and within 1 % below it. The per-layer sparsities are
            chosen by ``allocation`` and recorded in ``result.layers`` and
            ``result.extra["budget"]`` (``met``: whether the measured count landed; a miss, e.g.
            units too coarse or attention FLOPs the cost model holds constant, is a warning).
        allocation: with ``target``, how many units each layer loses (its layer budget):
            ``"uniform"``, ``"global"``, ``"eagleeye"`` (needs ``labelled_sample``),
            ``"topological-budget"``, an :class:`~topoprune.pruning.allocation.Allocation`
            object, or ``{"name": ..., **settings}``; see :func:`topoprune.list_allocations`.
        layers: the layers to prune (default: every weighted layer but the model's first layer
            and its classifier).
        exclude: layers never to prune (in addition to the default first layer and classifier).
        config_list: NNI-style entries (``op_types``, ``op_names``, ``exclude_op_names``,
            ``sparse_ratio``); when given, it alone decides the layers and their sparsities.
        data_sample: inputs for methods that look at the layers' outputs (``betti``, the
            Topological Pruner with ``fitness="activation"``); the same structure as
            ``example_inputs``, usually more samples.
        labelled_sample: ``(inputs, labels)`` tensors, for allocations that judge candidates by
            accuracy after adaptive BatchNorm (``eagleeye``; the data term of
            ``topological-v2``), and for methods scored by the loss gradient (``taylor``).
        inplace: prune ``model`` itself and return it (``False``, the default, prunes a deep copy
            and leaves ``model`` untouched; see the note below).
        seed: seed of every random choice.

    Copy or in place: ``torch.nn.utils.prune`` and Torch-Pruning change the model in place. We
    copy by default because comparing against the dense model is what pruning is measured by,
    and an in-place prune that fails halfway would leave it half-pruned; pass ``inplace=True``
    to save the copy's memory on a large model. :func:`prune_weights` follows the same rule.

    Layers coupled through a residual addition are pruned together (scores summed over the
    coupled layers); a layer coupled to a zero-padding shortcut (CIFAR ResNet option A), to a
    layer that must stay, or to an embedding (a transformer's residual stream) is left alone, and
    the result says why. A prune that removes nothing, or that skips layers named in
    ``config_list``, warns and lists them in ``result.warnings``.
    """
    inputs, data, ignore = data_sample, labelled_sample, exclude
    if not isinstance(model, nn.Module):
        raise TopopruneError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, torch.jit.ScriptModule):
        raise TopopruneError("a TorchScript model cannot be pruned structurally (its graph is fixed); "
                             "prune the Python model it was scripted from")
    chosen = resolve_method(method, kind="structured")
    goal = None
    if target is not None:
        from .allocation import resolve_allocation
        from .targets import parse_target

        if sparsity is not None:
            raise TopopruneError("give sparsity or target, not both: with target the per-layer sparsities "
                                 "are chosen by the allocation")
        if config_list is not None:
            raise TopopruneError("target with config_list is not supported: leave layers out with exclude=[...]")
        goal = parse_target(target)
        chosen_allocation = resolve_allocation(allocation)
        if data is not None and not (isinstance(data, (tuple, list)) and len(data) == 2
                                     and all(isinstance(t, torch.Tensor) for t in data)):
            raise TopopruneError(f"labelled_sample: bad value {type(data).__name__}; allowed: a pair (inputs, labels) of "
                                 "tensors")
    elif allocation != "uniform" or (data is not None and not chosen.needs().labelled):
        raise TopopruneError("allocation= and labelled_sample= apply to pruning to a target: add target={'flops': '2x'} "
                             "(or leave them out)")
    elif getattr(chosen, "needs_target", False):
        raise TopopruneError(f"method {chosen.name!r} searches the layer budgets itself: give a target, e.g. "
                             f"prune_units(..., method={chosen.name!r}, target={{'flops': '2x'}})")
    sparsity = check_sparsity(0.5 if sparsity is None else sparsity)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise TopopruneError(f"seed must be an integer >= 0, got {seed!r}")
    if inputs is not None:
        inputs = as_inputs(inputs, "data_sample")
    if chosen.needs().sample and inputs is None:
        raise TopopruneError(f"method {chosen.name!r} ({chosen}) looks at the layers' outputs: pass a "
                             "data sample, prune_units(..., data_sample=x) (the CLI takes --dataset)")
    candidates = weighted_layers(model)
    if ignore is None:
        ignore = ()
    if isinstance(ignore, str):
        ignore = (ignore,)
    if not isinstance(ignore, (list, tuple, set, frozenset)) or not all(isinstance(n, str) for n in ignore):
        raise TopopruneError(f"exclude must be layer names (a list of strings), got {ignore!r}")
    for n in ignore:
        if n not in candidates:
            raise TopopruneError(f"exclude names {n!r}, not a prunable layer; prunable layers: "
                                 f"{', '.join(candidates)}")
    example_inputs = example_inputs_for(model, example_inputs)
    input_shape = tuple(example_inputs.shape[1:]) if isinstance(example_inputs, torch.Tensor) else None
    ends = find_ends(model, example_inputs)
    explicit = config_list is not None
    if explicit and layers is not None:
        raise TopopruneError("give layers= or config_list=, not both: config_list names its layers itself")
    if explicit:
        targets = resolve_config_list(model, config_list, candidates)
    elif layers is not None:
        targets = {n: sparsity for n in _named_layers(layers, candidates)}
    else:
        targets = {n: sparsity for n in candidates if n not in (ends.first_layer, ends.classifier)}
    targets = {n: s for n, s in targets.items() if n not in ignore}

    t0 = time.perf_counter()
    work = model if inplace else copy.deepcopy(model)
    try:
        count = dict(example_inputs=example_inputs)
        params0, macs0, flops0 = (count_parameters(work)[0], count_macs(work, **count),
                                  count_flops(work, **count))
        surgeon = Surgeon(work, example_inputs)
    except TopopruneError:  # the memory limit on tracing: already one line
        raise
    except Exception as exc:  # noqa: BLE001 - tracing failures come in many types
        raise _trace_error(exc, example_inputs) from None
    modules = surgeon.modules
    blocks = find_attention(work)
    tied = tied_layers(work)
    layouts = grouped_layouts(unit_layouts(work, blocks), surgeon, [n for n in targets if n in modules])
    heads_before = {b.name: b.heads for b in blocks}
    mha_of = {f"{n}.out_proj": n for n, m in modules.items() if isinstance(m, nn.MultiheadAttention)}
    stay = heads_that_stay(work, blocks, example_inputs, targets=[n for n in targets if n in modules])
    held = {p: f"not pruned: the attention {b.name!r} keeps its heads: {stay[b.name]}"
            for b in blocks if b.name in stay for p in b.projections}
    done: dict[str, str] = {}  # layer -> the leader whose group removed its units
    fractions: dict[str, float] = {}
    plan = None
    if goal is not None:
        from .budgets import plan_budget

        plan = plan_budget(model=work, example_inputs=example_inputs, surgeon=surgeon, layouts=layouts,
                           targets=targets, method=chosen, target=goal, allocation=chosen_allocation,
                           data=data, seed=seed, inputs=inputs,
                           skip=lambda n, g: _skip_reason(n, g, surgeon=surgeon, targets=targets,
                                                          layouts=layouts, tied=tied, held=held))
        targets = {n: plan.sparsities.get(n, 0.0) for n in targets}
        fractions = plan.fractions
    ctx = PruneContext(model=work, modules=modules, targets=targets, example_inputs=example_inputs,
                       inputs=inputs, seed=seed, surgeon=surgeon, layouts=layouts, labelled=data)
    if plan is not None:
        ctx.state["budget"] = plan
        ctx.extra["budget"] = plan.record
    chosen.prepare(ctx)  # model-wide work, on the model before any removal
    layers, steps = [], []
    for name, layer_sparsity in targets.items():
        module, layout = modules[name], layouts[name]
        rec = LayerStructured(name, layer_kind(module), fractions.get(name, layer_sparsity), layout.count,
                              layout.count, list(range(layout.count)),
                              unit=f"{layout.kind} set of {layout.parts}" if layout.grouped else layout.kind)
        layers.append(rec)
        if name in done:
            rec.note = f"pruned together with {done[name]} (coupled)"
            continue
        try:
            group = surgeon.inspect(name)
        except ValueError:  # not in torch-pruning's graph: called functionally, not as a module
            owner = mha_of.get(name)
            rec.note = (f"not pruned: the output projection of nn.MultiheadAttention {owner!r}, which keeps "
                        "its heads: num_heads * head_dim must equal embed_dim, its input and output width"
                        if owner is not None else
                        "not pruned: torch-pruning's trace does not reach it as a module (it is called "
                        "functionally)")
            continue
        rec.coupled_with = list(group.coupled)
        reason = _skip_reason(name, group, surgeon=surgeon, targets=targets, layouts=layouts, tied=tied,
                              held=held)
        if reason:
            rec.note = reason
            continue
        request = LayerRequest(name, module, layer_sparsity, tuple(group.coupled), layout)
        units = sorted(int(i) for i in chosen.choose(ctx, request))
        n = layout.count
        if any(i < 0 or i >= n for i in units) or len(set(units)) != len(units):
            raise TopopruneError(f"method {chosen.name!r} chose invalid units {units} for {name!r} ({n} units)")
        asked = int(n * layer_sparsity)
        if len(units) not in (asked, min(asked, n - 1)) and not chosen.sets_own_counts():
            who = f"{chosen.name!r} ({type(chosen).__name__})" if chosen.name else type(chosen).__name__
            raise TopopruneError(f"method {who} chose {len(units)} units of "
                                 f"{name!r} at sparsity {layer_sparsity:g}; allowed: exactly int({n} * "
                                 f"{layer_sparsity:g}) = {asked} distinct indices in [0, {n})")
        if len(units) >= n:
            units = units[: n - 1]
            rec.note = f"kept 1 {layout.kind}: the choice would have emptied the layer"
        if not units:
            if plan is not None and name in fractions:
                rec.note = rec.note or f"not pruned: the allocation ({plan.record['searched_by']}) gives it no removals"
            else:
                rec.note = rec.note or f"not pruned: int({n} * {layer_sparsity}) < 1 or fewer than 2 {layout.kind}s"
            continue
        try:
            surgeon.remove(name, layout.features_of(units))
        except (RuntimeError, IndexError, ValueError) as exc:
            raise _removal_error(exc, name, group.coupled, surgeon, inplace) from None
        steps.append({"layer": name, "pruned": layout.features_of(units)})
        gone = set(units)
        rec.kept = [i for i in range(n) if i not in gone]
        rec.after = len(rec.kept)
        for other in group.coupled:
            done[other] = name
    for rec in layers:  # coupled layers: report their final size
        if rec.name in done:
            leader = next(x for x in layers if x.name == done[rec.name])
            rec.kept, rec.after = list(leader.kept), leader.after
    heads_after = sync_head_counts(work, blocks)
    warned = []
    if stay:
        names = list(stay)
        warned.append(f"attention heads left in place in {len(names)} module(s) ({', '.join(names[:4])}"
                      f"{' ...' if len(names) > 4 else ''}): their forward fails with one head less (it "
                      "sizes a reshape from the input's width, as timm's Attention does); the other layers "
                      "were pruned (see result.layers notes)")
    if not steps:
        asked = f"target={target!r}" if goal is not None else f"sparsity={sparsity}"
        warned.append(f"prune_units({chosen.name}, {asked}) removed nothing: see the "
                      "per-layer notes in result.layers")
    elif explicit:
        missed = [x.name for x in layers if x.after == x.before]
        if missed:
            warned.append(f"prune_units({chosen.name}) left {len(missed)} targeted layer(s) unpruned: "
                          f"{', '.join(missed[:6])}{' ...' if len(missed) > 6 else ''} (see result.layers notes)")
    head = next((x for x in layers if x.name == ends.classifier and x.after < x.before), None)
    if head is not None:
        warned.append(f"the classifier {head.name!r} was pruned ({head.before} -> {head.after} outputs): "
                      "the model's output size changed; exclude it (exclude=[name])")
    if warned:
        import warnings

        for w in warned:
            warnings.warn(w, stacklevel=2)
    try:
        after = (count_parameters(work)[0], count_macs(work, **count), count_flops(work, **count))
    except Exception as exc:  # noqa: BLE001 - the pruned model must still run; say so if not
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        heads = [p for b in blocks for p in b.projections if b.name in heads_after
                 and heads_after[b.name] < heads_before[b.name]]
        hint = (f"; attention heads were removed, and a forward that reshapes to the input's width "
                f"cannot lose heads: try exclude={heads!r}" if heads else
                "; leave the layers around the failing operation alone with exclude=[...]")
        left = " (with inplace=True the model is left pruned and broken)" if inplace else ""
        raise TopopruneError(f"the pruned model no longer runs on the example inputs ({first}){hint}"
                             f"{left}") from None
    if plan is not None:
        measured = {"params": after[0], "macs": after[1], "flops": after[2]}[goal.metric]
        dense = {"params": params0, "macs": macs0, "flops": flops0}[goal.metric]
        achieved = measured / dense
        plan.record.update(measured=measured, measured_fraction=achieved,
                           met=abs(achieved / goal.keep - 1) <= TOLERANCE)
        if not plan.record["met"]:
            import warnings

            msg = (f"target {goal} missed: the pruned model keeps {achieved:.4f} of the {goal.metric} "
                   f"(allowed: within {100 * TOLERANCE:g}% of {goal.keep:g})"
                   + (f"; {plan.cost.notes[0]}" if plan.cost.notes else "; the layers' units are too coarse"))
            warned.append(msg)
            warnings.warn(msg, stacklevel=2)
    info = StructuredResult(
        chosen.name, input_shape, layers, steps,
        (params0, after[0]), (macs0, after[1]), (flops0, after[2]),
        time.perf_counter() - t0,
        ctx.extra,
        inputs=describe_inputs(example_inputs), first_layer=ends.first_layer, classifier=ends.classifier,
        heads={**{b: {"before": heads_before[b], "after": heads_after[b]} for b in heads_before},
               **{n: {"before": modules[n].num_heads, "after": modules[n].num_heads} for n in mha_of.values()}},
        warnings=warned, example_inputs=example_inputs,
    )
    return work, info


def _skip_reason(name: str, group, *, surgeon: Surgeon, targets: Mapping[str, float],
                 layouts: Mapping[str, UnitLayout], tied: Mapping[str, Sequence[str]],
                 held: Mapping[str, str] | None = None) -> str | None:
    """Why a targeted layer's units cannot be removed (a note for its record), or None.
    ``held``: attention projections whose module cannot lose heads, with their note."""
    layout = layouts[name]
    if held and name in held:
        return held[name]
    stuck = next((c for c in group.coupled if held and c in held), None)
    if stuck is not None:
        return f"not pruned: coupled with {stuck!r}, whose attention keeps its heads"
    if group.through_padding:
        return ("not pruned: its channels are coupled through a zero-padding shortcut "
                "(option A), whose channel offsets torch-pruning does not model")
    if group.embeddings:
        return (f"not pruned: its width is the residual stream, shared with the embedding "
                f"{group.embeddings[0]!r} (the hidden size stays)")
    if group.attention:
        return (f"not pruned: its channels are the embedding width of nn.MultiheadAttention "
                f"{group.attention[0]!r}, which stays: narrowing it would shrink every head and change "
                "the attention's scale 1/sqrt(head_dim), not remove units")
    if tied:  # a group touching a tied weight (as output or as a consumer's input) would untie it
        touched = [name, *group.coupled, *(surgeon.names[c] for c in surgeon.consumers(name))]
        shared = next((t for t in touched if t in tied), None)
        if shared is not None:
            return (f"not pruned: {shared!r} has its weight tied to {', '.join(tied[shared])}, and "
                    "removing these units would untie them")
    outside = [c for c in group.coupled if c not in targets]
    if outside:
        note = f"not pruned: coupled with {', '.join(outside)}, which is not targeted"
        if layout.kind == "head":
            note += " (an attention block's q, k and v lose heads together: target all three)"
        return note
    uneven = [c for c in group.coupled if layouts[c].count != layout.count]
    if uneven:
        return (f"not pruned: coupled with {', '.join(uneven)} ({layouts[uneven[0]].count} vs "
                f"{layout.count} {layout.kind}s) through a concatenation or channel shuffle, "
                "whose index mapping is not one-to-one")
    mismatch = [c for c in group.coupled  # heads couple only with heads of the same size
                if (layouts[c].size, layouts[c].parts) != (layout.size, layout.parts)]
    if mismatch:
        return (f"not pruned: coupled with {', '.join(mismatch)}, whose units differ "
                f"({layout.kind} of {layout.size} vs {layouts[mismatch[0]].kind})")
    return None


def _removal_error(exc: Exception, name: str, coupled: Sequence[str], surgeon: Surgeon,
                   inplace: bool) -> TopopruneError:
    """A one-line error for a removal torch-pruning could not carry out, naming the reshaping
    operations the layer's channels pass through (a channel shuffle's view/transpose permutes
    channels, which torch-pruning's index mapping does not model) and what to exclude."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    ops = []
    try:
        for dep, _ in surgeon.group(name, [0]):
            label = str(dep.target.name)
            if any(k in label for k in ("Reshape", "Transpose", "Permute", "Concat", "Split")):
                ops.append(label.split("(")[0] + ("(transpose)" if "Transpose" in label else ""))
    except Exception:  # noqa: BLE001 - the graph may be half-pruned: name no ops then
        pass
    through = f" through {', '.join(dict.fromkeys(ops))}" if ops else ""
    layers = [name, *coupled]
    left = " (with inplace=True the model may be left part-pruned)" if inplace else ""
    return TopopruneError(
        f"could not remove units of {name!r}: its channels pass{through}, which torch-pruning "
        f"cannot map ({first}); a channel shuffle (view + transpose) is the usual cause: leave "
        f"these layers alone with exclude={layers!r}{left}")


def _trace_error(exc: Exception, example_inputs: Inputs) -> TopopruneError:
    """A one-line error for a model torch-pruning cannot trace: which operation stopped it (from
    the innermost frame of the model's own code) and what to do."""
    import traceback

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if "torch_pruning" not in f.filename and "/torch/" not in f.filename
            and "topoprune" not in f.filename]
    if user:
        f = user[-1]
        where = f" at {f.filename.rsplit('/', 1)[-1]}:{f.lineno} `{(f.line or '').strip()[:80]}`"
    if any("torch_pruning" in f.filename for f in frames):
        return TopopruneError(
            f"torch-pruning could not trace the model's channel dependencies{where}: "
            f"{type(exc).__name__}: {first}; operations that permute channels (a channel "
            "shuffle's view/transpose) are not modelled: leave the layers around it alone with "
            "exclude=[...] (or config_list exclude_op_names)")
    return TopopruneError(f"the model does not run on example inputs {describe_inputs(example_inputs)}"
                          f"{where}: {first}")


def apply_steps(model: nn.Module, steps: Sequence[Mapping], example_inputs: Inputs | None = None) -> nn.Module:
    """Replay recorded removals on a fresh model of the same architecture (in place), then write
    the new head counts into its attention modules. ``example_inputs`` as for
    :func:`prune_units` (default for registry models: zeros of ``model.meta.input_shape``)."""
    example_inputs = example_inputs_for(model, example_inputs)
    blocks = find_attention(model)
    surgeon = Surgeon(model, example_inputs)
    for step in steps:
        if step["layer"] not in surgeon.modules:
            raise TopopruneError(f"pruning step names layer {step['layer']!r}, not in this model")
        surgeon.remove(step["layer"], [int(i) for i in step["pruned"]])
    sync_head_counts(model, blocks)
    return model


def _named_layers(layers: object, candidates: Sequence[str]) -> list[str]:
    """``layers=``, checked: a list of prunable layer names."""
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, (list, tuple)) or not all(isinstance(n, str) for n in layers) or not layers:
        raise TopopruneError(f"layers must be a non-empty list of layer names, got {layers!r}")
    for n in layers:
        if n not in candidates:
            raise TopopruneError(f"layers names {n!r}, not a prunable layer; prunable layers: {', '.join(candidates)}")
    return list(dict.fromkeys(layers))


_OLD_KWARGS = {"ignore": "exclude", "inputs": "data_sample", "data": "labelled_sample"}


def prune_filters(model: nn.Module, example_inputs: Inputs | None = None, **kwargs) -> tuple[nn.Module, StructuredResult]:
    """:func:`prune_units` under its first name: it removes neurons and attention heads as well as
    filters. Same arguments and ``(model, result)`` return; the keywords ``ignore=``, ``inputs=``,
    ``data=`` and ``context={"inputs": ...}`` still work, with a ``DeprecationWarning`` naming
    ``exclude=``, ``data_sample=`` and ``labelled_sample=``."""
    from .._deprecation import renamed_kwargs, warn_deprecated

    if "context" in kwargs:
        context = kwargs.pop("context")
        warn_deprecated("prune_filters(context={'inputs': x})", "data_sample=x")
        if context is not None:
            if not isinstance(context, Mapping) or set(context) - {"inputs"}:
                raise TopopruneError(f"context: bad value {context!r}; allowed: {{'inputs': x}} (deprecated: "
                                     "use data_sample=x)")
            if "inputs" in context:
                kwargs.setdefault("data_sample", context["inputs"])
    kwargs = renamed_kwargs("prune_filters", kwargs, _OLD_KWARGS)
    return prune_units(model, example_inputs, **kwargs)


# Old names, kept working for one minor release (see CHANGELOG.md).
from .._deprecation import deprecated_module_names as _deprecated  # noqa: E402

__getattr__ = _deprecated(__name__, {
    "FilterPruneInfo": ("topoprune.StructuredResult", lambda: StructuredResult),
    "LayerPruneInfo": ("topoprune.LayerStructured", lambda: LayerStructured),
})
