"""Experiment configs: YAML in, validated pydantic models out.

Every field is checked before any run folder exists: unknown keys are refused (a typo must not
fall back to a default silently), types are strict (``seeds: [true]`` is not a seed, ``epochs:
1.5`` is not an epoch count), numbers have ranges, and NaN or infinity is refused. An error is one
line naming the dotted field, the bad value and what is allowed.

Methods are looked up in the method registry (:mod:`topoprune.pruning.methods`): a method class a
user registers can be named in a config like the built-in ones, and its settings are validated
by its own fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

from ..errors import TopopruneError, closest
from ..pruning.methods import Method, format_validation_error, method_class, resolve_method

__all__ = [
    "ExperimentConfig",
    "ModelSpec",
    "DataSpec",
    "MethodSpec",
    "TrainSpec",
    "RecoverySpec",
    "AnalysisSpec",
    "ControlPlan",
    "control_plan",
    "load_config",
    "parse_config",
    "read_yaml",
    "LIMITS",
]

# Upper bounds that keep a typo from asking for years of training or all memory.
LIMITS = {"epochs": 100_000, "batch_size": 65_536, "width": 16.0, "seed": 2**31 - 1}

LABEL_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,39}$"
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

Seed = Annotated[int, Field(ge=0, le=LIMITS["seed"])]
Epochs = Annotated[int, Field(ge=1, le=LIMITS["epochs"])]
BatchSize = Annotated[int, Field(ge=1, le=LIMITS["batch_size"])]
LearningRate = Annotated[float, Field(gt=0, le=10)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
Optimizer = Literal["sgd", "adam"]
Schedule = Literal["cosine", "multistep", "none"]
Precision = Literal["fp32", "bf16"]
EvalBatchSize = Annotated[int, Field(ge=1, le=LIMITS["batch_size"])]


def _one_of(name: str, names: list[str]) -> str:
    """'one of a, b, c', and the closest name when one is close (a typo)."""
    hint = closest(name, names)
    return f"one of {', '.join(names)}" + (f" (did you mean {hint!r}?)" if hint else "")


def registered(names: Callable[[], list[str]]) -> AfterValidator:
    """A field check: the value must be one of ``names()`` (a registry's listing, called when a
    config is validated, so importing this module stays cheap)."""

    def check(name: str) -> str:
        known = names()
        if name not in known:
            raise ValueError(_one_of(name, known))
        return name

    return AfterValidator(check)


def _control_name(name: str) -> str:
    from ..pruning.controls import CONTROLS

    if name not in CONTROLS:
        raise ValueError(_one_of(name, list(CONTROLS)))
    return name


def _models() -> list[str]:
    from ..models import list_models

    return list_models()


def _datasets() -> list[str]:
    from ..data import list_datasets

    return list_datasets()


class _Spec(BaseModel):
    """Strict, frozen, no unknown keys, no NaN/inf: the house rules for every config section."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ModelSpec(_Spec):
    """The network to prune: a registry model (``name``) or the user's own (``factory``:
    ``pkg.module:function`` called with ``kwargs``), trained from scratch or loaded.

    A factory model takes the dataset's input shape as it is (``input_shape`` still fits the
    data to another one); its first layer and classifier are found by tracing it, as for any
    model without ``.meta``. Naming a factory runs its code, as a script would.
    """

    # factory comes first so that name's check sees it (fields are validated in order; the
    # digest sorts keys, so the order changes nothing there)
    factory: str | None = Field(None, description="instead of name: pkg.module:function (or :Class) "
                                "returning an nn.Module")
    name: Annotated[str, registered(_models)] | None = Field(
        None, validate_default=True, description="a registry model (`topoprune models`)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="the factory's keyword arguments")
    width: float = Field(1.0, gt=0, le=LIMITS["width"], description="channel/neuron multiplier (registry models)")
    input_shape: list[Annotated[int, Field(ge=1, le=4096)]] | None = Field(
        None, min_length=3, max_length=3, description="[C, H, W] (default: the dataset's)")
    checkpoint: str | None = Field(None, description="a `topoprune train` checkpoint or run folder, or a "
                                   "pruned-model folder (with factory: also a state dict); none: train the "
                                   "baseline here")
    label: str = Field("", pattern=r"^([a-z0-9][a-z0-9._-]{0,39})?$", description="how reports name it")

    @field_validator("input_shape", mode="before")
    @classmethod
    def _shape_text(cls, shape: Any) -> Any:
        """``"1,32,32"`` as the CLI writes it, besides ``[1, 32, 32]``."""
        if isinstance(shape, str):
            from ..models import parse_shape

            try:
                return list(parse_shape(shape))
            except TopopruneError:
                raise ValueError("[C, H, W] or 'C,H,W', positive integers") from None
        return shape

    @field_validator("checkpoint")
    @classmethod
    def _exists(cls, path: str | None) -> str | None:
        if path is not None and not Path(path).exists():
            raise ValueError("an existing checkpoint file or run folder")
        return path

    @field_validator("factory")
    @classmethod
    def _importable(cls, text: str | None) -> str | None:
        """The factory must name an importable callable now, before any folder exists (it is
        called, building the model, in the runner's preflight)."""
        if text is not None:
            from .factory import resolve_factory

            try:
                resolve_factory(text, "factory")
            except TopopruneError as exc:
                raise ValueError(str(exc)) from None
        return text

    @field_validator("name")
    @classmethod
    def _name_or_factory(cls, name: str | None, info: ValidationInfo) -> str | None:
        """A model without a factory needs its registry name ("missing" when neither is given)."""
        if name is None and info.data.get("factory") is None and "factory" in info.data:
            raise PydanticCustomError("missing", "Field required")
        return name

    @field_validator("kwargs")
    @classmethod
    def _json(cls, kwargs: dict) -> dict:
        from .factory import check_kwargs

        try:
            return check_kwargs(kwargs, "kwargs")
        except TopopruneError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _one_source(self) -> "ModelSpec":
        if (self.name is None) == (self.factory is None):
            raise ValueError("exactly one of name (a registry model) and factory (pkg.module:function)")
        if self.factory is None and self.kwargs:
            raise ValueError("kwargs go with factory; a registry model takes name, width, input_shape")
        if self.factory is not None and self.width != 1.0:
            raise ValueError("width applies to registry models; give a factory's sizes in its kwargs")
        return self

    @property
    def key(self) -> str:
        if self.label:
            return self.label
        if self.factory is not None:
            from .factory import factory_key

            return factory_key(self.factory)
        return self.name if self.width == 1 else f"{self.name}-w{self.width:g}"

    @property
    def shape(self) -> tuple[int, int, int] | None:
        return tuple(self.input_shape) if self.input_shape else None  # type: ignore[return-value]

    def to_dict(self) -> dict:
        """The spec as plain data. A registry model has exactly the keys it had before factories
        existed (name, width, input_shape, checkpoint, label), so configs keep their digest."""
        data = self.model_dump(mode="json")
        if self.factory is None:
            data.pop("factory")
            data.pop("kwargs")
        else:
            data.pop("name")
            data.pop("width")
        return data

    def source(self) -> dict:
        """The keyword arguments of :func:`~topoprune.experiments.artifacts.save_pruned` that name
        this architecture (empty for a registry model: its ``.meta`` does)."""
        return {"factory": self.factory, "factory_kwargs": dict(self.kwargs)} if self.factory else {}


class DataSpec(_Spec):
    name: Annotated[str, registered(_datasets)] = Field(description="a registered dataset (`topoprune data list`)")
    root: str | None = Field(None, description="folder to look for the data in first")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="share of train held out for validation")
    augment: bool = Field(False, description="random crop + flip (CIFAR style)")
    limit: int | None = Field(None, ge=1, description="use only the first N train/test samples")



def _recipe(name: str, **constraints: Any) -> Any:
    """A training setting with :class:`~topoprune.train.TrainConfig`'s default and help text, so
    a config key, its CLI option and the training code share one source."""
    from ..train.config import TrainConfig

    f = TrainConfig.__dataclass_fields__[name]
    default = list(f.default) if isinstance(f.default, tuple) else f.default
    return Field(default, description=f.metadata.get("help", ""), **constraints)


class DistributedSpec(_Spec):
    """Data-parallel training (DDP) of the baseline and of every recovery: ``nproc`` processes on
    one machine (gloo on the CPU, one GPU each with ``--device cuda``). Part of the digest: the
    ranks normalize BatchNorm on their shards, so results differ slightly from one process."""

    nproc: int = Field(1, ge=1, le=64, description="training processes (DDP ranks)")


class TrainSpec(_Spec):
    """The dense baseline's recipe (:class:`topoprune.train.TrainConfig`'s fields), and
    ``distributed`` (DDP for the baseline and the recoveries).

    ``seed: each`` (``topoprune compare`` only) trains one baseline per seed of the comparison,
    with that seed, and the cells of each seed start from their own; the seeds then vary the
    trained network (its initialisation and data order) besides pruning and recovery. It needs
    baselines trained in the run, so it is refused with a model ``checkpoint``."""

    epochs: Epochs = _recipe("epochs")
    optimizer: Optimizer = _recipe("optimizer")
    lr: LearningRate = _recipe("lr")
    momentum: float = _recipe("momentum", ge=0, lt=1)
    weight_decay: float = _recipe("weight_decay", ge=0, le=1)
    schedule: Schedule = _recipe("schedule")
    milestones: list[Fraction] = _recipe("milestones", max_length=32)
    gamma: float = _recipe("gamma", gt=0, le=1)
    batch_size: BatchSize = _recipe("batch_size")
    seed: Seed | Literal["each"] = _recipe("seed")  # or "each" (see the class docstring)
    precision: Precision = _recipe("precision")
    channels_last: bool = _recipe("channels_last")
    compile: bool = _recipe("compile")
    eval_batch_size: EvalBatchSize = _recipe("eval_batch_size")
    distributed: DistributedSpec | None = None

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_or_each(cls, seed: Any) -> Any:
        """One line for a seed that is neither an integer nor ``each`` (not pydantic's two)."""
        if seed != "each" and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= LIMITS["seed"]):
            raise ValueError(f"an integer in [0, {LIMITS['seed']}] or 'each' (one baseline per seed)")
        return seed

    def train_config(self):
        """The :class:`~topoprune.train.TrainConfig` these settings describe."""
        from ..train.config import TrainConfig

        if self.seed == "each":
            raise TopopruneError("train.seed: bad value 'each'; allowed here: an integer (one training run)")
        values = self.model_dump(exclude={"distributed"})
        return TrainConfig(**{**values, "milestones": tuple(values["milestones"])})


class RecoverySpec(_Spec):
    """How a pruned model is fine-tuned and when it counts as recovered.

    ``recalibrate_bn``: before recovery, every BatchNorm layer's running statistics are
    re-estimated on this many training batches (of ``batch_size``, seeded by the cell's seed;
    :func:`~topoprune.train.recalibrate_bn`), and recovery starts from that model. 0 turns it off
    (the pruned model is then measured and recovered with the statistics it came with). A model
    without BatchNorm is not touched either way. The field is always part of the config's digest,
    so a run folder never resumes into cells computed with a different setting.
    """

    epochs: Epochs = 3
    lr: LearningRate = 0.01
    tolerance: float = Field(0.5, ge=0, le=100, description="points below dense that count as recovered")
    batch_size: BatchSize = 128
    optimizer: Optimizer = "sgd"
    schedule: Schedule = "cosine"
    recalibrate_bn: int = Field(50, ge=0, le=10_000, description="training batches that re-estimate "
                                "BatchNorm statistics after pruning, before recovery (0: off)")
    # speed options of the retraining, the recalibration and the evaluations (as in train:); in the
    # digest only when not at their defaults
    precision: Precision = _recipe("precision")
    channels_last: bool = _recipe("channels_last")
    compile: bool = _recipe("compile")
    eval_batch_size: EvalBatchSize = _recipe("eval_batch_size")

    def train_config(self, seed: int):
        """The :class:`~topoprune.train.TrainConfig` of a cell's recovery with ``seed``."""
        from ..train.config import SPEED_OPTIONS, TrainConfig

        return TrainConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, optimizer=self.optimizer,
                           schedule=self.schedule, seed=seed, **{k: getattr(self, k) for k in SPEED_OPTIONS})


class BudgetSpec(_Spec):
    """Structured cells prune to a count instead of a per-layer sparsity: a cell's
    sparsity ``s`` becomes the target ``{metric: 1 - s}``, the fraction of the dense model's
    ``metric`` removed (0.5: 2x fewer FLOPs, 0.75: 4x). Each method entry may name its
    ``allocation`` (default ``uniform``). ``data_samples`` labelled training inputs (drawn with
    the cell's seed) are handed to allocations and methods that judge candidates by accuracy
    after adaptive BN (``eagleeye``; ``topological-v2`` with ``data_weight``)."""

    metric: Literal["flops", "macs", "params"] = "flops"
    data_samples: int = Field(2000, ge=2, le=1_000_000, description="labelled training inputs for "
                              "allocations that evaluate candidates")


class ResourcesSpec(_Spec):
    """What one cell gets on a Ray cluster (``topoprune compare --executor ray``). Not part of the
    config's digest: where cells run does not change what they compute, so a run started locally
    resumes on a cluster and back."""

    cpus_per_cell: float = Field(1.0, gt=0, le=1024, description="CPUs reserved per cell (its torch threads)")
    gpus_per_cell: float = Field(0.0, ge=0, le=64, description="GPUs per cell (fractions share one GPU)")
    max_retries: int = Field(2, ge=0, le=100, description="times a cell whose worker died is retried")


class AnalysisSpec(_Spec):
    persistence: bool = True
    critical: bool = True
    overlap: bool = True
    latency: bool = True
    diagram_layer: str | None = Field(None, description="layer whose diagram the report draws "
                                      "(default: a middle one)")


@dataclass(frozen=True)
class MethodSpec:
    """One method of a comparison: a validated method object and an optional ``label`` naming
    the variant (so one config can hold a method twice). Rows, folders and reports use
    :attr:`key`, the label if given, else the method's name."""

    method: Method
    label: str | None = None
    given: dict | None = None  # the settings as written (their digest must not depend on 1 vs 1.0)
    allocation: dict | None = None  # with a budget: how many units each layer loses ({"name": ...})
    schedule: dict | None = None  # iterative structured pruning: {"steps": k, "epochs": e}

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def tuning_epochs(self) -> int:
        """Fine-tuning epochs between the removals of a ``schedule`` (0 when one-shot)."""
        return 0 if self.schedule is None else (self.schedule["steps"] - 1) * self.schedule["epochs"]

    @property
    def key(self) -> str:
        return self.label or self.method.name

    @property
    def structured(self) -> bool:
        return self.method.structured

    def to_dict(self) -> dict:
        settings = _as_given(self.method.settings(), self.given)
        return {"name": self.name, **({"label": self.label} if self.label else {}), **settings,
                **({"allocation": self.allocation} if self.allocation else {}),
                **({"schedule": dict(self.schedule)} if self.schedule else {})}


class _Layout(_Spec):
    """The config file's shape; methods are validated against the registry afterwards."""

    name: str = Field("experiment", pattern=NAME_PATTERN)
    models: list[ModelSpec] = Field(min_length=1, max_length=64)
    dataset: DataSpec
    train: TrainSpec = TrainSpec()
    methods: list[Any] = Field(min_length=1, max_length=256)
    sparsities: list[Fraction] = Field(min_length=1, max_length=256)
    seeds: list[Seed] = Field([0], min_length=1, max_length=1024)
    recovery: RecoverySpec = RecoverySpec()
    analyses: AnalysisSpec = AnalysisSpec()
    budget: BudgetSpec | None = None
    resources: ResourcesSpec = ResourcesSpec()
    controls: list[Annotated[str, AfterValidator(_control_name)]] = Field(
        [], max_length=8, description="controls run beside every method (shuffle, magnitude-at-budget)")
    controls_of: list[str] | None = Field(
        None, min_length=1, max_length=256, description="the method keys whose controls run (default: every method)")

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "model" in data and "models" in data:
            raise ValueError("give exactly one of model and models")
        if "model" in data:
            data["models"] = [data.pop("model")]
        if isinstance(data.get("models"), list):  # "pkg.module:function" is a factory, else a name
            data["models"] = [({"factory": m} if ":" in m else {"name": m}) if isinstance(m, str) else m
                              for m in data["models"]]
        if isinstance(data.get("dataset"), str):
            data["dataset"] = {"name": data["dataset"]}
        for section in ("train", "recovery", "analyses", "budget", "resources", "controls"):
            if section in data and data[section] is None:
                data.pop(section)
        return data

    @field_validator("sparsities", "seeds", "controls", "controls_of")
    @classmethod
    def _distinct(cls, values: list) -> list:
        if len(set(values)) != len(values):
            raise ValueError("distinct values (a repeat would run the same cells twice)")
        return values


class ExperimentConfig:
    """A whole comparison: models x methods x sparsities x seeds (validated, immutable)."""

    def __init__(self, layout: _Layout, methods: tuple[MethodSpec, ...], given: dict, raw: dict | None = None):
        self.name: str = layout.name
        self.models: tuple[ModelSpec, ...] = tuple(layout.models)
        self.dataset: DataSpec = layout.dataset
        self.methods: tuple[MethodSpec, ...] = methods
        self.sparsities: tuple[float, ...] = tuple(float(s) for s in layout.sparsities)
        self.seeds: tuple[int, ...] = tuple(layout.seeds)
        self.recovery: RecoverySpec = layout.recovery
        self.analyses: AnalysisSpec = layout.analyses
        self.budget: BudgetSpec | None = layout.budget
        self.resources: ResourcesSpec = layout.resources  # runtime only: not in to_dict or the digest
        self.controls: tuple[str, ...] = tuple(layout.controls)
        self.controls_of: tuple[str, ...] | None = (None if layout.controls_of is None
                                                    else tuple(layout.controls_of))
        self._train_given = given  # the train keys as written: part of the digest
        self._raw = raw or {}  # sections as written, so 1 and 1.0 keep the digest they always had

    @property
    def train(self) -> dict:
        """The baseline recipe as ``TrainConfig`` keyword arguments (only what the file sets;
        without ``seed`` under ``train.seed: each``, where every seed gives its own)."""
        return {k: v for k, v in self._train_given.items()
                if k != "distributed" and not (k == "seed" and v == "each")}

    @property
    def seed_each(self) -> bool:
        """``train.seed: each``: one baseline per seed of the comparison, trained with that seed,
        so the seeds vary the trained network as well as pruning and recovery."""
        return self._train_given.get("seed") == "each"

    def train_seed(self, seed: int) -> int:
        """The training seed of the baseline that the cells of ``seed`` start from."""
        if self.seed_each:
            return seed
        from ..train.config import TrainConfig

        return int(self._train_given.get("seed", TrainConfig.__dataclass_fields__["seed"].default))

    def baseline_key(self, model: str, seed: int) -> str:
        """The baseline (``baseline/<key>``, ``analysis/<key>.json``) of ``model`` that the cells
        of ``seed`` start from: ``<model>``, or ``<model>/seed<seed>`` under ``train.seed: each``."""
        return f"{model}/seed{seed}" if self.seed_each else model

    def baseline_seeds(self) -> tuple[int | None, ...]:
        """The seeds that have a baseline of their own: every seed under ``train.seed: each``,
        else ``(None,)`` (one baseline per model)."""
        return self.seeds if self.seed_each else (None,)

    def control_plan(self) -> list["ControlPlan"]:
        """Every (method, control) pair of ``controls``, and what each would repeat."""
        return _plan(self.methods, self.controls, self.controls_of)

    @property
    def nproc(self) -> int:
        """DDP processes for the baseline and the recoveries (``train.distributed.nproc``)."""
        given = self._train_given.get("distributed") or {}
        return int(given.get("nproc", 1))

    def model(self, key: str) -> ModelSpec:
        return next(m for m in self.models if m.key == key)

    def method(self, key: str) -> MethodSpec:
        return next(m for m in self.methods if m.key == key)

    def to_dict(self) -> dict:
        """The config as plain data, in the form :func:`parse_config` accepts back. Its content
        (and so the run folder's name) is the same as before configs were pydantic models."""
        return {
            "name": self.name,
            "models": [m.to_dict() for m in self.models],
            "dataset": _as_given(self.dataset.model_dump(mode="json"), self._raw.get("dataset")),
            "train": dict(self._train_given),  # train.distributed included when given
            "methods": [m.to_dict() for m in self.methods],
            "sparsities": list(self.sparsities),
            "seeds": list(self.seeds),
            "recovery": without_default_speed(_as_given(self.recovery.model_dump(mode="json"),
                                                        self._raw.get("recovery"))),
            "analyses": self.analyses.model_dump(mode="json"),
            # only when set: configs without a budget (or controls) keep the digest they always had
            **({"budget": self.budget.model_dump(mode="json")} if self.budget is not None else {}),
            **({"controls": list(self.controls)} if self.controls else {}),
            **({"controls_of": list(self.controls_of)} if self.controls_of is not None else {}),
        }

    def recovery_epochs(self, method_key: str, control: str | None = None) -> int:
        """The recovery epochs of a cell: ``recovery.epochs`` for a method with a ``schedule``
        (it fine-tuned between its removals already); for a one-shot cell (and every control) of a
        config with scheduled methods, ``recovery.epochs`` plus the most fine-tuning epochs any
        schedule spends between removals, so every method trains as long after its first removal."""
        extra = max((m.tuning_epochs for m in self.methods), default=0)
        spec = self.method(method_key)
        if control is None and spec.schedule is not None:
            return self.recovery.epochs + extra - spec.tuning_epochs
        return self.recovery.epochs + extra

    def target(self, sparsity: float) -> dict | None:
        """The target a structured cell at ``sparsity`` prunes to, or None without a budget."""
        if self.budget is None:
            return None
        return {f"{self.budget.metric}_kept": round(1.0 - sparsity, 12)}

    def digest(self) -> str:
        """12 hex digits of the config's content: the run folder's suffix.

        Every field of :meth:`to_dict` enters it, ``recovery.recalibrate_bn`` included even when
        the file does not write it (it changes what a cell computes, so ``recalibrate_bn: 0``
        and the default 50 give different digests). The speed options of ``train`` and
        ``recovery`` (``precision``, ``channels_last``, ``compile``, ``eval_batch_size``) enter it
        only when they are not at their defaults."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExperimentConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"ExperimentConfig({self.name!r}, digest {self.digest()})"


def without_default_speed(section: dict) -> dict:
    """``section`` (a ``train:`` or ``recovery:`` mapping) without the speed options that are at
    their defaults (:data:`~topoprune.train.config.SPEED_OPTIONS`): a config that writes
    ``precision: fp32`` has the digest of one that does not, and configs written before these
    options existed keep theirs."""
    from ..train.config import SPEED_OPTIONS, TrainConfig

    defaults = TrainConfig.__dataclass_fields__
    return {k: v for k, v in section.items() if not (k in SPEED_OPTIONS and v == defaults[k].default)}


@dataclass(frozen=True)
class ControlPlan:
    """One method's control: its cells are labelled :attr:`key` (``<method key>+<control>``),
    unless the control would repeat cells the config runs anyway (``coincides``: ``"self"``, the
    method itself, or the key of the method whose cells it repeats, e.g. ``random``)."""

    method: str
    control: str
    coincides: str | None = None

    @property
    def key(self) -> str:
        return f"{self.method}+{self.control}"

    @property
    def runs(self) -> bool:
        return self.coincides is None


def _plan(methods: tuple[MethodSpec, ...], controls: tuple[str, ...],
          of: tuple[str, ...] | None = None) -> list[ControlPlan]:
    """The (method, control) pairs: every method's, or with ``of`` only those methods'."""
    from ..pruning.controls import control_coincides_with

    def uniform(spec: MethodSpec) -> bool:
        return spec.allocation is None or spec.allocation.get("name") == "uniform"

    plans = []
    for spec in methods:
        if of is not None and spec.key not in of:
            continue
        for control in controls:
            same = control_coincides_with(spec.method, control, allocation=(spec.allocation or {}).get("name"))
            if getattr(spec.method, "threshold", None) is not None:  # a Betti threshold sets its own counts
                same = None
            if same not in (None, "self"):  # another method's cells at the same uniform budget, if run
                peer = next((m for m in methods if m.name == same and uniform(m)), None)
                same = None if peer is None else ("self" if peer.key == spec.key else peer.key)
            plans.append(ControlPlan(spec.key, control, same))
    return plans


def control_plan(config: dict) -> list[ControlPlan]:
    """The control plan of a config as saved in a run folder (``config.json``): what the report
    reads, without touching the files the config names."""
    controls = tuple(config.get("controls") or ())
    if not controls:
        return []
    methods = tuple(_method(f"methods[{i}]", m) for i, m in enumerate(config.get("methods", [])))
    of = config.get("controls_of")
    return _plan(methods, controls, None if of is None else tuple(of))


def _as_given(dumped: dict, given: Any) -> dict:
    """``dumped`` with each number that was written as an integer put back as that integer:
    pydantic stores ``tolerance: 1`` as ``1.0``, and the digest (the run folder's name) of a
    config must stay what it was when the dataclasses kept the value as written."""
    if not isinstance(given, dict):
        return dumped
    out = dict(dumped)
    for key, value in given.items():
        if (key in out and isinstance(value, int) and not isinstance(value, bool)
                and isinstance(out[key], float) and out[key] == value):
            out[key] = value
    return out


_SECTIONS: dict[str, type[BaseModel]] = {"models": ModelSpec, "dataset": DataSpec, "train": TrainSpec,
                                         "recovery": RecoverySpec, "analyses": AnalysisSpec,
                                         "budget": BudgetSpec, "resources": ResourcesSpec}


def _method(path: str, data: Any) -> MethodSpec:
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise TopopruneError(f"config field {path}: bad value {data!r}; allowed: a method name or a "
                             "mapping with 'name'")
    name = data["name"]
    try:
        cls = method_class(name)
    except TopopruneError as exc:
        raise TopopruneError(f"config field {path}.name: {exc}") from None
    label = data.get("label")
    if label is not None:
        import re

        if not (isinstance(label, str) and re.fullmatch(LABEL_PATTERN, label)):
            raise TopopruneError(f"config field {path}.label: bad value {label!r}; allowed: 1-40 "
                                 "characters from a-z, 0-9, '.', '_', '-', starting with a letter or "
                                 "digit (it names folders)")
    settings = {k: v for k, v in data.items() if k not in ("name", "label", "allocation", "schedule")}
    try:
        method = cls.model_validate(settings)
    except ValidationError as exc:
        fields = ", ".join(cls.model_fields) or "none"
        raise TopopruneError(f"config field {format_validation_error(exc, path)} (settings of "
                             f"{name!r}: {fields})") from None
    allocation = None
    if "allocation" in data:
        from ..pruning.allocation import resolve_allocation

        given = data["allocation"]
        try:
            obj = resolve_allocation(given)
        except TopopruneError as exc:
            raise TopopruneError(f"config field {path}.allocation: {exc}") from None
        allocation = {**(dict(given) if isinstance(given, dict) else {}), "name": obj.name}  # the current name
        allocation.pop("label", None)
    schedule = _schedule(path, data.get("schedule"), method) if "schedule" in data else None
    return MethodSpec(resolve_method(method), label, settings, allocation, schedule)


def _schedule(path: str, given: Any, method: Method) -> dict:
    """A method entry's ``schedule: {steps: k, epochs: e}``, checked."""
    allowed = "allowed: {steps: k, epochs: e} with k an integer in [2, 100] and e in [0, 10000]"
    if not method.structured:
        raise TopopruneError(f"config field {path}.schedule: {method.name!r} is unstructured; allowed: a schedule "
                             "for structured methods (unstructured iterative pruning is imp/timp with rounds)")
    if method.needs().training:
        raise TopopruneError(f"config field {path}.schedule: {method.name!r} trains inside pruning already")
    if not isinstance(given, dict) or set(given) != {"steps", "epochs"}:
        raise TopopruneError(f"config field {path}.schedule: bad value {given!r}; {allowed}")
    from ..pruning.iterative import check_schedule  # the one rule, shared with prune_units_iteratively

    try:
        check_schedule(given["steps"], given["epochs"])
    except TopopruneError as exc:
        raise TopopruneError(f"config field {path}.schedule.{exc}") from None
    return {"steps": given["steps"], "epochs": given["epochs"]}


def parse_config(data: Any, name: str | None = None) -> ExperimentConfig:
    """Validate a config mapping (as loaded from YAML); raise :class:`TopopruneError` in one line."""
    if not isinstance(data, dict):
        raise TopopruneError(f"config: bad value {type(data).__name__}; allowed: a mapping of fields "
                             "(name, model(s), dataset, train, methods, sparsities, seeds, recovery, analyses, budget, resources, controls, controls_of)")
    raw = dict(data)
    if name is not None and "name" not in raw:
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:64] or "experiment"
        raw["name"] = safe
    for required in ("dataset", "methods", "sparsities"):
        if required not in raw:
            raise TopopruneError(f"config field {required}: missing; it is required")
    if "model" not in raw and "models" not in raw:
        raise TopopruneError("config field model/models: missing; give exactly one of them")
    try:
        layout = _Layout.model_validate(raw)
    except ValidationError as exc:
        message = format_validation_error(exc)
        first = exc.errors()[0]
        if first["type"] == "extra_forbidden":  # name the keys that are allowed there
            section = _SECTIONS.get(str(first["loc"][0]) if len(first["loc"]) > 1 else "", _Layout)
            keys = [k for k in section.model_fields if section is not _Layout or k != "models"]
            keys += ["model", "models"] if section is _Layout else []
            message += f"; allowed keys: {', '.join(sorted(keys))}"
        raise TopopruneError(f"config field {message}") from None
    keys = [m.key for m in layout.models]
    if len(set(keys)) != len(keys):
        raise TopopruneError(f"config field models: bad value {keys}; allowed: distinct models (set "
                             "'label' to tell them apart)")
    methods = tuple(_method(f"methods[{i}]", m) for i, m in enumerate(layout.methods))
    mkeys = [m.key for m in methods]
    twice = sorted({k for k in mkeys if mkeys.count(k) > 1})
    if twice:
        raise TopopruneError(f"config field methods: bad value {twice}; allowed: each method once; give "
                             "repeats a distinct 'label' (e.g. label: topological-np)")
    for i, m in enumerate(methods):
        problem = m.method.check_sparsities(layout.sparsities)
        if problem:
            raise TopopruneError(f"config field methods[{i}].{problem}")
        if layout.budget is None and (m.allocation is not None or getattr(m.method, "needs_target", False)):
            what = "allocation" if m.allocation is not None else "name"
            raise TopopruneError(f"config field methods[{i}].{what}: {m.key!r} prunes to a target count; allowed "
                                 "only with a 'budget:' section (e.g. budget: {metric: flops})")
        if (layout.train.distributed is not None and layout.train.distributed.nproc > 1
                and m.method.needs().training):
            raise TopopruneError(f"config field methods[{i}].name: {m.key!r} trains inside pruning in one "
                                 "process; allowed with train.distributed: methods that prune a trained model "
                                 "(run IMP/T-IMP in a config without distributed)")
        if layout.budget is not None and getattr(m.method, "threshold", None) is not None:
            raise TopopruneError(f"config field methods[{i}].threshold: {m.key!r} prunes by a Betti threshold, "
                                 "which ignores the target; allowed under 'budget:': no threshold (rank to the target)")
        if layout.budget is not None and not m.structured:
            raise TopopruneError(f"config field methods[{i}].name: {m.key!r} is unstructured; a 'budget:' "
                                 "comparison prunes structured methods to a FLOPs/MACs/params target")
    if layout.controls_of is not None:
        if not layout.controls:
            raise TopopruneError("config field controls_of: given without controls; allowed: with a 'controls:' "
                                 "list (e.g. controls: [shuffle])")
        unknown = [k for k in layout.controls_of if k not in mkeys]
        if unknown:
            raise TopopruneError(f"config field controls_of: bad value {unknown[0]!r}; allowed: "
                                 f"{_one_of(unknown[0], mkeys)} (the config's method keys)")
    if layout.controls:
        for i, m in enumerate(methods):
            if layout.controls_of is not None and m.key not in layout.controls_of:
                continue
            if m.method.needs().training and not _controllable_iterative(m.method):
                raise TopopruneError(f"config field controls: not supported yet with methods[{i}] {m.key!r}, which "
                                     "fine-tunes between rounds; allowed: one-shot and structured methods, and "
                                     "imp/timp with fraction (each round rewinds to the initialisation)")
    if layout.train.seed == "each":
        given = [i for i, m in enumerate(layout.models) if m.checkpoint is not None]
        if given:
            raise TopopruneError(f"config field train.seed: bad value 'each' with models[{given[0]}].checkpoint; "
                                 "allowed: 'each' only when every baseline is trained here (one per seed)")
    train_given = without_default_speed(_as_given(layout.train.model_dump(mode="json", exclude_unset=True),
                                                  raw.get("train")))
    if layout.train.distributed is None or layout.train.distributed.nproc == 1:
        train_given.pop("distributed", None)  # one process: the digest every config had before
    else:
        nproc = layout.train.distributed.nproc
        for where, size in (("train.batch_size", layout.train.batch_size), ("recovery.batch_size",
                                                                           layout.recovery.batch_size)):
            if size < nproc:
                raise TopopruneError(f"config field {where}: bad value {size}; allowed: at least "
                                     f"train.distributed.nproc ({nproc}), so every process gets samples")
    return ExperimentConfig(layout, methods, train_given, raw)


def _controllable_iterative(method: Method) -> bool:
    """An iterative method whose control is defined: a trajectory (``fraction``) whose rounds
    rewind to the initialisation, so the control rewinds its mask there and trains the same
    epochs as the method's last round."""
    return getattr(method, "fraction", None) is not None and getattr(method, "rewind", None) in (None, "init")


def _unique_key_loader():
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        """``yaml.safe_load`` that refuses a key given twice in one mapping (PyYAML keeps the
        last one silently, so ``seeds:`` written twice would run only the second list)."""

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice (line {key_node.start_mark.line + 1}); "
                        "allowed: each key once", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """The parsed YAML of a config file; a missing, unreadable, binary or non-UTF-8 file, or bad
    YAML, is a one-line error."""
    import yaml

    p = Path(path)
    if p.is_dir():
        raise TopopruneError(f"{what} {p} is a folder; allowed: a YAML file")
    if not p.is_file():
        raise TopopruneError(f"{what} {p} does not exist")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise TopopruneError(f"{what} {p} could not be read: {exc.strerror}") from None
    if len(raw) > 10 * 2**20:
        raise TopopruneError(f"{what} {p} is {len(raw):,} bytes; allowed: a YAML file of at most 10 MiB")
    if b"\x00" in raw:
        raise TopopruneError(f"{what} {p} is a binary file; allowed: a UTF-8 YAML file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TopopruneError(f"{what} {p} is not UTF-8 text (byte {exc.start}); allowed: a UTF-8 YAML file") from None
    try:
        return yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TopopruneError(f"{what} {p} is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise TopopruneError(f"{what} {p} is nested too deeply to be a config") from None


def shipped_configs() -> dict[str, Path]:
    """The experiment configs installed with the package (``quickstart``, ``fmnist-vgg16q-filters``,
    ...), by name. In a checkout, ``configs/`` is a link to the same folder."""
    folder = Path(__file__).resolve().parents[1] / "configs"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_config_path(path: str | Path) -> Path:
    """``path`` if it exists; else, for a bare name such as ``"quickstart"``, the shipped config
    of that name. Anything else is returned as given (read_yaml then names what is missing)."""
    p = Path(path)
    if p.exists() or p.suffix or len(p.parts) != 1:
        return p
    shipped = shipped_configs()
    if str(path) in shipped:
        return shipped[str(path)]
    from ..errors import unknown_name

    raise unknown_name("config (a file, or the name of a shipped one)", str(path), shipped)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML experiment config: a file, or the name of a config shipped with
    the package (``load_config("quickstart")``; see :func:`shipped_configs`)."""
    path = resolve_config_path(path)
    data = read_yaml(path)
    if data is None:
        raise TopopruneError(f"config {path} is empty; allowed: a mapping with dataset, model(s), "
                             "methods and sparsities")
    return parse_config(data, name=Path(path).stem)

