"""Training, evaluation, recovery measurement, BatchNorm recalibration and training callbacks."""

from importlib import import_module
from typing import Any

# Loaded on first use (PEP 562): most of train/ imports torch, and the CLI reads the
# torch-free train.config to build its options at start-up.
_WHERE = {
    "RecalibrationResult": "bn",
    "batchnorm_layers": "bn",
    "recalibrate_bn": "bn",
    "BettiTracker": "callbacks",
    "Callback": "callbacks",
    "NeuralPersistenceTracker": "callbacks",
    "NPEarlyStopping": "callbacks",
    "ValLossEarlyStopping": "callbacks",
    "OPTIMIZERS": "config",
    "SCHEDULES": "config",
    "TrainConfig": "config",
    "model_device": "device",
    "resolve_device": "device",
    "TrainResult": "loop",
    "check_compatible": "loop",
    "evaluate": "loop",
    "train": "loop",
    "RecoveryResult": "recovery",
    "recover": "recovery",
    "Speedups": "speedups",
    "seeded_rng": "scoped",
    "set_threads": "scoped",
    "using_threads": "scoped",
}

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "RecalibrationResult",
    "BettiTracker",
    "Callback",
    "NPEarlyStopping",
    "NeuralPersistenceTracker",
    "RecoveryResult",
    "Speedups",
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


def _load(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Old names, kept working for one minor release (see CHANGELOG.md).
from .._deprecation import deprecated_module_names  # noqa: E402

__getattr__ = deprecated_module_names(__name__, {
    "BNRecalibration": ("topoprune.RecalibrationResult", lambda: _load("RecalibrationResult")),
}, fallback=_load)
