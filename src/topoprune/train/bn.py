"""BatchNorm recalibration ("adaptive BN", as in EagleEye): re-estimate every BatchNorm layer's
running statistics for the weights a model has now.

After structured pruning a BatchNorm layer still holds the mean and variance its inputs had in the
dense model. Evaluation normalizes with those stale statistics, and a pruned network can fall to
chance with one class predicted for every input although its weights are far from useless.
:func:`recalibrate_bn` resets the statistics and estimates them again from training batches,
without changing one weight.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from itertools import islice

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..data import DataSplits
from ..errors import TopopruneError
from .device import model_device, resolve_device
from .speedups import as_channels_last, autocast, channels_last_model, check_precision, resolve_speedups

__all__ = ["RecalibrationResult", "batchnorm_layers", "recalibrate_bn", "NO_BATCHNORM"]

NO_BATCHNORM = "no BatchNorm: nothing to recalibrate"
MAX_BATCHES = 10_000


@dataclass(frozen=True)
class RecalibrationResult:
    """What :func:`recalibrate_bn` did: how many BatchNorm layers it re-estimated, from how many
    batches and inputs; ``note`` says why nothing was done (empty when it was)."""

    bn_layers: int
    batches: int
    samples: int = 0
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def batchnorm_layers(model: nn.Module) -> dict[str, _BatchNorm]:
    """The BatchNorm layers of ``model`` that keep running statistics (``BatchNorm1d/2d/3d``,
    ``SyncBatchNorm``, ... with ``track_running_stats=True``), by qualified name. Layers without
    running statistics always normalize with the batch's and have nothing to recalibrate."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats and m.running_mean is not None}


def _count(value: object, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
        raise TopopruneError(f"{name}: bad value {value!r}; allowed: {allowed}")
    return value


def _split_batches(data: DataSplits, batches: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """``batches`` full batches of training inputs: consecutive slices of seeded permutations of
    the training split (a new permutation when one is used up), so no batch is short."""
    x = data.train_x
    n = x.shape[0]
    if n == 0:
        raise TopopruneError(f"dataset {data.name!r} has an empty training split; recalibration needs "
                             "training inputs")
    size = min(batch_size, n)
    g = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(batches):
        while order.numel() < size:
            order = torch.cat([order, torch.randperm(n, generator=g)])
        idx, order = order[:size], order[size:]
        yield x[idx]  # no augmentation: the statistics are for evaluation's (unaugmented) inputs


def _inputs(batch: object, index: int):
    """The model inputs in one item of a user's iterable: a tensor, the first element of an
    ``(x, y)`` tuple/list, or a dict of keyword inputs."""
    from ..models.inputs import as_inputs

    if isinstance(batch, (tuple, list)) and batch:
        batch = batch[0]
    if not isinstance(batch, (torch.Tensor, Mapping, tuple, list)):
        raise TopopruneError(f"data batch {index}: bad value {type(batch).__name__}; allowed: a tensor, an "
                             "(x, y) tuple or a dict of keyword inputs")
    return as_inputs(batch, f"data batch {index}")


def recalibrate_bn(
    model: nn.Module,
    data: DataSplits | Iterable,
    *,
    batches: int = 50,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
) -> RecalibrationResult:
    """Re-estimate the running statistics of every BatchNorm layer of ``model`` in place.

    Each BatchNorm layer's running mean and variance are reset, its ``momentum`` set to ``None``
    (a cumulative average over the batches, not an exponential one), and ``batches`` training
    batches are forwarded under ``torch.inference_mode()`` with the BatchNorm layers in train mode.
    Every other module is in eval mode meanwhile, so dropout is off: the statistics are those
    of the activations evaluation sees, and no random number is drawn. Afterwards every
    module's train/eval mode and every BatchNorm layer's ``momentum`` are what they were.

    Only the BatchNorm buffers (``running_mean``, ``running_var``, ``num_batches_tracked``)
    change; every parameter and every other buffer is bit-identical. A model with no BatchNorm
    layer (with running statistics) is left alone, with a warning, and the record says so. If a
    forward pass fails, the old statistics are put back before the error propagates.

    Args:
        model: any ``nn.Module`` (a pruned model, masked or physically smaller).
        data: a :class:`~topoprune.data.DataSplits` (its training split is sampled: ``batches``
            batches of ``batch_size`` inputs, without augmentation, drawn with a
            ``torch.Generator`` seeded by ``seed``), or any iterable of batches: tensors,
            ``(x, y)`` tuples or dicts of keyword inputs, of which the first ``batches`` are used.
        batches: how many batches to forward (EagleEye's adaptive BN uses 50).
        batch_size: inputs per batch when ``data`` is a ``DataSplits`` (at most the split's size).
        seed: the seed of the sampled batches.
        device: where the forward passes run (see :func:`~topoprune.train.train`); default: where
            the model is. The model is handed back on the device it came on.
        precision: ``"fp32"`` or ``"bf16"`` (the forward passes under bfloat16 autocast; the
            statistics are accumulated in float32 buffers): as in :class:`~topoprune.train.TrainConfig`.
        channels_last: forward channels-last batches through a channels-last model (its layout is
            put back afterwards).

    Returns:
        :class:`RecalibrationResult`: ``bn_layers``, ``batches`` and ``samples`` used, and a ``note``.
    """
    if not isinstance(model, nn.Module):
        raise TopopruneError(f"model: bad value {type(model).__name__}; allowed: a torch nn.Module")
    _count(batches, "batches", 1, MAX_BATCHES)
    _count(batch_size, "batch_size", 1)
    _count(seed, "seed", 0)
    check_precision(precision)
    if isinstance(data, (torch.Tensor, str, bytes, Mapping)) or not (
            isinstance(data, DataSplits) or isinstance(data, Iterable)):
        raise TopopruneError(f"data: bad value {type(data).__name__}; allowed: a DataSplits "
                             "(prepare_data) or an iterable of batches (tensors or (x, y) tuples)")
    layers = batchnorm_layers(model)
    if not layers:
        warnings.warn(f"recalibrate_bn: {type(model).__name__} has {NO_BATCHNORM}", stacklevel=2)
        return RecalibrationResult(0, 0, 0, NO_BATCHNORM)

    home = model_device(model)
    target = resolve_device(device, default=home)
    modes = {name: m.training for name, m in model.named_modules()}
    momenta = {name: bn.momentum for name, bn in layers.items()}
    stats = ("running_mean", "running_var", "num_batches_tracked")
    saved = {name: {k: getattr(bn, k).clone() for k in stats if getattr(bn, k, None) is not None}
             for name, bn in layers.items()}
    from ..models.inputs import batch_size as size_of
    from ..models.inputs import call_model, move_inputs

    used = samples = 0
    model.to(target)
    run = resolve_speedups(precision=precision, channels_last=channels_last, device=target)
    try:
        model.eval()
        for bn in layers.values():
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()
        stream = (_split_batches(data, batches, batch_size, seed) if isinstance(data, DataSplits)
                  else (_inputs(b, i) for i, b in enumerate(data)))
        # the layout changes outside inference mode: parameters made in it could not train afterwards
        with channels_last_model(model, run.channels_last), torch.inference_mode():
            for inputs in islice(stream, batches):  # no item beyond them is taken from an iterator
                inputs = move_inputs(inputs, target)
                if run.channels_last:
                    inputs = as_channels_last(inputs)
                with autocast(target, run.precision):
                    call_model(model, inputs)
                used += 1
                samples += size_of(inputs)
        if used == 0:
            raise TopopruneError("data: bad value an empty iterable; allowed: at least one batch of inputs")
    except BaseException:
        for name, bn in layers.items():  # a failed pass leaves the old statistics, not half of new ones
            for key, value in saved[name].items():
                getattr(bn, key).copy_(value)
        raise
    finally:
        for name, bn in layers.items():
            bn.momentum = momenta[name]
        for name, m in model.named_modules():
            m.training = modes[name]
        model.to(home)
    bad = [name for name, bn in layers.items() if not all(
        math.isfinite(v) for v in (bn.running_mean.sum().item(), bn.running_var.sum().item()))]
    note = f"non-finite running statistics in {', '.join(bad)}" if bad else ""
    return RecalibrationResult(len(layers), used, samples, note)


# Old names, kept working for one minor release (see CHANGELOG.md).
from .._deprecation import deprecated_module_names as _deprecated  # noqa: E402

__getattr__ = _deprecated(__name__, {
    "BNRecalibration": ("topoprune.RecalibrationResult", lambda: RecalibrationResult),
})
