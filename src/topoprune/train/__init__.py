"""Training, evaluation, recovery measurement and training callbacks."""

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
    "BettiTracker",
    "Callback",
    "NPEarlyStopping",
    "NeuralPersistenceTracker",
    "RecoveryResult",
    "TrainConfig",
    "TrainResult",
    "ValLossEarlyStopping",
    "check_compatible",
    "evaluate",
    "model_device",
    "recover",
    "resolve_device",
    "seeded_rng",
    "set_threads",
    "train",
    "using_threads",
]
