"""Filter/neuron importances: a weight tensor in, one score per output unit out (lower = pruned
first). Each follows NNI's one-shot definition.

Unit ``j`` of a conv weight ``(C_out, C_in/g, k, k)`` is the filter ``W[j]``; of a linear weight
``(n_out, n_in)`` it is the row ``W[j]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..registry import Registry

__all__ = ["l1_scores", "l2_scores", "fpgm_scores", "random_scores", "IMPORTANCES", "get_importance"]


def _rows(weight: torch.Tensor) -> torch.Tensor:
    return weight.detach().reshape(weight.shape[0], -1).double()


def l1_scores(weight: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """L1 filter pruning (Li et al., ICLR 2017): ``s_j = sum |W[j]|``."""
    return _rows(weight).abs().sum(1)


def l2_scores(weight: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """L2 filter pruning (NNI's L2FilterPruner): ``s_j = sqrt(sum W[j]^2)``."""
    return _rows(weight).norm(dim=1)


def fpgm_scores(weight: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """FPGM (He et al., CVPR 2019): ``s_j = sum_i ||W[j] - W[i]||_2``; the filters nearest the
    geometric median score lowest and go first."""
    rows = _rows(weight)
    return torch.cdist(rows, rows).sum(1)


def random_scores(weight: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Uniform random scores, seeded: the baseline any method must beat."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(weight.shape[0], generator=g, dtype=torch.float64)


Importance = Callable[..., torch.Tensor]

IMPORTANCES: Registry[Importance] = Registry("importance")
IMPORTANCES.register("l1", l1_scores)
IMPORTANCES.register("l2", l2_scores)
IMPORTANCES.register("fpgm", fpgm_scores)
IMPORTANCES.register("random", random_scores)


def get_importance(name: str) -> Importance:
    """The importance registered as ``name`` (``weight, seed -> one score per unit``)."""
    return IMPORTANCES.get(name)
