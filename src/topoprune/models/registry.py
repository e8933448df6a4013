"""The model registry: ``@register_model``, ``list_models()``, ``create_model()``.

Every model carries a :class:`ModelMeta` as ``model.meta``: the input shape it was built for and
the names of its first layer and classifier, so pruners leave the stem and head alone by default
without a hand-written list (the timm habit).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from torch import nn

from ..errors import TopopruneError
from ..registry import Registry

__all__ = ["ModelMeta", "MODELS", "register_model", "list_models", "create_model", "model_defaults"]


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

    def to_dict(self) -> dict:
        """Plain JSON-ready data: every field, shapes as lists."""
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in fields(self) for v in [getattr(self, f.name)]}

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


MODELS: Registry[_Entry] = Registry("model")


def register_model(
    name: str, *, in_channels: int, input_size: tuple[int, int], description: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder(num_classes, in_channels, input_size, width, **kw) -> nn.Module``.

    The builder must set ``model.meta`` (a :class:`ModelMeta`)."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.register(name, _Entry(builder, in_channels, input_size, description))
        return builder

    return wrap


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(MODELS)


def model_defaults(name: str) -> tuple[int, tuple[int, int], str]:
    """``(in_channels, input_size, description)`` a model is built with by default."""
    e = MODELS.get(name)
    return e.in_channels, e.input_size, e.description


# Bounds that keep a typo (``--width 1e9``, ``--num-classes 1e10``) from asking for all memory.
MAX_WIDTH = 16.0
MAX_CLASSES = 100_000
MAX_SIDE = 4096  # input channels, height and width each
MAX_PARAMS = 2**28  # 1 GiB of float32 weights


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive_int(what: str, value: object, upper: int) -> int:
    if not _is_int(value) or not 1 <= value <= upper:
        raise TopopruneError(f"{what} must be an integer in [1, {upper:,}], got {value!r}")
    return int(value)


def _as_size(input_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if _is_int(input_size):
        input_size = (input_size, input_size)
    items = list(input_size) if isinstance(input_size, (tuple, list)) or hasattr(input_size, "shape") else None
    if items is None or len(items) != 2 or not all(_is_int(x) and 1 <= x <= MAX_SIDE for x in items):
        raise TopopruneError(f"input_size must be an int or an (H, W) pair of ints in [1, {MAX_SIDE}], "
                             f"got {input_size!r}")
    return int(items[0]), int(items[1])


def _options(name: str, builder: Callable[..., nn.Module], kwargs: dict) -> None:
    """Refuse keyword options the builder does not take, naming the ones it does."""
    import inspect

    params = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [n for n in params if n not in ("num_classes", "in_channels", "input_size", "width")]
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise TopopruneError(f"model {name!r} has no option {', '.join(map(repr, unknown))}; "
                             f"its options: {', '.join(known) or 'none'}")


def _check_size(name: str, entry: _Entry, args: dict) -> None:
    """Refuse a model too large to hold in memory, before allocating it. Only requests larger
    than the registry default (wider, bigger inputs, many classes) are measured: the model is
    built on torch's ``meta`` device, which allocates nothing."""
    c, (h, w) = entry.in_channels, entry.input_size
    size = args["in_channels"] * args["input_size"][0] * args["input_size"][1]
    if args["width"] <= 1 and size <= c * h * w and args["num_classes"] <= 1000:
        return
    import torch

    try:
        with torch.device("meta"):
            probe = entry.builder(**args)
        count = sum(p.numel() for p in probe.parameters())
    except TopopruneError:
        raise
    except Exception:  # noqa: BLE001 - a builder that cannot run on meta: build for real
        return
    if count > MAX_PARAMS:
        raise TopopruneError(
            f"model {name!r} with width {args['width']:g}, input {args['in_channels']}x"
            f"{args['input_size'][0]}x{args['input_size'][1]} and {args['num_classes']} classes "
            f"would have {count:,} parameters ({count * 4 / 2**30:.1f} GiB); allowed: at most "
            f"{MAX_PARAMS:,}: lower the width, the input size or num_classes")


def create_model(
    name: str,
    *,
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
    entry = MODELS.get(name)
    _positive_int("num_classes", num_classes, MAX_CLASSES)
    if (isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= MAX_WIDTH):
        raise TopopruneError(f"width must be a number in (0, {MAX_WIDTH:g}], got {width!r}")
    c = _positive_int("in_channels", entry.in_channels if in_channels is None else in_channels, MAX_SIDE)
    size = entry.input_size if input_size is None else _as_size(input_size)
    _options(name, entry.builder, kwargs)
    args = dict(num_classes=num_classes, in_channels=c, input_size=size, width=float(width), **kwargs)
    _check_size(name, entry, args)
    model = entry.builder(**args)
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
