"""The damage study: does topology explain recoverability (Perera 2022's claim)?

``topoprune study damage CONFIG`` takes a trained model (trained here from the config's recipe,
or loaded from ``model.checkpoint``), and for every sparsity draws candidate whole-network
prunings:

- ``damage.random.count`` random ones (structured: a random unit set per targeted layer;
  unstructured: random weights per layer); with ``spread`` > 0 each layer keeps ``d ** (1 + u)``
  of its units or weights (``d`` the target density, ``u`` uniform in +- spread), rescaled so the
  whole network meets the target;
- each method's choice (``methods``: L1, FPGM, Betti, the Topological Pruner with each fitness
  kind, SynFlow, magnitude with ``preserve: mst``, ...).

Each candidate gets every score of :mod:`.damage_scores` (computed on the dense model and the
pruned one, before any retraining) and every outcome: test accuracy right after pruning (raw),
after re-estimating BatchNorm statistics (``recovery.recalibrate_bn`` batches; equal to raw
without BN), after each of ``damage.epochs`` recovery epochs, and the epochs to come within
``recovery.tolerance`` of the dense accuracy (capped at ``recovery.epochs``; a candidate that
never did counts as ``recovery.epochs + 1``). :mod:`.damage_stats` then correlates every score
with every outcome per sparsity (Spearman, Kendall, paired bootstrap intervals) and writes one
computed sentence per outcome.

Run folder ``<out>/<name>-<digest>/`` (a :class:`~topoprune.experiments.store.RunStore`: lock,
manifest, atomic writes)::

    config.json, manifest.jsonl, run.lock, log.txt
    baseline/<model>/                     the trained dense model (as ``topoprune compare``)
    candidates/s<sparsity>/<id>/
        candidate.json                    removal, scores, accuracy raw / recalibrated
        masked.pt                         (unstructured) the masks
        recovery/                         checkpointed every epoch
        row.json                          the candidate's result row
    results.jsonl                         one row per candidate
    correlations.json, report.md, report.html, *.png

A killed study (even ``kill -9``) resumes at the candidate and epoch where it stopped.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from ...errors import TopopruneError

__all__ = ["DamageConfig", "parse_damage_config", "load_damage_config", "run_damage_study",
           "build_damage_report", "damage_summary", "outcome_labels"]

RANDOM_PREFIX = "random-"
RANDOM_ID = r"random-[0-9]+"  # a random candidate's id; no method label may look like one
RANDOM_SOURCE = "random"  # a random candidate's ``source`` (a method's choice: "method")


@dataclass(frozen=True)
class DamageConfig:
    """A validated damage-study config: ``experiment`` is the model / data / recipe part (an
    :class:`~topoprune.experiments.config.ExperimentConfig`, so training and its checks are
    shared with ``compare``), the rest the study's own settings."""

    experiment: Any
    kind: str
    random_count: int
    spread: float
    epochs: tuple[int, ...]
    scores: tuple[str, ...]
    sample: int
    resamples: int
    level: float

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def seed(self) -> int:
        return self.experiment.seeds[0]

    def to_dict(self) -> dict:
        return {"experiment": self.experiment.to_dict(),
                "damage": {"kind": self.kind, "random": {"count": self.random_count, "spread": self.spread},
                           "epochs": list(self.epochs), "scores": list(self.scores), "sample": self.sample,
                           "bootstrap": {"resamples": self.resamples, "level": self.level}}}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def outcomes(self) -> dict[str, str]:
        """Outcome key -> label, in report order."""
        return outcome_labels(self.epochs, self.experiment.recovery.epochs, self.experiment.recovery.tolerance)


def outcome_labels(epochs: Sequence[int], cap: int, tolerance: float) -> dict[str, str]:
    labels = {"acc-raw": "accuracy right after pruning", "acc-recal": "accuracy after BN recalibration"}
    labels.update({f"acc-{k}ep": f"accuracy after {k} recovery epoch{'s' if k > 1 else ''}" for k in epochs})
    labels["epochs-to-recover"] = f"epochs to reach dense - {tolerance:g} (cap {cap}; not reached = {cap + 1})"
    return labels


def _damage_layout():
    """The ``damage:`` section's pydantic model (built on first use)."""
    from typing import Annotated

    from pydantic import Field, field_validator

    from ..config import _Spec

    class RandomSpec(_Spec):
        count: int = Field(40, ge=0, le=100_000, description="random candidates per sparsity")
        spread: float = Field(0.0, ge=0, lt=1, description="each layer keeps d^(1+u) of its units or weights, u uniform in +- spread (d: the target density), rescaled to the target")

    class BootstrapSpec(_Spec):
        resamples: int = Field(1000, ge=100, le=100_000)
        level: float = Field(0.95, gt=0.5, lt=1)

    class DamageSpec(_Spec):
        kind: Literal["structured", "unstructured"] | None = Field(None, description="default: the methods' kind")
        random: RandomSpec = RandomSpec()
        epochs: list[Annotated[int, Field(ge=1, le=100_000)]] = Field([1, 3], min_length=1, max_length=64)
        scores: list[str] | None = Field(None, description="default: every registered score of the kind")
        sample: int = Field(256, ge=8, le=100_000, description="training inputs the activation and Betti scores see")
        bootstrap: BootstrapSpec = BootstrapSpec()

        @field_validator("epochs")
        @classmethod
        def _distinct(cls, values: list[int]) -> list[int]:
            if len(set(values)) != len(values):
                raise ValueError("distinct epoch counts")
            return sorted(values)

    return DamageSpec


def parse_damage_config(data: Any, name: str | None = None) -> DamageConfig:
    """Validate a damage-study mapping: a ``compare`` config (one model, one seed) plus a
    ``damage`` section; every error is one line naming the field and what is allowed."""
    from pydantic import ValidationError

    from ...pruning.methods import format_validation_error
    from ..config import parse_config
    from .damage_scores import DAMAGE_SCORES, list_damage_scores

    if not isinstance(data, dict):
        raise TopopruneError(f"damage study config: bad value {type(data).__name__}; allowed: a mapping "
                             "(name, dataset, model, train, methods, sparsities, seeds, recovery, damage)")
    data = dict(data)
    section = data.pop("damage", None) or {}
    if "models" in data and not (isinstance(data["models"], list) and len(data["models"]) == 1):
        n = len(data["models"]) if isinstance(data["models"], list) else type(data["models"]).__name__
        raise TopopruneError(f"damage study config field models: bad value ({n} models); allowed: exactly one "
                             "model, as `model:` or a one-item `models:` (the study looks at one trained network)")
    if "analyses" in data:
        raise TopopruneError("damage study config field analyses: not used by the damage study; remove it")
    experiment = parse_config(data, name)
    if experiment.nproc > 1:
        raise TopopruneError("damage study config field train.distributed: not supported by the damage study "
                             "(its baseline and candidates train in one process); remove it")
    if experiment.budget is not None:
        raise TopopruneError("damage study config field budget: not used by the damage study (candidates are "
                             "pruned at each sparsity); remove it")
    if experiment.controls:
        raise TopopruneError("damage study config field controls: not used by the damage study (its random "
                             "candidates are its control); remove it")
    if experiment.seed_each:
        raise TopopruneError("damage study config field train.seed: bad value 'each'; allowed: an integer (the "
                             "study looks at one trained network)")
    if len(experiment.seeds) != 1:
        raise TopopruneError(f"damage study config field seeds: bad value {list(experiment.seeds)}; allowed: "
                             "one seed (it seeds the random candidates, the methods and recovery)")
    try:
        spec = _damage_layout().model_validate(section)
    except ValidationError as exc:
        raise TopopruneError(f"damage study config field damage.{format_validation_error(exc)}") from None
    kinds = {"structured" if m.structured else "unstructured" for m in experiment.methods}
    kind = spec.kind or (kinds.pop() if len(kinds) == 1 else None)
    if kind is None:
        raise TopopruneError("damage study config field methods: structured and unstructured methods mixed; "
                             "allowed: methods of one kind (candidates of one study must be comparable)")
    for i, m in enumerate(experiment.methods):
        if m.structured != (kind == "structured"):
            raise TopopruneError(f"damage study config field methods[{i}]: {m.name!r} is not {kind} (damage.kind)")
        if m.method.needs().training:
            raise TopopruneError(f"damage study config field methods[{i}]: {m.name!r} trains while it prunes; "
                                 "allowed: methods that prune a trained model in one go (the outcomes measure "
                                 "recovery from the candidate)")
    for i, m in enumerate(experiment.methods):
        if _is_random(m.key):
            raise TopopruneError(f"damage study config field methods[{i}].label: bad value {m.key!r}; allowed: a "
                                 "label that does not look like a random candidate's id (random-<number>)")
    cap = experiment.recovery.epochs
    if max(spec.epochs) > cap:
        raise TopopruneError(f"damage study config field damage.epochs: bad value {spec.epochs}; allowed: "
                             f"epoch counts up to recovery.epochs ({cap})")
    known = list_damage_scores(kind)
    scores = spec.scores if spec.scores is not None else known
    for s in scores:
        if s not in known:
            extra = " (registered, but not for this kind)" if s in DAMAGE_SCORES else ""
            raise TopopruneError(f"damage study config field damage.scores: bad value {s!r}{extra}; allowed: "
                                 f"{', '.join(known)}")
    if len(set(scores)) != len(scores) or not scores:
        raise TopopruneError(f"damage study config field damage.scores: bad value {scores}; allowed: distinct names")
    if spec.random.count + len(experiment.methods) < 4:
        raise TopopruneError("damage study config field damage.random.count: too few candidates; allowed: "
                             "random.count + methods >= 4 (a rank correlation needs several)")
    return DamageConfig(experiment, kind, spec.random.count, float(spec.random.spread), tuple(spec.epochs),
                        tuple(scores), spec.sample, spec.bootstrap.resamples, float(spec.bootstrap.level))


def load_damage_config(path: str | Path) -> DamageConfig:
    """Read and validate a damage-study YAML file (a shipped name like ``digits-damage`` works)."""
    from ..config import read_yaml, resolve_config_path

    path = resolve_config_path(path)
    return parse_damage_config(read_yaml(path, "damage study config"), Path(path).stem)


# --- candidates ------------------------------------------------------------------------------------


def _given_method(removed: dict[str, list[int]]):
    """A structured method that removes exactly ``removed`` (a candidate rebuilt from its record)."""
    from ...pruning.methods import StructuredMethod

    class Given(StructuredMethod):
        name: ClassVar[str] = "candidate"
        summary: ClassVar[str] = "a fixed removal (a damage-study candidate)"
        units: dict[str, list[int]] = {}

        def sets_own_counts(self) -> bool:
            return True  # the recorded removal, whatever the layer's sparsity

        def choose(self, ctx, layer):
            return self.units.get(layer.name, [])

    return Given(units={k: list(v) for k, v in removed.items()})


@contextmanager
def _silenced():
    """Pruning warns about what it left alone (budgets, tied weights): in a study of hundreds of
    candidates those notes are the same every time, and the candidate's record keeps the counts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclass
class _Setting:
    """What every candidate of one sparsity shares."""

    sparsity: float
    dense: Any
    data: Any
    ctx: Any  # DamageContext (its .sample is the scores' data sample)
    units: dict[str, int]  # structured: targeted layers that can lose units -> unit count


def _structured_removed(info) -> dict[str, list[int]]:
    return {x.name: sorted(set(range(x.before)) - set(x.kept)) for x in info.layers if x.after < x.before}


def _prune_structured(dense, method, sparsity: float, seed: int, data, example) -> tuple[Any, dict[str, list[int]], dict]:
    """Prune a copy of ``dense`` with ``method``; a method that looks at outputs gets the sample
    ``compare`` would give it (its own size, the same seed), so its choice is the one a comparison
    of the same baseline makes."""
    from ...pruning import prune_units

    needs = method.needs()
    inputs = data.sample(needs.sample, seed) if needs.sample else None
    with _silenced():
        model, info = prune_units(dense, example, method=method, sparsity=sparsity, seed=seed, data_sample=inputs)
    return model, _structured_removed(info), {"params": list(info.params), "macs": list(info.macs)}


def _random_shares(sizes: np.ndarray, target: float, spread: float, rng: np.random.Generator, *,
                   most: float) -> np.ndarray:
    """Per-layer sparsities around ``target``: each layer keeps ``d ** (1 + u)`` of its units or
    weights (``d = 1 - target``, ``u`` uniform in +- spread), then all are rescaled by one factor
    (bisection) so that the size-weighted mean is the target, each sparsity at most ``most``. On
    the density's log scale, so a spread means as much at 0.99 as at 0.5."""
    if spread == 0:
        return np.full(sizes.size, target)
    d = 1 - target
    dens = d ** (1 + rng.uniform(-spread, spread, size=sizes.size))
    floor = 1 - most
    want = d * sizes.sum()
    lo, hi = 0.0, 1.0 / dens.min()
    for _ in range(60):
        mid = (lo + hi) / 2
        if (np.clip(mid * dens, floor, 1.0) * sizes).sum() < want:
            lo = mid
        else:
            hi = mid
    return 1 - np.clip(hi * dens, floor, 1.0)


def _make_candidate(config: DamageConfig, setting: _Setting, cid: str):
    """Build candidate ``cid`` from scratch: (pruned model, removed units or None, info)."""
    from ...pruning.apply import apply_method
    from ...pruning.masks import prune_weights
    from ...pruning.methods import ApplyRequest
    from ...train.scoped import seeded_rng

    s, seed = setting.sparsity, config.seed
    if _is_random(cid):
        i = int(cid[len(RANDOM_PREFIX):])
        rng = np.random.default_rng([seed, int(round(s * 1e6)), i])
        names = list(setting.units if config.kind == "structured" else setting.ctx.targets)
        sizes = np.array([setting.units[n] if config.kind == "structured" else setting.ctx.targets[n]
                          for n in names], dtype=float)
        shares = _random_shares(sizes, s, config.spread, rng, most=0.95 if config.kind == "structured" else 0.999)
        if config.kind == "structured":
            removed = {}
            for n, size, share in zip(names, sizes.astype(int), shares):
                k = min(int(size * share), size - 1)
                if k > 0:
                    removed[n] = sorted(int(j) for j in rng.choice(size, k, replace=False))
            model, removed, info = _prune_structured(setting.dense, _given_method(removed), s, seed, setting.data,
                                                     setting.ctx.example_inputs)
            return model, removed, info
        model = copy.deepcopy(setting.dense)
        with _silenced():
            for n, size, share in zip(names, sizes.astype(int), shares):
                prune_weights(model, amount=int(round(size * share)), method="random-weights", scope="local",
                              layers=[n], seed=int(rng.integers(2**31)), inplace=True)
        return model, None, {}
    spec = config.experiment.method(cid)
    if config.kind == "structured":
        return _prune_structured(setting.dense, spec.method, s, seed, setting.data, setting.ctx.example_inputs)
    model = copy.deepcopy(setting.dense)
    needs = spec.method.needs()
    request = ApplyRequest(  # what a compare cell hands the method (cell.py), for the same choice
        sparsity=s, seed=seed, sample=setting.data.sample(needs.sample, seed) if needs.sample else None,
        example_inputs=setting.ctx.example_inputs if getattr(model, "meta", None) is None else None)
    with _silenced(), seeded_rng(seed):
        outcome = apply_method(spec.method, model, request)
    return outcome.model, None, {}


def _rebuild(config: DamageConfig, setting: _Setting, store, folder: str, record: dict):
    """The candidate's pruned model from its saved record (no search is re-run)."""
    import torch

    from ...pruning.masks import ensure_masks, prunable_layers

    if config.kind == "structured":
        model, _, _ = _prune_structured(setting.dense, _given_method(record["removed"]), setting.sparsity,
                                        config.seed, setting.data, setting.ctx.example_inputs)
        return model
    model = copy.deepcopy(setting.dense)
    ensure_masks(prunable_layers(model, list(setting.ctx.targets)).values())
    model.load_state_dict(torch.load(store.path(f"{folder}/masked.pt"), map_location="cpu", weights_only=True))
    return model


# --- running ---------------------------------------------------------------------------------------


def _candidate_ids(config: DamageConfig) -> list[str]:
    width = max(3, len(str(max(config.random_count - 1, 0))))
    return [f"{RANDOM_PREFIX}{i:0{width}d}" for i in range(config.random_count)] + [m.key for m in config.experiment.methods]


def _key(sparsity: float) -> str:
    """A sparsity as a folder and JSON key: every digit (``%g`` would merge 0.9990234375 with
    0.999023)."""
    return repr(float(sparsity))


def _is_random(cid: str) -> bool:
    """A random candidate's id (``random-007``), not a method's key (``random``, ``random-weights``)."""
    import re

    return re.fullmatch(RANDOM_ID, cid) is not None


def _folder(sparsity: float, cid: str) -> str:
    return f"candidates/s{_key(sparsity)}/{cid}"


def run_damage_study(config: DamageConfig, out: str | Path = "runs", *, quiet: bool = False, report: bool = True,
                     device: str | None = None, command: str | None = None, repair: bool = False) -> Path:
    """Run (or resume) the damage study and write its report; returns the run folder.

    ``device``: where the baseline and the recovery epochs train (``"cpu"``, ``"cuda"``, ...);
    scores, pruning and accuracy right after pruning are measured on the CPU. Not part of the
    config: a study started on one device resumes on another.

    A sealed file that no longer matches the run's manifest (edited, truncated, deleted) stops
    the study with one line naming it; with ``repair`` the candidates it belongs to are redone
    (a damaged baseline: the baseline and every candidate, all pruned from it)."""
    from ...train import resolve_device
    from ..runner import preflight
    from ..store import RunStore, run_session

    if not isinstance(config, DamageConfig):
        raise TopopruneError(f"config must be a DamageConfig (see load_damage_config), got {type(config).__name__}")
    device = None if device is None else str(resolve_device(device))
    preflight(config.experiment, out)
    data_n = _train_size(config)
    if config.sample > data_n:
        raise TopopruneError(f"damage study config field damage.sample: bad value {config.sample}; allowed: at "
                             f"most {data_n} (the training inputs)")
    run_dir = Path(out) / f"{config.name}-{config.digest()}"
    store = RunStore(run_dir)
    with run_session(store, f"study damage {config.name}"):
        _run(config, store, quiet=quiet, device=device, command=command, repair=repair)
        if report:
            build_damage_report(run_dir)
    return run_dir


def _train_size(config: DamageConfig) -> int:
    from ..stages import prepare

    return int(prepare(config.experiment, config.experiment.models[0]).train_x.shape[0])


def _repair(store, damaged, log) -> None:
    """Remove what the damaged files make untrustworthy, so this run redoes it: a candidate's
    file takes its whole folder (its choice, scores and recovery), the baseline takes itself and
    every candidate folder, sealed or not. The results and correlations, derived from the rows, go too; the run
    rewrites them after each sparsity."""
    stages = {entry["stage"] for entry in store.manifest().values()}
    redo: dict[str, tuple[str, ...]] = {}
    for d in damaged:
        if d.stage.startswith("baseline/"):
            redo[d.stage] = (d.stage,)
            # every candidate was pruned from it: the sealed ones by stage, and the whole folder, so a
            # candidate.json written but not yet sealed (a kill in between) cannot be reused either
            redo.update({s: (s.rsplit("/", 1)[0],) for s in stages if s.startswith("candidates/")})
            redo["candidates"] = ("candidates",)
        elif d.stage.startswith("candidates/"):
            folder = d.stage.rsplit("/", 1)[0]
            redo.update({f"{folder}/{stage}": (folder,) for stage in ("prune", "measure")})
        else:
            redo[d.stage] = ()
    for stage, paths in sorted(redo.items()):
        gone = store.invalidate(stage, paths)
        if gone:
            log.info("repair: removed %s (%d file(s)) to redo it", stage, len(gone))
    store.invalidate("results", ["results.jsonl", "correlations.json"])


def _run(config: DamageConfig, store, *, quiet: bool, device: str | None, command: str | None,
         repair: bool = False) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ...train.scoped import set_threads
    from ..stages import baseline_stage, load_baseline, prepare
    from ..store import package_versions, run_log

    log = run_log(store.root)
    damaged = store.claim_config(config.to_dict(), repair=repair)
    if damaged and not repair:
        listed = "; ".join(f"{d.path} ({d.reason})" for d in damaged[:3])
        more = f" and {len(damaged) - 3} more" if len(damaged) > 3 else ""
        raise TopopruneError(f"{len(damaged)} artefact(s) of {store.root} do not match the manifest: {listed}{more}; "
                             "rerun with --repair to redo the candidates (or the baseline) they belong to")
    if damaged:
        _repair(store, damaged, log)
    store.write_json("run.json", {"command": command or " ".join(["topoprune", *sys.argv[1:]]),
                                  "versions": {"python": platform.python_version(), **package_versions()}, "machine": platform.platform(),
                                  "processor": platform.processor() or platform.machine()})
    set_threads()
    exp = config.experiment
    spec = exp.models[0]
    ids = _candidate_ids(config)
    total = len(ids) * len(exp.sparsities)
    done = sum(store.path(f"{_folder(s, c)}/row.json").is_file() for s in exp.sparsities for c in ids)
    log.info("damage study %s: %d of %d candidates done", store.root.name, done, total)
    rows = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=quiet, transient=False) as bar:
        baseline = baseline_stage(exp, store, spec, log=log, progress=not quiet, device=device)
        dense = load_baseline(store, spec.key).eval()
        data = prepare(exp, spec)
        example = _example_inputs(store, spec.key, dense, data)
        task = bar.add_task("damage study", total=total, completed=done)
        for s in exp.sparsities:
            setting = None
            for cid in ids:
                folder = _folder(s, cid)
                row = store.read_json(f"{folder}/row.json")
                if row is None:
                    bar.update(task, description=f"s{s:g} {cid}")
                    if setting is None:
                        setting = _setting(config, dense, data, s, example)
                    row = _candidate(config, setting, store, folder, cid, baseline, device, log)
                    bar.advance(task)
                rows.append(row)
            # every finished sparsity is analysed at once: a study stopped later still has it
            store.write_bytes("results.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
            store.write_json("correlations.json", _correlations(config, rows))
    log.info("damage study %s: %d rows", store.root.name, len(rows))


PROBE_SPARSITY = 0.9  # high enough that every layer able to lose a unit does in the probe


def _example_inputs(store, key: str, dense, data):
    """The inputs to trace the dense model with: ``None`` for a registry model (its ``.meta``
    shape), else the ones its baseline folder was saved with (as ``compare`` does), else two
    training inputs."""
    from ...models.inputs import example_inputs_for
    from ..stages import baseline_source

    if getattr(dense, "meta", None) is not None:
        return example_inputs_for(dense, None)
    source, _ = baseline_source(store, key)
    return example_inputs_for(dense, source.get("example_inputs", data.train_x[:2]))


def _setting(config: DamageConfig, dense, data, sparsity: float, example) -> _Setting:
    """What the candidates of one sparsity share. Structured: the layers that can lose units are
    found by a probe prune at :data:`PROBE_SPARSITY` (so a method that prunes a layer L1 would not
    touch at this sparsity, e.g. Betti with a threshold, is still scored there); random candidates
    draw units in those layers, leaving layers coupled to another (a residual group) to their
    leader. ``example``: the inputs the model was traced with (a model without ``.meta``)."""
    from ...models.introspect import effective_weight
    from ...pruning.masks import prunable_layers
    from .damage_scores import DamageContext

    sample = data.sample(config.sample, config.seed)
    if config.kind == "structured":
        from ...pruning import prune_units

        with _silenced():
            _, info = prune_units(dense, example, method="l1", sparsity=PROBE_SPARSITY, seed=config.seed)
        units = {x.name: x.before for x in info.layers if x.after < x.before and "together" not in (x.note or "")}
        if not units:
            raise TopopruneError("no layer of the model can lose units (see prune_units' notes in its result); "
                                 "the structured damage study has nothing to compare")
        targets = {x.name: x.before for x in info.layers if x.after < x.before}
    else:
        units = {}
        targets = {n: int(effective_weight(m).numel()) for n, m in prunable_layers(dense).items()}
    ctx = DamageContext(model=dense, example_inputs=example, sample=sample, kind=config.kind, targets=targets,
                        seed=config.seed)
    return _Setting(sparsity, dense, data, ctx, units)


def _candidate(config: DamageConfig, setting: _Setting, store, folder: str, cid: str, baseline: dict,
               device: str | None, log) -> dict:
    """Score (or load the scores of) one candidate, then measure and recover it; returns its row."""
    from ...metrics import count_parameters
    from ...train import evaluate, recover
    from ...train.bn import batchnorm_layers, recalibrate_bn
    from .damage_scores import DAMAGE_SCORES, Candidate, layer_fraction_removed, layer_mass_removed

    exp, data = config.experiment, setting.data
    r = exp.recovery
    cfg = r.train_config(config.seed)
    scoring = {"batch_size": cfg.eval_batch_size, "precision": cfg.precision, "channels_last": cfg.channels_last}
    record = store.read_json(f"{folder}/candidate.json")
    store.path(folder).mkdir(parents=True, exist_ok=True)
    if record is None:
        t0 = time.perf_counter()
        model, removed, info = _make_candidate(config, setting, cid)
        prune_s = time.perf_counter() - t0
        cand = Candidate(cid, RANDOM_SOURCE if _is_random(cid) else "method", setting.sparsity, model, removed)
        t0 = time.perf_counter()
        scores = {}
        for name in config.scores:
            value = DAMAGE_SCORES.get(name).fn(setting.ctx, cand)
            scores[name] = None if value is None or not math.isfinite(value) else float(value)
        score_s = time.perf_counter() - t0
        model.eval()
        raw = evaluate(model, data.test_x, data.test_y, **scoring)[1]
        params = count_parameters(model)
        dense_params = setting.ctx.cached("params", lambda: count_parameters(setting.dense))  # shared with params-removed
        record = {"candidate": cid, "source": cand.source, "sparsity": setting.sparsity,
                  "removed": removed, "removed_units": {n: len(v) for n, v in (removed or {}).items()},
                  "scores": scores, "layer_mass_removed": layer_mass_removed(setting.ctx, cand),
                  "layer_fraction_removed": layer_fraction_removed(setting.ctx, cand),
                  "acc_raw": raw, "params": [dense_params[0], params[0]],
                  "nonzero_params": [dense_params[1], params[1]],
                  "prune_seconds": prune_s, "score_seconds": score_s, **({"prune": info} if info else {})}
        paths = [f"{folder}/candidate.json"]
        if config.kind == "unstructured":
            store.save_torch(f"{folder}/masked.pt", model.state_dict())
            paths.append(f"{folder}/masked.pt")
        store.finish(f"{folder}/prune", f"{folder}/candidate.json", record, paths[1:])
    else:
        model = _rebuild(config, setting, store, folder, record)
    batches = r.recalibrate_bn if batchnorm_layers(model) else 0
    recal = record["acc_raw"]
    if batches:
        recalibrate_bn(model, data, batches=batches, batch_size=r.batch_size, seed=config.seed,
                       precision=cfg.precision, channels_last=cfg.channels_last)
        recal = evaluate(model.eval(), data.test_x, data.test_y, **scoring)[1]
    t0 = time.perf_counter()
    result = recover(model, data, baseline["test_acc"], epochs=r.epochs, config=cfg, tolerance=r.tolerance,
                     out_dir=store.path(f"{folder}/recovery"), progress=False, device=device)
    curve = list(result.accuracy)
    reached = result.epochs_to_recover
    outcomes = {"acc-raw": record["acc_raw"], "acc-recal": recal}
    outcomes.update({f"acc-{k}ep": curve[k] for k in config.epochs})
    outcomes["epochs-to-recover"] = reached if reached is not None else r.epochs + 1
    row = {k: v for k, v in record.items() if k != "removed"}
    row.update({"seed": config.seed, "kind": config.kind, "model": exp.models[0].key, "dense_acc": baseline["test_acc"],
                "outcomes": outcomes, "recovered": reached is not None, "recovery_curve": curve,
                "bn_recalibration_batches": batches, "recovery_seconds": time.perf_counter() - t0})
    store.finish(f"{folder}/measure", f"{folder}/row.json", row, [f"{folder}/recovery"])
    log.info("%s: raw %.2f%%, recalibrated %.2f%%, after %d epoch(s) %.2f%%", folder, outcomes["acc-raw"], recal,
             r.epochs, curve[-1])
    return row


# --- statistics and report -------------------------------------------------------------------------


def _correlations(config: DamageConfig, rows: list[dict]) -> dict:
    from .damage_scores import score_direction, score_family
    from .damage_stats import BASELINE_SCORE, MIN_RANDOM_ONLY

    out = {"baseline": BASELINE_SCORE, "level": config.level, "resamples": config.resamples,
           "families": {s: score_family(s) for s in config.scores},
           "directions": {s: score_direction(s) for s in config.scores}, "outcomes": config.outcomes(), "sparsities": {}}
    for s in config.experiment.sparsities:
        these = [r for r in rows if r["sparsity"] == s]
        if not these:  # not reached yet
            continue
        out["sparsities"][_key(s)] = block = _analysed(config, these, out, s, subset=None)
        # the same over the random candidates alone: the method choices (L1, FPGM, the GA's...) sit
        # apart from the random ones in both score and outcome, and can carry a correlation that
        # does not hold among prunings of one kind; this asks whether a score still ranks those
        randoms = [r for r in these if r.get("source") == RANDOM_SOURCE]
        if len(randoms) >= MIN_RANDOM_ONLY:
            block["random_only"] = _analysed(config, randoms, out, s, subset=f"the {len(randoms)} random candidates only")
    return out


def _analysed(config: DamageConfig, rows: list[dict], out: dict, sparsity: float, *, subset: str | None) -> dict:
    """Correlations, family comparisons and verdict sentences over ``rows`` (one sparsity)."""
    from .damage_stats import analyse, verdicts

    scores = {name: [r["scores"].get(name) for r in rows] for name in config.scores}
    outcomes = {o: [r["outcomes"].get(o) for r in rows] for o in config.outcomes()}
    result = analyse(scores, outcomes, directions=out["directions"], families=out["families"],
                     resamples=config.resamples, level=config.level, seed=config.seed,
                     kendall_resamples=min(config.resamples, 300))
    partials = partial_block(rows, scores, outcomes, out, resamples=config.resamples, level=config.level,
                             seed=config.seed, sparsity=sparsity, labels=config.outcomes())
    return {"sparsity": sparsity, "n": len(rows), "correlations": [c.to_dict() for c in result.correlations],
            "families": [f.to_dict() for f in result.families],
            "verdicts": verdicts(result, outcome_labels=config.outcomes(), sparsity=sparsity, level=config.level,
                                 subset=subset), **partials}


def density_summary(rows: list[dict]) -> list[float] | None:
    """The largest per-layer fraction removed of each candidate: from ``layer_fraction_removed``;
    for results written before it was recorded, a constant when every candidate removed the same
    units per layer (a uniform structured budget), else None (not available)."""
    if all(r.get("layer_fraction_removed") for r in rows):
        return [max(r["layer_fraction_removed"].values()) for r in rows]
    counts = [r.get("removed_units") or None for r in rows]
    if all(counts) and all(c == counts[0] for c in counts):
        return [0.0] * len(rows)  # the same counts everywhere: constant, so it explains nothing
    return None


def partial_block(rows: list[dict], scores: dict, outcomes: dict, out: dict, *, resamples: int, level: float,
                  seed: int, sparsity: float, labels: dict) -> dict:
    """The partial correlations of the topological scores (controls: L1 mass removed and the
    density summary) and their sentences, for one sparsity's rows."""
    from .damage_partial import DENSITY_CONTROL, partial_correlations, partial_sentences
    from .damage_stats import BASELINE_SCORE, expected_sign

    controls = {}
    if BASELINE_SCORE in scores:
        controls[BASELINE_SCORE] = scores[BASELINE_SCORE]
    density = density_summary(rows)
    if density is not None:
        controls[DENSITY_CONTROL] = density
    signs = {(s, o): expected_sign(out["directions"].get(s, 0), o) for s in scores for o in outcomes}
    partials = partial_correlations(scores, outcomes, controls, families=out["families"], signs=signs,
                                    resamples=resamples, level=level, seed=seed)
    note = [] if density is not None else [
        f"Sparsity {sparsity:g}: the candidates' per-layer fractions removed are not in these results, so the "
        "partial correlations control for L1 mass removed only."]
    return {"partial": [p.to_dict() for p in partials],
            "partial_verdicts": note + partial_sentences(partials, outcome_labels=labels, sparsity=sparsity,
                                                         resamples=resamples)}


def damage_summary(run_dir: str | Path) -> dict:
    """The study's results as plain data: config, rows, correlations and verdicts (for the README
    and ``benchmarks/results``)."""
    from ..store import read_json_file

    run_dir = Path(run_dir)
    corr = read_json_file(run_dir / "correlations.json", "correlations file")
    if corr is None:
        raise TopopruneError(f"{run_dir} has no correlations.json yet; run `topoprune study damage` first")
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines() if x.strip()]
    return {"config": read_json_file(run_dir / "config.json"), "run": read_json_file(run_dir / "run.json"),
            "rows": rows, "correlations": corr,
            "verdicts": [v for s in corr["sparsities"].values() for v in s["verdicts"]],
            "verdicts_random_only": [v for s in corr["sparsities"].values()
                                     for v in (s.get("random_only") or {}).get("verdicts", [])]}


def build_damage_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` / ``report.html`` (tables, verdicts, scatter plots) from the run folder."""
    from .damage_report import write_damage_report

    return write_damage_report(Path(run_dir), damage_summary(run_dir))
