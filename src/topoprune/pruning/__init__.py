"""Pruning: typed methods in one registry, importances, selections (MST-preserving included) and
their application, as masks (unstructured) or physical removal (structured).

Names are loaded on first use (PEP 562), so listing the methods and their settings (the CLI's
options, a config's validation) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .._deprecation import deprecated_module_names

# public name -> module that defines it
_EXPORTS = {
    "IMPORTANCES": "importance", "fpgm_scores": "importance", "l1_scores": "importance",
    "l2_scores": "importance", "random_scores": "importance",
    "SCOPES": "masks", "UnstructuredResult": "masks", "LayerUnstructured": "masks", "prunable_layers": "masks",
    "prune_weights": "masks", "prune_unstructured": "masks", "synflow_scores": "synflow",
    "StructuredResult": "filters", "LayerStructured": "filters", "apply_steps": "filters",
    "default_targets": "filters", "prune_units": "filters", "prune_filters": "filters",
    "GAConfig": "ga_config", "LayerSearch": "genetic",
    "IMPResult": "schedules", "imp": "schedules", "parse_rewind": "schedules",
    "Method": "methods", "StructuredMethod": "methods", "UnstructuredMethod": "methods",
    "list_methods": "methods", "register_method": "methods", "resolve_method": "methods",
    "apply_method": "apply",
    "Allocation": "allocation", "list_allocations": "allocation", "register_allocation": "allocation",
}

# Old names, kept working for one minor release (see CHANGELOG.md).
_DEPRECATED = {
    "FilterPruneInfo": ("StructuredResult", "filters"), "LayerPruneInfo": ("LayerStructured", "filters"),
    "UnstructuredRecord": ("UnstructuredResult", "masks"), "LayerRecord": ("LayerUnstructured", "masks"),
}

__all__ = ["methods", *_EXPORTS]

if TYPE_CHECKING:
    from . import methods
    from .apply import apply_method
    from .allocation import Allocation, list_allocations, register_allocation
    from .filters import LayerStructured, StructuredResult, apply_steps, default_targets, prune_filters, prune_units
    from .ga_config import GAConfig
    from .genetic import LayerSearch
    from .importance import IMPORTANCES, fpgm_scores, l1_scores, l2_scores, random_scores
    from .masks import SCOPES, LayerUnstructured, UnstructuredResult, prunable_layers, prune_unstructured, prune_weights
    from .methods import Method, StructuredMethod, UnstructuredMethod, list_methods, register_method, resolve_method
    from .schedules import IMPResult, imp, parse_rewind
    from .synflow import synflow_scores


def _load(name: str) -> Any:
    if name == "methods":
        return importlib.import_module(f"{__name__}.methods")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def _loader(new: str, where: str):
    return lambda: getattr(importlib.import_module(f"{__name__}.{where}"), new)


__getattr__ = deprecated_module_names(
    __name__, {old: (f"topoprune.{new}", _loader(new, where)) for old, (new, where) in _DEPRECATED.items()},
    fallback=_load)


def __dir__() -> list[str]:
    return sorted(__all__)
