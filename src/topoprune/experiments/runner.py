"""The resumable experiment runner behind ``topoprune compare``: orchestration only.

It knows no method by name: stages (:mod:`.stages`) and cells (:mod:`.cell`) do the work, the
store (:mod:`.store`) owns the run folder. A run folder ``<out>/<config name>-<hash>/`` holds:

    config.json                      the validated config
    run.lock, manifest.jsonl, log.txt   the lock, the checksums of every finished stage, the log
    baseline/<model>/                1. the trained (or loaded) dense model + baseline.json
                                        (``train.seed: each``: baseline/<model>/seed<seed>/, one per seed)
    analysis/<model>.json            2. NP per layer, critical compression, tree overlap, cost
                                        (``train.seed: each``: analysis/<model>/seed<seed>.json)
    cells/<model>/<method>/s<sparsity>/seed<seed>/
        pruned/ or masked.pt, prune.json      3. prune
        recovery/, recovery.json              4. recover (checkpointed every epoch)
        row.json                              5. measure
    cells/<model>/<method>+<control>/...  the same stages for a control (``controls:``), whose
                                     prune stage fills the method cell's layer budget another way
    trajectories/<model>/<method>/seed<seed>/ IMP/T-IMP with ``fraction``: one per seed
    results.jsonl                    one row per cell, rebuilt from the cells' row.json
    report.md, report.html, *.png    the report (rebuilt from the above by `topoprune report`)

Everything is checked before the run folder exists (the config, the data, that each model takes
the data), every artefact is written atomically and sealed, and the same command resumes after
a crash or ``kill -9``. A damaged artefact is named; ``repair=True`` redoes what depends on it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import TopopruneError
from ..train.device import describe_device
from .cell import STAGES, Cell, seal_finished
from .config import ExperimentConfig
from .stages import analysis_path, baseline_dir, prepare
from .row import row_key
from .store import Damage, RunStore, run_log, run_session

__all__ = ["run_experiment", "run_dir_for", "preflight", "Cell", "cells_of", "CellFailure", "run_keeping_going",
           "check_workers"]


@dataclass(frozen=True)
class CellFailure:
    """A cell that raised while the run kept going (:func:`run_keeping_going`): which cell, the
    class of the method that ran in it, and the error's one line (the traceback is in the run's
    ``log.txt``). ``skipped`` is set for a control cell not run because its method cell failed."""

    model: str
    method: str
    sparsity: float
    seed: int
    control: str | None
    error: str
    method_class: str = ""
    skipped: bool = False

    @property
    def label(self) -> str:
        return self.method if self.control is None else f"{self.method}+{self.control}"

    def to_dict(self) -> dict:
        return {"model": self.model, "method": self.label, "sparsity": self.sparsity, "seed": self.seed,
                "control": self.control, "error": self.error, "method_class": self.method_class,
                "skipped": self.skipped}


def run_dir_for(config: ExperimentConfig, out: str | Path) -> Path:
    return Path(out) / f"{config.name}-{config.digest()}"


def cells_of(config: ExperimentConfig) -> list[Cell]:
    """Every cell: the methods' cells, then the cells of the controls that run (a control that
    would repeat cells the config runs anyway has none)."""
    methods = [Cell(m.key, meth.key, s, seed) for m in config.models for meth in config.methods
               for s in config.sparsities for seed in config.seeds]
    controls = [Cell(m.key, plan.method, s, seed, plan.control) for m in config.models
                for plan in config.control_plan() if plan.runs for s in config.sparsities for seed in config.seeds]
    return methods + controls


def preflight(config: ExperimentConfig, out: str | Path) -> None:
    """Refuse, before any folder or training exists, what would fail later: ``--out`` that is a
    file, missing data, a model that does not take the data, a diagram layer that is not there,
    a data sample larger than the training split."""
    import torch

    from ..models.inputs import first_tensor
    from ..models.layers import is_weighted_layer
    from .stages import build_model

    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise TopopruneError(f"--out {out}: {parent} is a file; allowed: a folder (created if missing)")
            if not os.access(parent, os.W_OK):
                raise TopopruneError(f"--out {out}: {parent} is not writable; allowed: a folder you can write")
            break
    for i, spec in enumerate(config.models):
        try:
            data = prepare(config, spec)  # a missing dataset is refused here, naming where it looked
        except TopopruneError as exc:
            if "input_shape" in str(exc):  # too large for memory: name the config field
                raise TopopruneError(f"config field models[{i}].input_shape: {exc}") from None
            if str(exc).startswith("data root"):  # a root that is not there
                raise TopopruneError(f"config field dataset.root: {exc}") from None
            if str(exc).startswith("val_fraction"):  # too few training samples left
                raise TopopruneError(f"config field dataset.{exc}") from None
            if "training samples" in str(exc):  # too few samples at all: the limit
                raise TopopruneError(f"config field dataset.limit: {exc}") from None
            raise
        try:
            model = build_model(spec, data)
        except TopopruneError as exc:
            raise TopopruneError(f"config field models[{i}]: {exc}") from None
        try:
            model.eval()
            with torch.no_grad():
                out_ = first_tensor(model(data.train_x[:2]))
        except Exception as exc:  # noqa: BLE001 - any failure means the model does not take the data
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TopopruneError(f"config field models: model {spec.key!r} does not take inputs of shape "
                                 f"{tuple(data.input_shape)} from dataset {config.dataset.name!r}: {first}") from None
        if spec.factory is not None and (out_.ndim != 2 or out_.shape[-1] != data.num_classes):
            raise TopopruneError(f"config field models[{i}].kwargs: model {spec.key!r} gives outputs of shape "
                                 f"{tuple(out_.shape)} for 2 samples; allowed: (2, {data.num_classes}), one "
                                 f"score per class of {config.dataset.name!r}")
        layers = [n for n, m in model.named_modules() if is_weighted_layer(m)]
        layer = config.analyses.diagram_layer
        if layer is not None and layer not in layers:
            raise TopopruneError(f"config field analyses.diagram_layer: bad value {layer!r}; allowed: a layer "
                                 f"of {spec.key}: {', '.join(layers)}")
        for j, m in enumerate(config.methods):
            if spec.checkpoint is not None and m.method.needs().initialisation:
                raise TopopruneError(f"config field methods[{j}].rewind: bad value 'init'; allowed: 'none' "
                                     f"with model {spec.key!r}, which is loaded from a checkpoint and has no "
                                     "saved initialisation to rewind to")
            n = m.method.needs().sample
            if n > data.train_x.shape[0]:
                raise TopopruneError(f"config field methods[{j}].samples: bad value {n}; allowed: at most "
                                     f"{data.train_x.shape[0]} (the training inputs of {config.dataset.name})")


def _repair(store: RunStore, config: ExperimentConfig, damaged: list[Damage], log) -> None:
    """Remove the damaged stages and every stage that used them, so this run redoes them."""
    cells = cells_of(config)
    redo: dict[str, tuple[str, ...]] = {}  # stage -> extra paths to remove
    controls: dict[Cell, list[Cell]] = {}  # a method cell -> its control cells (they read its prune record)
    for c in cells:
        if c.control is not None:
            controls.setdefault(c.of, []).append(c)

    def cell_stages(cell: Cell, first: str) -> None:
        names = list(STAGES)
        for name in names[names.index(first):]:
            redo[cell.stage(name)] = tuple(f"{cell.folder}/{p}" for p in STAGES[name])
        if first == "prune":
            for control in controls.get(cell, []):
                cell_stages(control, "prune")

    def of_baseline(key: str) -> list[Cell]:
        return [c for c in cells if config.baseline_key(c.model, c.seed) == key]

    for d in damaged:
        stage = d.stage
        if stage.startswith("baseline/"):
            key = stage.split("/", 1)[1]
            redo[stage] = (stage,)
            redo[analysis_path(key)] = (analysis_path(key),)
            if not config.seed_each:
                redo[f"trajectories/{key}"] = (f"trajectories/{key}",)
            for c in of_baseline(key):
                if config.method(c.method).method.needs().trajectory:
                    redo[c.trajectory] = (c.trajectory,)
                cell_stages(c, "prune")
        elif stage.startswith("analysis/"):
            key = stage[len("analysis/"):-len(".json")]
            redo[stage] = (stage,)
            for c in of_baseline(key):
                cell_stages(c, "measure")
        elif stage.startswith("trajectories/"):  # a shared IMP trajectory: it and its cells
            redo[stage] = (stage,)
            for c in cells:
                if c.trajectory == stage:
                    cell_stages(c, "prune")
        elif stage.startswith("cells/"):
            folder, name = stage.rsplit("/", 1)
            cell = next((c for c in cells if c.folder == folder), None)
            if cell is not None and name in STAGES:
                cell_stages(cell, name)
            else:  # a cell this config no longer has: just drop it
                redo[stage] = ()
        else:
            redo[stage] = ()
    for stage, paths in redo.items():
        gone = store.invalidate(stage, paths)
        if gone:
            log.info("repair: removed %s (%d file(s)) to redo it", stage, len(gone))


def _redo_methods(store: RunStore, config: ExperimentConfig, keys: Sequence[str], log) -> int:
    """Remove every cell of the methods ``keys`` (their controls and shared trajectories too) so
    this run redoes them: their code changed since those cells ran. The other methods' cells, the
    baselines and the analyses stay. Returns how many cells went."""
    keys = set(keys)
    count = 0
    for c in cells_of(config):
        if c.method not in keys:
            continue
        gone = [f for name in STAGES for f in store.invalidate(c.stage(name))]
        gone += store.invalidate(c.folder, [c.folder])
        if config.method(c.method).method.needs().trajectory and c.control is None:
            gone += store.invalidate(c.trajectory, [c.trajectory])
        count += bool(gone)
    if count:
        log.info("redo: removed %d finished cell(s) of %s, whose code changed since they ran", count,
                 ", ".join(sorted(keys)))
    return count


def _method_modules(config: ExperimentConfig, workers: int) -> tuple[str, ...]:
    """The modules a worker process must import to know the config's methods; a class defined in
    ``__main__`` (a script, a notebook) cannot reach spawned workers."""
    modules = tuple(sorted({type(m.method).__module__ for m in config.methods}))
    if workers > 1 and "__main__" in modules:
        names = [m.name for m in config.methods if type(m.method).__module__ == "__main__"]
        raise TopopruneError(f"--workers {workers}: method(s) {', '.join(names)} are defined in the main "
                             "script or notebook, which worker processes cannot import; allowed: --workers 1, "
                             "or define them in an importable module")
    return modules


def run_experiment(config: ExperimentConfig, out: str | Path = "runs", *, workers: int = 1,
                   quiet: bool = False, report: bool = True, device: str | None = None,
                   repair: bool = False, executor: str = "local", address: str | None = None,
                   ray_num_cpus: int | None = None) -> Path:
    """Run (or resume) a comparison and build its report; returns the run folder.

    ``device`` is where every training runs (baseline, recovery, IMP rounds): ``"auto"``,
    ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``; default the CPU. It is not part of the config,
    so a run started on one device resumes on another. Pruning and measurements stay on the CPU
    (the latency columns are CPU latency).

    ``executor``: ``"local"`` (``workers`` processes on this machine) or ``"ray"`` (each cell a
    Ray task with the config's ``resources``; ``address`` ``"auto"`` or ``"HOST:PORT"`` joins a
    running cluster, None starts a local one with ``ray_num_cpus`` CPUs). Neither is part of the
    config: a run started on one resumes on the other.

    Raises:
        TopopruneError: bad input (before any folder exists), a run folder in use by another
            live process, damaged artefacts (unless ``repair``), a full disk.
    """
    run_dir, _ = _execute(config, out, workers=workers, quiet=quiet, report=report, device=device,
                          repair=repair, executor=executor, address=address, ray_num_cpus=ray_num_cpus)
    return run_dir


def run_keeping_going(config: ExperimentConfig, out: str | Path = "runs", *, quiet: bool = False,
                      report: bool = True, device: str | None = None, workers: int = 1,
                      redo_methods: Sequence[str] = ()) -> tuple[Path, list[CellFailure]]:
    """:func:`run_experiment` (on this machine, ``workers`` processes) that does not stop at a
    cell that raises: the error's traceback goes to the run's ``log.txt``, the cell is listed in
    the returned failures, every other cell runs (a control of a failed cell is skipped and
    listed) and the finished cells stay. A rerun retries the failed cells. Errors outside the
    cells (the config, the data, a baseline, a worker process that dies) still raise.
    ``redo_methods``: methods whose finished cells are removed first and run again (their code
    changed)."""
    return _execute(config, out, workers=workers, quiet=quiet, report=report, device=device, repair=False,
                    executor="local", address=None, ray_num_cpus=None, keep_going=True, redo_methods=redo_methods)


def _execute(config: ExperimentConfig, out: str | Path, *, workers: int, quiet: bool, report: bool,
             device: str | None, repair: bool, executor: str, address: str | None, ray_num_cpus: int | None,
             keep_going: bool = False, redo_methods: Sequence[str] = ()) -> tuple[Path, list[CellFailure]]:
    from ..train import resolve_device

    if not isinstance(config, ExperimentConfig):
        raise TopopruneError(f"config must be an ExperimentConfig (see load_config/parse_config), got "
                             f"{type(config).__name__}")
    check_workers(workers)
    from .executors import EXECUTORS, LocalExecutor, RayExecutor, require_ray


    if executor not in EXECUTORS:
        raise TopopruneError(f"executor: bad value {executor!r}; allowed: {', '.join(EXECUTORS)}")
    if executor == "ray":
        require_ray()  # a missing optional package is said before any work
        if workers != 1:
            raise TopopruneError("--workers is for --executor local; on Ray, set resources.cpus_per_cell in the "
                                 "config (each cell is a task)")
    elif address is not None:
        raise TopopruneError("--address is for --executor ray")
    if executor == "ray":  # resolved on each worker's node: the driver may have no GPU
        if device not in (None, "auto", "cpu") and config.resources.gpus_per_cell == 0:
            raise TopopruneError(f"--device {device} with --executor ray: set resources.gpus_per_cell (e.g. 1) so "
                                 "each task gets a GPU Ray accounts for")
        device = None if device is None else str(device)
    else:
        device = None if device is None else str(resolve_device(device))  # refuse a missing GPU now
    modules = _method_modules(config, 2 if executor == "ray" else workers)
    res = config.resources
    if executor == "ray":
        runner = RayExecutor(address, res.cpus_per_cell, res.gpus_per_cell, res.max_retries, modules, ray_num_cpus)
    else:  # workers also register the classes registered only here (evaluate's candidates)
        from .candidate import class_registrations

        registrations = class_registrations([m.method for m in config.methods]) if workers > 1 else ()
        runner = LocalExecutor(workers, modules, registrations)
    preflight(config, out)
    run_dir = run_dir_for(config, out)
    store = RunStore(run_dir)
    with run_session(store, f"compare {config.name}") as previous:
        runner.start(str(run_dir))
        try:
            warned, failures = _run(config, store, executor=runner, quiet=quiet, device=device, repair=repair,
                                    previous=previous, keep_going=keep_going, redo_methods=redo_methods)
        finally:
            runner.close()
        if report:
            from .report import build_report

            build_report(run_dir)
    for warning in warned:  # after the progress display: a line of its own on stderr by default
        logging.getLogger("topoprune").warning("warning: %s", warning)
    return run_dir, failures


def check_workers(workers: object) -> int:
    """``workers`` if it is a worker-process count this runner takes, else one line saying so."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
        raise TopopruneError(f"workers must be an integer in [1, 256], got {workers!r}")
    return workers


def _chance_warnings(config: ExperimentConfig, store: RunStore) -> list[str]:
    """The warning of each baseline (one per model, or per model and seed under ``train.seed:
    each``) whose trained (or loaded) network is at chance accuracy."""
    from ..data import dataset_info
    from .chance import chance_warning

    classes = dataset_info(config.dataset.name).num_classes
    out = []
    for spec in config.models:
        for seed in config.baseline_seeds():
            key = spec.key if seed is None else config.baseline_key(spec.key, seed)
            record = store.read_json(f"{baseline_dir(key)}/baseline.json") or {}
            accuracy = record.get("test_acc")
            name = spec.key if seed is None else f"{spec.key} (seed {seed})"
            warning = chance_warning(name, accuracy, classes) if accuracy is not None else None
            if warning:
                out.append(warning)
    return out


def _run(config: ExperimentConfig, store: RunStore, *, executor, quiet: bool, device: str | None,
         repair: bool, previous: dict | None, keep_going: bool = False,
         redo_methods: Sequence[str] = ()) -> tuple[list[str], list[CellFailure]]:
    """Every stage of every cell still to do; returns the warnings about the baselines and, with
    ``keep_going``, the cells that failed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..train.scoped import set_threads

    log = run_log(store.root)
    if previous and previous.get("pid"):
        log.info("took over the lock left by pid %s on %s (started %s), which is no longer running",
                 previous.get("pid"), previous.get("host"), previous.get("started"))
    damaged = store.claim_config(config.to_dict(), repair=repair)
    if damaged and not repair:
        listed = "; ".join(f"{d.path} ({d.reason})" for d in damaged[:3])
        more = f" and {len(damaged) - 3} more" if len(damaged) > 3 else ""
        raise TopopruneError(f"{len(damaged)} artefact(s) of {store.root} do not match the manifest: "
                             f"{listed}{more}; rerun with --repair to redo the stages that made them")
    if damaged:
        _repair(store, config, damaged, log)
    if redo_methods:
        _redo_methods(store, config, redo_methods, log)
    from .executors import LocalExecutor

    where = describe_device(device) if isinstance(executor, LocalExecutor) else f"{device or 'cpu'}, resolved on each worker"
    log.info("run %s: start (%s, training on %s)", store.root.name, executor.describe(), where)
    set_threads()
    cells = cells_of(config)
    seal_finished(store, cells, repair=repair)
    done_rows = store.cell_rows()
    store.write_results(list(done_rows.values()))  # results.jsonl is the view of the cells' rows
    # run sparsity by sparsity, seed by seed, every method: an interrupted run still holds
    # complete method comparisons for the seeds it finished
    # Two phases: every method cell, then every control cell (a control reads its method cell's
    # prune record, so it can only start once that cell has pruned; this holds on any executor).
    method_rank = {m.key: i for i, m in enumerate(config.methods)}
    control_rank = {c: i for i, c in enumerate(config.controls)}
    todo = sorted((c for c in cells if c.row_key not in done_rows),
                  key=lambda c: (c.control is not None, c.model, c.sparsity, c.seed, method_rank[c.method],
                                 control_rank.get(c.control, -1)))
    phases = [[c for c in todo if c.control is None], [c for c in todo if c.control is not None]]
    rows = dict(done_rows)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=quiet, transient=False) as bar:
        baselines = [(spec, seed) for spec in config.models for seed in config.baseline_seeds()]
        stage = bar.add_task("baselines and analyses", total=2 * len(baselines))
        for spec, seed in baselines:
            executor.baseline(config, store, spec, log=log, progress=not quiet, device=device, seed=seed)
            bar.advance(stage, 2)
        warned = _chance_warnings(config, store)
        for warning in warned:
            log.warning("%s", warning)
        task = bar.add_task("prune, recover, measure", total=len(cells), completed=len(cells) - len(todo))
        config_dict = config.to_dict()

        def add(row: dict) -> None:
            rows[row_key(row)] = row
            store.write_results(list(rows.values()))
            bar.advance(task)

        failures: list[CellFailure] = []

        def failed_cell(cell: Cell, exc: BaseException) -> None:  # a method's bug must not cost the other cells
            log.error("cell %s failed", cell.key, exc_info=exc)
            failures.append(_cell_failure(config, cell)(_one_line(exc)))
            bar.advance(task)

        for phase in phases:
            failed = {(f.model, f.method, f.sparsity, f.seed) for f in failures if f.control is None}
            runnable = []
            for cell in phase:
                if cell.control is not None and (cell.model, cell.method, cell.sparsity, cell.seed) in failed:
                    failures.append(_cell_failure(config, cell)("its method cell failed", skipped=True))
                    bar.advance(task)
                else:
                    runnable.append(cell)
            if runnable:
                going = {"on_error": failed_cell} if keep_going else {}  # keep-going is the local executor's
                executor.run(runnable, run_dir=str(store.root), config_dict=config_dict, device=device, on_row=add,
                             on_status=lambda text: bar.update(task, description=text), log=log, **going)
    # failures in the order the cells were handed out, rows in the cells' order, whatever order
    # the cells finished in
    position = {(c.model, c.method, c.sparsity, c.seed, c.control): i for i, c in enumerate(todo)}
    failures.sort(key=lambda f: position.get((f.model, f.method, f.sparsity, f.seed, f.control), math.inf))
    order = {c.row_key: i for i, c in enumerate(cells)}
    ordered = sorted(rows.values(), key=lambda r: order.get(row_key(r), math.inf))
    store.write_results(ordered)
    log.info("run %s: %d rows%s", store.root.name, len(ordered),
             f", {len(failures)} cell(s) failed" if failures else "")
    return warned, failures


def _one_line(exc: BaseException) -> str:
    """An error as one line: its type (unless it is ours; a worker's error names the original
    type) and its first line."""
    first = " ".join((str(exc).strip().splitlines() or [""])[0].split())
    from .executors import CellError

    kind = exc.kind if isinstance(exc, CellError) else type(exc).__name__
    return first if isinstance(exc, TopopruneError) and first else f"{kind}: {first}".rstrip(": ")


def _cell_failure(config: ExperimentConfig, cell: Cell):
    """A maker of ``cell``'s :class:`CellFailure` (the method's class named)."""
    method = config.method(cell.method).method

    def make(error: str, *, skipped: bool = False) -> CellFailure:
        return CellFailure(cell.model, cell.method, cell.sparsity, cell.seed, cell.control, error,
                           type(method).__name__, skipped)

    return make

