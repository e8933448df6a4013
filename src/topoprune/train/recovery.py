"""Recovery: how fast a pruned model gets back to its dense accuracy (the Topological Pruner's
headline metric).

Accuracy is measured right after pruning (epoch 0) and after every retraining epoch; the result
says after how many epochs and training seconds the accuracy came back within ``tolerance``
percentage points of the dense model, or that it did not within the epochs given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..data import DataSplits
from ..errors import TopopruneError
from .callbacks import Callback
from .config import TrainConfig
from .loop import evaluate, train

__all__ = ["RecoveryResult", "recover"]


@dataclass
class RecoveryResult:
    """A recovery curve and when (if) it reached the dense accuracy.

    ``accuracy[e]`` is the accuracy (percent, on ``split``) after ``e`` retraining epochs;
    ``accuracy[0]`` is right after pruning. ``seconds[e]`` is the cumulative training time.
    ``settings``: the speed options (precision, channels_last, compile) the retraining ran with.
    """

    dense_accuracy: float
    tolerance: float
    split: str
    accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    epochs_to_recover: int | None = None
    seconds_to_recover: float | None = None
    settings: dict | None = None  # the speed options the retraining ran with (None: no epoch ran)

    @property
    def recovered(self) -> bool:
        return self.epochs_to_recover is not None

    def summary(self) -> str:
        if self.recovered:
            return (f"recovered to within {self.tolerance} points of {self.dense_accuracy:.2f}% after "
                    f"{self.epochs_to_recover} epoch(s), {self.seconds_to_recover:.1f} s")
        return (f"did not recover within {len(self.accuracy) - 1} epochs (best "
                f"{max(self.accuracy):.2f}% vs dense {self.dense_accuracy:.2f}%)")

    def to_dict(self) -> dict:
        return {**asdict(self), "recovered": self.recovered}


class _RecoveryWatch(Callback):
    def __init__(self, result: RecoveryResult, stop_when_recovered: bool):
        self.result, self.stop = result, stop_when_recovered
        self.elapsed = 0.0

    def on_epoch_end(self, model, record, history):
        r = self.result
        self.elapsed += record["seconds"]
        acc = record[f"{r.split}_acc"]
        r.accuracy.append(acc)
        r.seconds.append(self.elapsed)
        if r.epochs_to_recover is None and acc >= r.dense_accuracy - r.tolerance:
            r.epochs_to_recover = record["epoch"]
            r.seconds_to_recover = self.elapsed
        return self.stop and r.recovered

    def state_dict(self):
        return {"elapsed": self.elapsed, "result": self.result.to_dict()}

    def load_state_dict(self, state):
        self.elapsed = state["elapsed"]
        saved = dict(state["result"])
        saved.pop("recovered", None)
        self.result.__dict__.update(saved)


def recover(
    model: nn.Module,
    data: DataSplits,
    dense_accuracy: float,
    *,
    epochs: int = 5,
    config: TrainConfig | None = None,
    tolerance: float = 0.5,
    split: str = "test",
    stop_when_recovered: bool = False,
    out_dir: str | Path | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
    nproc: int = 1,
) -> RecoveryResult:
    """Retrain a pruned model for up to ``epochs`` and measure its recovery.

    Args:
        model: the pruned model (trained in place).
        data: the dataset splits the dense model was evaluated on.
        dense_accuracy: the dense model's accuracy on ``split``, in percent.
        epochs: most retraining epochs; overrides ``config.epochs``.
        config: the retraining recipe (default: SGD, lr 0.01, cosine).
        tolerance: percentage points below ``dense_accuracy`` that count as recovered.
        split: ``"test"`` or ``"val"``: where accuracy is measured.
        stop_when_recovered: stop at the first recovered epoch instead of running all.
        out_dir: checkpoint folder, so a killed recovery resumes.
        device: where the retraining epochs run (see :func:`~topoprune.train.train`).
        nproc: data-parallel training processes (DDP; see :func:`~topoprune.train.train`).
    """
    if tolerance < 0:
        raise TopopruneError(f"tolerance must be >= 0 percentage points, got {tolerance}")
    if split not in ("test", "val"):
        raise TopopruneError(f"split must be 'test' or 'val', got {split!r}")
    base = config or TrainConfig(lr=0.01)
    cfg = TrainConfig(**{**base.to_dict(), "epochs": epochs, "milestones": tuple(base.milestones)})
    x, y = (data.test_x, data.test_y) if split == "test" else (data.val_x, data.val_y)
    if x.shape[0] == 0:
        raise TopopruneError(f"the {split} split is empty; recovery needs samples to measure")
    result = RecoveryResult(dense_accuracy, tolerance, split)
    result.accuracy.append(evaluate(model, x, y, batch_size=cfg.eval_batch_size, precision=cfg.precision,
                                    channels_last=cfg.channels_last)[1])
    result.seconds.append(0.0)
    if result.accuracy[0] >= dense_accuracy - tolerance:
        result.epochs_to_recover, result.seconds_to_recover = 0, 0.0
        if stop_when_recovered:
            return result
    watch = _RecoveryWatch(result, stop_when_recovered)
    ran = train(model, data, cfg, out_dir=out_dir, callbacks=[watch], progress=progress,
                description="recover", device=device, nproc=nproc)
    result.settings = dict(ran.settings)
    return result
