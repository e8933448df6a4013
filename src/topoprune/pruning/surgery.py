"""Physical removal of filters/neurons with torch-pruning's dependency graph.

Removing output unit ``j`` of a layer also removes the BatchNorm entries that go with it and the
matching input channel of every consumer, and keeps residual additions consistent: torch-pruning
traces the model once and returns, for each removal, the *group* of coupled slices. Indices are
always those of the layer at the moment of removal; a layer not yet touched keeps its original
indexing, which is what makes a recorded sequence of removals replayable (``load_model``).

Only torch-pruning's public API is used: the graph gives each module's pruner
(``get_pruner_of_module``) and says whether a dependency's handler removes output or input
channels (``is_out_channel_pruning_fn`` / ``is_in_channel_pruning_fn``), so layer types with
their own pruners (depthwise convs, customized layers) are handled the same way. Hugging Face's
``Conv1D`` (weight stored ``(in, out)``) gets a customized pruner, registered through
``build_dependency(customized_pruners=...)``, torch-pruning's documented extension point.

Example inputs may be a tensor, a tuple or a dict of keyword inputs; the model's output may be a
``ModelOutput``/dict/tuple: the graph is traced from every output tensor. Tracing runs under a
memory limit (:mod:`topoprune.pruning.trace_memory`): a model whose graph would exhaust the
machine's memory stops with one ``TopopruneError`` line.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch_pruning as tpr
from torch import nn

from ..models.attention import find_attention
from ..models.inputs import Inputs, output_tensors, without_cache
from ..models.layers import is_weighted_layer
from .trace_memory import guard_memory

__all__ = ["Surgeon", "GroupInfo", "PRUNABLE"]

# The torch layer types whose output units are chosen (Hugging Face's Conv1D: models.layers.is_weighted_layer).
PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


def _keep(param: torch.Tensor, idxs: Sequence[int], dim: int) -> nn.Parameter:
    keep = sorted(set(range(param.shape[dim])) - {int(i) for i in idxs})
    index = torch.tensor(keep, dtype=torch.long, device=param.device)
    return nn.Parameter(torch.index_select(param.data, dim, index).contiguous(),
                        requires_grad=param.requires_grad)


class HFConv1DPruner(tpr.pruner.BasePruningFunc):
    """torch-pruning pruner for Hugging Face's ``Conv1D``: a linear layer whose weight is stored
    transposed, ``(in, out)``, with ``nf`` outputs and ``nx`` inputs."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        layer.weight = _keep(layer.weight, idxs, 1)
        if layer.bias is not None:
            layer.bias = _keep(layer.bias, idxs, 0)
        layer.nf = layer.weight.shape[1]
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        layer.weight = _keep(layer.weight, idxs, 0)
        layer.nx = layer.weight.shape[0]
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.weight.shape[1]

    def get_in_channels(self, layer: nn.Module) -> int:
        return layer.weight.shape[0]


def _customized_pruners(model: nn.Module) -> dict:
    kinds = {type(m) for m in model.modules() if is_weighted_layer(m) and not isinstance(m, PRUNABLE)}
    return {cls: HFConv1DPruner() for cls in kinds}


@dataclass(frozen=True)
class GroupInfo:
    """What removing output units of one layer touches."""

    layer: str
    coupled: tuple[str, ...]  # other layers whose *outputs* are removed together with this one's
    through_padding: bool  # the group crosses a zero-padding shortcut (CIFAR ResNet option A)
    embeddings: tuple[str, ...] = ()  # embeddings whose width goes too: a transformer's residual stream
    attention: tuple[str, ...] = ()  # nn.MultiheadAttention modules whose embedding width goes too


class Surgeon:
    """A dependency graph of one model, and the removals applied to it."""

    def __init__(self, model: nn.Module, example_inputs: Inputs, *, memory_limit_gb: float | None = None) -> None:
        """Trace ``model`` on ``example_inputs``, under a memory limit (:mod:`.trace_memory`:
        ``memory_limit_gb``, else ``TOPOPRUNE_TRACE_MEMORY``, else 80 % of the available memory)."""
        self.model = model
        was_training = model.training
        model.eval()
        try:
            with warnings.catch_warnings():  # cls tokens / position tables: on the residual stream,
                warnings.filterwarnings("ignore", message="Unwrapped parameters")  # never pruned
                self.graph = guard_memory(lambda: tpr.DependencyGraph().build_dependency(
                    model, example_inputs=without_cache(model, example_inputs),
                    output_transform=output_tensors, customized_pruners=_customized_pruners(model)),
                    model=model, limit_gb=memory_limit_gb)
        finally:
            model.train(was_training)
        self.modules = dict(model.named_modules())
        self.names = {m: n for n, m in self.modules.items()}
        # fused q/k/v layers (GPT-2's c_attn): torch-pruning's split mapping is lost through the
        # attention op, so their removals are done here (see remove)
        self.fused = {p: b.parts for b in find_attention(model) if b.fused for p in b.projections}

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
            if self.graph.is_in_channel_pruning_fn(dep.handler) and is_weighted_layer(target):
                found.setdefault(id(target), target)
        return list(found.values())

    def inspect(self, name: str) -> GroupInfo:
        """Which other layers' outputs are coupled to ``name``'s, and whether the coupling runs
        through zero padding (whose channel offsets torch-pruning does not model)."""
        coupled, padding, embeddings, attention = [], False, [], []
        for dep, _ in self.group(name, [0]):
            target = dep.target.module
            if "ConstantPad" in str(dep.target.name):
                padding = True
            other = self.names.get(target)
            if isinstance(target, nn.Embedding) and other is not None:
                embeddings.append(other)
            if isinstance(target, nn.MultiheadAttention) and other is not None:
                attention.append(other)
            if (other is not None and other != name and is_weighted_layer(target)
                    and self.graph.is_out_channel_pruning_fn(dep.handler)):
                coupled.append(other)
        return GroupInfo(name, tuple(dict.fromkeys(coupled)), padding, tuple(dict.fromkeys(embeddings)),
                         tuple(dict.fromkeys(attention)))

    def channel_groups(self, name: str) -> int:
        """How many equal channel groups ``name``'s output units pass through: the largest
        ``groups`` of a grouped (not depthwise) convolution whose input or output channels go with
        them (torch-pruning's ``get_in/out_channel_groups``; GroupNorm's groups too), else 1.

        torch-pruning removes a grouped conv's input channels by keeping the same positions in
        every group (its ``prune_in_channels`` keeps the first ``kept // groups`` indices), so
        such units must go as whole position sets, one channel at the same offset in each group:
        the same grouping torch-pruning's own pruners apply (``ch_groups``)."""
        most = 1
        for dep, _ in self.group(name, [0]):
            target = dep.target.module
            if isinstance(target, nn.modules.conv._ConvNd) and target.groups == target.out_channels:
                continue  # depthwise: its pruner removes a channel with its own group
            pruner = self.graph.get_pruner_of_module(target)
            if pruner is None:
                continue
            if self.graph.is_out_channel_pruning_fn(dep.handler):
                count = pruner.get_out_channel_groups(target)
            elif self.graph.is_in_channel_pruning_fn(dep.handler):
                count = pruner.get_in_channel_groups(target)
            else:
                continue
            most = max(most, int(count or 1))
        return most

    def remove(self, name: str, idxs: Sequence[int]) -> None:
        """Remove output units ``idxs`` (current indexing) of layer ``name`` and all that is coupled."""
        if name in self.fused:
            self._remove_fused(name, idxs)
            return
        group = self.group(name, idxs)
        if not self.graph.check_pruning_group(group):
            raise RuntimeError(f"torch-pruning refused to remove {len(idxs)} units of {name!r}")
        group.prune()

    def _remove_fused(self, name: str, idxs: Sequence[int]) -> None:
        """Remove features ``idxs`` of a fused q/k/v layer, and from each consumer (the output
        projection) the inputs of the removed value features. The layer's output is
        ``parts`` equal segments (q, k, v); only the last reaches the output projection."""
        module = self.modules[name]
        parts = self.fused[name]
        width = self.graph.get_out_channels(module)
        seg = width // parts
        idxs = sorted({int(i) for i in idxs})
        if not idxs or len(idxs) >= width or any(not 0 <= i < width for i in idxs):
            raise RuntimeError(f"cannot remove {len(idxs)} of {width} features of fused {name!r}")
        value = [i - (parts - 1) * seg for i in idxs if i >= (parts - 1) * seg]
        consumers = self.consumers(name)
        self.graph.get_pruner_of_module(module).prune_out_channels(module, idxs)
        for consumer in consumers:
            self.graph.get_pruner_of_module(consumer).prune_in_channels(consumer, value)
