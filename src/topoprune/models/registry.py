"""The model registry: ``@register_model``, ``list_models()``, ``create_model()``.

Every model carries a :class:`ModelMeta` as ``model.meta``: the input shape it was built for and
the names of its first layer and classifier, so pruners leave the stem and head alone by default
without a hand-written list (the timm habit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from ..errors import TopopruneError, unknown_name

__all__ = ["ModelMeta", "register_model", "list_models", "create_model", "model_defaults"]


@dataclass(frozen=True)
class ModelMeta:
    """What a pruner and an analysis need to know about a registry model."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    width: float
    first_layer: str
    classifier: str
    options: dict = field(default_factory=dict)  # model-specific keyword arguments, e.g. shortcut

    def spec(self) -> dict:
        """The arguments that rebuild this architecture with :func:`create_model`."""
        return {"name": self.name, "num_classes": self.num_classes,
                "in_channels": self.input_shape[0], "input_size": list(self.input_shape[1:]),
                "width": self.width, **self.options}


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    in_channels: int
    input_size: tuple[int, int]
    description: str


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str, *, in_channels: int, input_size: tuple[int, int], description: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder(num_classes, in_channels, input_size, width, **kw) -> nn.Module``.

    The builder must set ``model.meta`` (a :class:`ModelMeta`)."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} is registered twice")
        _REGISTRY[name] = _Entry(builder, in_channels, input_size, description)
        return builder

    return wrap


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(_REGISTRY)


def model_defaults(name: str) -> tuple[int, tuple[int, int], str]:
    """``(in_channels, input_size, description)`` a model is built with by default."""
    if name not in _REGISTRY:
        raise unknown_name("model", name, _REGISTRY)
    e = _REGISTRY[name]
    return e.in_channels, e.input_size, e.description


def _as_size(input_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(input_size, int):
        size = (input_size, input_size)
    else:
        size = tuple(int(x) for x in input_size)
    if len(size) != 2 or min(size) < 1:
        raise TopopruneError(
            f"input_size must be a positive int or (H, W) pair, got {input_size!r}"
        )
    return size  # type: ignore[return-value]


def create_model(
    name: str,
    num_classes: int = 10,
    in_channels: int | None = None,
    input_size: int | tuple[int, int] | None = None,
    width: float = 1.0,
    **kwargs: object,
) -> nn.Module:
    """Build a registry model.

    Args:
        name: one of :func:`list_models`.
        num_classes: outputs of the classifier.
        in_channels: input channels (default: the model's usual, e.g. 1 for MNIST nets, 3 for
            CIFAR nets).
        input_size: spatial input size ``H`` or ``(H, W)`` (default: the model's usual).
        width: channel/neuron multiplier; every hidden width is ``max(1, round(c * width))``.
        **kwargs: model-specific options, e.g. ``shortcut="B"`` for the ResNets.
    """
    if name not in _REGISTRY:
        raise unknown_name("model", name, _REGISTRY)
    entry = _REGISTRY[name]
    if not isinstance(num_classes, int) or num_classes < 1:
        raise TopopruneError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if not isinstance(width, (int, float)) or not width > 0:
        raise TopopruneError(f"width must be a number > 0, got {width!r}")
    c = entry.in_channels if in_channels is None else in_channels
    if not isinstance(c, int) or c < 1:
        raise TopopruneError(f"in_channels must be an integer >= 1, got {c!r}")
    size = entry.input_size if input_size is None else _as_size(input_size)
    model = entry.builder(
        num_classes=num_classes, in_channels=c, input_size=size, width=float(width), **kwargs
    )
    if not isinstance(getattr(model, "meta", None), ModelMeta):
        raise RuntimeError(f"model builder {name!r} did not set model.meta")
    return model


def attach_meta(model: nn.Module, name: str, in_channels: int, input_size: tuple[int, int],
                num_classes: int, width: float, first_layer: str, classifier: str,
                **options: object) -> nn.Module:
    """Set ``model.meta`` for a registry builder and return the model."""
    model.meta = ModelMeta(name, (in_channels, *input_size), num_classes, width, first_layer,
                           classifier, dict(options))
    return model


def scaled(channels: int, width: float) -> int:
    """A hidden width under the multiplier: ``max(1, round(channels * width))``."""
    return max(1, int(round(channels * width)))
