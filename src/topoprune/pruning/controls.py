"""Controls: is it the criterion, or only its layer budget?

A pruning criterion acts in two ways: how much it removes from each layer (its *layer budget*)
and *which* units or weights it removes inside each layer. A control keeps the first and replaces
the second (Frankle, Dziugaite, Roy and Carbin, ICLR 2021, found that for several published
criteria only the budget mattered):

- ``"shuffle"``: the same number of units (structured) or weights (unstructured) removed from
  each layer, at positions drawn uniformly at random (seeded);
- ``"magnitude-at-budget"``: the same numbers, filled by the plainest criterion: the smallest L1
  norm of a unit (summed over the layers coupled to it), or the smallest ``|w|``.

:func:`apply_control` takes the dense model and a pruning result and returns the control's
model and result, of the same kind, so both go through the same recovery and measurement. If the
method beats its shuffle control, its choice inside layers matters; if they tie, only its layer
budget does; if it loses, its choice inside layers is worse than random.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from ..errors import TopopruneError
from .methods.base import LayerRequest, PruneContext, StructuredMethod

__all__ = ["CONTROLS", "apply_control", "control_coincides_with", "layer_counts"]

CONTROLS = ("shuffle", "magnitude-at-budget")


def _check_control(control: object) -> str:
    if control not in CONTROLS:
        raise TopopruneError(f"control: bad value {control!r}; allowed: {', '.join(CONTROLS)}")
    return control  # type: ignore[return-value]


def _layer_seed(seed: int, name: str) -> np.random.Generator:
    """A generator per (seed, layer), so a layer's draw does not depend on the other layers."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def layer_counts(result: Any) -> dict[str, int]:
    """How much the pruning ``result`` removed from each layer: units per leader layer of a
    coupled group (structured; a follower pruned with its leader is not counted twice), or
    weights per layer (unstructured)."""
    from .filters import StructuredResult
    from .masks import UnstructuredResult

    if isinstance(result, StructuredResult):
        return {x.name: x.before - x.after for x in result.layers
                if x.after < x.before and not x.note.startswith("pruned together with")}
    if isinstance(result, UnstructuredResult):
        return {x.name: x.total - x.remaining_after for x in result.layers}
    raise TopopruneError(f"result: bad value of type {type(result).__name__}; allowed: the StructuredResult "
                         "of prune_units or the UnstructuredResult of prune_weights")


def apply_control(model: nn.Module, result: Any, control: str, *, seed: int = 0,
                  example_inputs: Any = None) -> tuple[nn.Module, Any]:
    """The ``control`` of a pruning ``result``: the same per-layer counts, chosen another way.

    Args:
        model: the model ``result`` was pruned from (the dense model), left untouched.
        result: what :func:`~topoprune.prune_units` or :func:`~topoprune.prune_weights` returned.
        control: ``"shuffle"`` (random positions) or ``"magnitude-at-budget"`` (smallest L1 norm
            of a unit, or smallest ``|w|``).
        seed: seed of the shuffle.
        example_inputs: structured only, the inputs ``result`` was traced with (default: the
            ones it recorded).

    Returns:
        ``(pruned model, result)``: a :class:`~topoprune.StructuredResult` or an
        :class:`~topoprune.UnstructuredResult` whose layers lost exactly what ``result``'s did.
    """
    from .filters import StructuredResult, prune_units
    from .masks import UnstructuredResult

    control = _check_control(control)
    if not isinstance(model, nn.Module):
        raise TopopruneError(f"model must be a torch.nn.Module (the dense model), got {type(model).__name__}")
    counts = layer_counts(result)
    if isinstance(result, StructuredResult):
        if not counts:
            raise TopopruneError("the pruning result removed nothing: its control would remove nothing either")
        inputs = example_inputs if example_inputs is not None else result.example_inputs
        chooser = _BudgetFill(counts=counts, control=control, control_seed=seed)
        import warnings

        with warnings.catch_warnings():  # the control repeats the result's notes; its own result keeps them
            warnings.simplefilter("ignore", UserWarning)
            # the leaders and the layers coupled to them, in the result's order, so each group has
            # the leader it had (a follower alone would leave its group untargeted, and unpruned)
            wanted = set(counts) | {c for x in result.layers if x.name in counts for c in x.coupled_with}
            layers = [x.name for x in result.layers if x.name in wanted]
            layers += sorted(wanted - set(layers))
            pruned, out = prune_units(model, inputs, method=chooser, layers=layers, sparsity=0.5, seed=seed)
        out.method = f"{result.method}+{control}"
        got = layer_counts(out)
        if got != counts:
            raise TopopruneError(f"the {control} control could not reproduce the layer budget of "
                                 f"{result.method!r}: wanted {counts}, removed {got}")
        return pruned, out
    assert isinstance(result, UnstructuredResult)
    return _weights_control(model, result, control, seed)


def _weights_control(model: nn.Module, result: Any, control: str, seed: int) -> tuple[nn.Module, Any]:
    from ..models.introspect import effective_weight
    from ..models.layers import out_in_weight, weight_attr
    from .masks import LayerUnstructured, UnstructuredResult, copy_model, current_mask, prunable_layers

    work = copy_model(model)
    names = [x.name for x in result.layers]
    layers = prunable_layers(work, names)
    out = UnstructuredResult(f"{result.method}+{control}", "local", None)
    for rec in result.layers:
        m = layers[rec.name]
        w = out_in_weight(m, effective_weight(m)).detach().cpu().numpy()
        alive = out_in_weight(m, current_mask(m)).detach().cpu().numpy() > 0
        if w.size != rec.total:
            raise TopopruneError(f"layer {rec.name!r} has {w.size} weights in this model and {rec.total} in the "
                                 "result: pass the model the result was pruned from")
        keep_n = rec.remaining_after
        if keep_n > alive.sum():
            raise TopopruneError(f"layer {rec.name!r}: the result keeps {keep_n} weights, this model has "
                                 f"{int(alive.sum())} left: pass the model the result was pruned from")
        positions = np.flatnonzero(alive.ravel())
        if control == "shuffle":
            chosen = _layer_seed(seed, rec.name).choice(positions, keep_n, replace=False)
        else:  # the largest |w| stay; ties by the lower flat index
            order = np.lexsort((positions, -np.abs(w.ravel()[positions])))
            chosen = positions[order[:keep_n]]
        keep = np.zeros(w.size, dtype=bool)
        keep[chosen] = True
        mask = out_in_weight(m, torch.from_numpy(keep.reshape(w.shape))).contiguous()
        ref = effective_weight(m)
        prune.custom_from_mask(m, weight_attr(m), mask.to(device=ref.device, dtype=ref.dtype))
        out.layers.append(LayerUnstructured(rec.name, rec.total, int(alive.sum()), keep_n))
    return work, out


def control_coincides_with(method: Any, control: str, *, allocation: object = None) -> str | None:
    """The method whose cells a control would repeat, so it need not run twice, or ``None``:

    - the shuffle control of a structured method with a uniform layer budget is random pruning
      at that budget (``"random"``);
    - the magnitude-at-budget control of L1 (uniform budget) or of one-shot magnitude pruning is
      the method itself (``"self"``).
    """
    control = _check_control(control)
    name = getattr(method, "name", method)
    uniform = allocation in (None, "uniform") or getattr(allocation, "name", None) == "uniform"
    structured = getattr(method, "structured", None)
    if control == "shuffle" and structured and uniform and name not in ("topological-v2", "tp-global"):
        return "random"
    if control == "magnitude-at-budget":
        if name == "l1" and uniform:
            return "self"
        if name == "magnitude" and getattr(method, "preserve", None) is None:
            return "self"
    return None


class _BudgetFill(StructuredMethod):
    """Removes exactly ``counts[layer]`` units from each layer: at random (``shuffle``) or the
    smallest L1 norms summed over the coupled layers (``magnitude-at-budget``). Not registered:
    it only exists inside :func:`apply_control`."""

    name: ClassVar[str] = "control"
    summary: ClassVar[str] = "a layer budget filled by a control's choice"
    counts: dict[str, int]
    control: str
    control_seed: int = 0

    def sets_own_counts(self) -> bool:
        return True  # the result's counts, not int(units * sparsity)

    def choose(self, ctx: PruneContext, layer: LayerRequest) -> Sequence[int]:
        k = self.counts.get(layer.name, 0)
        layout = layer.units()
        n = layout.count
        if k <= 0:
            return []
        if self.control == "shuffle":
            return sorted(int(i) for i in _layer_seed(self.control_seed, layer.name).choice(n, k, replace=False))
        members = [layer.module] + [ctx.modules[c] for c in layer.coupled]
        scores = sum(layout.weight(m).detach().reshape(n, -1).abs().sum(1) for m in members)
        order = np.lexsort((np.arange(n), scores.double().cpu().numpy()))
        return sorted(int(i) for i in order[:k])
