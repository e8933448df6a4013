"""Unstructured pruning applied through ``torch.nn.utils.prune``.

``prune_unstructured`` adds (or tightens) ``weight_mask`` / ``weight_orig`` on each targeted
layer, exactly as PyTorch's own pruning functions do, so ``prune.remove`` makes it permanent and
every tool that understands torch's pruning understands ours. Masks only ever shrink.
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
from ..models.introspect import effective_weight
from .selection import resolve_amount, select_global, select_layer, tree_mask

__all__ = ["prune_unstructured", "UnstructuredRecord", "prunable_layers", "current_mask", "ensure_masks",
           "METHODS", "SCOPES"]

METHODS = ("magnitude", "random")
SCOPES = ("local", "global")
PRESERVE = (None, "mst")
_PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


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
                "layers": [asdict(x) | {"sparsity": x.sparsity} for x in self.layers]}


def prunable_layers(model: nn.Module, layers: Sequence[str] | None = None) -> dict[str, nn.Module]:
    """The named Linear/Conv layers to prune: all of them, or those named (checked)."""
    found = {n: m for n, m in model.named_modules() if isinstance(m, _PRUNABLE)}
    if layers is None:
        return found
    modules = dict(model.named_modules())
    out = {}
    for name in layers:
        if name not in modules:
            raise TopopruneError(
                f"no layer named {name!r}; prunable layers: {', '.join(found) or '(none)'}"
            )
        if name not in found:
            raise TopopruneError(
                f"layer {name!r} is a {type(modules[name]).__name__}, which cannot be pruned "
                "unstructured; allowed: Linear, Conv1d, Conv2d"
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
    scope: str = "local",
    preserve: str | None = None,
    layers: Sequence[str] | None = None,
    seed: int = 0,
) -> UnstructuredRecord:
    """Prune individual weights **in place**, through ``torch.nn.utils.prune``.

    Args:
        model: the model; targeted layers get ``weight_orig`` + ``weight_mask``.
        amount: of the weights still remaining, a fraction in [0, 1) or a count (torch's meaning).
            ``local``: per layer; ``global``: across the targeted layers together.
        method: ``"magnitude"`` (smallest ``|w|`` go) or ``"random"`` (seeded).
        scope: ``"local"`` or ``"global"``.
        preserve: ``None`` or ``"mst"``: keep each layer graph's maximum spanning tree first (the
            T-IMP selection of Balwani & Krzyston). A budget smaller than the tree keeps the
            tree's strongest weights and says so in the record and a warning.
        layers: module names to prune (default: every Linear/Conv layer).
        seed: seed of ``method="random"``.
    """
    if method not in METHODS:
        raise TopopruneError(f"method must be one of {METHODS}, got {method!r}")
    if scope not in SCOPES:
        raise TopopruneError(f"scope must be one of {SCOPES}, got {scope!r}")
    if preserve not in PRESERVE:
        raise TopopruneError(f"preserve must be None or 'mst', got {preserve!r}")
    targets = prunable_layers(model, layers)
    if not targets:
        raise TopopruneError("the model has no Linear or Conv layers to prune")
    rng = np.random.default_rng(seed)
    weights = {n: effective_weight(m).detach().cpu().numpy() for n, m in targets.items()}
    masks = {n: current_mask(m).detach().cpu().numpy() for n, m in targets.items()}
    scores = {n: (np.abs(w) if method == "magnitude" else rng.random(w.shape)) for n, w in weights.items()}
    record = UnstructuredRecord(method, scope, preserve)
    try:
        if scope == "local":
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
        keep = torch.from_numpy(new[n]).to(device=ref.device, dtype=ref.dtype)
        prune.custom_from_mask(m, "weight", keep)
    for w in record.warnings:
        warnings.warn(w, stacklevel=2)
    return record
