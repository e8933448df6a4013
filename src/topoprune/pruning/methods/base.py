"""Pruning methods as typed objects in one registry.

A method is a pydantic model: its fields are its validated settings (unknown or wrongly typed
settings are refused with the field's name), and its class declares what it needs. Two kinds:

- :class:`StructuredMethod` chooses which output units (filters, neurons) of each targeted layer
  go; :func:`~topoprune.pruning.prune_units` removes them physically. A subclass implements
  :meth:`StructuredMethod.choose` (one layer) and, for model-wide work done once per call (the
  GA, Betti tables), :meth:`StructuredMethod.prepare`.
- :class:`UnstructuredMethod` masks single weights through ``torch.nn.utils.prune``; a subclass
  implements :meth:`UnstructuredMethod.apply`.

Register a class with ``@register_method("name")``; then ``method="name"``, ``method=Cls()``,
and ``{name: name, setting: value}`` in a ``topoprune compare`` config all reach it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ...errors import TopopruneError
from ...registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ...data import DataSplits
    from ...train import TrainConfig
    from ..surgery import Surgeon
    from ..units import UnitLayout

__all__ = [
    "Method",
    "StructuredMethod",
    "UnstructuredMethod",
    "Needs",
    "PruneContext",
    "LayerRequest",
    "ApplyRequest",
    "PruneOutcome",
    "METHODS",
    "register_method",
    "list_methods",
    "method_class",
    "resolve_method",
    "format_validation_error",
]


@dataclass(frozen=True)
class Needs:
    """What a method needs from its caller (the runner reads this, never the method's name)."""

    sample: int = 0  # size of the fixed sample of training inputs it looks at (0: none)
    training: bool = False  # it trains inside pruning (data and a training recipe)
    trajectory: bool = False  # one run per (model, method, seed) serves every sparsity
    initialisation: bool = False  # the dense model's saved initialisation (to rewind to)
    labelled: int = 0  # size of a seeded sample of labelled training data (inputs, labels) it scores with


class Method(BaseModel):
    """Base of every pruning method. Subclasses add their settings as fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    name: ClassVar[str] = ""  # set by @register_method
    structured: ClassVar[bool]
    summary: ClassVar[str] = ""  # one line: what it does and whose method it is

    def needs(self) -> Needs:
        """What this method, with these settings, needs."""
        return Needs()

    def check_sparsities(self, sparsities: Sequence[float]) -> str | None:
        """Whether these settings can reach every sparsity of a comparison: ``None``, or
        ``"field: why"`` naming the setting to change."""
        return None

    def sets_own_counts(self) -> bool:
        """Whether this structured method decides how many units a layer loses itself (a
        threshold), instead of removing exactly ``int(units * sparsity)`` as asked."""
        return False

    def settings(self) -> dict[str, Any]:
        """The settings given explicitly (what a config holds)."""
        return self.model_dump(exclude_unset=True, mode="json")

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{self.name}({args})"


@dataclass
class PruneContext:
    """One :func:`~topoprune.pruning.prune_units` call, as structured methods see it.

    ``model``/``modules`` are the working copy *before any removal* (choices are judged on the
    original network); ``state`` is the method's scratch space for this call; what a method puts
    in ``extra`` is returned as ``info.extra``.
    """

    model: nn.Module
    modules: dict[str, nn.Module]
    targets: dict[str, float]
    example_inputs: Any  # a tensor, a tuple of tensors or a dict of keyword inputs
    inputs: Any  # the data sample (same structures), or None
    seed: int
    surgeon: Surgeon
    layouts: dict[str, UnitLayout] = field(default_factory=dict)  # every weighted layer's units
    labelled: tuple | None = None  # (inputs, labels) training data, for methods whose Needs ask for it
    state: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def layout(self, name: str) -> UnitLayout:
        """The unit layout of layer ``name`` (filters, neurons or attention heads)."""
        from ..units import layout_of  # torch: imported when pruning, not when listing methods

        return self.layouts.get(name) or layout_of(self.modules[name])


@dataclass(frozen=True)
class LayerRequest:
    """One layer to choose units for: ``coupled`` layers lose the same units (residual adds,
    q/k/v of one attention block). ``layout`` says what a unit is; a method returns unit indices
    in ``range(layout.count)``, scoring ``layout.weight(module)`` (one row per unit)."""

    name: str
    module: nn.Module
    sparsity: float
    coupled: tuple[str, ...] = ()
    layout: UnitLayout | None = None

    def units(self) -> UnitLayout:
        """The layout, defaulting to plain filters/neurons of ``module``."""
        from ..units import layout_of

        return self.layout or layout_of(self.module)


class StructuredMethod(Method):
    """Chooses output units per layer; applied by physical removal."""

    structured: ClassVar[bool] = True

    def prepare(self, ctx: PruneContext) -> None:
        """Model-wide work done once per call, before any layer is chosen (default: none)."""

    def choose(self, ctx: PruneContext, layer: LayerRequest) -> Sequence[int]:
        """The output-unit indices of ``layer`` to remove."""
        raise NotImplementedError(f"{type(self).__name__} must implement choose()")



class UnstructuredMethod(Method):
    """Masks single weights (``torch.nn.utils.prune``); the model keeps its shape."""

    structured: ClassVar[bool] = False

    def apply(self, model: nn.Module, request: ApplyRequest) -> PruneOutcome:
        """Mask ``model`` (in place) to the request's sparsity."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply()")


@dataclass(frozen=True, kw_only=True)
class ApplyRequest:
    """What the runner hands a method for one cell.

    ``workdir`` is the cell's own folder for resumable state; ``shared_dir`` a folder shared by
    the cells of one (model, method, seed), for methods whose :class:`Needs` say ``trajectory``;
    ``init_state`` is the dense model's initialisation (for rewinding); ``train_config`` the dense
    model's training recipe and ``recovery_config`` the fine-tuning recipe, both with the cell's
    seed, for methods that train.
    """

    sparsity: float
    seed: int
    sample: torch.Tensor | None = None
    example_inputs: Any = None  # to trace a model without .meta (tensor, tuple or dict); None: meta's shape
    data: DataSplits | None = None
    train_config: TrainConfig | None = None
    recovery_config: TrainConfig | None = None
    device: str | None = None
    workdir: Path | None = None
    shared_dir: Path | None = None
    init_state: Mapping[str, Any] | None = None
    progress: bool = False
    target: Mapping[str, Any] | None = None  # structured: prune to this count ({"flops_kept": 0.5}), not sparsity
    allocation: Any = None  # with target: the allocation (name, mapping or object); None: uniform
    labelled: tuple | None = None  # (inputs, labels) training data: for allocations that evaluate, and
    # for methods whose Needs ask for it (``labelled``)


@dataclass
class PruneOutcome:
    """The pruned (structured: smaller; unstructured: masked) model and a JSON-able record.

    Record keys the runner reads when present: ``seconds`` (pruning time, else measured around
    the call), ``warnings``, ``info`` (a structured record), ``rounds`` and ``trajectory``.
    """

    model: nn.Module
    record: dict
    steps: list[dict] | None = None  # structured: the replayable removals


METHODS: Registry[type[Method]] = Registry("pruning method")


def register_method(name: str):
    """Class decorator: register a :class:`Method` subclass under ``name``."""

    def add(cls: type[Method]) -> type[Method]:
        if not (isinstance(cls, type) and issubclass(cls, (StructuredMethod, UnstructuredMethod))):
            raise TopopruneError(f"@register_method({name!r}) needs a StructuredMethod or "
                                 f"UnstructuredMethod subclass, got {cls!r}")
        cls.name = name
        METHODS.register(name, cls)
        return cls

    return add


def list_methods(kind: str | None = None) -> list[str]:
    """Registered method names; ``kind`` ``"structured"`` or ``"unstructured"`` filters."""
    if kind not in (None, "structured", "unstructured"):
        raise TopopruneError(f"kind must be 'structured', 'unstructured' or None, got {kind!r}")
    return METHODS.names(None if kind is None else lambda c: c.structured == (kind == "structured"))


def method_class(name: str) -> type[Method]:
    return METHODS.get(name)


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """The first error of a pydantic validation as one line: dotted field, value, what is allowed."""
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in first["loc"]).replace(".[", "[")
    where = ".".join(p for p in (prefix, loc) if p).replace(".[", "[") or "(top level)"
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown setting{more}"
    if first["type"] == "missing":
        return f"{where}: missing; it is required{more}"
    msg = first["msg"]
    for lead in ("Value error, ", "Input should be "):
        msg = msg[len(lead):] if msg.startswith(lead) else msg
    value = first.get("input")
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return f"{where}: bad value {shown}; allowed: {msg}{more}"


def _abstract(cls: type) -> bool:
    """A base class that says what a method must do without doing it (``Method``,
    ``StructuredMethod``, ``UnstructuredMethod`` and the shared bases of the built-in methods):
    one whose ``choose`` or ``apply`` is still the base's own."""
    structured = getattr(cls, "structured", None)
    if structured is None or cls.__name__.startswith("_"):
        return True
    hook = "choose" if structured else "apply"
    return getattr(cls, hook, None) is getattr(StructuredMethod if structured else UnstructuredMethod, hook, None)


def resolve_registered(value: Any, *, registry: Registry, base: type, kind: str) -> Any:
    """An object of one of ``registry``'s pydantic classes (all subclasses of ``base``) from an
    instance, a subclass of ``base`` (built with its defaults, registered or not), a registered
    name, or a mapping ``{"name": ..., **settings}`` (a ``label`` key is dropped: it names a
    config entry, not a setting). ``kind`` names it in errors."""
    if isinstance(value, base):
        return value
    if isinstance(value, type) and issubclass(value, base) and not _abstract(value):  # the class: its defaults
        return _build(value, {}, f"{kind} {value.__name__}")
    if isinstance(value, str):
        return _build(registry.get(value), {}, f"{kind} {value!r}")
    if isinstance(value, Mapping):
        settings = dict(value)
        name = settings.pop("name", None)
        if not isinstance(name, str):
            raise TopopruneError(f"a {kind} mapping needs 'name' (a string), got {value!r}; "
                                 f"available: {', '.join(registry.names())}")
        settings.pop("label", None)
        return _build(registry.get(name), settings, f"{kind} {name!r}")
    raise TopopruneError(f"{kind} must be a name, a {base.__name__} subclass or object, or a mapping, got "
                         f"{type(value).__name__}; available: {', '.join(registry.names())}")


def resolve_method(method: str | Method | Mapping[str, Any], *, kind: str | None = None) -> Method:
    """A method object from a name, an instance, or a mapping ``{"name": ..., **settings}``."""
    obj = resolve_registered(method, registry=METHODS, base=Method, kind="method")
    if kind is not None and obj.structured != (kind == "structured"):
        allowed = list_methods(kind)
        raise TopopruneError(f"method {obj.name!r} is not {kind}; {kind} methods: {', '.join(allowed)}")
    return obj


def _build(cls: type[BaseModel], settings: dict, what: str) -> Any:
    try:
        return cls.model_validate(settings)
    except ValidationError as exc:
        allowed = ", ".join(cls.model_fields) or "none"
        raise TopopruneError(f"{what} setting {format_validation_error(exc)} (settings: {allowed})") from None
