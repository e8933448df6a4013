"""Physical removal of filters/neurons with torch-pruning's dependency graph.

Removing output unit ``j`` of a layer also removes the BatchNorm entries that go with it and the
matching input channel of every consumer, and keeps residual additions consistent: torch-pruning
traces the model once and returns, for each removal, the *group* of coupled slices. Indices are
always those of the layer at the moment of removal; a layer not yet touched keeps its original
indexing, which is what makes a recorded sequence of removals replayable (``load_model``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch_pruning as tpr
from torch import nn

__all__ = ["Surgeon", "GroupInfo"]



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

    @staticmethod
    def _fn(module: nn.Module):
        return tpr.prune_conv_out_channels if isinstance(module, nn.modules.conv._ConvNd) else tpr.prune_linear_out_channels

    def _group(self, name: str, idxs: Sequence[int]):
        module = self.modules[name]
        return self.graph.get_pruning_group(module, self._fn(module), idxs=list(idxs))

    def inspect(self, name: str) -> GroupInfo:
        """Which other layers' outputs are coupled to ``name``'s, and whether the coupling runs
        through zero padding (whose channel offsets torch-pruning does not model)."""
        group = self._group(name, [0])
        coupled, padding = [], False
        for dep, _ in group:
            target = dep.target.module
            if "ConstantPad" in str(dep.target.name):
                padding = True
            other = self.names.get(target)
            is_out = getattr(dep.handler, "__name__", "") == "prune_out_channels"
            if (other is not None and other != name and is_out
                    and isinstance(target, (nn.Conv2d, nn.Conv1d, nn.Linear))):
                coupled.append(other)
        return GroupInfo(name, tuple(dict.fromkeys(coupled)), padding)

    def remove(self, name: str, idxs: Sequence[int]) -> None:
        """Remove output units ``idxs`` (current indexing) of layer ``name`` and all that is coupled."""
        group = self._group(name, idxs)
        if not self.graph.check_pruning_group(group):
            raise RuntimeError(f"torch-pruning refused to remove {len(idxs)} units of {name!r}")
        group.prune()
