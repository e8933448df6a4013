"""Training hyperparameters, validated with errors that name the value and the allowed range."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from ..errors import TopopruneError

__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULES", "PRECISIONS", "SPEED_OPTIONS"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "multistep", "none")
PRECISIONS = ("fp32", "bf16")
# options that change how fast training runs, not the recipe: left out of to_dict() (and so of
# every digest built from it) while at their defaults, so settings written before they existed
# keep their digest and their checkpoints resume
SPEED_OPTIONS = ("precision", "channels_last", "compile", "eval_batch_size")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Defaults are a sound SGD recipe for the registry's small models."""

    epochs: int = field(default=10, metadata={"help": "passes over the training split, >= 1"})
    optimizer: str = field(default="sgd", metadata={"help": "sgd (momentum, nesterov) or adam"})
    lr: float = field(default=0.05, metadata={"help": "initial learning rate, > 0"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum, in [0, 1)"})
    weight_decay: float = field(default=5e-4, metadata={"help": "L2 penalty, >= 0"})
    schedule: str = field(default="cosine", metadata={"help": "cosine, multistep or none (per epoch)"})
    milestones: tuple[float, ...] = field(
        default=(0.5, 0.75), metadata={"help": "multistep: fractions of the epochs where lr *= gamma"}
    )
    gamma: float = field(default=0.1, metadata={"help": "multistep decay factor, in (0, 1]"})
    batch_size: int = field(default=128, metadata={"help": "samples per step, >= 1"})
    seed: int = field(default=0, metadata={"help": "seed of the initialisation, shuffling and augmentation"})
    precision: str = field(default="fp32", metadata={
        "help": "fp32, or bf16: forward and loss under bfloat16 autocast (weights, optimizer state, loss "
                "and BatchNorm statistics stay float32); falls back to fp32 where bfloat16 is not fast"})
    channels_last: bool = field(default=False, metadata={
        "help": "store the model's 4-D weights and the 4-D input batches channels-last (NHWC)"})
    compile: bool = field(default=False, metadata={
        "help": "run the training step through torch.compile; falls back to eager where it cannot work"})
    eval_batch_size: int = field(default=1024, metadata={"help": "samples per evaluation batch, >= 1"})

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, "epochs", self.epochs, "an integer >= 1"),
            (self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"one of {OPTIMIZERS}"),
            (isinstance(self.lr, (int, float)) and self.lr > 0, "lr", self.lr, "a number > 0"),
            (0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0"),
            (self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {SCHEDULES}"),
            (all(0 < m < 1 for m in self.milestones), "milestones", self.milestones, "fractions in (0, 1)"),
            (0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1"),
            (isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "an integer >= 0"),
        ]
        for ok, name, value, allowed in checks:
            if not ok:
                raise TopopruneError(f"bad training setting {name}={value!r}: must be {allowed}")
        if not isinstance(self.precision, str) or self.precision not in PRECISIONS:
            raise TopopruneError(f"precision: bad value {self.precision!r}; allowed: {', '.join(PRECISIONS)}")
        for name in ("channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise TopopruneError(f"{name}: bad value {getattr(self, name)!r}; allowed: true or false")
        size = self.eval_batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise TopopruneError(f"eval_batch_size: bad value {size!r}; allowed: an integer >= 1")

    def to_dict(self) -> dict:
        """The settings as plain data; the speed options (:data:`SPEED_OPTIONS`) only where they
        differ from their defaults."""
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        for name in SPEED_OPTIONS:
            if d[name] == self.__dataclass_fields__[name].default:
                del d[name]
        return d

    def digest(self) -> str:
        """A short hash of the settings: a checkpoint resumes only under the same settings (a
        speed option enters it only when it is not at its default)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
