"""Our own methods through `topoprune evaluate`, and their leaderboard into ``benchmarks/results``
(the benchmark docs' leaderboard page is generated from it).

    python benchmarks/evaluate_ours.py                   # the standard suite: run (resumes), then export
    python benchmarks/evaluate_ours.py --export-only     # export what has finished; a partial run says so
    python benchmarks/evaluate_ours.py --suite quick     # the same on the quick suite (minutes)
    python benchmarks/evaluate_ours.py --tasks conv-extreme   # only these tasks of the suite (comma-separated)

The methods and their settings are ``evaluate_cost.plan_ours()``'s (the Topological Pruner, Betti
pruning and the Topological Pruner v2 in the structured task; T-IMP and magnitude pruning that
keeps every layer's spanning tree in the unstructured ones), evaluated together so that they share
the baselines' cells. The evaluation folder is ``benchmarks/runs/evaluate-<suite>-...``; the run
resumes cell by cell, so it can be stopped and started again.

A task run on another machine (or in an earlier session whose run folder is gone) is carried from
the results file already in ``--out``, as exported then: only where this checkout has no run folder
for it and the exported task has the same run folder name (the same config, so the same cells;
another task of the suite may have changed meanwhile).
The page says which tasks were carried, with the commit each one ran at; the verdicts are
recomputed from the carried rows like any others.

Writes ``results/evaluate-<suite>.json`` (every task's saved config and results rows, so the page
recomputes every verdict) and ``.md`` (the leaderboard with the command, machine and versions).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

try:
    from _env import environment, execution_text, provenance_lines, run_execution
    from evaluate_cost import plan_ours
except ImportError:
    from benchmarks._env import environment, execution_text, provenance_lines, run_execution
    from benchmarks.evaluate_cost import plan_ours

from topoprune.experiments.candidate import registered
from topoprune.experiments.evaluate import run_plan
from topoprune.experiments.leaderboard import TaskRows, leaderboard_sections
from topoprune.experiments.report import _markdown_table
from topoprune.experiments.runner import cells_of, run_dir_for
from topoprune.experiments.store import read_results

HERE = Path(__file__).parent


def carried_tasks(previous: Path, suite: str) -> dict[str, dict]:
    """The tasks of an earlier export (``previous``, the results file of the suite named ``suite``)
    that ran elsewhere: by task name, each as exported. Its ``run_dir`` names the config it ran
    (the name holds the config's digest: the data, the model, the training, the methods with their
    settings, the targets and the seeds), so a task is carried only where that is unchanged."""
    try:
        before = json.loads(previous.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(before, dict) or before.get("suite") != suite:
        return {}
    return {t["name"]: t for t in before.get("tasks", []) if isinstance(t, dict) and t.get("rows")}


def task_records(plan, folder: Path, carried: dict[str, dict] | None = None) -> list[dict]:
    """Every task of the evaluation as far as it ran: its saved config, its results rows, its
    baselines and candidates, and the failed cells the last run recorded. A task with no run
    folder here is taken from ``carried`` (an earlier export) when that ran the same config."""
    keys = [c.key for c in plan.candidates]
    carried = carried or {}
    record_path = folder / "evaluation.json"
    failures = json.loads(record_path.read_text()).get("failures", []) if record_path.exists() else []
    out = []
    for task, config in plan.tasks:
        run_dir = run_dir_for(config, folder / "tasks")
        before = carried.get(task.name)
        if not run_dir.exists() and before is not None and before.get("run_dir") == run_dir.name:
            commits = sorted({r.get("commit", "?")[:7] for r in before["rows"]})
            out.append({**before, "carried": f"run at commit {', '.join(commits)}; carried from the earlier export"})
            continue
        saved = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else None
        rows = read_results(run_dir) if run_dir.exists() else []
        out.append({"name": task.name, "description": task.description, "run_dir": run_dir.name,
                    "config": saved or config.to_dict(), "rows": rows, "execution": run_execution(run_dir, rows),
                    "baselines": [m.key for m in config.methods if m.key not in keys],
                    "candidates": [m.key for m in config.methods if m.key in keys],
                    "failures": [{**f, "log": os.path.relpath(f["log"], folder.parent)} if f.get("log") else f
                                 for f in failures if f.get("task") == task.name],  # no machine's own paths
                    "cells_total": len(cells_of(config))})
    return out


def task_rows(tasks: list[dict]) -> list[TaskRows]:
    """The exported tasks as the leaderboard reads them."""
    return [TaskRows(t["name"], t["description"], t["config"], t["rows"], t["baselines"], Path(t["run_dir"]),
                     t["failures"], t["candidates"]) for t in tasks]


def sections_markdown(summary: list[str], sections: list[tuple[str, list]], level: str = "##") -> list[str]:
    """The leaderboard's summary and sections as Markdown (tables, or bullet lists)."""
    md = [f"{level} Verdict", "", *[f"- {s}" for s in summary], ""]
    for heading, body in sections:
        md += [f"{level} {heading}", ""]
        md += [_markdown_table(body)] if body and isinstance(body[0], list) else [f"- {s}" for s in body]
        md += [""]
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="standard", help="quick, standard, standard-cifar10 or a suite YAML file")
    ap.add_argument("--runs", type=Path, default=HERE / "runs")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--device", default=None, help="where training runs (default: the suite's, else the CPU)")
    ap.add_argument("--workers", type=int, default=1, help="cells in that many local processes (default 1)")
    ap.add_argument("--export-only", action="store_true", help="export what has run; train nothing")
    ap.add_argument("--tasks", default=None, help="run only these tasks of the suite (comma-separated names); "
                    "the export still lists every task")
    args = ap.parse_args()
    if not 1 <= args.workers <= 256:
        print(f"--workers {args.workers}: allowed: an integer in [1, 256]", file=sys.stderr)
        raise SystemExit(2)
    if Path(args.suite).suffix in (".yaml", ".yml") and args.out.resolve() == (HERE / "results").resolve():
        print(f"--suite {args.suite}: a suite file's results need --out DIR; allowed: the shipped suites (quick, "
              "standard, standard-cifar10) write to benchmarks/results", file=sys.stderr)
        raise SystemExit(2)
    plan = plan_ours(args.suite)
    names = [t.name for t, _ in plan.tasks]
    chosen = names if args.tasks is None else [n.strip() for n in args.tasks.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in names]
    if unknown or not chosen:
        print(f"--tasks {args.tasks}: {', '.join(unknown) or 'no task named'}; allowed: comma-separated names "
              f"from {', '.join(names)}", file=sys.stderr)
        raise SystemExit(2)
    failed = None
    folder = plan.folder(args.runs)
    stem = f"evaluate-{plan.suite.name}"
    carried = carried_tasks(args.out / f"{stem}.json", plan.suite.name)
    if args.export_only and not folder.is_dir() and not carried:
        print(f"--export-only: {folder} does not exist; run without --export-only first", file=sys.stderr)
        raise SystemExit(2)
    if not args.export_only:
        part = dataclasses.replace(plan, tasks=[(t, c) for t, c in plan.tasks if t.name in chosen])
        with registered(part.candidates):
            part.estimate(device=args.device or part.suite.device or "cpu", workers=args.workers)
            print("\n".join(part.lines()), flush=True)
        failed = run_plan(part, out=args.runs, device=args.device, workers=args.workers).failure_line()
    tasks = task_records(plan, folder, carried)
    done, total = sum(len(t["rows"]) for t in tasks), sum(t["cells_total"] for t in tasks)
    runs_shown = os.path.relpath(args.runs)
    flags = "".join([f" --suite {args.suite}" if args.suite != "standard" else "",
                     f" --runs {runs_shown}" if args.runs.resolve() != (HERE / "runs").resolve() else "",
                     f" --out {os.path.relpath(args.out)}" if args.out.resolve() != (HERE / "results").resolve() else "",
                     f" --device {args.device}" if args.device else "",
                     f" --workers {args.workers}" if args.workers != 1 else "",
                     f" --tasks {','.join(chosen)}" if args.tasks is not None else ""])
    record = {"command": f"python benchmarks/evaluate_ours.py{flags}", **environment(),
              "run_dir": folder.name, "suite": plan.suite.name, "suite_digest": plan.suite.digest(),
              "seeds": sorted({s for t in tasks for s in t["config"]["seeds"]}),
              "candidates": [{"name": c.key, "method_class": c.class_name, "settings": c.method.settings(),
                              "structured": c.structured} for c in plan.candidates],
              "description": plan.suite.description, "tasks": tasks, "cells_done": done, "cells_total": total,
              "complete": done == total, "runs": runs_shown}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    summary, sections = leaderboard_sections(task_rows(tasks), [c.key for c in plan.candidates])
    status = ("complete" if record["complete"] else
              f"**PARTIAL: {done} of {total} cells finished**; rerun the command to resume, then export")
    execution = {"executors": list(dict.fromkeys(e for t in tasks for e in t["execution"]["executors"])),
                 "threads": sorted({n for t in tasks for n in t["execution"]["threads"]}),
                 "rows_without_threads": sum(t["execution"]["rows_without_threads"] for t in tasks)}
    carried_lines = [f"Task `{t['name']}`: {t['carried']} (the same config: run folder `{t['run_dir']}`)."
                     for t in tasks if t.get("carried")]
    md = [f"# {stem}", "", *provenance_lines(record), f"Evaluation folder `{folder.name}` ({status}).",
          *carried_lines,
          *([execution_text(execution)] if execution["executors"] else []), "", *sections_markdown(summary, sections)]
    (args.out / f"{stem}.md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out / stem}.json and .md: {done} of {total} cells")
    if failed:  # exported with the failed cells marked; the command still says it did not finish
        print(failed, file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
