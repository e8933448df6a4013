"""topoprune: topology-aware neural network pruning for PyTorch, and the controls that show
whether a pruning criterion matters.

The public API is re-exported here by name. Names are loaded on first use, so
``import topoprune`` is cheap and ``topoprune.topology`` can be used without importing torch.
Everything listed in ``__all__`` is stable: a change goes through a deprecation (one minor
release with a ``DeprecationWarning`` naming the replacement) and a CHANGELOG line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._deprecation import deprecated_module_names
from ._version import __version__

# public name -> module that defines it
_EXPORTS = {
    "TopopruneError": "topoprune.errors",
    # analysing a model's topology
    "neural_persistence": "topoprune.analysis",
    "critical_compression": "topoprune.analysis",
    "collapse_report": "topoprune.analysis",
    "betti_by_layer": "topoprune.analysis",
    "deep_graph_persistence": "topoprune.analysis_dgp",
    "DGPResult": "topoprune.analysis_dgp",
    "CollapseResult": "topoprune.analysis",
    "mst_overlap": "topoprune.topology",
    "maximum_spanning_tree": "topoprune.topology",
    "persistence_diagram": "topoprune.topology",
    "ConvToeplitzGraph": "topoprune.topology",
    "PersistenceResult": "topoprune.topology",
    "LayerPersistence": "topoprune.topology",
    "CriticalResult": "topoprune.topology",
    "LayerCritical": "topoprune.topology",
    "OverlapResult": "topoprune.topology",
    # models and data
    "create_model": "topoprune.models",
    "list_models": "topoprune.models",
    "register_model": "topoprune.models",
    "extract_layers": "topoprune.models",
    "ModelMeta": "topoprune.models",
    "list_datasets": "topoprune.data",
    "load_dataset": "topoprune.data",
    "prepare_data": "topoprune.data",
    # pruning
    "prune_units": "topoprune.pruning",
    "prune_filters": "topoprune.pruning",
    "prune_weights": "topoprune.pruning",
    "prune_unstructured": "topoprune.pruning",
    "imp": "topoprune.pruning",
    "prune_units_iteratively": "topoprune.pruning.iterative",
    "IterativeResult": "topoprune.pruning.iterative",
    "StructuredResult": "topoprune.pruning",
    "LayerStructured": "topoprune.pruning",
    "UnstructuredResult": "topoprune.pruning",
    "LayerUnstructured": "topoprune.pruning",
    "IMPResult": "topoprune.pruning",
    "list_methods": "topoprune.pruning",
    "register_method": "topoprune.pruning",
    "StructuredMethod": "topoprune.pruning",
    "UnstructuredMethod": "topoprune.pruning",
    "list_allocations": "topoprune.pruning",
    "register_allocation": "topoprune.pruning",
    "Allocation": "topoprune.pruning",
    # training, recovery, measuring
    "TrainConfig": "topoprune.train",
    "evaluate": "topoprune.train",
    "TrainResult": "topoprune.train",
    "recover": "topoprune.train",
    "RecoveryResult": "topoprune.train",
    "recalibrate_bn": "topoprune.train",
    "RecalibrationResult": "topoprune.train",
    "NeuralPersistenceTracker": "topoprune.train",
    "model_cost": "topoprune.metrics",
    "measure_latency": "topoprune.metrics",
    "CostResult": "topoprune.metrics",
    # saving, loading, exporting
    "load_model": "topoprune.experiments",
    "save_pruned": "topoprune.experiments",
    "export_model": "topoprune.experiments.export",
    # experiments
    "load_config": "topoprune.experiments.config",
    "shipped_configs": "topoprune.experiments.config",
    "run_experiment": "topoprune.experiments.runner",
    "read_results": "topoprune.experiments.store",
    # testing a criterion of one's own
    "evaluate_method": "topoprune.experiments.evaluate",
    "EvaluationResult": "topoprune.experiments.evaluate",
    "load_suite": "topoprune.experiments.suites",
    "shipped_suites": "topoprune.experiments.suites",
}

# Subpackages reachable as attributes without importing them first (``tp.methods.FPGM()``). The
# training loop is ``tp.train.train``: a subpackage is set as an attribute of its package once it
# is imported, so ``train`` cannot also be a top-level function.
_SUBMODULES = {
    "methods": "topoprune.pruning.methods",
    "analysis": "topoprune.analysis",
    "data": "topoprune.data",
    "experiments": "topoprune.experiments",
    "metrics": "topoprune.metrics",
    "models": "topoprune.models",
    "pruning": "topoprune.pruning",
    "stats": "topoprune.experiments.stats",
    "topology": "topoprune.topology",
    "train": "topoprune.train",
}

# Old names: they keep working for one minor release, with a DeprecationWarning (CHANGELOG.md).
_DEPRECATED = {
    "PersistenceReport": ("PersistenceResult", "topoprune.topology"),
    "CriticalReport": ("CriticalResult", "topoprune.topology"),
    "OverlapReport": ("OverlapResult", "topoprune.topology"),
    "FilterPruneInfo": ("StructuredResult", "topoprune.pruning"),
    "UnstructuredRecord": ("UnstructuredResult", "topoprune.pruning"),
    "ModelCost": ("CostResult", "topoprune.metrics"),
    "BNRecalibration": ("RecalibrationResult", "topoprune.train"),
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # static checkers and IDEs see the real names
    from .analysis import CollapseResult, betti_by_layer, collapse_report, critical_compression, neural_persistence
    from .analysis_dgp import DGPResult, deep_graph_persistence
    from .data import list_datasets, load_dataset, prepare_data
    from .errors import TopopruneError
    from .experiments import load_model, save_pruned
    from .experiments.config import load_config, shipped_configs
    from .experiments.evaluate import EvaluationResult, evaluate_method
    from .experiments.suites import load_suite, shipped_suites
    from .experiments.export import export_model
    from .experiments.runner import run_experiment
    from .experiments.store import read_results
    from .metrics import CostResult, measure_latency, model_cost
    from .models import ModelMeta, create_model, extract_layers, list_models, register_model
    from .pruning.iterative import IterativeResult, prune_units_iteratively
    from .pruning import (
        Allocation,
        IMPResult,
        LayerStructured,
        LayerUnstructured,
        StructuredMethod,
        StructuredResult,
        UnstructuredMethod,
        UnstructuredResult,
        imp,
        list_allocations,
        list_methods,
        prune_filters,
        prune_units,
        prune_unstructured,
        prune_weights,
        register_allocation,
        register_method,
    )
    from .topology import (
        ConvToeplitzGraph,
        CriticalResult,
        LayerCritical,
        LayerPersistence,
        OverlapResult,
        PersistenceResult,
        maximum_spanning_tree,
        mst_overlap,
        persistence_diagram,
    )
    from .train import (
        NeuralPersistenceTracker,
        RecalibrationResult,
        RecoveryResult,
        TrainConfig,
        TrainResult,
        evaluate,
        recalibrate_bn,
        recover,
    )


def _load(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    raise AttributeError(f"module 'topoprune' has no attribute {name!r}")


def _loader(new: str, where: str):
    return lambda: getattr(importlib.import_module(where), new)


__getattr__ = deprecated_module_names(
    __name__, {old: (f"topoprune.{new}", _loader(new, where)) for old, (new, where) in _DEPRECATED.items()},
    fallback=_load)


def __dir__() -> list[str]:
    return sorted(__all__)
