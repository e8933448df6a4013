"""Pruning: importances, selections (MST-preserving included) and their application."""

from .masks import METHODS, SCOPES, UnstructuredRecord, prunable_layers, prune_unstructured

__all__ = ["METHODS", "SCOPES", "UnstructuredRecord", "prunable_layers", "prune_unstructured"]
