"""Zero-dimensional persistence diagrams of layer graphs (METHODS.md section 1).

Diagrams are ``(k, 2)`` float arrays of ``(birth, death)``, as ripser and gudhi return them.
Under the superlevel filtration of normalized weights every vertex is born at 1 and each edge of
the maximum spanning forest kills one class at its value, so a layer's diagram is
``{(1, w'_e) : e in tree}``.
"""

from __future__ import annotations

import numpy as np

from .spanning import _as_matrix, maximum_spanning_tree

__all__ = ["persistence_diagram", "diagram_from_deaths"]


def diagram_from_deaths(deaths: np.ndarray, essential: bool = False) -> np.ndarray:
    """Build the diagram ``[(1, d) for d in deaths]``; ``essential`` appends the class that never
    dies as ``(1, 0)``, as the reference code of Rieck et al. does."""
    deaths = np.asarray(deaths, dtype=np.float64).reshape(-1)
    if essential:
        deaths = np.append(deaths, 0.0)
    return np.column_stack([np.ones_like(deaths), deaths])


def persistence_diagram(
    weights: np.ndarray, scale: float | None = None, essential: bool = False
) -> np.ndarray:
    """0-dimensional persistence diagram of the bipartite graph of a weight matrix.

    Args:
        weights: 2-D array ``(n_out, n_in)``.
        scale: the ``W_max`` weights are divided by. ``None`` (the default) is the layer's own
            largest ``|w|`` (``normalization="layer"``); pass the network's largest for
            ``"global"``.
        essential: also record the class that never dies as ``(1, 0)``.

    Returns:
        ``(k, 2)`` array of ``(birth, death)`` with births 1 and deaths in ``[0, 1]``, most
        persistent last; ``k = n_out + n_in - 1`` for a connected graph.
    """
    a = _as_matrix(weights)
    _, _, values = maximum_spanning_tree(a)
    if scale is None:
        scale = float(values[0]) if values.size else 0.0
    elif not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    deaths = values / scale if scale > 0 else values.astype(np.float64)
    return diagram_from_deaths(deaths, essential)
