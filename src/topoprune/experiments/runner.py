"""The resumable experiment runner behind ``topoprune compare``.

A run folder ``<out>/<config name>-<hash of the config>/`` holds one artefact per finished stage:

    config.json                      the validated config
    log.txt                          what happened, with times
    baseline/<model>/                1. the trained (or loaded) dense model + baseline.json
    analysis/<model>.json            2. NP per layer, critical compression, tree overlap, cost
    cells/<model>/<method>/s<sparsity>/seed<seed>/
        pruned/ or masked.pt, prune.json      3. prune
        recovery/, recovery.json              4. recover (checkpointed every epoch)
        row.json                              5. measure
    results.jsonl                    one row per (model, method, sparsity, seed), written atomically
    report.md, report.html, *.png    the report (rebuilt from the above by `topoprune report`)

Every artefact is written atomically at the end of its stage, so after a crash or ``kill -9``
the same command skips what is done and resumes the first unfinished stage (recovery resumes
mid-way from its last epoch). Cells are independent and can run in parallel processes.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import TopopruneError
from ..train.checkpoint import atomic_save, atomic_write_bytes, atomic_write_json
from ..train.device import describe_device
from .config import ExperimentConfig, MethodSpec, ModelSpec, parse_config

__all__ = ["run_experiment", "Cell", "run_dir_for"]

RESULTS = "results.jsonl"


@dataclass(frozen=True)
class Cell:
    """One (model, method, sparsity, seed) of the comparison."""

    model: str
    method: str  # the method's key: its label if the config gives one, else its name
    sparsity: float
    seed: int

    @property
    def key(self) -> str:
        return f"{self.model}/{self.method}/s{self.sparsity:g}/seed{self.seed}"


def run_dir_for(config: ExperimentConfig, out: str | Path) -> Path:
    return Path(out) / f"{config.name}-{config.digest()}"


def _logger(run_dir: Path) -> logging.Logger:
    log = logging.getLogger(f"topoprune.run.{run_dir.name}")
    if not log.handlers:
        handler = logging.FileHandler(run_dir / "log.txt")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


# --- data and models ----------------------------------------------------------------------------

_DATA_CACHE: dict = {}


def _data(config: ExperimentConfig, spec: ModelSpec):
    from ..data import dataset_info, prepare_data

    info = dataset_info(config.dataset.name)
    shape = tuple(spec.input_shape) if spec.input_shape else info.shape
    key = (config.dataset, shape, int(config.train.get("seed", 0)))
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = prepare_data(
            config.dataset.name, config.dataset.root, input_shape=shape,
            val_fraction=config.dataset.val_fraction, seed=int(config.train.get("seed", 0)),
            augment=config.dataset.augment, limit=config.dataset.limit)
    return _DATA_CACHE[key]


def _model_spec(config: ExperimentConfig, key: str) -> ModelSpec:
    return next(m for m in config.models if m.key == key)


def _load_baseline(run_dir: Path, key: str):
    from .artifacts import load_model

    return load_model(run_dir / "baseline" / key / "checkpoint.pt")


def _cell_dir(run_dir: Path, cell: Cell) -> Path:
    return run_dir / "cells" / cell.model / cell.method / f"s{cell.sparsity:g}" / f"seed{cell.seed}"


# --- stages 1 and 2 -----------------------------------------------------------------------------


def _stage_baseline(config: ExperimentConfig, run_dir: Path, spec: ModelSpec, log, progress: bool,
                    device: str | None = None) -> dict:
    from ..metrics import model_cost
    from ..models import create_model
    from ..train import TrainConfig, evaluate, train
    from .artifacts import load_model

    folder = run_dir / "baseline" / spec.key
    done = _read_json(folder / "baseline.json")
    if done is not None:
        return done
    folder.mkdir(parents=True, exist_ok=True)
    data = _data(config, spec)
    t0 = time.perf_counter()
    if spec.checkpoint is not None:
        model = load_model(spec.checkpoint)
        atomic_save({"model": model.state_dict(), "epoch": 0, "model_spec": model.meta.spec(),
                     "history": []}, folder / "checkpoint.pt")
    else:
        cfg = TrainConfig(**config.train)
        torch.manual_seed(cfg.seed)
        model = create_model(spec.name, num_classes=data.num_classes, in_channels=data.input_shape[0],
                             input_size=data.input_shape[1:], width=spec.width)
        if not (folder / "init.pt").exists():  # what IMP's rewind="init" returns to
            atomic_save(model.state_dict(), folder / "init.pt")
        log.info("baseline %s: training %d epochs", spec.key, cfg.epochs)
        train(model, data, cfg, out_dir=folder, progress=progress, description=f"baseline {spec.key}",
              device=device)
    _, test_acc = evaluate(model, data.test_x, data.test_y)
    _, val_acc = evaluate(model, data.val_x, data.val_y)
    record = {"model": spec.key, "test_acc": test_acc, "val_acc": val_acc,
              "cost": model_cost(model, data.input_shape).to_dict(),
              "seconds": time.perf_counter() - t0,
              "device": None if spec.checkpoint is not None else describe_device(device)}  # None: not trained here
    atomic_write_json(record, folder / "baseline.json")
    log.info("baseline %s: test accuracy %.2f%%", spec.key, test_acc)
    return record


def _layer_summary(model) -> dict:
    """Per-layer NP (normalized), nonzero weights and the 0-dim diagram deaths of each layer graph."""
    from torch import nn

    from ..analysis import neural_persistence
    from ..models.introspect import effective_weight, layer_graph
    from ..topology import persistence_diagram

    report = neural_persistence(model)
    layers = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv1d)):
            g = layer_graph(m)
            layers[name] = {"nonzero": int((effective_weight(m) != 0).sum()),
                            "deaths": persistence_diagram(g)[:, 1].tolist() if g.any() else []}
    return {"np": {x.name: x.normalized for x in report.layers}, "np_mean": report.mean_normalized,
            "layers": layers}


def _stage_analysis(config: ExperimentConfig, run_dir: Path, spec: ModelSpec, log) -> dict:
    from torch import nn

    from ..analysis import critical_compression
    from ..metrics import measure_latency
    from ..models.introspect import layer_graph
    from ..topology import mst_overlap

    path = run_dir / "analysis" / f"{spec.key}.json"
    done = _read_json(path)
    if done is not None:
        return done
    model = _load_baseline(run_dir, spec.key)
    shape = model.meta.input_shape
    record: dict = {"model": spec.key, "input_shape": list(shape)}
    record.update(_layer_summary(model))
    if config.analyses.critical:
        for conv in ("paper", "exact"):
            c = critical_compression(model, shape, conv)
            record[f"critical_{conv}"] = {"layers": {x.name: x.ratio for x in c.layers}, "final": c.final}
    if config.analyses.overlap:
        record["overlap"] = {}
        for name, m in model.named_modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                o = mst_overlap(layer_graph(m))
                record["overlap"][name] = {"measured": o.measured, "bound": o.bound, "random": o.random}
    if config.analyses.latency:
        record["latency_ms"] = {b: v["median_ms"] for b, v in
                                measure_latency(model, shape, (1, 64), warmup=2, repeats=10).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record, path)
    log.info("analysis %s done", spec.key)
    return record


# --- stages 3 to 5, per cell ----------------------------------------------------------------------


def _prune(config: ExperimentConfig, run_dir: Path, cell: Cell, method: MethodSpec, folder: Path,
           device: str | None = None):
    """Stage 3: returns (pruned model, prune record); saves the artefact."""
    from ..pruning import prune_filters, prune_unstructured
    from ..pruning.masks import prunable_layers
    from ..pruning.schedules import _rewind
    from ..train import TrainConfig, train
    from .artifacts import load_model, save_pruned

    record_path = folder / "prune.json"
    spec = _model_spec(config, cell.model)
    done = _read_json(record_path)
    if done is not None:
        if method.structured:
            return load_model(folder / "pruned"), done
        model = _load_baseline(run_dir, cell.model)
        _apply_mask_hooks(model, done["targets"])
        model.load_state_dict(torch.load(folder / "masked.pt", map_location="cpu", weights_only=True))
        return model, done
    model = _load_baseline(run_dir, cell.model)
    torch.manual_seed(cell.seed)
    t0 = time.perf_counter()
    p = dict(method.params)
    if method.structured:
        context = {}
        if method.name == "betti" or p.get("fitness") == "activation":
            context["inputs"] = _data(config, spec).sample(int(p.pop("samples", 256)), cell.seed)
        if method.name == "betti":
            context.update({f"betti_{k}": v for k, v in p.items()})
        elif method.name == "topological":
            p.pop("samples", None)
            context["ga"] = {"workers": 1, **p, "seed": cell.seed}
        pruned, info = prune_filters(model, method=method.name, sparsity=cell.sparsity,
                                     seed=cell.seed, context=context)
        record = {"seconds": time.perf_counter() - t0, "info": info.to_dict()}
        save_pruned(pruned, info.steps, folder / "pruned", info.to_dict())
        atomic_write_json(record, record_path)
        return pruned, record
    # unstructured
    scope = p.get("scope", "global")
    if method.name in ("magnitude", "random-weights"):
        rec = prune_unstructured(model, cell.sparsity, "magnitude" if method.name == "magnitude" else "random",
                                 scope, seed=cell.seed)
        records = [rec.to_dict()]
    elif "fraction" in p:  # imp / timp along one trajectory per seed: the cell takes its round
        model, records, seconds = _trajectory_round(config, run_dir, cell, method, device)
        targets = list(prunable_layers(model))
        atomic_save(model.state_dict(), folder / "masked.pt")
        record = {"seconds": seconds, "rounds": records, "targets": targets, "trajectory": True,
                  "warnings": [w for r_ in records for w in r_["warnings"]]}
        atomic_write_json(record, record_path)
        return model, record
    else:  # imp / timp from the trained baseline, retraining between rounds
        rounds = int(p.get("rounds", 3))
        fraction = 1 - (1 - cell.sparsity) ** (1 / rounds)
        init = None
        if p.get("rewind", "none") == "init":
            init_path = run_dir / "baseline" / cell.model / "init.pt"
            init = torch.load(init_path, map_location="cpu", weights_only=True) if init_path.exists() else None
        preserve = "mst" if method.name == "timp" else None
        records = []
        r = config.recovery
        round_cfg = TrainConfig(epochs=int(p.get("epochs", r.epochs)), lr=r.lr, batch_size=r.batch_size,
                                optimizer=r.optimizer, schedule=r.schedule, seed=cell.seed)
        for k in range(rounds):
            amount = fraction if k < rounds - 1 else _remaining_fraction(model, cell.sparsity)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec = prune_unstructured(model, amount, "magnitude", scope, preserve)
            records.append(rec.to_dict())
            if k < rounds - 1:
                if init is not None:
                    _rewind(model, prunable_layers(model), init)
                train(model, _data(config, spec), round_cfg, progress=False, device=device)
    targets = list(prunable_layers(model))
    atomic_save(model.state_dict(), folder / "masked.pt")
    record = {"seconds": time.perf_counter() - t0, "rounds": records, "targets": targets,
              "warnings": [w for r_ in records for w in r_["warnings"]]}
    atomic_write_json(record, record_path)
    return model, record


def _trajectory_round(config: ExperimentConfig, run_dir: Path, cell: Cell, method: MethodSpec,
                      device: str | None = None):
    """IMP / T-IMP with ``fraction`` per round: one resumable trajectory per (model, method, seed)
    under ``trajectories/`` (``pruning.schedules.imp``: round 0 trains the baseline's
    initialisation with the cell's seed, every round prunes, rewinds and retrains, and records
    accuracy, per-layer neural persistence and tree/top-k overlap). The cell at sparsity ``s``
    takes the first round that reaches ``s``; returns (model with that round's masks and trained
    weights, round records up to it, training seconds up to it)."""
    from ..models import create_model
    from ..pruning import imp
    from ..pruning.masks import prunable_layers
    from ..train import TrainConfig

    p, spec, r = method.params, _model_spec(config, cell.model), config.recovery
    data = _data(config, spec)
    round_cfg = TrainConfig(**{**config.train, "epochs": int(p.get("epochs", r.epochs)), "seed": cell.seed})
    folder = run_dir / "trajectories" / cell.model / cell.method / f"seed{cell.seed}"
    model = create_model(spec.name, num_classes=data.num_classes, in_channels=data.input_shape[0],
                         input_size=data.input_shape[1:], width=spec.width)
    init = run_dir / "baseline" / cell.model / "init.pt"
    if init.exists():
        model.load_state_dict(torch.load(init, map_location="cpu", weights_only=True))
    result = imp(model, data, round_cfg, rounds=int(p.get("rounds", 3)), fraction=float(p["fraction"]),
                 scope=p.get("scope", "global"), rewind=p.get("rewind", "init"),
                 preserve="mst" if method.name == "timp" else None, out_dir=folder, progress=False,
                 device=device)
    k = next((i for i, rec in enumerate(result.rounds) if rec["sparsity"] >= cell.sparsity - 1e-3), None)
    if k is None:
        raise TopopruneError(f"{cell.key}: the {cell.method} trajectory ends at sparsity "
                             f"{result.rounds[-1]['sparsity']:.3f}, below {cell.sparsity}")
    state = torch.load(folder / f"round{k:02d}" / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    model = _load_baseline(run_dir, cell.model)
    _apply_mask_hooks(model, list(prunable_layers(model)))
    model.load_state_dict(state)
    records = result.rounds[: k + 1]
    return model, records, sum(rec["train_seconds"] for rec in records)


def _remaining_fraction(model, target: float) -> float:
    """The fraction of the remaining weights to remove so that overall sparsity is ``target``."""
    from ..models.introspect import effective_weight
    from ..pruning.masks import prunable_layers

    layers = prunable_layers(model).values()
    total = sum(effective_weight(m).numel() for m in layers)
    alive = sum(int((m.weight_mask if hasattr(m, "weight_mask") else torch.ones_like(m.weight)).sum())
                for m in layers)
    keep = round((1 - target) * total)
    return max(0.0, min(0.999999, (alive - keep) / alive)) if alive else 0.0


def _apply_mask_hooks(model, targets) -> None:
    from torch.nn.utils import prune

    modules = dict(model.named_modules())
    for name in targets:
        m = modules[name]
        if not hasattr(m, "weight_mask"):
            prune.custom_from_mask(m, "weight", torch.ones_like(m.weight))


def run_cell(run_dir: str | Path, config_dict: dict, cell: Cell, progress: bool = False,
             device: str | None = None) -> dict:
    """Stages 3-5 of one cell; returns its result row (written to ``row.json``). Training (the
    recovery, IMP rounds) runs on ``device``; pruning and measurements on the CPU."""
    from ..metrics import measure_latency, model_cost
    from ..train import TrainConfig, recover

    run_dir = Path(run_dir)
    config = parse_config(config_dict)
    folder = _cell_dir(run_dir, cell)
    row = _read_json(folder / "row.json")
    if row is not None:
        return row
    folder.mkdir(parents=True, exist_ok=True)
    log = _logger(run_dir)
    method = next(m for m in config.methods if m.key == cell.method)
    spec = _model_spec(config, cell.model)
    data = _data(config, spec)
    baseline = _read_json(run_dir / "baseline" / cell.model / "baseline.json")
    analysis = _read_json(run_dir / "analysis" / f"{cell.model}.json")
    model, prune_record = _prune(config, run_dir, cell, method, folder, device)
    log.info("%s: pruned in %.2f s", cell.key, prune_record["seconds"])

    rec_path = folder / "recovery.json"
    recovery = _read_json(rec_path)
    if recovery is None:
        r = config.recovery
        cfg = TrainConfig(epochs=r.epochs, lr=r.lr, batch_size=r.batch_size, optimizer=r.optimizer,
                          schedule=r.schedule, seed=cell.seed)
        result = recover(model, data, baseline["test_acc"], epochs=r.epochs, config=cfg,
                         tolerance=r.tolerance, out_dir=folder / "recovery", progress=progress,
                         device=device)
        recovery = result.to_dict()
        atomic_write_json(recovery, rec_path)
        log.info("%s: %s", cell.key, _summary(recovery))
    else:  # the recovered weights live in the recovery checkpoint
        state = torch.load(folder / "recovery" / "checkpoint.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])

    shape = tuple(analysis["input_shape"])
    cost = model_cost(model, shape).to_dict()
    summary = _layer_summary(model)
    dense_layers = analysis["layers"]
    compression = {n: (dense_layers[n]["nonzero"] / max(1, v["nonzero"])) for n, v in summary["layers"].items()
                   if n in dense_layers}
    diagram_layer = config.analyses.diagram_layer or _middle_layer(list(dense_layers))
    latency = None
    if config.analyses.latency and method.structured:
        latency = {b: v["median_ms"] for b, v in measure_latency(model, shape, (1, 64), warmup=2, repeats=10).items()}
    info = prune_record.get("info", {})
    row = {
        "model": cell.model, "method": cell.method, "kind": "structured" if method.structured else "unstructured",
        **({"algorithm": method.name} if method.label else {}),  # a labelled variant's method
        "sparsity": cell.sparsity, "seed": cell.seed,
        "params": [baseline["cost"]["params"], cost["params"]],
        "nonzero_params": [baseline["cost"]["nonzero_params"], cost["nonzero_params"]],
        "macs": [baseline["cost"]["macs"], cost["macs"]],
        "flops": [baseline["cost"]["flops"], cost["flops"]],
        "latency_ms": [analysis.get("latency_ms"), latency],
        "dense_acc": baseline["test_acc"],
        "acc_after_prune": recovery["accuracy"][0],
        "acc_after_recovery": recovery["accuracy"][-1],
        "recovery_curve": recovery["accuracy"],
        "epochs_to_recover": recovery["epochs_to_recover"],
        "seconds_to_recover": recovery["seconds_to_recover"],
        "prune_seconds": prune_record["seconds"],
        "np_dense": analysis["np"], "np_after": summary["np"],
        "np_retained": summary["np_mean"] / analysis["np_mean"] if analysis["np_mean"] else None,
        "compression": compression,
        "diagram_layer": diagram_layer,
        "diagram_deaths": summary["layers"].get(diagram_layer, {}).get("deaths", []),
        "ga": info.get("extra", {}).get("topological"),
        "imp_rounds": prune_record["rounds"] if prune_record.get("trajectory") else None,
        "warnings": prune_record.get("warnings", []),
    }
    atomic_write_json(row, folder / "row.json")
    return row


def _summary(recovery: dict) -> str:
    if recovery["epochs_to_recover"] is not None:
        return f"recovered after {recovery['epochs_to_recover']} epoch(s)"
    return f"did not recover within {len(recovery['accuracy']) - 1} epochs"


def _middle_layer(names: list[str]) -> str:
    return names[len(names) // 2] if names else ""


# --- results file ---------------------------------------------------------------------------------


def _row_key(row: dict) -> tuple:
    return (row["model"], row["method"], row["sparsity"], row["seed"])


def read_results(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / RESULTS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append_row(run_dir: Path, row: dict) -> None:
    """Add a row unless its (model, method, sparsity, seed) is there; rewrite atomically."""
    rows = read_results(run_dir)
    if any(_row_key(r) == _row_key(row) for r in rows):
        return
    rows.append(row)
    atomic_write_bytes(run_dir / RESULTS, "".join(json.dumps(r) + "\n" for r in rows).encode())


# --- the whole run --------------------------------------------------------------------------------


def _worker_init(threads: int) -> None:
    import numba

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _cell_job(args):
    run_dir, config_dict, cell, device = args
    return run_cell(run_dir, config_dict, cell, device=device)


def run_experiment(config: ExperimentConfig, out: str | Path = "runs", workers: int = 1,
                   quiet: bool = False, report: bool = True, device: str | None = None) -> Path:
    """Run (or resume) a comparison and build its report; returns the run folder.

    ``device`` is where every training runs (baseline, recovery, IMP rounds): ``"auto"``,
    ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``; default the CPU. It is not part of the config,
    so a run started on one device resumes on another. Pruning and measurements stay on the CPU
    (the latency columns are CPU latency)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..train import set_threads

    if workers < 1:
        raise TopopruneError(f"workers must be >= 1, got {workers}")
    from ..train import resolve_device

    device = None if device is None else str(resolve_device(device))  # refuse a missing GPU now
    run_dir = run_dir_for(config, out)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = _read_json(run_dir / "config.json")
    if saved is not None and saved != config.to_dict():
        raise TopopruneError(f"{run_dir} holds another config; remove it or use another --out")
    atomic_write_json(config.to_dict(), run_dir / "config.json")
    log = _logger(run_dir)
    log.info("run %s: start (workers=%d, training on %s)", run_dir.name, workers, describe_device(device))
    set_threads()
    cells = [Cell(m.key, meth.key, s, seed) for m in config.models for meth in config.methods
             for s in config.sparsities for seed in config.seeds]
    done = {(r["model"], r["method"], r["sparsity"], r["seed"]) for r in read_results(run_dir)}
    # run sparsity by sparsity, seed by seed, every method: an interrupted run still holds
    # complete method comparisons for the seeds it finished
    method_rank = {m.key: i for i, m in enumerate(config.methods)}
    todo = sorted((c for c in cells if (c.model, c.method, c.sparsity, c.seed) not in done),
                  key=lambda c: (c.model, c.sparsity, c.seed, method_rank[c.method]))
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=quiet, transient=False) as bar:
        stage = bar.add_task("baselines and analyses", total=2 * len(config.models))
        for spec in config.models:
            _stage_baseline(config, run_dir, spec, log, progress=not quiet, device=device)
            bar.advance(stage)
            _stage_analysis(config, run_dir, spec, log)
            bar.advance(stage)
        task = bar.add_task("prune, recover, measure", total=len(cells), completed=len(cells) - len(todo))
        config_dict = config.to_dict()
        if workers == 1 or len(todo) <= 1:
            for cell in todo:
                bar.update(task, description=f"cell {cell.key}")
                _append_row(run_dir, run_cell(run_dir, config_dict, cell, device=device))
                bar.advance(task)
        else:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                     initargs=(max(1, cores // workers),)) as pool:
                futures = {pool.submit(_cell_job, (str(run_dir), config_dict, c, device)): c for c in todo}
                for fut in as_completed(futures):
                    _append_row(run_dir, fut.result())
                    bar.advance(task)
    # rows in a stable order, whatever order the cells finished in
    order = {(c.model, c.method, c.sparsity, c.seed): i for i, c in enumerate(cells)}
    rows = sorted(read_results(run_dir), key=lambda r: order.get(_row_key(r), math.inf))
    atomic_write_bytes(run_dir / RESULTS, "".join(json.dumps(r) + "\n" for r in rows).encode())
    log.info("run %s: %d rows", run_dir.name, len(rows))
    if report:
        from .report import build_report

        build_report(run_dir)
    return run_dir
