"""Experiment configs: YAML in, validated dataclasses out.

Every field is checked before any work starts; an error names the field (as a dotted path), the
bad value and what is allowed. Unknown keys are refused too (a typo must not silently fall back
to a default).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import TopopruneError

__all__ = [
    "ExperimentConfig",
    "ModelSpec",
    "DataSpec",
    "MethodSpec",
    "RecoverySpec",
    "AnalysisSpec",
    "load_config",
    "parse_config",
    "STRUCTURED",
    "UNSTRUCTURED",
]

_LABEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")
STRUCTURED = ("topological", "betti", "l1", "l2", "fpgm", "random")
UNSTRUCTURED = ("magnitude", "random-weights", "imp", "timp")
# method-specific parameters and their types
_METHOD_PARAMS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "topological": {"population": int, "generations": int, "fitness": str, "crossover_rate": float,
                    "mutation_rate": float, "tournament": int, "elitism": int, "patience": int,
                    "workers": int, "samples": int},
    "betti": {"samples": int, "threshold": (int, float), "dim": str, "quantile": float,
              "method": str, "k": int},
    "l1": {}, "l2": {}, "fpgm": {}, "random": {},
    "magnitude": {"scope": str},
    "random-weights": {"scope": str},
    "imp": {"rounds": int, "scope": str, "rewind": str, "epochs": int, "fraction": float},
    "timp": {"rounds": int, "scope": str, "rewind": str, "epochs": int, "fraction": float},
}


def _fail(path: str, value: Any, allowed: str) -> TopopruneError:
    return TopopruneError(f"config field {path}: bad value {value!r}; allowed: {allowed}")


def _check_keys(path: str, data: dict, allowed: set[str]) -> None:
    if not isinstance(data, dict):
        raise _fail(path, data, "a mapping of fields")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise TopopruneError(f"config field {path}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


@dataclass(frozen=True)
class ModelSpec:
    """The network to prune: a registry model, trained from scratch or loaded."""

    name: str
    width: float = 1.0
    input_shape: tuple[int, int, int] | None = None  # default: the dataset's shape
    checkpoint: str | None = None  # a `topoprune train` checkpoint; None = train the baseline here
    label: str = ""  # how reports name it (default: name, plus width if not 1)

    @property
    def key(self) -> str:
        return self.label or (self.name if self.width == 1 else f"{self.name}-w{self.width:g}")


@dataclass(frozen=True)
class DataSpec:
    name: str
    root: str | None = None
    val_fraction: float = 0.1
    augment: bool = False
    limit: int | None = None


@dataclass(frozen=True)
class MethodSpec:
    """One pruning method of a comparison. ``label`` names a variant (e.g. the GA with another
    fitness) so that one config can hold the same method twice; rows, folders and reports use
    :attr:`key`, the label if given, else the method's name."""

    name: str
    params: dict = field(default_factory=dict)
    label: str | None = None

    @property
    def structured(self) -> bool:
        return self.name in STRUCTURED

    @property
    def key(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class RecoverySpec:
    epochs: int = 3
    lr: float = 0.01
    tolerance: float = 0.5
    batch_size: int = 128
    optimizer: str = "sgd"
    schedule: str = "cosine"


@dataclass(frozen=True)
class AnalysisSpec:
    persistence: bool = True
    critical: bool = True
    overlap: bool = True
    latency: bool = True
    diagram_layer: str | None = None  # layer whose diagram the report draws (default: a middle one)


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole comparison: models x methods x sparsities x seeds."""

    name: str
    models: tuple[ModelSpec, ...]
    dataset: DataSpec
    train: dict
    methods: tuple[MethodSpec, ...]
    sparsities: tuple[float, ...]
    seeds: tuple[int, ...]
    recovery: RecoverySpec = RecoverySpec()
    analyses: AnalysisSpec = AnalysisSpec()

    def to_dict(self) -> dict:
        """The config as plain data, in the form :func:`parse_config` accepts back."""
        d = json.loads(json.dumps(asdict(self)))
        # a label only when given: configs without labels keep their digest (and run folder)
        d["methods"] = [{"name": m["name"], **({"label": m["label"]} if m["label"] else {}), **m["params"]}
                        for m in d["methods"]]
        return d

    def digest(self) -> str:
        """12 hex digits of the config's content: the run folder's suffix."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _dataclass(cls, path: str, data: dict):
    names = {f.name for f in fields(cls)}
    _check_keys(path, data, names)
    try:
        return cls(**data)
    except TypeError as exc:
        raise TopopruneError(f"config field {path}: {exc}") from None


def _model(path: str, data: Any) -> ModelSpec:
    from ..models import list_models, parse_shape

    if isinstance(data, str):
        data = {"name": data}
    spec = _dataclass(ModelSpec, path, dict(data))
    if spec.name not in list_models():
        raise _fail(f"{path}.name", spec.name, ", ".join(list_models()))
    if not isinstance(spec.width, (int, float)) or not spec.width > 0:
        raise _fail(f"{path}.width", spec.width, "a number > 0")
    shape = spec.input_shape
    if shape is not None:
        try:
            shape = parse_shape(shape)
        except TopopruneError:
            raise _fail(f"{path}.input_shape", shape, "[C, H, W] positive integers") from None
        if len(shape) != 3:
            raise _fail(f"{path}.input_shape", shape, "[C, H, W] positive integers")
    if spec.checkpoint is not None and not Path(spec.checkpoint).exists():
        raise _fail(f"{path}.checkpoint", spec.checkpoint, "an existing checkpoint file or run folder")
    return ModelSpec(spec.name, float(spec.width), shape, spec.checkpoint, spec.label)


def _method(path: str, data: Any) -> MethodSpec:
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict) or "name" not in data:
        raise _fail(path, data, "a method name or a mapping with 'name'")
    name = data["name"]
    if name not in _METHOD_PARAMS:
        raise _fail(f"{path}.name", name, ", ".join(STRUCTURED + UNSTRUCTURED))
    label = data.get("label")
    if label is not None and not (isinstance(label, str) and _LABEL.fullmatch(label)):
        raise _fail(f"{path}.label", label, "1-40 characters from a-z, 0-9, '.', '_', '-', starting "
                    "with a letter or digit (it names folders)")
    params = {k: v for k, v in data.items() if k not in ("name", "label")}
    allowed = _METHOD_PARAMS[name]
    for key, value in params.items():
        if key not in allowed:
            raise TopopruneError(f"config field {path}.{key}: unknown parameter of method {name!r}; "
                                 f"allowed: {sorted(allowed) or 'none'}")
        if not isinstance(value, allowed[key]) or isinstance(value, bool):
            kind = allowed[key]
            names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
            raise _fail(f"{path}.{key}", value, f"a {names}")
    if "scope" in params and params["scope"] not in ("local", "global"):
        raise _fail(f"{path}.scope", params["scope"], "local, global")
    if "rewind" in params and params["rewind"] not in ("none", "init"):
        raise _fail(f"{path}.rewind", params["rewind"], "none, init")
    if "rounds" in params and params["rounds"] < 1:
        raise _fail(f"{path}.rounds", params["rounds"], "an integer >= 1")
    if "fraction" in params and not 0 < params["fraction"] < 1:
        raise _fail(f"{path}.fraction", params["fraction"], "a fraction in (0, 1) removed per round")
    if name == "topological":
        from ..pruning import GAConfig

        GAConfig(**{k: v for k, v in params.items() if k != "samples"})  # its own checks
    return MethodSpec(name, params, label)


def parse_config(data: Any, name: str | None = None) -> ExperimentConfig:
    """Validate a config mapping (as loaded from YAML)."""
    from ..data import list_datasets
    from ..train import TrainConfig

    top = {"name", "model", "models", "dataset", "train", "methods", "sparsities", "seeds",
           "recovery", "analyses"}
    _check_keys("(top level)", data, top)
    for required in ("dataset", "methods", "sparsities"):
        if required not in data:
            raise TopopruneError(f"config field {required}: missing; it is required")
    if ("model" in data) == ("models" in data):
        raise TopopruneError("config field model/models: give exactly one of them")
    raw_models = data.get("models") if "models" in data else [data["model"]]
    if not isinstance(raw_models, list) or not raw_models:
        raise _fail("models", raw_models, "a non-empty list of models")
    models = tuple(_model(f"models[{i}]", m) for i, m in enumerate(raw_models))
    if len({m.key for m in models}) != len(models):
        raise _fail("models", [m.key for m in models], "distinct models (set 'label' to tell them apart)")
    ds = data["dataset"] if not isinstance(data["dataset"], str) else {"name": data["dataset"]}
    dataset = _dataclass(DataSpec, "dataset", dict(ds))
    if dataset.name not in list_datasets():
        raise _fail("dataset.name", dataset.name, ", ".join(list_datasets()))
    if not 0 <= dataset.val_fraction < 1:
        raise _fail("dataset.val_fraction", dataset.val_fraction, "a fraction in [0, 1)")
    train = dict(data.get("train") or {})
    try:
        TrainConfig(**train)
    except TypeError as exc:
        raise TopopruneError(f"config field train: {exc}; allowed: "
                             f"{sorted(TrainConfig.__dataclass_fields__)}") from None
    except TopopruneError as exc:
        raise TopopruneError(f"config field train: {exc}") from None
    methods_raw = data["methods"]
    if not isinstance(methods_raw, list) or not methods_raw:
        raise _fail("methods", methods_raw, "a non-empty list")
    methods = tuple(_method(f"methods[{i}]", m) for i, m in enumerate(methods_raw))
    keys = [m.key for m in methods]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise _fail("methods", twice, "each method once; give repeats a distinct 'label' "
                    "(e.g. label: topological-np)")
    sparsities = data["sparsities"]
    if not isinstance(sparsities, list) or not sparsities:
        raise _fail("sparsities", sparsities, "a non-empty list of fractions in (0, 1)")
    for i, s in enumerate(sparsities):
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s < 1:
            raise _fail(f"sparsities[{i}]", s, "a fraction in (0, 1)")
    for i, m in enumerate(methods):
        if "fraction" in m.params:  # one IMP trajectory per seed; cells read its rounds
            reach = 1 - (1 - m.params["fraction"]) ** int(m.params.get("rounds", 3))
            beyond = [s for s in sparsities if s > reach + 1e-3]
            if beyond:
                raise _fail(f"methods[{i}].rounds", m.params.get("rounds", 3),
                            f"enough rounds of {m.params['fraction']:g} to reach sparsities {beyond} "
                            f"(these rounds reach {reach:.3f})")
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise _fail("seeds", seeds, "a non-empty list of integers >= 0")
    recovery = _dataclass(RecoverySpec, "recovery", dict(data.get("recovery") or {}))
    try:
        TrainConfig(epochs=recovery.epochs, lr=recovery.lr, batch_size=recovery.batch_size,
                    optimizer=recovery.optimizer, schedule=recovery.schedule)
    except TopopruneError as exc:
        raise TopopruneError(f"config field recovery: {exc}") from None
    if recovery.tolerance < 0:
        raise _fail("recovery.tolerance", recovery.tolerance, "percentage points >= 0")
    analyses = _dataclass(AnalysisSpec, "analyses", dict(data.get("analyses") or {}))
    cfg_name = data.get("name") or name or "experiment"
    if not isinstance(cfg_name, str) or not cfg_name.replace("-", "").replace("_", "").isalnum():
        raise _fail("name", cfg_name, "letters, digits, '-' and '_'")
    return ExperimentConfig(cfg_name, models, dataset, train, methods,
                            tuple(float(s) for s in sparsities), tuple(seeds), recovery, analyses)


def read_yaml(path: str | Path, what: str = "config"):
    """The parsed YAML of a config file; a missing file or bad YAML is a one-line error."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise TopopruneError(f"{what} {p} does not exist")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise TopopruneError(f"{what} {p} is not valid YAML: {' '.join(str(exc).split())}") from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML experiment config."""
    return parse_config(read_yaml(path) or {}, name=Path(path).stem)
