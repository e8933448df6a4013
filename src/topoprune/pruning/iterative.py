"""Iterative structured pruning: prune, fine-tune, prune again, for any structured method.

``steps`` removals reach the final sparsity (or target) geometrically: after step ``j`` of
``k`` each layer has lost ``int(units * (1 - (1 - s)^(j/k)))`` of its original units (under a
target: the model keeps ``kept^(j/k)`` of the dense count), and the last step lands exactly on
what a one-shot prune to ``s`` (or to the target) removes. Between steps the model fine-tunes
for ``epochs`` epochs; after the last step it does not (the caller recovers it, as after a
one-shot prune). Each step asks the method again on the current, already smaller, model: that
is the prune-finetune-prune loop Torch-Pruning users run by hand.

With ``out_dir`` every finished step is saved (its pruned model and the removals so far), and a
rerun continues after the last one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import TopopruneError
from .budgets import sparsity_for

__all__ = ["IterativeResult", "prune_units_iteratively", "step_counts", "step_fraction_kept"]


@dataclass
class IterativeResult:
    """What :func:`prune_units_iteratively` did: one record per step (its
    :class:`~topoprune.pruning.StructuredResult` as a dict, and the accuracy after its
    fine-tuning), and every removal in order (replayable with ``save_pruned``)."""

    steps: int
    epochs: int
    records: list[dict] = field(default_factory=list)
    removals: list[dict] = field(default_factory=list)
    target: dict | None = None  # the whole schedule's target ({"metric", "keep", "reduction"}), if any

    def to_dict(self) -> dict:
        return {"steps": self.steps, "epochs": self.epochs, "records": self.records}

    def cumulative_info(self) -> dict:
        """The whole schedule as one :class:`~topoprune.pruning.StructuredResult` dict, as a one-shot
        prune to the same model would report it: per layer the units before the first step, after
        the last, and the original indices kept (composed through the steps); parameters, MACs
        and FLOPs before the first step and after the last; every removal; the summed seconds."""
        if not self.records:
            raise TopopruneError("no step has run yet")
        first, last = self.records[0], self.records[-1]
        info = {k: v for k, v in last.items() if k not in ("step", "units", "dense_count", "acc_after_tuning")}
        kept: dict[str, list[int]] = {}
        before: dict[str, int] = {}
        for record in self.records:
            for layer in record["layers"]:
                name = layer["name"]
                if name not in kept:
                    before[name] = layer["before"]
                    kept[name] = list(range(layer["before"]))
                if layer["after"] < layer["before"]:
                    kept[name] = [kept[name][i] for i in layer["kept"]]
        layers = []
        for layer in last["layers"]:
            name = layer["name"]
            n0, n1 = before.get(name, layer["before"]), layer["after"]
            layers.append({**layer, "before": n0, "after": n1, "kept": kept.get(name, layer["kept"]),
                           "sparsity": (n0 - n1) / n0 if n0 else 0.0})
        info.update({"layers": layers, "steps": list(self.removals),
                     "params": {"before": first["params"]["before"], "after": last["params"]["after"]},
                     "macs": {"before": first["macs"]["before"], "after": last["macs"]["after"]},
                     "flops": {"before": first["flops"]["before"], "after": last["flops"]["after"]},
                     "seconds": sum(r.get("seconds", 0.0) for r in self.records)})
        budget = (last.get("extra") or {}).get("budget")
        if budget is not None and self.target is not None:  # the last step's budget is relative to its model
            from .targets import TOLERANCE

            metric = self.target["metric"]
            dense = first.get("dense_count") or first[metric]["before"]
            measured = last[metric]["after"]
            by_name = {x["name"]: x for x in layers}
            info["extra"] = {**info.get("extra", {}), "budget": {
                **budget, "target": dict(self.target), "dense": dense, "measured": measured,
                "measured_fraction": measured / dense, "met": abs(measured / dense / self.target["keep"] - 1) <= TOLERANCE,
                "layers": {k: {**v, "units": by_name[k]["before"], "removed": by_name[k]["before"] - by_name[k]["after"]}
                           if k in by_name else v for k, v in budget.get("layers", {}).items()},
                "schedule": "the whole schedule, counted from the dense model"}}
        return info


def step_counts(units: int, sparsity: float, steps: int) -> list[int]:
    """Cumulative units removed from a layer of ``units`` after each of ``steps`` steps: the
    geometric schedule, never decreasing, the last exactly ``int(units * sparsity)`` (at most
    ``units - 1``)."""
    final = min(int(units * sparsity), units - 1)
    out = []
    for j in range(1, steps + 1):
        c = final if j == steps else min(final, int(units * (1 - (1 - sparsity) ** (j / steps))))
        out.append(max(c, out[-1] if out else 0))
    return out


def step_fraction_kept(kept: float, step: int, steps: int) -> float:
    """The fraction of the dense count (FLOPs, MACs, parameters) kept after ``step`` of
    ``steps``: ``kept ** (step / steps)``, exactly ``kept`` at the last step."""
    return kept if step == steps else kept ** (step / steps)


def check_schedule(steps: int, epochs: int) -> None:
    """Refuse steps outside [2, 100] or fine-tuning epochs outside [0, 10000], in one line."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= 100:
        raise TopopruneError(f"steps: bad value {steps!r}; allowed: an integer in [2, 100] (1 step is a one-shot prune)")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 0 <= epochs <= 10_000:
        raise TopopruneError(f"epochs: bad value {epochs!r}; allowed: an integer in [0, 10000] (fine-tuning "
                             "epochs between steps)")


def _benign(note: str) -> bool:
    """A layer that was targeted and only removed nothing this step (its count rounds to 0)."""
    return not note or note.startswith("not pruned: int(") or note.startswith("kept 1 ")


def prune_units_iteratively(
    model: nn.Module,
    data: Any,
    *,
    method: Any = "l1",
    steps: int,
    epochs: int,
    sparsity: float | None = None,
    target: Mapping | None = None,
    config: Any = None,
    example_inputs: Any = None,
    allocation: Any = "uniform",
    layers: Any = None,
    exclude: Any = (),
    data_sample: Any = None,
    labelled_sample: tuple | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = False,
) -> tuple[nn.Module, IterativeResult]:
    """Prune ``model`` (a copy) in ``steps`` steps of :func:`~topoprune.prune_units`, fine-tuning
    ``epochs`` epochs on ``data`` between steps with ``config`` (a
    :class:`~topoprune.TrainConfig`; its ``epochs`` is replaced by ``epochs``).

    ``sparsity`` (each targeted layer's final fraction of units removed, the one-shot count) or
    ``target`` (as for :func:`~topoprune.prune_units`, e.g. ``{"flops": "4x"}``); the other
    arguments as there. Returns the pruned model (not fine-tuned after the last step) and an
    :class:`IterativeResult`.
    """
    from ..train import TrainConfig, train
    from ..train.loop import evaluate
    from .filters import prune_units
    from .targets import parse_target

    check_schedule(steps, epochs)
    if (sparsity is None) == (target is None):
        raise TopopruneError("give sparsity= or target=, exactly one")
    if sparsity is not None and not (isinstance(sparsity, (int, float)) and 0 < sparsity < 1):
        raise TopopruneError(f"sparsity: bad value {sparsity!r}; allowed: a fraction in (0, 1)")
    config = config if config is not None else TrainConfig()
    if not isinstance(config, TrainConfig):
        raise TopopruneError(f"config must be a TrainConfig, got {type(config).__name__}")
    from dataclasses import replace

    tune = replace(config, epochs=max(1, epochs), seed=seed)
    out = Path(out_dir) if out_dir is not None else None
    result = IterativeResult(steps, epochs)
    common = dict(method=method, data_sample=data_sample, labelled_sample=labelled_sample, seed=seed)
    work, start = model, 0
    if out is not None and (out / "iterative.json").is_file():
        from ..experiments.artifacts import load_model

        saved = json.loads((out / "iterative.json").read_text())
        start = len(saved["records"])
        result.records, result.removals = saved["records"], saved["removals"]
        if start:
            work = load_model(out / f"step{start:02d}").train()
    goal = parse_target(target) if target is not None else None
    result.target = goal.to_dict() if goal is not None else None
    import warnings
    units: dict[str, int] = dict(result.records[0].get("units", {})) if result.records else {}
    for j in range(start + 1, steps + 1):
        if goal is not None:  # the allocation chooses each step's layer budget on the current model
            dense = result.records[0]["dense_count"] if result.records else info_count(work, example_inputs, goal.metric)
            now = info_count(work, example_inputs, goal.metric)
            want = dense * step_fraction_kept(goal.keep, j, steps)
            pruned, info = prune_units(work, example_inputs, target={f"{goal.metric}_kept": min(0.999999, want / now)},
                                       allocation=allocation, layers=layers, exclude=exclude, **common)
        elif j == 1:
            pruned, info = prune_units(work, example_inputs, sparsity=1 - (1 - sparsity) ** (1 / steps), layers=layers,
                                       exclude=exclude, **common)
            units = {x.name: x.before for x in info.layers if _benign(x.note)}
            # the first step's own counts follow the same rule as the later ones
            if any(x.before - x.after != step_counts(x.before, sparsity, steps)[0] for x in info.layers if x.name in units):
                pruned, info = prune_units(work, example_inputs, config_list=_entries(units, {}, sparsity, 1, steps),
                                           **common)
        else:
            current = {x["name"]: x["after"] for x in result.records[-1]["layers"]}
            with warnings.catch_warnings():  # a step that takes nothing from a layer is the schedule, not a fault
                warnings.filterwarnings("ignore", message=r".*left \d+ targeted layer")
                pruned, info = prune_units(work, example_inputs,
                                           config_list=_entries(units, current, sparsity, j, steps), **common)
        record = {"step": j, **info.to_dict()}
        if j == 1:
            if goal is not None:
                record["dense_count"] = dense
            record["units"] = units
        result.removals += list(info.steps)
        work = pruned
        if j < steps and epochs > 0:
            res = train(work, data, tune, out_dir=None if out is None else out / f"tune{j:02d}", progress=progress,
                        description=f"fine-tune after step {j}/{steps}", device=device)
            record["acc_after_tuning"] = res.final.get("test_acc")
        else:
            record["acc_after_tuning"] = evaluate(work, data.test_x, data.test_y)[1] if j < steps else None
        result.records.append(record)
        if out is not None:
            from ..experiments.artifacts import save_pruned

            save_pruned(work, out / f"step{j:02d}", steps=result.removals)
            (out / "iterative.json").write_text(json.dumps({"records": result.records, "removals": result.removals}))
    return work, result


def _entries(units: dict[str, int], current: dict[str, int], sparsity: float, j: int, steps: int) -> list[dict]:
    """NNI-style entries removing, from each layer, what step ``j`` adds to the cumulative count."""
    entries = []
    for name, n0 in units.items():
        now = current.get(name, n0)
        removed_so_far = n0 - now
        want = step_counts(n0, sparsity, steps)[j - 1]
        k = max(0, want - removed_so_far)
        entries.append({"op_names": [name], "sparse_ratio": sparsity_for(k, now) if k else 0.0})
    return entries


def info_count(model: nn.Module, example_inputs: Any, metric: str) -> float:
    """The model's count of ``metric`` (``flops``, ``macs``, ``params``) on its example inputs."""
    from ..metrics import model_cost
    from ..models.inputs import example_inputs_for

    cost = model_cost(model, example_inputs=example_inputs_for(model, example_inputs))
    return float({"flops": cost.flops, "macs": cost.macs, "params": cost.params}[metric])
