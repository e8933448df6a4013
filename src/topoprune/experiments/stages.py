"""Model-level stages of a run: 1. the dense baseline, 2. its analysis.

Each stage writes its artefacts atomically, seals them in the run's manifest, and is skipped
when its record exists, so a rerun resumes where the last one stopped.
"""

from __future__ import annotations

import time

import torch

from ..train.device import describe_device
from ..train.scoped import seeded_rng
from .config import ExperimentConfig, ModelSpec
from .store import RunStore

__all__ = ["prepare", "baseline_stage", "analysis_stage", "load_baseline", "layer_summary",
           "baseline_dir", "analysis_path", "init_state"]

_DATA_CACHE: dict = {}


def prepare(config: ExperimentConfig, spec: ModelSpec):
    """The dataset splits a model of the config trains and is measured on (cached per process)."""
    from ..data import dataset_info, prepare_data

    info = dataset_info(config.dataset.name)
    shape = spec.shape or info.shape
    seed = int(config.train.get("seed", 0))
    key = (config.dataset, shape, seed)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = prepare_data(
            config.dataset.name, config.dataset.root, input_shape=shape,
            val_fraction=config.dataset.val_fraction, seed=seed, augment=config.dataset.augment,
            limit=config.dataset.limit)
    return _DATA_CACHE[key]


def baseline_dir(key: str) -> str:
    return f"baseline/{key}"


def analysis_path(key: str) -> str:
    return f"analysis/{key}.json"


def load_baseline(store: RunStore, key: str):
    from .artifacts import load_model

    return load_model(store.path(baseline_dir(key)) / "checkpoint.pt")


def init_state(store: RunStore, key: str) -> dict | None:
    """The baseline's saved initialisation (what IMP rewinds to), if it was trained here."""
    path = store.path(baseline_dir(key)) / "init.pt"
    return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None


def baseline_stage(config: ExperimentConfig, store: RunStore, spec: ModelSpec, *, log, progress: bool,
                   device: str | None = None) -> dict:
    """Stage 1: train (or load) the dense model; returns ``baseline.json``'s record."""
    from ..metrics import model_cost
    from ..models import create_model
    from ..train import TrainConfig, evaluate, train
    from .artifacts import load_model

    folder = baseline_dir(spec.key)
    done = store.done(folder, f"{folder}/baseline.json", [folder])
    if done is not None:
        return done
    data = prepare(config, spec)
    t0 = time.perf_counter()
    if spec.checkpoint is not None:
        model = load_model(spec.checkpoint)
        store.save_torch(f"{folder}/checkpoint.pt", {"model": model.state_dict(), "epoch": 0,
                                                      "model_spec": model.meta.spec(), "history": []})
    else:
        cfg = TrainConfig(**config.train)
        with seeded_rng(cfg.seed):  # the init is seeded, the caller's RNG untouched
            model = create_model(spec.name, num_classes=data.num_classes, in_channels=data.input_shape[0],
                                 input_size=data.input_shape[1:], width=spec.width)
        if not store.path(f"{folder}/init.pt").exists():  # what IMP's rewind="init" returns to
            store.save_torch(f"{folder}/init.pt", model.state_dict())
        log.info("baseline %s: training %d epochs", spec.key, cfg.epochs)
        train(model, data, cfg, out_dir=store.path(folder), progress=progress,
              description=f"baseline {spec.key}", device=device)
    _, test_acc = evaluate(model, data.test_x, data.test_y)
    _, val_acc = evaluate(model, data.val_x, data.val_y)
    record = {"model": spec.key, "test_acc": test_acc, "val_acc": val_acc,
              "cost": model_cost(model, data.input_shape).to_dict(),
              "seconds": time.perf_counter() - t0,
              "device": None if spec.checkpoint is not None else describe_device(device)}  # None: not trained here
    store.finish(folder, f"{folder}/baseline.json", record, [folder])
    log.info("baseline %s: test accuracy %.2f%%", spec.key, test_acc)
    return record


def layer_summary(model) -> dict:
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


def analysis_stage(config: ExperimentConfig, store: RunStore, spec: ModelSpec, *, log) -> dict:
    """Stage 2: NP per layer, critical compression, tree/top-k overlap and latency of the dense
    model; returns ``analysis/<model>.json``'s record."""
    from torch import nn

    from ..analysis import critical_compression
    from ..metrics import measure_latency
    from ..models.introspect import layer_graph
    from ..topology import mst_overlap

    path = analysis_path(spec.key)
    done = store.done(path, path, [])
    if done is not None:
        return done
    model = load_baseline(store, spec.key)
    shape = model.meta.input_shape
    record: dict = {"model": spec.key, "input_shape": list(shape)}
    record.update(layer_summary(model))
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
                                measure_latency(model, shape, batch_sizes=(1, 64), warmup=2, repeats=10).items()}
    store.finish(path, path, record, [])
    log.info("analysis %s done", spec.key)
    return record

