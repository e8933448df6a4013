"""The topology core: spanning forests, persistence, neural persistence and critical compression.

Pure numpy / scipy / numba; this package never imports torch, so it can be used (and tested) on
plain arrays.
"""

from .connectivity import Connectivity, against_critical, channel_mask, connectivity, tree_kept
from .critical import (
    CONVENTIONS,
    CriticalReport,
    LayerCritical,
    OverlapReport,
    layer_critical,
    mst_overlap,
    network_critical,
    overlap_bound,
)
from .dgp import DGPResult, deep_graph_persistence, maxmin_product
from .graphs import (
    ConvLayer,
    ConvToeplitzGraph,
    DenseLayer,
    Layer,
    channel_matrix,
    conv_output_size,
    dense_matrix,
)
from .neural import (
    CONV_GRAPHS,
    NORMALIZATIONS,
    LayerPersistence,
    PersistenceReport,
    layer_neural_persistence,
    network_persistence,
    persistence_norm,
)
from .null import NullResult, network_persistence_null, permutation_null
from .persistence import (
    BETTI_METHODS,
    betti_from_distances,
    betti_numbers,
    diagram_from_deaths,
    knn_geodesic,
    persistence_diagram,
    wasserstein_same_birth,
)
from .spanning import SortedEdges, maximum_spanning_tree

__all__ = [
    "BETTI_METHODS",
    "CONVENTIONS",
    "CONV_GRAPHS",
    "NORMALIZATIONS",
    "Connectivity",
    "ConvLayer",
    "ConvToeplitzGraph",
    "CriticalReport",
    "DGPResult",
    "DenseLayer",
    "Layer",
    "LayerCritical",
    "LayerPersistence",
    "OverlapReport",
    "PersistenceReport",
    "against_critical",
    "channel_mask",
    "channel_matrix",
    "connectivity",
    "conv_output_size",
    "betti_from_distances",
    "betti_numbers",
    "deep_graph_persistence",
    "dense_matrix",
    "diagram_from_deaths",
    "knn_geodesic",
    "layer_critical",
    "layer_neural_persistence",
    "maximum_spanning_tree",
    "maxmin_product",
    "SortedEdges",
    "mst_overlap",
    "network_critical",
    "network_persistence",
    "network_persistence_null",
    "NullResult",
    "permutation_null",
    "overlap_bound",
    "persistence_diagram",
    "persistence_norm",
    "tree_kept",
    "wasserstein_same_birth",
]
