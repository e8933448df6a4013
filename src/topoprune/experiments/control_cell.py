"""The prune stage of a control cell: a method's layer budget, filled by another choice.

A control cell ``<method>+<control>`` at (model, sparsity, seed) reads the prune record of its
method's cell at the same (model, sparsity, seed), takes from it how much each layer lost, and
applies the control (:func:`topoprune.pruning.controls.apply_control`) to the dense baseline that
cell started from, seeded by the cell's seed. Recovery and measurement then run exactly as for
the method's cells (:func:`topoprune.experiments.cell.run_cell`), so the two differ only in which
units or weights each layer kept.

For an iterative trajectory (IMP or T-IMP with ``fraction``) the method's model is its round's
mask, rewound to the trajectory's initialisation and trained. The control takes that mask's
per-layer counts and fills them from the trajectory's dense round (round 0: the network the
method started from; ``magnitude-at-budget`` ranks its ``|w|``), rewinds its mask to the same
initialisation and trains it with the same recipe, seed and epochs, before the same recovery.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from typing import Any

import torch

from ..errors import TopopruneError
from ..train.scoped import seeded_rng
from .config import ExperimentConfig, MethodSpec
from .stages import baseline_source, load_baseline, prepare
from .store import RunStore

__all__ = ["control_prune", "saved_result", "now_iso"]


def now_iso() -> str:
    """The current time, ISO 8601 with its UTC offset (the times rows and records carry)."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def saved_result(record: dict, *, structured: bool, masks: dict[str, torch.Tensor] | None = None) -> Any:
    """The pruning result a cell's prune record describes, enough for a control: a
    :class:`~topoprune.StructuredResult` from ``info`` (structured), an
    :class:`~topoprune.UnstructuredResult` from the last round's layers (one-shot), or from
    ``masks`` (layer -> mask of the saved model: a trajectory, whose rounds record fractions)."""
    from ..pruning.filters import LayerStructured, StructuredResult
    from ..pruning.masks import LayerUnstructured, UnstructuredResult

    if structured:
        info = record["info"]
        fields = {f.name for f in dataclasses.fields(LayerStructured)}
        shape = info.get("input_shape")
        return StructuredResult(
            method=info["method"], input_shape=tuple(shape) if shape is not None else None,
            layers=[LayerStructured(**{k: v for k, v in x.items() if k in fields}) for x in info["layers"]],
            steps=info.get("steps", []), params=(info["params"]["before"], info["params"]["after"]),
            macs=(info["macs"]["before"], info["macs"]["after"]),
            flops=(info["flops"]["before"], info["flops"]["after"]), seconds=info.get("seconds", 0.0))
    if masks is not None:
        out = UnstructuredResult(record.get("method", "trajectory"), "global", None)
        for name, mask in masks.items():
            total, kept = int(mask.numel()), int(mask.sum())
            out.layers.append(LayerUnstructured(name, total, total, kept))
        return out
    last = record["rounds"][-1]
    fields = {f.name for f in dataclasses.fields(LayerUnstructured)}
    return UnstructuredResult(last.get("method", "method"), last.get("scope", "global"), last.get("preserve"),
                              layers=[LayerUnstructured(**{k: v for k, v in x.items() if k in fields})
                                      for x in last["layers"]])


def control_prune(config: ExperimentConfig, store: RunStore, cell, spec: MethodSpec, *, train_config,
                  recovery_config, device: str | None, progress: bool) -> tuple[Any, dict, list[dict]]:
    """The control's pruned model, its prune record and (structured) the removal steps to save.

    ``train_config`` and ``recovery_config`` are the cell's recipes (its seed), from which an
    iterative method's round recipe is derived.
    """
    from ..pruning.controls import apply_control, layer_counts

    started = now_iso()
    method_cell = cell.of
    record = store.read_json(f"{method_cell.folder}/prune.json")
    if record is None:
        raise TopopruneError(f"cell {cell.key} needs its method's cell {method_cell.key} pruned first; rerun the "
                             "same command (control cells run after every method cell)")
    key = config.baseline_key(cell.model, cell.seed)
    dense = load_baseline(store, key)
    source, prior_steps = baseline_source(store, key)
    t0 = time.perf_counter()
    trajectory = bool(record.get("trajectory"))
    masks = None
    if trajectory:  # the method pruned the trajectory's own dense round, not the baseline
        masks = _saved_masks(store, method_cell, record)
        dense.load_state_dict(_round_state(store, cell, 0))
    elif not spec.structured and not _recorded_layers(record):  # a method of one's own that records no counts
        masks = _saved_masks(store, method_cell, record)
    result = saved_result(record, structured=spec.structured, masks=masks)
    if spec.structured:
        inputs = None
        if getattr(dense, "meta", None) is None:  # traced with the inputs the method's cell used
            inputs = source.get("example_inputs", prepare(config, config.model(cell.model)).train_x[:2])
        with seeded_rng(cell.seed):
            model, out = apply_control(dense, result, cell.control, seed=cell.seed, example_inputs=inputs)
        body: dict = {"info": out.to_dict()}
        steps = prior_steps + out.steps
    else:
        with seeded_rng(cell.seed):
            model, out = apply_control(dense, result, cell.control, seed=cell.seed)
        body = {"rounds": [out.to_dict()], "targets": list(record["targets"]), "warnings": out.warnings}
        steps = []
        if trajectory:
            body["retrain"] = _retrain(config, store, cell, spec, model, record, train_config=train_config,
                                       recovery_config=recovery_config, device=device, progress=progress)
    counts = layer_counts(out)
    wanted = layer_counts(result)
    if counts != wanted:
        raise TopopruneError(f"cell {cell.key}: the control removed {counts}, its method {wanted}")
    return model, {"seconds": time.perf_counter() - t0, "started": started, "control": cell.control,
                   "of": cell.method, "counts": counts, **body}, steps


def _recorded_layers(record: dict) -> bool:
    """Whether an unstructured prune record holds its per-layer counts (topoprune's methods record
    them in ``rounds``; a method of one's own need not)."""
    rounds = record.get("rounds")
    return bool(isinstance(rounds, list) and rounds and isinstance(rounds[-1], dict) and rounds[-1].get("layers"))


def _saved_masks(store: RunStore, method_cell, record: dict) -> dict[str, torch.Tensor]:
    """Each targeted layer's mask in the method cell's saved model (``masked.pt``)."""
    state = torch.load(store.path(f"{method_cell.folder}/masked.pt"), map_location="cpu", weights_only=True)
    masks = {}
    for name in record["targets"]:
        # <module>.weight_mask; nn.MultiheadAttention's <module>.in_proj keeps <module>.in_proj_weight_mask
        mask = state.get(f"{name}.weight_mask", state.get(f"{name}_weight_mask"))
        if mask is None:
            raise TopopruneError(f"{method_cell.folder}/masked.pt has no mask for layer {name!r}; rerun with "
                                 "--repair to redo that cell")
        masks[name] = mask
    return masks


def _round_state(store: RunStore, cell, k: int) -> dict:
    """The trained weights of round ``k`` of the trajectory the control cell's method ran."""
    path = store.path(f"{cell.trajectory}/round{k:02d}/checkpoint.pt")
    if not path.is_file():
        raise TopopruneError(f"cell {cell.key}: {cell.trajectory}/round{k:02d}/checkpoint.pt is missing; rerun with "
                             "--repair to redo the trajectory and its cells")
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _retrain(config: ExperimentConfig, store: RunStore, cell, spec: MethodSpec, model, record: dict, *,
             train_config, recovery_config, device: str | None, progress: bool) -> dict:
    """Rewind the control's masked ``model`` to the trajectory's initialisation and train it as the
    method's last round trained (same recipe, seed and epochs); checkpointed under ``retrain/``,
    so a killed cell resumes mid-way. Returns the training record."""
    from ..pruning.masks import prunable_layers
    from ..pruning.schedules import rewind_weights
    from ..train import train

    cfg = spec.method.round_recipe(train_config, recovery_config)
    path = store.path(f"{cell.trajectory}/init.pt")
    if cfg is None or not path.is_file():
        raise TopopruneError(f"cell {cell.key}: the trajectory of {cell.method!r} has no initialisation "
                             f"({cell.trajectory}/init.pt) to rewind the control to; rerun with --repair")
    init = torch.load(path, map_location="cpu", weights_only=True)
    rewind_weights(model, prunable_layers(model, record["targets"]), init)
    data = prepare(config, config.model(cell.model))
    result = train(model, data, cfg, out_dir=store.path(f"{cell.folder}/retrain"), progress=progress,
                   description=f"{cell.key} retrain", device=device)
    return {"epochs": cfg.epochs, "rewind": "init", "final": dict(result.final),
            "seconds": sum(h["seconds"] for h in result.history)}
