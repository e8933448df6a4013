"""Pruning: importances, selections (MST-preserving included) and their application, as masks
(unstructured) or physical removal (structured)."""

from .filters import (
    FilterPruneInfo,
    LayerPruneInfo,
    apply_steps,
    default_targets,
    filter_methods,
    prune_filters,
    register_filter_method,
)
from . import betti, genetic  # noqa: F401  (register methods 'betti' and 'topological')
from .genetic import GAConfig, LayerSearch
from .importance import IMPORTANCES, fpgm_scores, l1_scores, l2_scores, random_scores
from .masks import METHODS, SCOPES, UnstructuredRecord, prunable_layers, prune_unstructured
from .schedules import IMPResult, imp, parse_rewind

__all__ = [
    "IMPORTANCES",
    "METHODS",
    "SCOPES",
    "FilterPruneInfo",
    "GAConfig",
    "LayerSearch",
    "IMPResult",
    "LayerPruneInfo",
    "UnstructuredRecord",
    "apply_steps",
    "default_targets",
    "filter_methods",
    "fpgm_scores",
    "imp",
    "l1_scores",
    "l2_scores",
    "parse_rewind",
    "prunable_layers",
    "prune_filters",
    "prune_unstructured",
    "random_scores",
    "register_filter_method",
]
