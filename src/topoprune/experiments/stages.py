"""Model-level stages of a run: 1. the dense baseline, 2. its analysis.

Each stage writes its artefacts atomically, seals them in the run's manifest, and is skipped
when its record exists, so a rerun resumes where the last one stopped.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..train.device import describe_device
from ..train.scoped import seeded_rng
from .config import ExperimentConfig, ModelSpec
from .store import RunStore

__all__ = ["prepare", "baseline_stage", "analysis_stage", "load_baseline", "layer_summary",
           "baseline_dir", "analysis_path", "init_state", "build_model", "baseline_source"]

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


# A baseline outside the registry (a factory model, or one loaded from a pruned folder) is also
# kept as a pruned-model folder, baseline/<key>/model/: the factory, the removals it already holds
# and example inputs, so load_model rebuilds it without the config.
_MODEL_FOLDER = "model"


def median_latency(model, shape) -> dict:
    """The model's median latency in ms at batch sizes 1 and 64 (the runs' one setting: 2 warm-up
    and 10 timed passes), as the analysis stage records the dense model's and a cell its pruned one."""
    from ..metrics import measure_latency

    return {b: v["median_ms"] for b, v in measure_latency(model, shape, batch_sizes=(1, 64), warmup=2,
                                                          repeats=10).items()}


def load_baseline(store: RunStore, key: str):
    from .artifacts import load_model

    folder = store.path(baseline_dir(key))
    if (folder / _MODEL_FOLDER / "pruned.json").is_file():
        return load_model(folder / _MODEL_FOLDER)
    return load_model(folder / "checkpoint.pt")


def baseline_source(store: RunStore, key: str) -> tuple[dict, list[dict]]:
    """What a cell's pruned folder needs beyond its own removals: the ``save_pruned`` keyword
    arguments naming the baseline's architecture (empty for a registry model) and the removals
    the baseline already holds (a checkpoint that was a pruned folder)."""
    from .artifacts import load_inputs_file, read_pruned

    folder = store.path(baseline_dir(key)) / _MODEL_FOLDER
    if not (folder / "pruned.json").is_file():
        return {}, []
    record = read_pruned(folder)
    source = record.source()
    if record.example_inputs is not None:
        source["example_inputs"] = load_inputs_file(record.example_inputs)
    return source, record.steps


def build_model(spec: ModelSpec, data, *, seed: int = 0):
    """The model ``spec`` describes, for ``data``: a registry model built for the data's shape and
    classes, or the factory's (its own arguments; seeded the same way), with the checkpoint's
    weights when one is given. TorchScript files are refused (they cannot be pruned)."""
    from ..models import create_model
    from .artifacts import load_model, require_python_model
    from .factory import build_from_factory

    if spec.factory is not None:
        with seeded_rng(seed):
            model = build_from_factory(spec.factory, spec.kwargs)
        if spec.checkpoint is not None:
            model = load_model(spec.checkpoint, model=model)
        return model
    if spec.checkpoint is not None:
        return require_python_model(load_model(spec.checkpoint), f"checkpoint {spec.checkpoint!r}")
    with seeded_rng(seed):  # the init is seeded, the caller's RNG untouched
        return create_model(spec.name, num_classes=data.num_classes, in_channels=data.input_shape[0],
                            input_size=data.input_shape[1:], width=spec.width)


def _save_model_folder(store: RunStore, folder: str, spec: ModelSpec, model, data) -> None:
    """baseline/<key>/model/ for a baseline outside the registry (see ``load_baseline``)."""
    from .artifacts import read_pruned, save_pruned

    steps: list[dict] = []
    if spec.checkpoint is not None and (Path(spec.checkpoint) / "pruned.json").is_file():
        steps = read_pruned(spec.checkpoint).steps
    save_pruned(model, store.path(f"{folder}/{_MODEL_FOLDER}"), steps=steps, info={},
                example_inputs=data.train_x[:2], **spec.source())


def init_state(store: RunStore, key: str) -> dict | None:
    """The baseline's saved initialisation (what IMP rewinds to), if it was trained here."""
    path = store.path(baseline_dir(key)) / "init.pt"
    return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None


def _baseline_key(config: ExperimentConfig, spec: ModelSpec, seed: int | None) -> str:
    """The baseline of ``spec`` for the cells of ``seed`` (see ``ExperimentConfig.baseline_key``)."""
    from ..errors import TopopruneError

    if config.seed_each and seed is None:
        raise TopopruneError("train.seed: bad value 'each' here; allowed: an integer (one baseline), as "
                             "only `topoprune compare` trains one baseline per seed")
    return config.baseline_key(spec.key, seed) if seed is not None else spec.key


def baseline_stage(config: ExperimentConfig, store: RunStore, spec: ModelSpec, *, log, progress: bool,
                   device: str | None = None, seed: int | None = None) -> dict:
    """Stage 1: train (or load) the dense model; returns ``baseline.json``'s record. ``seed``:
    under ``train.seed: each``, the seed whose own baseline this is (trained with that seed)."""
    from ..metrics import model_cost
    from ..train import TrainConfig, evaluate, train
    from ..train.loop import evaluate_validation

    key = _baseline_key(config, spec, seed)
    folder = baseline_dir(key)
    done = store.done(folder, f"{folder}/baseline.json", [folder])
    if done is not None:
        return done
    data = prepare(config, spec)
    t0 = time.perf_counter()
    cfg = TrainConfig(**{**config.train, "seed": config.train_seed(seed if seed is not None else 0)})
    ran = None  # the speed options training ran with (None: loaded, not trained here)
    if spec.checkpoint is not None:
        model = build_model(spec, data)
        meta = getattr(model, "meta", None)
        store.save_torch(f"{folder}/checkpoint.pt", {"model": model.state_dict(), "epoch": 0,
                                                      "model_spec": meta.spec() if meta else None, "history": []})
    else:
        model = build_model(spec, data, seed=cfg.seed)
        if not store.path(f"{folder}/init.pt").exists():  # what IMP's rewind="init" returns to
            store.save_torch(f"{folder}/init.pt", model.state_dict())
        log.info("baseline %s: training %d epochs (seed %d)", key, cfg.epochs, cfg.seed)
        ran = train(model, data, cfg, out_dir=store.path(folder), progress=progress,
                    description=f"baseline {key}", device=device, nproc=config.nproc).settings
    if getattr(model, "meta", None) is None or (
            spec.checkpoint is not None and (Path(spec.checkpoint) / "pruned.json").is_file()):
        _save_model_folder(store, folder, spec, model, data)
    scoring = {"batch_size": cfg.eval_batch_size, "precision": cfg.precision, "channels_last": cfg.channels_last}
    _, test_acc = evaluate(model, data.test_x, data.test_y, **scoring)
    _, val_acc = evaluate_validation(model, data, **scoring)  # None when validation is off
    record = {"model": spec.key, "test_acc": test_acc, "val_acc": val_acc,
              **({"train_settings": ran} if ran is not None else {}),
              "cost": model_cost(model, data.input_shape).to_dict(),
              "seconds": time.perf_counter() - t0,
              "device": None if spec.checkpoint is not None else describe_device(device),  # None: not trained here
              "train_seed": None if spec.checkpoint is not None else cfg.seed}
    store.finish(folder, f"{folder}/baseline.json", record, [folder])
    log.info("baseline %s: test accuracy %.2f%%", key, test_acc)
    return record


def layer_summary(model) -> dict:
    """Per-layer NP (normalized), nonzero weights and the 0-dim diagram deaths of each layer graph."""
    from ..analysis import neural_persistence
    from ..models.introspect import effective_weight, layer_graph
    from ..models.layers import is_weighted_layer
    from ..topology import persistence_diagram

    report = neural_persistence(model)
    layers = {}
    for name, m in model.named_modules():
        if is_weighted_layer(m):
            g = layer_graph(m)
            layers[name] = {"nonzero": int((effective_weight(m) != 0).sum()),
                            "deaths": persistence_diagram(g)[:, 1].tolist() if g.any() else []}
    return {"np": {x.name: x.normalized for x in report.layers}, "np_mean": report.mean_normalized,
            "layers": layers}


def analysis_stage(config: ExperimentConfig, store: RunStore, spec: ModelSpec, *, log,
                   seed: int | None = None, latency_threads: int | None = None) -> dict:
    """Stage 2: NP per layer, critical compression, tree/top-k overlap and latency of the dense
    model (of ``seed``'s baseline under ``train.seed: each``); returns ``analysis/<key>.json``'s
    record. ``latency_threads``: the threads the cells will measure the pruned models' latency
    with (each worker's share of the cores), so that the dense and the pruned latency compare."""
    from ..analysis import critical_compression
    from ..models.introspect import layer_graph
    from ..models.layers import is_weighted_layer
    from ..topology import mst_overlap

    key = _baseline_key(config, spec, seed)
    path = analysis_path(key)
    done = store.done(path, path, [])
    if done is not None:
        return done
    model = load_baseline(store, key)
    meta = getattr(model, "meta", None)  # a model outside the registry takes the data's shape
    shape = tuple(meta.input_shape) if meta is not None else tuple(prepare(config, spec).input_shape)
    record: dict = {"model": spec.key, "input_shape": list(shape)}
    record.update(layer_summary(model))
    if config.analyses.critical:
        for conv in ("paper", "exact"):
            c = critical_compression(model, convention=conv, input_shape=shape)
            record[f"critical_{conv}"] = {"layers": {x.name: x.ratio for x in c.layers}, "final": c.final}
    if config.analyses.overlap:
        record["overlap"] = {}
        for name, m in model.named_modules():
            if is_weighted_layer(m):
                o = mst_overlap(layer_graph(m))
                record["overlap"][name] = {"measured": o.measured, "bound": o.bound, "random": o.random}
    if config.analyses.latency:
        from ..train.scoped import using_threads

        with using_threads(latency_threads) as threads:
            record["latency_ms"] = median_latency(model, shape)
        record["latency_threads"] = threads
    store.finish(path, path, record, [])
    log.info("analysis %s done", key)
    return record

