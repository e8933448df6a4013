"""What a comparison will cost before it runs: training steps counted, one step timed here.

The estimate counts the training steps every stage takes (each dense baseline's epochs; each
cell's recovery epochs; the rounds of methods that train inside pruning, once per trajectory or
per cell) and prices them with the median time of a few training steps of each dense model,
measured on this machine with the config's batch size, precision and memory format. It leaves
out what it cannot price without running the methods (a genetic search, SNIP's gradients,
evaluations of candidate budgets): the printed estimate says so. Pruned models train faster than
the dense one, so the recovery part is an upper bound.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

from ..errors import TopopruneError
from .config import ExperimentConfig, ModelSpec

__all__ = ["CostEstimate", "estimate_cost", "format_seconds"]

# a forward pass over the test split after every epoch costs about a third of a training step per
# batch (no backward, no optimizer); counted at the evaluation batch size
_EVAL_SHARE = 1 / 3


@dataclass
class CostEstimate:
    """Seconds of training a comparison needs on this machine, by stage."""

    seconds: float
    baselines: float
    cells: float
    inside_pruning: float
    cells_count: int
    step_ms: dict[str, float] = field(default_factory=dict)  # model key -> median ms per training step
    device: str = "cpu"
    note: str = ("training and evaluation only (dense step time; a method's own search, gradients or "
                 "budget evaluations are not priced)")
    workers: int = 1
    # with workers on the CPU: the baselines one after another, then the cells (timed with a
    # worker's threads) that many at a time; None where it is not estimated (one worker, a GPU)
    wall_seconds: float | None = None
    cell_step_ms: dict[str, float] = field(default_factory=dict)  # the step timed with a worker's threads

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "baselines": self.baselines, "cells": self.cells,
                "inside_pruning": self.inside_pruning, "cells_count": self.cells_count,
                "step_ms": self.step_ms, "device": self.device, "note": self.note, "workers": self.workers,
                "wall_seconds": self.wall_seconds, "cell_step_ms": self.cell_step_ms}


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"7.5 min"`` or ``"3.2 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _sizes(config: ExperimentConfig) -> tuple[int, int]:
    """(training samples after the validation split, test samples), without loading the data
    when the dataset's sizes are known."""
    from ..data import dataset_info

    train, test = dataset_info(config.dataset.name).sizes
    if not train:
        from .stages import prepare

        data = prepare(config, config.models[0])
        return int(data.train_x.shape[0]), int(data.test_x.shape[0])
    train = int(train * (1 - config.dataset.val_fraction))
    if config.dataset.limit is not None:
        train, test = min(train, config.dataset.limit), min(test, config.dataset.limit)
    return train, test


def _step_ms(spec: ModelSpec, config: ExperimentConfig, batch: int, device: str, steps: int) -> float:
    """Median milliseconds of one training step of the dense model on random data."""
    import torch

    from ..data import dataset_info
    from ..models import create_model
    from ..train.speedups import as_channels_last, autocast, channels_last_model, resolve_speedups
    from .factory import build_from_factory

    info = dataset_info(config.dataset.name)
    shape = tuple(spec.input_shape or info.shape)
    if spec.factory is not None:
        model = build_from_factory(spec.factory, spec.kwargs)
    else:
        model = create_model(spec.name, num_classes=info.num_classes, in_channels=shape[0], input_size=shape[1:],
                             width=spec.width)
    from ..train import resolve_device

    dev = resolve_device(device)  # an unknown or absent device: one line
    train = config.train
    import warnings

    with warnings.catch_warnings():  # the run itself says when an option falls back
        warnings.simplefilter("ignore")
        speed = resolve_speedups(precision=train.get("precision", "fp32"),
                                 channels_last=train.get("channels_last", False), device=dev)
    model = model.to(dev).train()
    x = torch.randn(batch, *shape, device=dev)
    y = torch.randint(0, info.num_classes, (batch,), device=dev)
    if speed.channels_last:
        x = as_channels_last(x)
    times = []
    with channels_last_model(model, speed.channels_last):
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        for i in range(steps + 1):  # the first step warms up (allocations, kernel choice)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with autocast(dev, speed.precision):
                out = model(x)
            loss = torch.nn.functional.cross_entropy(out.float(), y)
            loss.backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def estimate_cost(config: ExperimentConfig, *, device: str = "cpu", steps: int = 3,
                  workers: int = 1) -> CostEstimate:
    """The training cost of ``config`` on this machine (see the module docstring for what it
    counts and leaves out). Times ``steps`` training steps of each model (a few seconds).

    With ``workers`` > 1 on the CPU the cells' steps are timed again with a worker's share of the
    cores (as ``--workers`` runs them), and :attr:`CostEstimate.wall_seconds` is the baselines'
    time plus the cells' divided among the workers (at most as many as there are cores: more
    only share them)."""
    if not isinstance(config, ExperimentConfig):
        raise TopopruneError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    from .runner import check_workers

    check_workers(workers)
    from ..train import resolve_device
    from ..train.scoped import usable_cores, using_threads

    on_cpu = resolve_device(device).type == "cpu"  # "auto" on a machine without a GPU too
    train_n, test_n = _sizes(config)
    batch = int(config.train.get("batch_size", 128))
    rec_batch = int(config.recovery.batch_size)
    eval_batch = int(config.train.get("eval_batch_size", 1024))
    epochs = int(config.train.get("epochs", 10))
    per_target = len(config.sparsities) * len(config.seeds)
    runs = [p for p in config.control_plan() if p.runs]
    cells = per_target * (len(config.methods) + len(runs))
    # recovery epochs per cell (a config with a schedule gives its one-shot cells more), and the
    # fine-tuning epochs between a scheduled method's removals
    cell_epochs = per_target * (sum(config.recovery_epochs(m.key) + m.tuning_epochs for m in config.methods)
                                + sum(config.recovery_epochs(p.method, p.control) for p in runs))
    per_model, per_cell_model = {}, {}
    baselines = recovery = inside = 0.0

    def epoch_seconds(ms: float) -> float:
        step = ms / 1000
        evaluation = math.ceil(test_n / eval_batch) * step * _EVAL_SHARE * eval_batch / batch
        return math.ceil(train_n / batch) * step + evaluation

    for spec in config.models:
        ms = per_model[spec.key] = _step_ms(spec, config, batch, device, steps)
        if workers > 1 and on_cpu:
            with using_threads(max(1, usable_cores() // workers)):
                per_cell_model[spec.key] = _step_ms(spec, config, batch, device, steps)
        epoch, cell_epoch = epoch_seconds(ms), epoch_seconds(per_cell_model.get(spec.key, ms))
        rec_epoch = (cell_epoch * (math.ceil(train_n / rec_batch) * rec_batch)
                     / max(1, math.ceil(train_n / batch) * batch))
        baselines += len(config.baseline_seeds()) * epochs * epoch
        recovery += cell_epochs * rec_epoch  # this model's cells
        for m in config.methods:
            if not m.method.needs().training:
                continue
            rounds = int(getattr(m.method, "rounds", 1) or 1)
            per_round = int(getattr(m.method, "epochs", None) or epochs)
            runs = len(config.seeds) * (1 if m.method.needs().trajectory else len(config.sparsities))
            inside += runs * rounds * per_round * cell_epoch
    wall = None
    if workers > 1 and on_cpu:  # workers beyond the cores only share them
        wall = baselines + (recovery + inside) / min(workers, max(1, usable_cores()))
    return CostEstimate(baselines + recovery + inside, baselines, recovery, inside, cells * len(config.models),
                        per_model, device, workers=workers, wall_seconds=wall, cell_step_ms=per_cell_model)
