"""Unstructured pruning applied through ``torch.nn.utils.prune``.

``prune_weights`` adds (or tightens) ``weight_mask`` / ``weight_orig`` on each targeted
layer, exactly as PyTorch's own pruning functions do, so ``prune.remove`` makes it permanent and
every tool that understands torch's pruning understands ours. Masks only ever shrink.

Prunable layers are the weighted layers of :func:`topoprune.models.layers.is_weighted_layer`:
Linear, Conv1d/Conv2d and Hugging Face ``Conv1D`` (GPT-2's linear layers), and the packed q/k/v
projection of each ``nn.MultiheadAttention``, named ``<module>.in_proj``: its mask is torch's
``in_proj_weight_mask`` on the attention module (``in_proj_weight_orig`` holds the weights), one
``(3E, E)`` layer whose rows are q's, k's and v's outputs; its ``out_proj`` is an ordinary
Linear layer. A ``Conv1D`` weight is
stored ``(in, out)``; its mask lives on that stored tensor (torch's ``weight_mask``), while every
selection (magnitude ranks, ties, the spanning tree of ``preserve="mst"``) sees the weight as
``(out, in)``, exactly as for the ``nn.Linear`` it stands for.

**Tied weights are not pruned by default.** A layer whose weight parameter another module also
holds (GPT-2's ``lm_head``, tied to the token embedding ``transformer.wte``) is left out of the
default targets, and refused when named: ``torch.nn.utils.prune`` would mask that layer's use of
the weight only (``lm_head.weight_orig`` is the shared parameter, ``wte`` keeps computing with the
dense one), silently untying the two, and ``prune.remove`` would make the split permanent. The
record lists such layers under ``skipped``. Untie the weights first (Hugging Face:
``tie_word_embeddings=False``) to prune them. An untied output layer or classifier is pruned like
any other layer, as for the registry models (unstructured pruning ranks every weight; it is
structured pruning that leaves the first layer and the classifier alone).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from ..errors import TopopruneError
from ..models.introspect import effective_weight, tied_layers
from ..models.layers import maskable_layers, out_in_weight, require_module, weight_attr
from .selection import resolve_amount, select_global, select_layer, tree_mask

__all__ = ["prune_weights", "prune_unstructured", "copy_model", "UnstructuredResult", "prunable_layers", "skipped_layers", "current_mask",
           "ensure_masks", "METHODS", "SCOPES"]

METHODS = ("magnitude", "random-weights", "synflow", "lamp", "snip", "phew")
GLOBAL_ONLY = ("synflow", "lamp", "snip", "phew")  # methods that rank every weight together
SCOPES = ("local", "global")
PRESERVE = (None, "mst")
_ALLOWED = "Linear, Conv1d, Conv2d, Hugging Face Conv1D, nn.MultiheadAttention's <module>.in_proj"


@dataclass
class LayerUnstructured:
    name: str
    total: int
    remaining_before: int
    remaining_after: int
    tree_size: int | None = None
    tree_kept: int | None = None
    warning: str | None = None

    @property
    def sparsity(self) -> float:
        return 1.0 - self.remaining_after / self.total

    def to_dict(self) -> dict:
        """Plain JSON-ready data, as its result's ``to_dict()`` lists it."""
        return asdict(self) | {"sparsity": self.sparsity}


@dataclass
class UnstructuredResult:
    """What one pruning step did, per layer and overall."""

    method: str
    scope: str
    preserve: str | None
    layers: list[LayerUnstructured] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # layer -> why it was not a default target

    @property
    def sparsity(self) -> float:
        total = sum(x.total for x in self.layers)
        return 1.0 - sum(x.remaining_after for x in self.layers) / total if total else 0.0

    @property
    def warnings(self) -> list[str]:
        return [x.warning for x in self.layers if x.warning]

    def to_dict(self) -> dict:
        return {"method": self.method, "scope": self.scope, "preserve": self.preserve,
                "sparsity": self.sparsity, "warnings": self.warnings,
                "layers": [asdict(x) | {"sparsity": x.sparsity} for x in self.layers],
                "skipped": dict(self.skipped)}


def _tied_to(others: Sequence[str]) -> str:
    return ", ".join(repr(o) for o in others)


def skipped_layers(model: nn.Module) -> dict[str, str]:
    """Weighted layers left out of the default targets, and why (tied weights)."""
    return {n: f"weight tied to {_tied_to(others)}" for n, others in tied_layers(model).items()}


def prunable_layers(model: nn.Module, layers: Sequence[str] | None = None) -> dict[str, nn.Module]:
    """The named weighted layers to prune (Linear, Conv1d/Conv2d, Hugging Face ``Conv1D``,
    ``nn.MultiheadAttention``'s ``<module>.in_proj``): all of them except those with tied
    weights (:func:`skipped_layers`), or those named (checked; a tied layer is refused). Each
    name maps to the module holding the weight (:func:`~topoprune.models.layers.weight_attr`)."""
    everything = maskable_layers(model)
    tied = tied_layers(model)
    found = {n: m for n, m in everything.items() if n not in tied}
    if layers is None:
        return found
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
        raise TopopruneError(f"layers must be a list of layer names, got {layers!r}")
    modules = dict(model.named_modules())
    out = {}
    for name in layers:
        if not isinstance(name, str) or (name not in modules and name not in everything):
            raise TopopruneError(
                f"no layer named {name!r}; prunable layers: {', '.join(found) or '(none)'}"
            )
        if name in tied:
            raise TopopruneError(
                f"layer {name!r} cannot be pruned unstructured: its weight is tied to {_tied_to(tied[name])}, "
                f"and a mask would apply to {name!r} only, untying them; untie the weights first "
                "(Hugging Face: tie_word_embeddings=False) or leave it out"
            )
        if name not in found:
            raise TopopruneError(
                f"layer {name!r} is a {type(modules[name]).__name__}, which cannot be pruned "
                f"unstructured; allowed: {_ALLOWED}"
            )
        out[name] = found[name]
    return out


def current_mask(m: nn.Module) -> torch.Tensor:
    """The layer's weight mask (all ones if it has none yet), in the weight's stored layout."""
    attr = weight_attr(m)
    return getattr(m, f"{attr}_mask") if hasattr(m, f"{attr}_mask") else torch.ones_like(getattr(m, attr))


def ensure_masks(layers: Iterable[nn.Module]) -> None:
    """Give each layer torch's pruning reparametrisation (a mask of ones) if it has none, so a
    state dict holding ``weight_orig``/``weight_mask`` can be loaded into it."""
    for m in layers:
        attr = weight_attr(m)
        if not hasattr(m, f"{attr}_mask"):
            prune.custom_from_mask(m, attr, torch.ones_like(getattr(m, attr)))


def prune_weights(
    model: nn.Module,
    sparsity: float | None = None,
    *,
    amount: float | int | None = None,
    method: str = "magnitude",
    scope: str | None = None,
    preserve: str | None = None,
    layers: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    inplace: bool = False,
    seed: int = 0,
    iterations: int = 100,
    example_inputs: object = None,
    labelled_sample: object = None,
) -> tuple[nn.Module, UnstructuredResult]:
    """Prune individual weights through ``torch.nn.utils.prune``. Returns the masked model and an
    :class:`UnstructuredResult`.

    Args:
        model: the model; its targeted layers get ``weight_orig`` + ``weight_mask``.
        sparsity: the fraction of the targeted weights that are pruned after the call, in
            [0, 1): per layer (``scope="local"``) or over the targeted layers together
            (``"global"``). Masks only shrink, so a sparsity below the current one is refused.
        amount: instead of ``sparsity``, torch's meaning: a float is the fraction of the weights
            *still remaining* to remove, an int a count (per layer with ``"local"``).
        method: ``"magnitude"`` (smallest ``|w|`` go), ``"random-weights"`` (seeded),
            ``"synflow"`` (Tanaka et al. 2020: data-free, ``iterations`` rounds on an
            exponential schedule, each re-scoring ``|w * dR/dw|`` of the linearised network) or
            ``"lamp"`` (Lee et al. 2021: the lowest LAMP scores go, see
            :mod:`topoprune.pruning.lamp`; every layer keeps its largest weight) or ``"snip"``
            (Lee et al. 2019: the lowest ``|g * w|`` go, ``g`` the loss gradient on
            ``labelled_sample``; see :mod:`topoprune.pruning.snip`) or ``"phew"`` (Patil &
            Dovrolis 2021: the weights on random input-to-output walks biased by ``|w|``, seeded;
            see :mod:`topoprune.pruning.phew`).
        scope: ``"local"`` or ``"global"`` (default: local; global for synflow, lamp, snip and
            phew, their only scope). Global ranking orders the targeted layers as listed by
            :func:`prunable_layers`, then each weight by its flat index in the ``(out, in, ...)``
            layout; lamp removes equal scores in that order (the lower position first).
        preserve: ``None`` or ``"mst"``: keep each layer graph's maximum spanning tree first (the
            T-IMP selection of Balwani & Krzyston). A budget smaller than the tree keeps the
            tree's strongest weights and says so in the result and a warning.
        layers: the layers to prune (default: every Linear, Conv and Hugging Face ``Conv1D``
            layer whose weight is not tied to another module's; see the module docstring).
        exclude: layers never to prune.
        inplace: mask ``model`` itself (``False``, the default, masks a deep copy; the same rule
            as :func:`topoprune.prune_units`).
        seed: seed of ``method="random-weights"``, ``"phew"``'s walks and ``"snip"``'s dropout.
        iterations: synflow's pruning rounds (density after round k: ``d ** (k / iterations)``).
        example_inputs: synflow only, a model without ``.meta``: float inputs (a tensor or a tuple)
            whose shape, as all ones, the flow is sent through.
        labelled_sample: snip only: ``(inputs, labels)`` training data (one batch) or a list of
            such batches; the cross-entropy gradient is averaged over them.
    """
    if (sparsity is None) == (amount is None):
        raise TopopruneError("give sparsity= (the fraction of the targeted weights pruned afterwards) or "
                             "amount= (torch's meaning: of the remaining weights), exactly one")
    if sparsity is not None and (isinstance(sparsity, bool) or not isinstance(sparsity, (int, float))
                                 or not 0 <= sparsity < 1):
        raise TopopruneError(f"sparsity: bad value {sparsity!r}; allowed: a fraction in [0, 1)")
    if method == "random":
        from .._deprecation import warn_deprecated

        warn_deprecated("prune_weights(method='random')", "method='random-weights'")
        method = "random-weights"
    require_module(model)
    scope = _check_settings(method, scope, preserve, iterations)
    batches = None
    if method == "snip":
        from .snip import labelled_batches

        if labelled_sample is None:
            raise TopopruneError("method 'snip' scores |g * w| from the loss gradient: pass "
                                 "labelled_sample=(inputs, labels) (training data)")
        batches = labelled_batches(labelled_sample)
    elif labelled_sample is not None:
        raise TopopruneError(f"labelled_sample is read by method 'snip' only, not {method!r}; leave it out")
    work = model if inplace else copy_model(model)
    skipped = skipped_layers(work) if layers is None else {}
    if exclude:
        names = [exclude] if isinstance(exclude, str) else exclude
        if not isinstance(names, (list, tuple, set)) or not all(isinstance(n, str) for n in names):
            raise TopopruneError(f"exclude must be layer names (a list of strings), got {exclude!r}")
        base = prunable_layers(work, layers)
        unknown = [n for n in names if n not in base]
        if unknown:
            raise TopopruneError(f"exclude names {unknown[0]!r}, not a targeted layer; targeted layers: "
                                 f"{', '.join(base) or '(none)'}")
        layers = [n for n in base if n not in names]
        if not layers:
            raise TopopruneError("exclude leaves no layer to prune")
    if sparsity is not None:
        s = float(sparsity)

        def removal(remaining: int, size: int, what: str) -> int:
            keep = size - int(round(s * size))
            if remaining < keep:
                raise ValueError(f"sparsity={s:g} is below the {what}'s current sparsity "
                                 f"{1 - remaining / size:.4g}: masks only shrink; allowed: at least that")
            return remaining - keep
    else:
        def removal(remaining: int, size: int, what: str) -> int:
            return resolve_amount(amount, remaining, what)
    result = _prune_masks(work, removal, method=method, scope=scope, preserve=preserve, layers=layers,
                          skipped=skipped, seed=seed, iterations=iterations, example_inputs=example_inputs,
                          batches=batches)
    return work, result


def prune_unstructured(model: nn.Module, amount: float | int, **kwargs) -> UnstructuredResult:
    """Deprecated: :func:`prune_weights` (``inplace=True``, ``amount=``) with its old return.

    Prunes ``model`` in place with torch's ``amount`` (a fraction of the remaining weights, or a
    count) and returns only the :class:`UnstructuredResult`; ``method="random"`` is
    ``"random-weights"``."""
    from .._deprecation import warn_deprecated

    warn_deprecated("prune_unstructured(model, amount)",
                    "prune_weights(model, sparsity=...) (or amount=..., inplace=True), which returns (model, result)")
    if kwargs.get("method") == "random":
        kwargs["method"] = "random-weights"
    return prune_weights(model, amount=amount, inplace=True, **kwargs)[1]


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` that also works after ``torch.nn.utils.prune``: a masked layer's
    ``weight`` is a computed (non-leaf) tensor, which ``copy.deepcopy`` refuses; the copy gets a
    detached clone of it, and torch's pre-forward hook recomputes it from ``weight_orig`` and the
    mask on the next forward as usual."""
    memo: dict[int, torch.Tensor] = {}
    for m in model.modules():
        for hook in m._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                t = getattr(m, hook._tensor_name, None)
                if isinstance(t, torch.Tensor) and not t.is_leaf:
                    memo[id(t)] = t.detach().clone()
    return copy.deepcopy(model, memo)


def _check_settings(method: str, scope: str | None, preserve: str | None, iterations: int) -> str:
    """The settings of :func:`prune_weights`, checked; returns the scope (its default filled in)."""
    if method not in METHODS:
        raise TopopruneError(f"method: bad value {method!r}; allowed: {', '.join(METHODS)}")
    if scope is None:
        scope = "global" if method in GLOBAL_ONLY else "local"
    if scope not in SCOPES:
        raise TopopruneError(f"scope must be one of {SCOPES}, got {scope!r}")
    if method in GLOBAL_ONLY:
        if scope != "global":
            raise TopopruneError(f"scope must be 'global' for method {method!r} (it ranks every weight "
                                 f"together), got {scope!r}")
        if preserve is not None:
            raise TopopruneError(f"preserve must be None for method {method!r}, got {preserve!r}")
    if method == "synflow":
        if isinstance(iterations, bool) or not isinstance(iterations, int) or not 1 <= iterations <= 10_000:
            raise TopopruneError(f"iterations must be an int in [1, 10000], got {iterations!r}")
    if preserve not in PRESERVE:
        raise TopopruneError(f"preserve must be None or 'mst', got {preserve!r}")
    return scope


def _prune_masks(model: nn.Module, removal, *, method: str, scope: str, preserve: str | None,
                 layers: Sequence[str] | None, skipped: dict[str, str], seed: int, iterations: int,
                 example_inputs: object, batches: list | None = None) -> UnstructuredResult:
    """Tighten the masks of the targeted layers: ``removal(remaining, size, what)`` says how many
    of a layer's (local) or of all targeted layers' (global, synflow) remaining weights go."""
    targets = prunable_layers(model, layers)
    if not targets:
        why = f" (skipped: {'; '.join(f'{n!r}: {w}' for n, w in skipped.items())})" if skipped else ""
        raise TopopruneError(f"the model has no layers to prune{why}; prunable: {_ALLOWED} layers "
                             "whose weight is not tied to another module's")
    rng = np.random.default_rng(seed)
    # every selection sees (out, in, ...) weights, as for nn.Linear; masks go back as stored
    weights = {n: out_in_weight(m, effective_weight(m)).detach().cpu().numpy() for n, m in targets.items()}
    masks = {n: out_in_weight(m, current_mask(m)).detach().cpu().numpy() for n, m in targets.items()}
    scores = ({} if method in GLOBAL_ONLY else
              {n: (np.abs(w) if method == "magnitude" else rng.random(w.shape)) for n, w in weights.items()})
    record = UnstructuredResult(method, scope, preserve, skipped=skipped)
    try:
        if method == "synflow":
            remaining = sum(int((m > 0).sum()) for m in masks.values())
            k = removal(remaining, sum(m.size for m in masks.values()), "targeted layers")
            new = _synflow_keeps(model, targets, masks, remaining - k, iterations, example_inputs)
            for n in targets:
                record.layers.append(LayerUnstructured(n, masks[n].size, int((masks[n] > 0).sum()), int(new[n].sum())))
        elif method == "phew":
            from .phew import phew_keeps

            remaining = sum(int((m > 0).sum()) for m in masks.values())
            k = removal(remaining, sum(m.size for m in masks.values()), "targeted layers")
            keeps = phew_keeps([weights[n] for n in targets], [masks[n] for n in targets], remaining - k,
                               seed=seed, names=list(targets))
            new = dict(zip(targets, keeps))
            for n in targets:
                record.layers.append(LayerUnstructured(n, masks[n].size, int((masks[n] > 0).sum()), int(new[n].sum())))
        elif method in ("lamp", "snip"):
            from .lamp import lamp_scores, lamp_top
            from .selection import remove_lowest
            from .snip import snip_scores

            remaining = sum(int((m > 0).sum()) for m in masks.values())
            k = removal(remaining, sum(m.size for m in masks.values()), "targeted layers")
            if method == "lamp":
                keeps = remove_lowest([lamp_scores(weights[n], masks[n]) for n in targets],
                                      [masks[n] for n in targets], k,
                                      [lamp_top(weights[n], masks[n]) for n in targets])
            else:
                found = snip_scores(copy_model(model), list(targets), batches, seed=seed)
                keeps = remove_lowest([found[n] for n in targets], [masks[n] for n in targets], k)
            new = dict(zip(targets, keeps))
            for n in targets:
                record.layers.append(LayerUnstructured(n, masks[n].size, int((masks[n] > 0).sum()), int(new[n].sum())))
        elif scope == "local":
            new = {}
            for n in targets:
                remaining = int((masks[n] > 0).sum())
                k = removal(remaining, masks[n].size, f"layer {n!r}")
                sel = select_layer(scores[n], masks[n], k, weights[n], preserve, n)
                new[n] = sel.keep
                record.layers.append(LayerUnstructured(n, masks[n].size, remaining, int(sel.keep.sum()),
                                                 sel.tree_size, sel.tree_kept, sel.warning))
        else:
            remaining = sum(int((m > 0).sum()) for m in masks.values())
            k = removal(remaining, sum(m.size for m in masks.values()), "targeted layers")
            protected = ([tree_mask(weights[n], masks[n]) for n in targets]
                         if preserve == "mst" else None)
            keeps = select_global([scores[n] for n in targets], [masks[n] for n in targets], k, protected)
            new = dict(zip(targets, keeps))
            for i, n in enumerate(targets):
                t = int(protected[i].sum()) if protected is not None else None
                kept_t = int((protected[i] & keeps[i]).sum()) if protected is not None else None
                warn = (f"{n}: global budget kept {kept_t} of its {t} tree weights"
                        if protected is not None and kept_t < t else None)
                record.layers.append(LayerUnstructured(n, masks[n].size, int((masks[n] > 0).sum()),
                                                 int(keeps[i].sum()), t, kept_t, warn))
    except ValueError as exc:
        raise TopopruneError(str(exc)) from None
    for n, m in targets.items():
        ref = effective_weight(m)  # not m.weight: stale (and maybe on another device) after .to()
        keep = out_in_weight(m, torch.from_numpy(new[n])).contiguous()  # back to the stored layout
        prune.custom_from_mask(m, weight_attr(m), keep.to(device=ref.device, dtype=ref.dtype))
    for w in record.warnings:
        warnings.warn(w, stacklevel=2)
    return record


def _synflow_keeps(model: nn.Module, targets: dict[str, nn.Module], masks: dict[str, np.ndarray], keep: int,
                   iterations: int, example_inputs: object) -> dict[str, np.ndarray]:
    """SynFlow's keep masks (``(out, in, ...)`` layout): ``iterations`` rounds of global selection
    on re-computed scores, the kept count following :func:`.synflow.keep_schedule` to exactly
    ``keep``; ties go as everywhere (lower flat index kept first)."""
    from .synflow import SynFlowScorer, keep_schedule

    names = list(targets)
    scorer = SynFlowScorer(model, names, example_inputs)
    current = [masks[n] > 0 for n in names]
    alive = sum(int(m.sum()) for m in current)
    warned = False
    for kept in keep_schedule(alive, keep, iterations):
        if kept >= alive:
            continue  # this round prunes nothing: no need to re-score
        stored = {n: out_in_weight(targets[n], torch.from_numpy(m)) for n, m in zip(names, current)}
        scores = scorer(stored)
        if scorer.flow == 0 and not warned:
            warned = True
            warnings.warn(f"synflow: no input-output path carries flow (R = 0) with {alive} weights left; "
                          "the remaining weights all score 0 and go in index order", stacklevel=3)
        flat = [out_in_weight(targets[n], scores[n]).numpy() for n in names]
        current = select_global(flat, current, alive - kept)
        alive = kept
    return dict(zip(names, current))


# Old names, kept working for one minor release (see CHANGELOG.md).
from .._deprecation import deprecated_module_names as _deprecated  # noqa: E402

__getattr__ = _deprecated(__name__, {
    "UnstructuredRecord": ("topoprune.UnstructuredResult", lambda: UnstructuredResult),
    "LayerRecord": ("topoprune.LayerUnstructured", lambda: LayerUnstructured),
})
