"""``topoprune evaluate``: candidate methods through a suite of tasks, against the strongest
baselines and their own controls, ending in a leaderboard.

An evaluation folder ``<out>/evaluate-<suite>-<method>-<hash>/`` holds ``evaluation.json`` (the
suite, the candidates, the failed cells), ``tasks/<run folder>/`` (one resumable comparison per
task, as ``topoprune compare`` writes it) and ``leaderboard.md`` / ``leaderboard.html``. The same
command resumes: finished cells are kept, failed ones retried. Several candidates given together
share the baselines' cells (each task runs once with all of them), and each candidate gets its
own verdicts.

A cell that raises (a candidate's bug, a mask of the wrong shape, the wrong number of units)
does not stop the others: its traceback goes to its task's ``log.txt``, the leaderboard marks
it, and :attr:`EvaluationResult.failures` lists it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TopopruneError
from .candidate import Candidate, registered, resolve_candidate
from .config import ExperimentConfig
from .suites import Suite, SuiteTask, load_suite, task_config

__all__ = ["EvaluationPlan", "EvaluationResult", "plan_evaluation", "evaluate_method", "run_plan"]


@dataclass
class EvaluationPlan:
    """What an evaluation will run: the candidates, the suite, each task's config (with the
    candidates of its kind), and (once :meth:`estimate` ran) the estimated seconds per task."""

    candidates: list[Candidate]
    suite: Suite
    tasks: list[tuple[SuiteTask, ExperimentConfig]]
    seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: dict[str, float] = field(default_factory=dict)  # with workers on the CPU
    workers: int = 1

    @property
    def candidate(self) -> Candidate:
        """The first candidate (the only one, usually)."""
        return self.candidates[0]

    @property
    def name(self) -> str:
        """How folders and titles name the candidates: ``a``, or ``a+b+c``."""
        return "+".join(c.key for c in self.candidates)[:80]

    def folder(self, out: str | Path) -> Path:
        key = json.dumps({"suite": self.suite.digest(), "methods": [c.entry() for c in self.candidates],
                          "sources": [c.source for c in self.candidates]}, sort_keys=True)
        if len(self.candidates) == 1:  # the digest one candidate always had
            key = json.dumps({"suite": self.suite.digest(), "method": self.candidate.entry(),
                              "source": self.candidate.source}, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return Path(out) / f"evaluate-{self.suite.name}-{self.name}-{digest}"

    def estimate(self, *, device: str = "cpu", workers: int = 1) -> dict[str, float]:
        """Seconds of training per task on this machine (:func:`~.cost.estimate_cost`); with
        ``workers`` on the CPU, also the wall time with that many cells at a time."""
        from .cost import estimate_cost

        estimates = {t.name: estimate_cost(c, device=device, workers=workers) for t, c in self.tasks}
        self.seconds = {name: e.seconds for name, e in estimates.items()}
        self.wall_seconds = {name: e.wall_seconds for name, e in estimates.items() if e.wall_seconds is not None}
        self.workers = workers
        return self.seconds

    def check_workers(self, workers: int) -> None:
        """Refuse, before any work, a worker count this runner does not take, or ``workers`` > 1
        with a candidate class the worker processes could not import."""
        from .runner import check_workers

        check_workers(workers)
        if workers > 1:
            from .candidate import class_registrations

            with registered(self.candidates):
                class_registrations([c.method for c in self.candidates])

    def missing_data(self) -> list[str]:
        """One note per data set a task needs that is not on this machine (a run would refuse it;
        a dry run plans anyway, for another machine)."""
        from ..data import dataset_info, locate

        notes = []
        for name, root in dict.fromkeys((c.dataset.name, c.dataset.root) for _, c in self.tasks):
            try:
                missing = name != "digits" and locate(name, root) is None
            except TopopruneError:  # not a built-in data set, or a root that is not there: the run says
                continue
            if missing:
                notes.append(f"note: data set {name!r} is not on this machine, so a run here would be refused; "
                             f"to get it: {dataset_info(name).how_to_get}")
        return notes

    def lines(self) -> list[str]:
        """The plan in words: one line per task (cells, seeds, targets, estimate when known)."""
        from .cost import format_seconds

        keys = {c.key for c in self.candidates}
        said = ", ".join(f"{c.key} ({c.class_name}, {'structured' if c.structured else 'unstructured'})"
                         for c in self.candidates)
        out = [f"evaluate {said} on the {self.suite.name} suite: {len(self.tasks)} task(s)"]
        planned = {t.name for t, _ in self.tasks}
        kinds = {"structured" if c.structured else "unstructured" for c in self.candidates}
        other = [t.name for t in self.suite.tasks if t.name not in planned and t.kind not in kinds]
        if other:  # every candidate is of one kind, and these tasks take the other
            kind = next(iter(kinds))
            out.append(f"  left out: {', '.join(other)}: a {kind} method runs in the {kind} tasks only")
        unchosen = [t.name for t in self.suite.tasks if t.name not in planned and t.kind in kinds]
        if unchosen:  # a plan narrowed to some of the suite's tasks
            out.append(f"  not in this plan: {', '.join(unchosen)}")
        from .leaderboard import target_label
        from .runner import cells_of

        for task, config in self.tasks:
            controls = [f"{p.method}+{p.control}" for p in config.control_plan() if p.runs]
            cells = len(cells_of(config))
            baselines = ", ".join(m.key for m in config.methods if m.key not in keys)
            est = f", about {format_seconds(self.seconds[task.name])}" if task.name in self.seconds else ""
            targets = ", ".join(target_label(config.to_dict(), s) for s in config.sparsities)
            out.append(f"  {task.name}: {cells} cells: {len(config.methods)} method(s) and {len(controls)} control(s)"
                       f"{' (' + ', '.join(controls) + ')' if controls else ''}, each at {len(config.sparsities)} "
                       f"target(s) ({targets}) x {len(config.seeds)} seed(s){est}; baselines: {baselines}")
        if self.seconds:
            wall = (f"; with {self.workers} workers about {format_seconds(sum(self.wall_seconds.values()))} of wall "
                    f"time (the dense networks trained one after another, then {self.workers} cells at a time)"
                    if self.wall_seconds else "")
            out.append(f"estimated total: {format_seconds(sum(self.seconds.values()))} of training on this machine "
                       f"(dense step time, timed now: a busy machine estimates high; a method's own search is not "
                       f"priced){wall}")
        return out


@dataclass
class EvaluationResult:
    """A finished (or partly failed) evaluation."""

    folder: Path
    candidate: str  # the candidates' names, joined with "+" when there are several
    method_class: str
    suite: str
    tasks: dict[str, Path]
    failures: list[dict]
    leaderboard: tuple[Path, Path]
    # every comparison of the candidates on the leaderboard: task, sparsity, target, method, against ("best
    # baseline" or "<control> control"), reference, n, mean, low, high, verdict, p_holm, verdict_holm, detectable
    comparisons: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every cell ran."""
        return not self.failures

    def to_dict(self) -> dict:
        return {"folder": str(self.folder), "candidate": self.candidate, "method_class": self.method_class,
                "suite": self.suite, "tasks": {k: str(v) for k, v in self.tasks.items()},
                "failures": self.failures, "leaderboard": [str(p) for p in self.leaderboard],
                "comparisons": self.comparisons}

    def failure_line(self) -> str | None:
        """One line naming what failed (None when everything ran)."""
        failed = [f for f in self.failures if not f.get("skipped")]
        if not failed:
            return None
        first = failed[0]
        classes = sorted({f["method_class"] for f in failed})
        logs = sorted({f["log"] for f in failed})
        return (f"{', '.join(classes)} failed in {len(failed)} cell(s); first: {first['task']} {first['method']} at "
                f"sparsity {first['sparsity']:g}, seed {first['seed']}: {first['error']}; the leaderboard marks them "
                f"and every other cell is kept (tracebacks: {', '.join(logs)})")


def _as_list(method: object) -> list:
    return list(method) if isinstance(method, (list, tuple)) else [method]


def plan_evaluation(method: object, *, suite: str | Path | Suite = "quick",
                    label: str | Sequence[str | None] | None = None) -> EvaluationPlan:
    """Resolve the candidates (one method, or a list of them) and the suite and build every
    task's config, refusing bad input in one line before any work: a path that does not import,
    a class that is not a pruning method, a suite with an unknown key, a suite with no task for a
    method's kind, a candidate that is a baseline, two candidates with one name."""
    methods = _as_list(method)
    if not methods:
        raise TopopruneError("evaluate needs at least one method")
    labels = list(label) if isinstance(label, (list, tuple)) else [label] + [None] * (len(methods) - 1)
    if len(labels) != len(methods):
        raise TopopruneError(f"give one label per method: {len(methods)} method(s), {len(labels)} label(s)")
    candidates = [resolve_candidate(m, lab) for m, lab in zip(methods, labels)]
    keys = [c.key for c in candidates]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise TopopruneError(f"two candidates are named {twice[0]!r}; allowed: distinct names (give --label)")
    chosen = suite if isinstance(suite, Suite) else load_suite(suite)
    for c in candidates:
        if not chosen.tasks_for(c.structured):
            kinds = sorted({t.kind for t in chosen.tasks})
            raise TopopruneError(f"suite {chosen.name!r} has no {'structured' if c.structured else 'unstructured'} "
                                 f"task for {c.class_name}; it has {', '.join(kinds)} tasks only")
    with registered(candidates):  # configs name methods by their registry name
        planned = _tasks(chosen, candidates)
    return EvaluationPlan(candidates, chosen, planned)


def _tasks(chosen: Suite, candidates: list[Candidate]) -> list[tuple[SuiteTask, ExperimentConfig]]:
    planned = []
    for task in chosen.tasks:
        mine = [c for c in candidates if c.structured == (task.kind == "structured")]
        if not mine:
            continue
        for c in mine:
            if any(m == c.key or (isinstance(m, dict) and (m.get("label") or m.get("name")) == c.key)
                   for m in task.baselines):
                raise TopopruneError(f"{c.key!r} is a baseline of suite {chosen.name!r} (task {task.name}); "
                                     "allowed: a method that is not among the suite's baselines, or the same method "
                                     "with other settings under a label of its own (--label)")
        planned.append((task, task_config(task, [c.entry() for c in mine], suite=chosen.name,
                                          where=f"suite {chosen.name}: task {task.name}")))
    return planned


def evaluate_method(method: object, *, suite: str | Path | Suite = "quick", out: str | Path = "runs",
                    device: str | None = None, quiet: bool = False,
                    label: str | Sequence[str | None] | None = None, workers: int = 1,
                    on_event: Callable[[str], None] | None = None) -> EvaluationResult:
    """Run ``method`` through ``suite`` and write the leaderboard (resumable: rerun to continue).

    ``method``: ``"pkg.module:MyMethod"``, a registered name, a :class:`~topoprune.StructuredMethod`
    or :class:`~topoprune.UnstructuredMethod` subclass, an instance (its settings are used), or a
    list of these: candidates given together share the baselines' cells, and each gets its own
    verdicts. ``suite``: ``"quick"`` (digits, under a minute), ``"standard"`` (Fashion-MNIST, hours on a
    CPU), ``"standard-cifar10"`` (for a GPU), or a YAML file. ``device``: where training runs
    (default: the suite's ``device``, else the CPU). ``label`` names a candidate on the
    leaderboard (one per candidate; needed when it is a baseline's class with other settings).
    ``workers``: cells run in that many processes on this machine, sharing its cores (a candidate
    must then live in an importable module). ``on_event`` receives one line per task as it starts.

    Bad input raises :class:`~topoprune.TopopruneError` before any work. A cell that fails does
    not: see :attr:`EvaluationResult.failures` and :meth:`EvaluationResult.failure_line`.
    """
    return run_plan(plan_evaluation(method, suite=suite, label=label), out=out, device=device, quiet=quiet,
                    workers=workers, on_event=on_event)


def run_plan(plan: EvaluationPlan, *, out: str | Path = "runs", device: str | None = None, quiet: bool = False,
             workers: int = 1, on_event: Callable[[str], None] | None = None) -> EvaluationResult:
    """Run a plan from :func:`plan_evaluation` (what :func:`evaluate_method` does after planning;
    the command line plans once, prints the plan, then runs it)."""
    plan.check_workers(workers)  # before any work
    with registered(plan.candidates):  # the cells look the candidates up by name
        return _evaluate(plan, out=out, device=device, quiet=quiet, workers=workers, on_event=on_event)


def _made_with() -> str:
    """Which code wrote the leaderboard, and when (every row records its own versions and commit)."""
    import datetime
    import platform

    from .provenance import source_commit
    from .store import package_versions

    versions = package_versions()
    commit = source_commit()
    at = f", commit {commit}" if commit else ""
    return (f"Written by topoprune {versions.get('topoprune', '?')}{at} with torch {versions.get('torch', '?')}, "
            f"Python {platform.python_version()}, on {platform.system()} {platform.machine()}, at "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; each row of the task folders "
            "records the versions and commit it ran with.")


def _recorded_code(before: dict, task: str, run: str | None = None) -> dict:
    """The candidates' digests an earlier call recorded for ``task`` (``before``, the folder's
    ``evaluation.json``) in its run folder ``run``. A task run in parts (the same config on other
    seeds or targets, each in its own folder) has a record per folder under ``runs``: another
    folder's record says nothing of this one's cells."""
    entry = before.get("tasks", {}).get(task) or {}
    if run is not None and entry.get("run") != run:
        entry = (before.get("runs") or {}).get(run) or {}
    known = entry.get("code_sha256") if isinstance(entry, dict) else None
    return known if isinstance(known, dict) else {}


def _changed_code(plan: EvaluationPlan, before: dict, task: str, digests: dict[str, str | None],
                  run: str | None = None) -> list[str]:
    """The candidates whose source file (``digests``: as this call imported it) differs from the
    one their cells of ``task`` (in run folder ``run``) ran with, as an earlier call recorded it:
    an edited or fixed method must not be mixed with its old cells. A candidate without a record
    or a digest counts as unchanged."""
    known = _recorded_code(before, task, run)
    return [c.key for c in plan.candidates
            if known.get(c.key) is not None and digests[c.key] is not None and known[c.key] != digests[c.key]]


def _evaluate(plan: EvaluationPlan, *, out: str | Path, device: str | None, quiet: bool, workers: int,
              on_event: Callable[[str], None] | None) -> EvaluationResult:
    from ..train.checkpoint import atomic_write_json
    from .leaderboard import TaskRows, write_leaderboard
    from .runner import preflight, run_dir_for, run_keeping_going
    from .store import read_results

    folder = plan.folder(out)
    tasks_dir = folder / "tasks"
    for _, config in plan.tasks:  # data, shapes, --out: all refused before any training
        preflight(config, tasks_dir)
    device = device or plan.suite.device or "cpu"
    folder.mkdir(parents=True, exist_ok=True)
    record_path = folder / "evaluation.json"
    keys = [c.key for c in plan.candidates]
    # read once: the code this call runs is what it imported, whatever happens to the files meanwhile
    digests = {c.key: c.code_digest() for c in plan.candidates}
    record = {"suite": plan.suite.name, "suite_digest": plan.suite.digest(), "candidate": plan.name,
              "candidates": [{"name": c.key, "method_class": c.class_name, "source": c.source,
                              "settings": c.method.settings(), "structured": c.structured,
                              "code_sha256": digests[c.key]} for c in plan.candidates],
              "method_class": ", ".join(c.class_name for c in plan.candidates), "tasks": {}, "failures": []}
    if len(plan.candidates) == 1:  # the fields one candidate always had
        c = plan.candidate
        record.update({"source": c.source, "settings": c.method.settings(), "structured": c.structured})
    try:  # what earlier calls recorded stays until this call redoes it
        before = json.loads(record_path.read_text())
        if not isinstance(before, dict):
            before = {}
    except (OSError, ValueError):
        before = {}
    record["tasks"] = {k: v for k, v in before.get("tasks", {}).items() if isinstance(v, dict)}
    record["failures"] = [f for f in before.get("failures", []) if isinstance(f, dict)]
    record["runs"] = {k: v for k, v in (before.get("runs") or {}).items() if isinstance(v, dict)}
    task_rows, runs, failures = [], {}, []
    for i, (task, config) in enumerate(plan.tasks, 1):
        run_name = run_dir_for(config, tasks_dir).name
        if on_event is not None:
            on_event(f"task {i}/{len(plan.tasks)}: {task.name} ({run_name})")
        changed = _changed_code(plan, before, task.name, digests, run_name)
        if changed and on_event is not None:
            on_event(f"the code of {', '.join(changed)} changed since its cells of {task.name} ran: they run again "
                     "(the baselines' cells are kept)")
        ran = [k for k in keys if k in {m.key for m in config.methods}]
        # before any cell runs, the digest every cell this call adds runs with; a redone method keeps
        # the old one until its redo finished, so a call stopped earlier redoes it again
        known = _recorded_code(before, task.name, run_name)
        entry = {"seconds_this_call": 0.0, **record["tasks"].get(task.name, {}), "run": run_name}
        entry["code_sha256"] = {k: known[k] if k in changed else digests[k] for k in ran}
        record["tasks"][task.name] = entry
        record["runs"][run_name] = {"task": task.name, "code_sha256": entry["code_sha256"]}
        atomic_write_json(record, record_path)
        t0 = time.perf_counter()
        run_dir, failed = run_keeping_going(config, tasks_dir, quiet=quiet, device=device, workers=workers,
                                            redo_methods=changed)
        runs[task.name] = run_dir
        mine = [{**f.to_dict(), "task": task.name, "log": str(run_dir / "log.txt")} for f in failed]
        failures += mine
        record["tasks"][task.name] = {"run": run_dir.name, "seconds_this_call": time.perf_counter() - t0,
                                      "code_sha256": {k: digests[k] for k in ran}}
        record["runs"][run_dir.name] = {"task": task.name, "code_sha256": {k: digests[k] for k in ran}}
        # this folder's failures are replaced; another folder's of the task (a part on other seeds
        # or targets) are kept
        record["failures"] = [f for f in record["failures"] if f.get("task") != task.name
                              or Path(str(f.get("log") or "")).parent.name not in ("", run_dir.name)] + mine
        atomic_write_json(record, record_path)
        saved = json.loads((run_dir / "config.json").read_text())
        task_rows.append(TaskRows(task.name, task.description, saved, read_results(run_dir),
                                  [m.key for m in config.methods if m.key not in keys], run_dir, mine,
                                  [m.key for m in config.methods if m.key in keys]))
    title = f"topoprune evaluate: {', '.join(keys)} on the {plan.suite.name} suite"
    said = "; ".join(f"{c.key} ({c.class_name}, from {c.source})" for c in plan.candidates)
    intro = (f"{said}: against the suite's baselines and {'its' if len(keys) == 1 else 'each its'} own controls. "
             f"{plan.suite.description}. {_made_with()}")
    comparisons: list[dict] = []
    pages = write_leaderboard(folder, title=title, intro=intro, tasks=task_rows, candidates=keys, collect=comparisons)
    return EvaluationResult(folder, plan.name, record["method_class"], plan.suite.name, runs, failures, pages,
                            comparisons)
