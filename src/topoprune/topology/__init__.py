"""The topology core: spanning forests, persistence, neural persistence and critical compression.

Pure numpy / scipy / numba; this package never imports torch, so it can be used (and tested) on
plain arrays.

Naming: functions on one layer end in ``_of_layer``, on a list of layers in ``_of_network``. The
model-level functions (a ``torch.nn.Module`` in) are :func:`topoprune.neural_persistence` and
:func:`topoprune.critical_compression`.
"""

from .._deprecation import deprecated_module_names

from .connectivity import Connectivity, against_critical, channel_mask, connectivity, tree_kept
from .critical import (
    CONVENTIONS,
    CriticalResult,
    LayerCritical,
    OverlapResult,
    critical_compression_of_layer,
    mst_overlap,
    critical_compression_of_network,
    overlap_bound,
)
from .dgp import DGPResult, deep_graph_persistence_of_network, maxmin_product
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
    PersistenceResult,
    neural_persistence_of_layer,
    neural_persistence_of_network,
    persistence_norm,
)
from .null import NullResult, neural_persistence_null_of_layer, neural_persistence_null_of_network
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
    "CriticalResult",
    "DGPResult",
    "DenseLayer",
    "Layer",
    "LayerCritical",
    "LayerPersistence",
    "OverlapResult",
    "PersistenceResult",
    "against_critical",
    "channel_mask",
    "channel_matrix",
    "connectivity",
    "conv_output_size",
    "betti_from_distances",
    "betti_numbers",
    "deep_graph_persistence_of_network",
    "dense_matrix",
    "diagram_from_deaths",
    "knn_geodesic",
    "critical_compression_of_layer",
    "neural_persistence_of_layer",
    "maximum_spanning_tree",
    "maxmin_product",
    "SortedEdges",
    "mst_overlap",
    "critical_compression_of_network",
    "neural_persistence_of_network",
    "neural_persistence_null_of_layer",
    "neural_persistence_null_of_network",
    "NullResult",
    "overlap_bound",
    "persistence_diagram",
    "persistence_norm",
    "tree_kept",
    "wasserstein_same_birth",
]

# Old names, kept working for one minor release (see CHANGELOG.md).
__getattr__ = deprecated_module_names(__name__, {
    "neural_persistence": ("topoprune.topology.neural_persistence_of_layer (one weight matrix) or "
                           "topoprune.neural_persistence (a model)", lambda: neural_persistence_of_layer),
    "layer_neural_persistence": ("topoprune.topology.neural_persistence_of_layer",
                                 lambda: neural_persistence_of_layer),
    "network_persistence": ("topoprune.topology.neural_persistence_of_network",
                            lambda: neural_persistence_of_network),
    "layer_critical": ("topoprune.topology.critical_compression_of_layer",
                       lambda: critical_compression_of_layer),
    "network_critical": ("topoprune.topology.critical_compression_of_network",
                         lambda: critical_compression_of_network),
    "PersistenceReport": ("topoprune.PersistenceResult", lambda: PersistenceResult),
    "CriticalReport": ("topoprune.CriticalResult", lambda: CriticalResult),
    "OverlapReport": ("topoprune.OverlapResult", lambda: OverlapResult),
})
