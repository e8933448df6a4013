"""Pruning: typed methods in one registry, importances, selections (MST-preserving included) and
their application, as masks (unstructured) or physical removal (structured)."""

from . import methods
from .filters import FilterPruneInfo, LayerPruneInfo, apply_steps, default_targets, prune_filters
from .genetic import GAConfig, LayerSearch
from .importance import IMPORTANCES, fpgm_scores, l1_scores, l2_scores, random_scores
from .masks import METHODS as UNSTRUCTURED_SELECTIONS
from .masks import SCOPES, UnstructuredRecord, prunable_layers, prune_unstructured
from .methods import Method, StructuredMethod, UnstructuredMethod, list_methods, register_method, resolve_method
from .schedules import IMPResult, imp, parse_rewind

__all__ = [
    "IMPORTANCES",
    "SCOPES",
    "UNSTRUCTURED_SELECTIONS",
    "FilterPruneInfo",
    "GAConfig",
    "LayerSearch",
    "IMPResult",
    "LayerPruneInfo",
    "Method",
    "StructuredMethod",
    "UnstructuredMethod",
    "UnstructuredRecord",
    "apply_steps",
    "default_targets",
    "fpgm_scores",
    "imp",
    "l1_scores",
    "l2_scores",
    "list_methods",
    "methods",
    "parse_rewind",
    "prunable_layers",
    "prune_filters",
    "prune_unstructured",
    "random_scores",
    "register_method",
    "resolve_method",
]
