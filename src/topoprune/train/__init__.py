"""Training, evaluation, recovery measurement, BatchNorm recalibration and training callbacks."""

from .bn import BNRecalibration, batchnorm_layers, recalibrate_bn
from .callbacks import (
    BettiTracker,
    Callback,
    NeuralPersistenceTracker,
    NPEarlyStopping,
    ValLossEarlyStopping,
)
from .config import OPTIMIZERS, SCHEDULES, TrainConfig
from .device import model_device, resolve_device
from .loop import TrainResult, check_compatible, evaluate, train
from .recovery import RecoveryResult, recover
from .scoped import seeded_rng, set_threads, using_threads

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "BNRecalibration",
    "BettiTracker",
    "Callback",
    "NPEarlyStopping",
    "NeuralPersistenceTracker",
    "RecoveryResult",
    "TrainConfig",
    "TrainResult",
    "ValLossEarlyStopping",
    "batchnorm_layers",
    "check_compatible",
    "evaluate",
    "model_device",
    "recalibrate_bn",
    "recover",
    "resolve_device",
    "seeded_rng",
    "set_threads",
    "train",
    "using_threads",
]
