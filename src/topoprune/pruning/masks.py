"""Unstructured pruning applied through ``torch.nn.utils.prune``.

``prune_unstructured`` adds (or tightens) ``weight_mask`` / ``weight_orig`` on each targeted
layer, exactly as PyTorch's own pruning functions do, so ``prune.remove`` makes it permanent and
every tool that understands torch's pruning understands ours. Masks only ever shrink.

Prunable layers are the weighted layers of :func:`topoprune.models.layers.is_weighted_layer`:
Linear, Conv1d/Conv2d and Hugging Face ``Conv1D`` (GPT-2's linear layers). A ``Conv1D`` weight is
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

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from ..errors import TopopruneError
from ..models.introspect import effective_weight, tied_layers
from ..models.layers import out_in_weight, require_module, weighted_layers
from .selection import resolve_amount, select_global, select_layer, tree_mask

__all__ = ["prune_unstructured", "UnstructuredRecord", "prunable_layers", "skipped_layers", "current_mask",
           "ensure_masks", "METHODS", "SCOPES"]

METHODS = ("magnitude", "random", "synflow")
SCOPES = ("local", "global")
PRESERVE = (None, "mst")
_ALLOWED = "Linear, Conv1d, Conv2d, Hugging Face Conv1D"


@dataclass
class LayerRecord:
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


@dataclass
class UnstructuredRecord:
    """What one pruning step did, per layer and overall."""

    method: str
    scope: str
    preserve: str | None
    layers: list[LayerRecord] = field(default_factory=list)
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
    """The named weighted layers to prune (Linear, Conv1d/Conv2d, Hugging Face ``Conv1D``): all
    of them except those with tied weights (:func:`skipped_layers`), or those named (checked;
    a tied layer is refused)."""
    everything = weighted_layers(model)
    tied = tied_layers(model)
    found = {n: m for n, m in everything.items() if n not in tied}
    if layers is None:
        return found
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
        raise TopopruneError(f"layers must be a list of layer names, got {layers!r}")
    modules = dict(model.named_modules())
    out = {}
    for name in layers:
        if not isinstance(name, str) or name not in modules:
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
    """The layer's weight mask (all ones if it has none yet)."""
    return m.weight_mask if hasattr(m, "weight_mask") else torch.ones_like(m.weight)


def ensure_masks(layers: Iterable[nn.Module]) -> None:
    """Give each layer torch's pruning reparametrisation (a mask of ones) if it has none, so a
    state dict holding ``weight_orig``/``weight_mask`` can be loaded into it."""
    for m in layers:
        if not hasattr(m, "weight_mask"):
            prune.custom_from_mask(m, "weight", torch.ones_like(m.weight))


def prune_unstructured(
    model: nn.Module,
    amount: float | int,
    *,
    method: str = "magnitude",
    scope: str | None = None,
    preserve: str | None = None,
    layers: Sequence[str] | None = None,
    seed: int = 0,
    iterations: int = 100,
    example_inputs: object = None,
) -> UnstructuredRecord:
    """Prune individual weights **in place**, through ``torch.nn.utils.prune``.

    Args:
        model: the model; targeted layers get ``weight_orig`` + ``weight_mask``.
        amount: of the weights still remaining, a fraction in [0, 1) or a count (torch's meaning).
            ``local``: per layer; ``global``: across the targeted layers together.
        method: ``"magnitude"`` (smallest ``|w|`` go), ``"random"`` (seeded) or ``"synflow"``
            (Tanaka et al. 2020: data-free, ``iterations`` rounds on an exponential schedule, each
            re-scoring ``|w * dR/dw|`` of the linearised network; see :mod:`.synflow`).
        scope: ``"local"`` or ``"global"`` (default: local; global for synflow, its only scope).
        preserve: ``None`` or ``"mst"``: keep each layer graph's maximum spanning tree first (the
            T-IMP selection of Balwani & Krzyston). A budget smaller than the tree keeps the
            tree's strongest weights and says so in the record and a warning.
        layers: module names to prune (default: every Linear, Conv and Hugging Face
            ``Conv1D`` layer whose weight is not tied to another module's; see the module
            docstring).
        seed: seed of ``method="random"``.
        iterations: synflow's pruning rounds (density after round k: ``d ** (k / iterations)``).
        example_inputs: synflow only, a model without ``.meta``: float inputs (a tensor or a tuple)
            whose shape, as all ones, the flow is sent through.
    """
    require_module(model)
    if method not in METHODS:
        raise TopopruneError(f"method must be one of {METHODS}, got {method!r}")
    if scope is None:
        scope = "global" if method == "synflow" else "local"
    if scope not in SCOPES:
        raise TopopruneError(f"scope must be one of {SCOPES}, got {scope!r}")
    if method == "synflow":
        if scope != "global":
            raise TopopruneError(f"scope must be 'global' for method 'synflow' (it ranks every weight "
                                 f"together), got {scope!r}")
        if preserve is not None:
            raise TopopruneError(f"preserve must be None for method 'synflow', got {preserve!r}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or not 1 <= iterations <= 10_000:
            raise TopopruneError(f"iterations must be an int in [1, 10000], got {iterations!r}")
    if preserve not in PRESERVE:
        raise TopopruneError(f"preserve must be None or 'mst', got {preserve!r}")
    targets = prunable_layers(model, layers)
    skipped = skipped_layers(model) if layers is None else {}
    if not targets:
        why = f" (skipped: {'; '.join(f'{n!r}: {w}' for n, w in skipped.items())})" if skipped else ""
        raise TopopruneError(f"the model has no layers to prune{why}; prunable: {_ALLOWED} layers "
                             "whose weight is not tied to another module's")
    rng = np.random.default_rng(seed)
    # every selection sees (out, in, ...) weights, as for nn.Linear; masks go back as stored
    weights = {n: out_in_weight(m, effective_weight(m)).detach().cpu().numpy() for n, m in targets.items()}
    masks = {n: out_in_weight(m, current_mask(m)).detach().cpu().numpy() for n, m in targets.items()}
    scores = ({} if method == "synflow" else
              {n: (np.abs(w) if method == "magnitude" else rng.random(w.shape)) for n, w in weights.items()})
    record = UnstructuredRecord(method, scope, preserve, skipped=skipped)
    try:
        if method == "synflow":
            remaining = sum(int((m > 0).sum()) for m in masks.values())
            k = resolve_amount(amount, remaining, "targeted layers")
            new = _synflow_keeps(model, targets, masks, remaining - k, iterations, example_inputs)
            for n in targets:
                record.layers.append(LayerRecord(n, masks[n].size, int((masks[n] > 0).sum()), int(new[n].sum())))
        elif scope == "local":
            new = {}
            for n in targets:
                remaining = int((masks[n] > 0).sum())
                k = resolve_amount(amount, remaining, f"layer {n!r}")
                sel = select_layer(scores[n], masks[n], k, weights[n], preserve, n)
                new[n] = sel.keep
                record.layers.append(LayerRecord(n, masks[n].size, remaining, int(sel.keep.sum()),
                                                 sel.tree_size, sel.tree_kept, sel.warning))
        else:
            remaining = sum(int((m > 0).sum()) for m in masks.values())
            k = resolve_amount(amount, remaining, "targeted layers")
            protected = ([tree_mask(weights[n], masks[n]) for n in targets]
                         if preserve == "mst" else None)
            keeps = select_global([scores[n] for n in targets], [masks[n] for n in targets], k, protected)
            new = dict(zip(targets, keeps))
            for i, n in enumerate(targets):
                t = int(protected[i].sum()) if protected is not None else None
                kept_t = int((protected[i] & keeps[i]).sum()) if protected is not None else None
                warn = (f"{n}: global budget kept {kept_t} of its {t} tree weights"
                        if protected is not None and kept_t < t else None)
                record.layers.append(LayerRecord(n, masks[n].size, int((masks[n] > 0).sum()),
                                                 int(keeps[i].sum()), t, kept_t, warn))
    except ValueError as exc:
        raise TopopruneError(str(exc)) from None
    for n, m in targets.items():
        ref = effective_weight(m)  # not m.weight: stale (and maybe on another device) after .to()
        keep = out_in_weight(m, torch.from_numpy(new[n])).contiguous()  # back to the stored layout
        prune.custom_from_mask(m, "weight", keep.to(device=ref.device, dtype=ref.dtype))
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
