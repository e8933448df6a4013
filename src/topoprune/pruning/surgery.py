"""Physical removal of filters/neurons with torch-pruning's dependency graph.

Removing output unit ``j`` of a layer also removes the BatchNorm entries that go with it and the
matching input channel of every consumer, and keeps residual additions consistent: torch-pruning
traces the model once and returns, for each removal, the *group* of coupled slices. Indices are
always those of the layer at the moment of removal; a layer not yet touched keeps its original
indexing, which is what makes a recorded sequence of removals replayable (``load_model``).

Only torch-pruning's public API is used: the graph gives each module's pruner
(``get_pruner_of_module``) and says whether a dependency's handler removes output or input
channels (``is_out_channel_pruning_fn`` / ``is_in_channel_pruning_fn``), so layer types with
their own pruners (depthwise convs, customized layers) are handled the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch_pruning as tpr
from torch import nn

__all__ = ["Surgeon", "GroupInfo", "PRUNABLE"]

# The layer types whose output units are chosen and whose input channels make a consumer graph.
PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class GroupInfo:
    """What removing output units of one layer touches."""

    layer: str
    coupled: tuple[str, ...]  # other layers whose *outputs* are removed together with this one's
    through_padding: bool  # the group crosses a zero-padding shortcut (CIFAR ResNet option A)


class Surgeon:
    """A dependency graph of one model, and the removals applied to it."""

    def __init__(self, model: nn.Module, example_inputs: torch.Tensor) -> None:
        self.model = model
        was_training = model.training
        model.eval()
        try:
            self.graph = tpr.DependencyGraph().build_dependency(model, example_inputs=example_inputs)
        finally:
            model.train(was_training)
        self.modules = dict(model.named_modules())
        self.names = {m: n for n, m in self.modules.items()}

    def group(self, name: str, idxs: Sequence[int]) -> tpr.dependency.Group:
        """torch-pruning's group for removing output units ``idxs`` (current indexing) of layer
        ``name``: every coupled slice (BatchNorm, consumers' inputs, residual partners)."""
        module = self.modules[name]
        pruner = self.graph.get_pruner_of_module(module)
        if pruner is None:
            raise ValueError(f"layer {name!r} ({type(module).__name__}) has no torch-pruning pruner")
        return self.graph.get_pruning_group(module, pruner.prune_out_channels, idxs=list(idxs))

    def consumers(self, name: str) -> list[nn.Module]:
        """The conv/linear modules whose *input* channels go with ``name``'s output units (the
        next layers, and those of coupled residual partners), in the group's order, each once."""
        found: dict[int, nn.Module] = {}
        for dep, _ in self.group(name, [0]):
            target = dep.target.module
            if self.graph.is_in_channel_pruning_fn(dep.handler) and isinstance(target, PRUNABLE):
                found.setdefault(id(target), target)
        return list(found.values())

    def inspect(self, name: str) -> GroupInfo:
        """Which other layers' outputs are coupled to ``name``'s, and whether the coupling runs
        through zero padding (whose channel offsets torch-pruning does not model)."""
        coupled, padding = [], False
        for dep, _ in self.group(name, [0]):
            target = dep.target.module
            if "ConstantPad" in str(dep.target.name):
                padding = True
            other = self.names.get(target)
            if (other is not None and other != name and isinstance(target, PRUNABLE)
                    and self.graph.is_out_channel_pruning_fn(dep.handler)):
                coupled.append(other)
        return GroupInfo(name, tuple(dict.fromkeys(coupled)), padding)

    def remove(self, name: str, idxs: Sequence[int]) -> None:
        """Remove output units ``idxs`` (current indexing) of layer ``name`` and all that is coupled."""
        group = self.group(name, idxs)
        if not self.graph.check_pruning_group(group):
            raise RuntimeError(f"torch-pruning refused to remove {len(idxs)} units of {name!r}")
        group.prune()
