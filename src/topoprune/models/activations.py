"""The activation registry: ``list_activations()``, ``make_activation(name)``,
``register_activation``.

The standard five (relu, leaky_relu, tanh, sigmoid, gelu) and two candidates of ours for the
Kochar et al. claim that an activation which collapses the data's topology faster makes a
network converge in fewer epochs. The paper's formula is not known to us;
the candidates follow Naitzat et al. (2020), who found that ReLU networks lower Betti numbers
faster than tanh networks because ReLU is *not* a homeomorphism: it glues a whole half-space of
each unit's input to one point, and gluing is what kills components and holes. Each candidate
glues more than ReLU does, in a different way:

``shrink``
    Soft shrinkage, ``sign(x) * max(|x| - 0.5, 0)``. It glues the slab ``|x| <= 0.5`` of every
    unit to 0, so small-scale structure (a small hole, a thin gap between nearby pieces) is
    crushed in one layer, while outside the slab it is injective on both sides and keeps the
    sign (ReLU throws the negative side away). The threshold 0.5 is half the unit scale that
    the default initialisation gives pre-activations; it was set before any run, not tuned.
``fold``
    The absolute value, ``|x|``. It folds every unit's input in two: a point and its mirror
    image meet, so two pieces on opposite sides of the fold, or the two halves of a loop
    through it, become one. A fold is the cheapest map that is 2-to-1 everywhere, the most
    gluing a continuous, piecewise-linear activation can do per unit.

Both are parameter-free, so the comparison with ReLU adds no capacity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..registry import Registry

__all__ = ["Fold", "activation_info", "list_activations", "make_activation", "register_activation",
           "CANDIDATES"]


class Fold(nn.Module):
    """``|x|``: the fold activation (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.abs()


@dataclass(frozen=True)
class _Activation:
    factory: Callable[[], nn.Module]
    description: str
    candidate: bool


ACTIVATIONS: Registry[_Activation] = Registry("activation")


def register_activation(name: str, factory: Callable[[], nn.Module], description: str,
                        candidate: bool = False) -> None:
    """Register ``factory() -> nn.Module``; ``candidate`` marks a topological candidate."""
    ACTIVATIONS.register(name, _Activation(factory, description, candidate))


def list_activations() -> list[str]:
    """Names of the registered activations, in registration order (standard ones first)."""
    return ACTIVATIONS.names()


def activation_info(name: str) -> str:
    """One line on what the activation is."""
    return ACTIVATIONS.get(name).description


def make_activation(name: str) -> nn.Module:
    """A fresh module for a registered activation."""
    return ACTIVATIONS.get(name).factory()


register_activation("relu", nn.ReLU, "max(x, 0)")
register_activation("leaky_relu", lambda: nn.LeakyReLU(0.01), "max(x, 0.01 x)")
register_activation("tanh", nn.Tanh, "tanh(x): a homeomorphism onto (-1, 1)")
register_activation("sigmoid", nn.Sigmoid, "1 / (1 + exp(-x)): a homeomorphism onto (0, 1)")
register_activation("gelu", nn.GELU, "x * Phi(x) (Hendrycks & Gimpel 2016)")
register_activation("shrink", lambda: nn.Softshrink(0.5),
                    "candidate: sign(x) max(|x| - 0.5, 0), glues the slab |x| <= 0.5 to 0",
                    candidate=True)
register_activation("fold", Fold, "candidate: |x|, folds each unit's input in two", candidate=True)

CANDIDATES = tuple(ACTIVATIONS.names(lambda a: a.candidate))
