"""topoprune: topology-aware neural network pruning for PyTorch.

The public API is re-exported here by name. Names are loaded on first use, so
``import topoprune`` is cheap and ``topoprune.topology`` can be used without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> module that defines it
_EXPORTS = {
    "TopopruneError": "topoprune.errors",
    "neural_persistence": "topoprune.analysis",
    "critical_compression": "topoprune.analysis",
    "collapse_report": "topoprune.analysis",
    "mst_overlap": "topoprune.topology",
    "maximum_spanning_tree": "topoprune.topology",
    "persistence_diagram": "topoprune.topology",
    "ConvToeplitzGraph": "topoprune.topology",
    "PersistenceReport": "topoprune.topology",
    "CriticalReport": "topoprune.topology",
    "OverlapReport": "topoprune.topology",
    "create_model": "topoprune.models",
    "list_models": "topoprune.models",
    "register_model": "topoprune.models",
    "extract_layers": "topoprune.models",
    "ModelMeta": "topoprune.models",
    "list_datasets": "topoprune.data",
    "load_dataset": "topoprune.data",
    "prepare_data": "topoprune.data",
    "TrainConfig": "topoprune.train",
    "recover": "topoprune.train",
    "recalibrate_bn": "topoprune.train",
    "BNRecalibration": "topoprune.train",
    "model_cost": "topoprune.metrics",
    "prune_unstructured": "topoprune.pruning",
    "prune_filters": "topoprune.pruning",
    "load_model": "topoprune.experiments",
    "save_pruned": "topoprune.experiments",
    "export_model": "topoprune.experiments.export",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # static checkers and IDEs see the real names
    from .analysis import critical_compression, neural_persistence
    from .data import list_datasets, load_dataset, prepare_data
    from .metrics import model_cost
    from .experiments import load_model, save_pruned
    from .experiments.export import export_model
    from .pruning import prune_filters, prune_unstructured
    from .train import BNRecalibration, TrainConfig, recalibrate_bn, recover
    from .errors import TopopruneError
    from .models import ModelMeta, create_model, extract_layers, list_models, register_model
    from .topology import (
        ConvToeplitzGraph,
        CriticalReport,
        OverlapReport,
        PersistenceReport,
        maximum_spanning_tree,
        mst_overlap,
        persistence_diagram,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'topoprune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
