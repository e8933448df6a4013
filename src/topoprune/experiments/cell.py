"""One cell of a comparison, (model, method, sparsity, seed): 3. prune, 4. recover, 5. measure.

Stage 4 first measures the pruned model's test accuracy (``acc_pruned_raw``), re-estimates its
BatchNorm statistics (``recovery.recalibrate_bn`` training batches; :func:`~topoprune.train.
recalibrate_bn`) and recovers from that model: the recovery curve's first point is the
recalibrated accuracy (``acc_pruned_recal``). Training-mode BatchNorm normalizes with each batch's
own statistics, so recalibration changes no weight update of recovery; only the running
statistics differ, by ``(1 - momentum) ** steps`` of their first difference.

The cell knows no method by name: it asks the method what it needs (:class:`Needs`), hands it an
:class:`ApplyRequest`, and saves what comes back by kind (a smaller model for structured
methods, masks for unstructured ones). Each stage's artefacts are sealed in the manifest when the
stage ends (a stage found finished but unsealed is sealed by :func:`seal_finished` when a run
starts, so within a run a stage's marker alone says "done"); recovery checkpoints every epoch and
resumes mid-way.

A control cell (``<method>+<control>``) differs only in stage 3: it fills its method cell's layer
budget another way (:mod:`.control_cell`), then recovers and is measured the same way. Every
cell starts from the baseline of its seed (:meth:`ExperimentConfig.baseline_key`), and its row
records that baseline's training seed, the source commit, the package versions, and when the
cell started and finished.
"""

from __future__ import annotations


import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..train.scoped import seeded_rng
from .config import ExperimentConfig, MethodSpec
from .row import Row
from .stages import (analysis_path, baseline_dir, baseline_source, init_state, layer_summary, load_baseline,
                     median_latency, prepare)
from .store import RunStore, run_log

__all__ = ["Cell", "run_cell", "STAGES", "seal_finished"]

# what each stage of a cell writes (relative to the cell folder; the first is its marker, the record
# whose presence says "done"); removing them redoes the stage
STAGES: dict[str, tuple[str, ...]] = {
    "prune": ("prune.json", "pruned", "masked.pt", "imp", "retrain", "iterative"),
    "recover": ("recovery.json", "recovery"),
    "measure": ("row.json",),
}


@dataclass(frozen=True)
class Cell:
    """One (model, method, sparsity, seed) of the comparison, or with ``control`` the control
    of that method's cell (labelled ``<method>+<control>`` in folders, rows and reports)."""

    model: str
    method: str  # the method's key: its label if the config gives one, else its name
    sparsity: float
    seed: int
    control: str | None = None  # a control of the method's cell (``shuffle``, ``magnitude-at-budget``)

    @property
    def label(self) -> str:
        """What rows, folders and reports call this cell's method: its key, or ``<key>+<control>``."""
        return self.method if self.control is None else f"{self.method}+{self.control}"

    @property
    def of(self) -> "Cell":
        """The method cell this cell belongs to (itself for a method cell)."""
        return replace(self, control=None)

    @property
    def key(self) -> str:
        return f"{self.model}/{self.label}/s{self.sparsity:g}/seed{self.seed}"

    @property
    def folder(self) -> str:
        return f"cells/{self.key}"

    @property
    def row_key(self) -> tuple:
        """The key of this cell's result row (:func:`~topoprune.experiments.row.row_key`)."""
        return (self.model, self.label, self.sparsity, self.seed)

    def stage(self, name: str) -> str:
        return f"{self.folder}/{name}"

    @property
    def trajectory(self) -> str:
        """The folder of the IMP trajectory this cell's (model, method, seed) shares, if any."""
        return f"trajectories/{self.model}/{self.method}/seed{self.seed}"


def seal_finished(store: RunStore, cells: list[Cell], *, repair: bool = False) -> None:
    """Seal every finished stage of these cells that the manifest lacks (a kill between a
    marker and its seal, or a folder from before manifests), so that all of them are verified.
    An unsealed marker that is damaged is an error, or with ``repair`` is redone with the stages
    after it."""
    from ..errors import TopopruneError

    known = store.manifest()
    names = list(STAGES)
    for cell in cells:
        for i, name in enumerate(names):
            marker = f"{cell.folder}/{STAGES[name][0]}"
            paths = [f"{cell.folder}/{p}" for p in STAGES[name][1:]]
            try:
                store.done(cell.stage(name), marker, paths, known)
            except TopopruneError:
                if not repair:
                    raise
                for later in names[i:]:
                    store.invalidate(cell.stage(later), [f"{cell.folder}/{p}" for p in STAGES[later]])
                break


def _recipe(config: ExperimentConfig, seed: int):
    from ..train import TrainConfig

    return TrainConfig(**{**config.train, "seed": seed}), config.recovery.train_config(seed)


def _prune(config: ExperimentConfig, store: RunStore, cell: Cell, spec: MethodSpec, *,
           device: str | None, progress: bool):
    """Stage 3: returns (pruned model, prune record). A control cell fills its method cell's
    layer budget another way (:mod:`.control_cell`)."""
    from ..pruning.apply import apply_method
    from ..pruning.methods import ApplyRequest
    from .artifacts import load_model

    from ..pruning.masks import ensure_masks, prunable_layers

    folder = cell.folder
    key = config.baseline_key(cell.model, cell.seed)
    done = store.read_json(f"{folder}/prune.json")
    if done is not None:
        if spec.structured:
            return load_model(store.path(f"{folder}/pruned")), done
        model = load_baseline(store, key)
        ensure_masks(prunable_layers(model, done["targets"]).values())
        model.load_state_dict(torch.load(store.path(f"{folder}/masked.pt"), map_location="cpu",
                                         weights_only=True))
        return model, done
    train_cfg, recovery_cfg = _recipe(config, cell.seed)
    source, prior_steps = baseline_source(store, key)  # a model outside the registry
    if cell.control is not None:
        from .control_cell import control_prune

        model, record, steps = control_prune(config, store, cell, spec, train_config=train_cfg,
                                             recovery_config=recovery_cfg, device=device, progress=progress)
        _save_prune(store, cell, spec, model, record, steps, source)
        return model, record
    from .control_cell import now_iso

    started = now_iso()
    method = spec.method
    needs = method.needs()
    model = load_baseline(store, key)
    data = prepare(config, config.model(cell.model))
    request = ApplyRequest(
        sparsity=cell.sparsity, seed=cell.seed,
        sample=data.sample(needs.sample, cell.seed) if needs.sample else None,
        data=data if needs.training else None,
        train_config=train_cfg, recovery_config=recovery_cfg, device=device,
        workdir=store.path(folder),
        shared_dir=store.path(cell.trajectory) if needs.trajectory else None,
        init_state=init_state(store, key) if needs.training else None,
        progress=progress)
    if needs.labelled:
        request = replace(request, labelled=labelled_sample(data, needs.labelled, cell.seed))
    goal = config.target(cell.sparsity) if spec.structured else None
    if goal is not None and _wants_labels(spec):
        request = replace(request, target=goal, allocation=spec.allocation,
                          labelled=_labelled(config, data, cell.seed))
    elif goal is not None:
        request = replace(request, target=goal, allocation=spec.allocation)
    if getattr(model, "meta", None) is None:  # trace it with the inputs it was saved with
        request = replace(request, example_inputs=source.get("example_inputs", data.train_x[:2]))
    t0 = time.perf_counter()
    with seeded_rng(cell.seed):
        if spec.schedule is not None:
            outcome = _iterative(spec, model, request, data, store.path(f"{folder}/iterative"))
        else:
            outcome = apply_method(method, model, request)
    record = {"seconds": time.perf_counter() - t0, "started": started, **outcome.record}
    if needs.trajectory:  # the shared trajectory's rounds so far are artefacts too
        store.seal(cell.trajectory, [cell.trajectory])
    _save_prune(store, cell, spec, outcome.model, record, prior_steps + (outcome.steps or []), source)
    return outcome.model, record


def _iterative(spec: MethodSpec, model, request, data, out_dir):
    """A structured method with a ``schedule``: ``steps`` removals with ``epochs`` of fine-tuning
    (the recovery recipe) between them, resumable in the cell's ``iterative/`` folder."""
    from ..pruning.iterative import prune_units_iteratively
    from ..pruning.methods import PruneOutcome

    sched = spec.schedule
    if request.target is not None:
        amount = {"target": dict(request.target), "allocation": request.allocation or "uniform"}
    else:
        amount = {"sparsity": request.sparsity}
    labelled = request.labelled if (request.labelled is not None) else None
    pruned, result = prune_units_iteratively(
        model, data, method=spec.method, steps=sched["steps"], epochs=sched["epochs"],
        config=request.recovery_config, example_inputs=request.example_inputs, data_sample=request.sample,
        labelled_sample=labelled, seed=request.seed, out_dir=out_dir, device=request.device,
        progress=request.progress, **amount)
    # the record a control and the row read: the schedule as a whole, counted from the dense model
    return PruneOutcome(pruned, {"info": result.cumulative_info(), "schedule": {**sched, **result.to_dict()}},
                        steps=result.removals)


def _save_prune(store: RunStore, cell: Cell, spec: MethodSpec, model, record: dict, steps: list[dict],
                source: dict) -> None:
    """Write a cell's pruned model (structured: a pruned folder replaying ``steps``; unstructured:
    the masked state) and seal the stage with its record as the marker."""
    from .artifacts import save_pruned

    folder = cell.folder
    if spec.structured:
        save_pruned(model, store.path(f"{folder}/pruned"), steps=steps, info=record.get("info", {}), **source)
    else:
        store.save_torch(f"{folder}/masked.pt", model.state_dict())
    store.finish(cell.stage("prune"), f"{folder}/prune.json", record, [f"{folder}/{p}" for p in STAGES["prune"]])


def _budget_summary(record: dict | None) -> dict | None:
    """The compact part of a budget record for the row (the curves and candidate lists stay in
    the cell's prune.json)."""
    if not record:
        return None
    keep = ("allocation", "searched_by", "target", "importance", "predicted_fraction", "measured_fraction", "met")
    out = {k: record[k] for k in keep if k in record}
    out["removed"] = {k: v["removed"] for k, v in record.get("layers", {}).items()}
    out["units"] = {k: v["units"] for k, v in record.get("layers", {}).items()}
    return out


def _wants_labels(spec: MethodSpec) -> bool:
    """Whether a budget cell's allocation or method judges candidates on labelled data."""
    from ..pruning.allocation import resolve_allocation

    allocation = resolve_allocation(spec.allocation or "uniform")
    return bool(allocation.needs_data or getattr(spec.method, "data_weight", 0) > 0)


def _labelled(config: ExperimentConfig, data, seed: int) -> tuple:
    """``budget.data_samples`` training inputs and their labels, drawn with the cell's seed."""
    return labelled_sample(data, config.budget.data_samples, seed)


def labelled_sample(data, n: int, seed: int) -> tuple:
    """``n`` training inputs (at most all of them) and their labels, drawn with ``seed``."""
    from ..pruning.snip import draw_labelled

    return draw_labelled(data, n, seed)


def _dense_latency(analysis: dict, store: RunStore, key: str, shape) -> dict | None:
    """The dense model's latency for a row: the analysis stage's, unless it was measured with
    other threads than this cell has (a run resumed with another ``--workers``); then the dense
    model is timed again here, so that the row's speed-up compares like with like."""
    if analysis.get("latency_threads") in (None, torch.get_num_threads()):
        return analysis.get("latency_ms")
    return median_latency(load_baseline(store, key), shape)


def run_cell(run_dir: str | Path, config_dict: dict, cell: Cell, *, progress: bool = False,
             device: str | None = None) -> dict:
    """Stages 3-5 of one cell; returns its result row (written to ``row.json``). Training (the
    recovery, IMP rounds) runs on ``device``; pruning and measurements on the CPU."""
    from ..metrics import model_cost
    from ..train import recover
    from .config import parse_config

    from .control_cell import now_iso
    from .provenance import source_commit
    from .store import package_versions

    store = RunStore(run_dir)
    config = parse_config(config_dict)
    folder = cell.folder
    row = store.read_json(f"{folder}/row.json")
    if row is not None:
        return row
    began = now_iso()
    store.path(folder).mkdir(parents=True, exist_ok=True)
    log = run_log(store.root)
    spec = config.method(cell.method)
    data = prepare(config, config.model(cell.model))
    key = config.baseline_key(cell.model, cell.seed)
    baseline = store.read_json(f"{baseline_dir(key)}/baseline.json")
    analysis = store.read_json(analysis_path(key))
    model, prune_record = _prune(config, store, cell, spec, device=device, progress=progress)
    log.info("%s: pruned in %.2f s", cell.key, prune_record["seconds"])

    recovery = store.read_json(f"{folder}/recovery.json")
    if recovery is None:
        _, cfg = _recipe(config, cell.seed)
        r = config.recovery
        raw_acc, recalibration = _recalibrate(config, cfg, model, data, device)
        result = recover(model, data, baseline["test_acc"], epochs=config.recovery_epochs(cell.method, cell.control),
                         config=cfg,
                         tolerance=r.tolerance, out_dir=store.path(f"{folder}/recovery"), progress=progress,
                         device=device, nproc=config.nproc)
        recovery = {**result.to_dict(), "acc_pruned_raw": result.accuracy[0] if raw_acc is None else raw_acc,
                    "bn_recalibration": recalibration}
        store.finish(cell.stage("recover"), f"{folder}/recovery.json", recovery, [f"{folder}/recovery"])
        log.info("%s: %s", cell.key, _summary(recovery))
    else:  # the recovered weights live in the recovery checkpoint
        state = torch.load(store.path(f"{folder}/recovery/checkpoint.pt"), map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])

    shape = tuple(analysis["input_shape"])
    cost = model_cost(model, shape).to_dict()
    summary = layer_summary(model)
    dense_layers = analysis["layers"]
    compression = {n: (dense_layers[n]["nonzero"] / max(1, v["nonzero"])) for n, v in summary["layers"].items()
                   if n in dense_layers}
    diagram_layer = config.analyses.diagram_layer or _middle_layer(list(dense_layers))
    latency, dense_latency = None, analysis.get("latency_ms")
    if config.analyses.latency and spec.structured:
        latency = median_latency(model, shape)
        dense_latency = _dense_latency(analysis, store, key, shape)
    info = prune_record.get("info", {})
    collapse = None if spec.structured else _collapse(model, shape, load_baseline(store, key))
    row = Row(
        model=cell.model, method=cell.label, kind="structured" if spec.structured else "unstructured",
        algorithm=spec.name if spec.label or cell.control else None, sparsity=cell.sparsity, seed=cell.seed,
        control=cell.control, control_of=cell.method if cell.control else None,
        train_seed=config.train_seed(cell.seed),
        params=[baseline["cost"]["params"], cost["params"]],
        nonzero_params=[baseline["cost"]["nonzero_params"], cost["nonzero_params"]],
        macs=[baseline["cost"]["macs"], cost["macs"]],
        flops=[baseline["cost"]["flops"], cost["flops"]],
        latency_ms=[dense_latency, latency],
        dense_acc=baseline["test_acc"],
        acc_after_prune=recovery.get("acc_pruned_raw", recovery["accuracy"][0]),
        acc_pruned_raw=recovery.get("acc_pruned_raw", recovery["accuracy"][0]),
        acc_pruned_recal=recovery["accuracy"][0],
        bn_recalibration=recovery.get("bn_recalibration"),
        acc_after_recovery=recovery["accuracy"][-1],
        recovery_curve=recovery["accuracy"],
        epochs_to_recover=recovery["epochs_to_recover"],
        seconds_to_recover=recovery["seconds_to_recover"],
        prune_seconds=prune_record["seconds"],
        np_dense=analysis["np"], np_after=summary["np"],
        np_retained=summary["np_mean"] / analysis["np_mean"] if analysis["np_mean"] else None,
        compression=compression,
        diagram_layer=diagram_layer,
        diagram_deaths=summary["layers"].get(diagram_layer, {}).get("deaths", []),
        ga=info.get("extra", {}).get("topological"),
        imp_rounds=prune_record["rounds"] if prune_record.get("trajectory") else None,
        warnings=prune_record.get("warnings", []),
        collapse=collapse,
        budget=_budget_summary(info.get("extra", {}).get("budget")),
        train_settings=recovery.get("settings"),
        commit=source_commit(), versions=package_versions(),
        started=prune_record.get("started", began), finished=now_iso(), threads=torch.get_num_threads(),
    ).to_dict()
    store.finish(cell.stage("measure"), f"{folder}/row.json", row, [])
    return row


def _collapse(model, shape, dense) -> dict:
    """Layer collapse, connectivity, spanning tree kept (against the dense baseline's trees) and
    the sparsity against the critical compression ratios, for an unstructured cell
    (:func:`topoprune.analysis.collapse_report`). A model it cannot measure records why."""
    from ..analysis import collapse_report
    from ..errors import TopopruneError

    try:
        return collapse_report(model, input_shape=shape, reference=dense).to_dict()
    except TopopruneError as exc:
        return {"error": str(exc)}


def _recalibrate(config: ExperimentConfig, cfg, model, data, device: str | None) -> tuple[float | None, dict]:
    """Re-estimate the pruned model's BatchNorm statistics before recovery (``recovery.
    recalibrate_bn`` batches of the recovery's batch size, seeded by the cell: ``cfg``, the
    recovery's :class:`~topoprune.train.TrainConfig`, also gives the precision and memory layout).
    Returns the test accuracy measured before (``None`` when nothing was recalibrated: it is then
    the recovery's first point) and the recalibration record."""
    from ..train import evaluate
    from ..train.bn import NO_BATCHNORM, RecalibrationResult, batchnorm_layers, recalibrate_bn

    batches = config.recovery.recalibrate_bn
    layers = len(batchnorm_layers(model))
    if batches == 0:
        return None, RecalibrationResult(layers, 0, 0, "off (recovery.recalibrate_bn: 0)").to_dict()
    if layers == 0:
        return None, RecalibrationResult(0, 0, 0, NO_BATCHNORM).to_dict()
    speed = {"precision": cfg.precision, "channels_last": cfg.channels_last}
    raw = evaluate(model, data.test_x, data.test_y, batch_size=cfg.eval_batch_size, **speed)[1]
    record = recalibrate_bn(model, data, batches=batches, batch_size=cfg.batch_size, seed=cfg.seed,
                            device=device, **speed)
    return raw, record.to_dict()


def _summary(recovery: dict) -> str:
    if recovery["epochs_to_recover"] is not None:
        return f"recovered after {recovery['epochs_to_recover']} epoch(s)"
    return f"did not recover within {len(recovery['accuracy']) - 1} epochs"


def _middle_layer(names: list[str]) -> str:
    return names[len(names) // 2] if names else ""
