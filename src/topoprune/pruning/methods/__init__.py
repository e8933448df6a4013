"""Every pruning method as a typed, registered class (``@register_method``).

Structured (physical removal of filters/neurons): :class:`L1`, :class:`L2`, :class:`FPGM`,
:class:`RandomFilters` (``"random"``), :class:`Topological`, :class:`TopologicalV2`
(``"topological-v2"``, with ``target=``), :class:`TorchPruningGlobal` (``"tp-global"``, the peer,
with ``target=``), :class:`Betti`, :class:`Taylor`, :class:`GroupNorm` (``"group-norm"``). Unstructured (masks):
:class:`Magnitude`, :class:`RandomWeights` (``"random-weights"``), :class:`IMP`, :class:`TIMP`,
:class:`SynFlow`, :class:`LAMP`, :class:`SNIP`, :class:`PHEW`.
"""

from .base import (
    METHODS,
    ApplyRequest,
    LayerRequest,
    Method,
    Needs,
    PruneContext,
    PruneOutcome,
    StructuredMethod,
    UnstructuredMethod,
    format_validation_error,
    list_methods,
    method_class,
    register_method,
    resolve_method,
)
# registration order is listing order: the baselines first
from .scores import FPGM, L1, L2, RandomFilters, ScoreMethod  # isort: skip
from .topological import Topological  # isort: skip
from .betti import Betti  # isort: skip
from .topological_v2 import TopologicalV2  # isort: skip  (these two need target=)
from .torch_pruning_global import TorchPruningGlobal  # isort: skip
from .torch_pruning_importance import GroupNorm, Taylor  # isort: skip
from .unstructured import IMP, TIMP, Magnitude, RandomWeights, SynFlow  # isort: skip
from .global_unstructured import LAMP, PHEW, SNIP  # isort: skip

__all__ = [
    "METHODS",
    "ApplyRequest",
    "Betti",
    "FPGM",
    "GroupNorm",
    "IMP",
    "L1",
    "LAMP",
    "L2",
    "LayerRequest",
    "Magnitude",
    "Method",
    "Needs",
    "PHEW",
    "PruneContext",
    "PruneOutcome",
    "RandomFilters",
    "RandomWeights",
    "SNIP",
    "ScoreMethod",
    "StructuredMethod",
    "SynFlow",
    "TIMP",
    "Taylor",
    "Topological",
    "TopologicalV2",
    "TorchPruningGlobal",
    "UnstructuredMethod",
    "format_validation_error",
    "list_methods",
    "method_class",
    "register_method",
    "resolve_method",
]
