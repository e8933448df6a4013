"""Which attention modules can lose heads, found by trying it on a throwaway copy.

Removing heads narrows the q/k/v projections and the output projection's inputs, and
:func:`~topoprune.models.attention.sync_head_counts` writes the new head count into the module.
That is enough for a forward that follows the module's attributes (Hugging Face BERT, ViT, GPT-2
infer the width from ``num_heads * head_dim`` or ``-1``). A forward that sizes its reshapes
from the *input* instead (timm's ``Attention``: ``qkv.reshape(B, N, 3, self.num_heads,
C // self.num_heads)``, ``x.transpose(1, 2).reshape(B, N, C)`` with ``C`` the input's channel
count) cannot lose heads while the input keeps its width: the pruned model would stop running.

Reading the forward's source cannot settle this in general, so each attention module is tried:
its first call during one forward pass of the example inputs is recorded (positional and
keyword arguments); a deep copy of the module alone is replayed on them once as it is (a copy
that cannot replay says nothing), then again after losing one head through the same surgery
:func:`~topoprune.pruning.prune_units` uses. If the second replay fails, or changes an output's
shape other than by the removed head's width, the module's heads stay and the reason is
returned. Modules of one class with the same settings and input shapes are tried once.

Removing heads the way Torch-Pruning's timm example does needs the module's ``forward`` itself
replaced (by one that reshapes with ``-1``); a library that prunes a user's model should not
rewrite its code, so such attention keeps its heads and its MLP is pruned as usual.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..models.attention import AttentionBlock, find_attention, sync_head_counts
from ..models.hooks import inspecting
from ..models.inputs import Inputs, call_model, output_tensors, without_cache
from .units import layout_of

__all__ = ["heads_that_stay"]


class _Replay(nn.Module):
    """One recorded call of a module: ``forward(*tensors)`` puts the tensors back where they were
    (positional or keyword) and calls the module (a child, ``block``) with the rest as recorded."""

    def __init__(self, block: nn.Module, args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.block = block
        self._args, self._kwargs = args, kwargs
        self.slots = [("a", i) for i, v in enumerate(args) if isinstance(v, torch.Tensor)]
        self.slots += [("k", k) for k, v in kwargs.items() if isinstance(v, torch.Tensor)]

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(self._args[i] if kind == "a" else self._kwargs[i] for kind, i in self.slots)

    def forward(self, *tensors: torch.Tensor) -> Any:
        args, kwargs = list(self._args), dict(self._kwargs)
        for (kind, i), t in zip(self.slots, tensors):
            if kind == "a":
                args[i] = t
            else:
                kwargs[i] = t
        return self.block(*args, **kwargs)


def _record_calls(model: nn.Module, modules: Mapping[str, nn.Module], inputs: Inputs) -> dict[str, tuple]:
    """``{name: (args, kwargs, output)}`` of each named module's first call in one forward pass."""
    calls: dict[str, tuple] = {}

    def hook(name: str):
        def keep(_module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            calls.setdefault(name, (args, dict(kwargs), output))
        return keep

    handles = [modules[n].register_forward_hook(hook(n), with_kwargs=True) for n in modules]
    try:
        with inspecting(model):
            call_model(model, without_cache(model, inputs))
    finally:
        for h in handles:
            h.remove()
    return calls


def _shapes(out: Any) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in output_tensors(out)]


def _narrowed(before: Sequence[tuple[int, ...]], after: Sequence[tuple[int, ...]], heads: int) -> bool:
    """Each output keeps its shape, or has a dimension of ``heads * k`` (a width, a head count)
    narrowed to ``(heads - 1) * k``: what one head less looks like when the output projection is
    outside the module (BERT's self-attention returns the heads' concatenation)."""
    if len(before) != len(after):
        return False
    for b, a in zip(before, after):
        if len(b) != len(a):
            return False
        for x, y in zip(b, a):
            if x != y and not (x % heads == 0 and y == x // heads * (heads - 1)):
                return False
    return True


def _settings(module: nn.Module) -> tuple:
    """The plain settings of a module (ints, floats, strings, flags): two modules of one class
    with equal settings run the same forward."""
    return tuple(sorted((k, v) for k, v in vars(module).items()
                        if not k.startswith("_") and isinstance(v, (bool, int, float, str, type(None)))))


def _try_one_head_less(block: AttentionBlock, module: nn.Module, call: tuple) -> str | None:
    """Why ``module`` cannot lose a head (the replay's error, or the changed shapes), or None when
    it can or when the trial cannot tell (then the prune goes ahead as it would without it)."""
    from .surgery import Surgeon

    args, kwargs, output = call
    reference = _shapes(output)
    if not reference or block.heads < 2:
        return None
    try:
        replay = _Replay(copy.deepcopy(module), args, kwargs)
        with inspecting(replay):
            if _shapes(replay(*replay.tensors())) != reference:
                return None  # the copy does not replay the call as recorded: no verdict
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            surgeon = Surgeon(replay, replay.tensors())
        inner = next((b for b in find_attention(replay) if b.name == "block"), None)
        if inner is None:
            return None
        removed: set[str] = set()
        for name in inner.projections:
            if name in removed:
                continue
            layout = layout_of(surgeon.modules[name], head_dim=inner.head_dim, parts=inner.parts)
            coupled = surgeon.inspect(name).coupled
            features = layout.features_of([inner.heads - 1])
            if name in surgeon.fused:
                surgeon.remove(name, features)
            else:  # not surgeon.remove: its over-pruning check misreads the replay's output node
                surgeon.group(name, features).prune()
            removed.update((name, *coupled))
        sync_head_counts(replay, [inner])
    except Exception:  # noqa: BLE001 - a trial that cannot be set up gives no verdict
        return None
    try:
        with inspecting(replay):
            after = _shapes(replay(*replay.tensors()))
    except Exception as exc:  # noqa: BLE001 - the verdict: this forward does not survive a lost head
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        return f"its forward fails with one head less ({type(exc).__name__}: {first})"
    if not _narrowed(reference, after, block.heads):
        return f"its output shapes change with one head less ({reference} -> {after})"
    return None


def heads_that_stay(model: nn.Module, blocks: Iterable[AttentionBlock], example_inputs: Inputs,
                    *, targets: Iterable[str]) -> dict[str, str]:
    """The attention blocks (among those with a projection in ``targets``) whose forward does not
    survive losing a head, each with the reason: ``{block name: why}``. See the module docstring."""
    wanted = set(targets)
    tried = [b for b in blocks if any(p in wanted for p in b.projections)]
    if not tried:
        return {}
    modules = dict(model.named_modules())
    try:
        calls = _record_calls(model, {b.name: modules[b.name] for b in tried}, example_inputs)
    except Exception:  # noqa: BLE001 - the model's own tracing reports a model that does not run
        return {}
    verdicts: dict[tuple, str | None] = {}
    stay = {}
    for b in tried:
        call = calls.get(b.name)
        if call is None:  # not called on these inputs
            continue
        module = modules[b.name]
        key = (type(module), _settings(module), b.heads, b.head_dim, b.fused,
               tuple(_shapes(call[0])), tuple((k, tuple(_shapes(v))) for k, v in call[1].items()))
        if key not in verdicts:
            verdicts[key] = _try_one_head_less(b, module, call)
        if verdicts[key] is not None:
            stay[b.name] = verdicts[key]
    return stay
