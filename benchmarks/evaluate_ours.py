"""Our own methods through `topoprune evaluate`, and their leaderboard into ``benchmarks/results``
(the benchmark docs' leaderboard page is generated from it).

    python benchmarks/evaluate_ours.py                   # the standard suite: run (resumes), then export
    python benchmarks/evaluate_ours.py --export-only     # export what has finished; a partial run says so
    python benchmarks/evaluate_ours.py --suite quick     # the same on the quick suite (minutes)
    python benchmarks/evaluate_ours.py --tasks conv-extreme   # only these tasks of the suite (comma-separated)
    python benchmarks/evaluate_ours.py --tasks vgg16q-flops --seeds 0 --targets 0.5   # one seed at one target

The methods and their settings are ``evaluate_cost.plan_ours()``'s (the Topological Pruner, Betti
pruning and the Topological Pruner v2 in the structured task; T-IMP and magnitude pruning that
keeps every layer's spanning tree in the unstructured ones), evaluated together so that they share
the baselines' cells. The evaluation folder is ``benchmarks/runs/evaluate-<suite>-...``; the run
resumes cell by cell, so it can be stopped and started again.

A task can be run in parts: ``--seeds`` and ``--targets`` run some of its seeds and targets in a run
folder of their own (the task's config on those). Every seed of the standard suite's tasks trains
its own network and its cells start from that network only, so a part runs the very cells of the
whole run; two parts of one seed at different targets each train that seed's network, and the
export refuses to join them unless they trained the same one (the rows' dense accuracy). The export
joins, for each task, its run folder here, the folders of its parts here, and the rows of the
results file already in ``--out`` (an earlier export, made elsewhere or in a run folder since lost)
for the seeds and targets none of those runs, where that export ran the same config (the same run folder name:
the config's digest). The page says where each task's rows come from, with the commits; the
verdicts are recomputed from the joined rows like any others.

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
    from benchmarks._env import (
        environment,
        execution_text,
        provenance_lines,
        run_execution,
    )
    from benchmarks.evaluate_cost import plan_ours

from topoprune.errors import TopopruneError
from topoprune.experiments.candidate import registered
from topoprune.experiments.config import parse_config
from topoprune.experiments.evaluate import run_plan
from topoprune.experiments.leaderboard import TaskRows, leaderboard_sections
from topoprune.experiments.report import _markdown_table
from topoprune.experiments.row import row_key
from topoprune.experiments.runner import cells_of, run_dir_for
from topoprune.experiments.store import read_results

HERE = Path(__file__).parent


def previous_export(path: Path) -> dict:
    """The results file already at ``path`` (an earlier export), or ``{}`` when there is none
    or it does not parse: read once, for the tasks it carries and the cells it held."""
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return before if isinstance(before, dict) else {}


def carried_tasks(before: dict, suite: str) -> dict[str, dict]:
    """The tasks of an earlier export (``before``, the results file of the suite named ``suite``)
    that ran elsewhere: by task name, each as exported. Its ``run_dir`` names the config it ran
    (the name holds the config's digest: the data, the model, the training, the methods with their
    settings, the targets and the seeds), so a task is carried only where that is unchanged."""
    if before.get("suite") != suite:
        return {}
    return {t["name"]: t for t in before.get("tasks", []) if isinstance(t, dict) and t.get("rows")}


def part_config(config, *, seeds: list[int] | None = None, targets: list[float] | None = None):
    """The task's config on some of its seeds and targets. Under ``train.seed: each`` every seed
    trains its own network and its cells start from it alone, so these are the full run's cells;
    parts of one seed at different targets each train that seed's network (the export checks that
    they trained the same one)."""
    return parse_config({**config.to_dict(), **({"seeds": list(seeds)} if seeds is not None else {}),
                         **({"sparsities": list(targets)} if targets is not None else {})})


def _same_task(saved: dict, full: dict) -> bool:
    """Whether a run folder's saved config is the task's config on some of its seeds and targets."""
    split = ("seeds", "sparsities")
    rest = {k: v for k, v in saved.items() if k not in split}
    return (rest == {k: v for k, v in full.items() if k not in split}
            and all(set(saved.get(k, [])) <= set(full[k]) for k in split))


def _saved_config(run_dir: Path) -> dict | None:
    """A run folder's saved config, or None where it has none (a folder cut off as it was made)."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) and {"seeds", "sparsities"} <= set(saved) else None


def _owned(saved: dict) -> set[tuple]:
    """The (seed, target) pairs a run folder's config runs."""
    return {(seed, s) for seed in saved["seeds"] for s in saved["sparsities"]}


def _part(run_dir: str, rows: list[dict], where: str) -> dict:
    return {"run_dir": run_dir, "seeds": sorted({r["seed"] for r in rows}),
            "targets": sorted({r["sparsity"] for r in rows}), "cells": len(rows),
            "commits": sorted({(r.get("commit") or "?")[:7] for r in rows}), "where": where}


def part_text(part: dict) -> str:
    """One part of a task in words: which seeds and targets, how many cells, at which commit, from where."""
    seeds = ", ".join(map(str, part["seeds"]))
    targets = f", sparsity {', '.join(map(str, part['targets']))}" if part.get("targets") else ""
    return (f"seed(s) {seeds}{targets}: {part['cells']} cells at commit {', '.join(part['commits'])} "
            f"(run folder `{part['run_dir']}`, {part['where']})")


def check_networks(name: str, rows: list[dict], origin: dict[tuple, str]) -> None:
    """Refuse to join parts whose cells of one training seed started from different dense networks
    (parts of one seed at different targets each trained it: the same settings must give the same
    one). ``origin`` names each row's part, for the message."""
    dense: dict = {}
    for r in rows:
        seed = r.get("train_seed", r["seed"])
        dense.setdefault((r["model"], seed), {}).setdefault(r.get("dense_acc"), origin.get(row_key(r), "?"))
    for (model, seed), accs in sorted(dense.items(), key=str):
        if len(accs) > 1:
            said = ", ".join(f"{acc} in {where}" for acc, where in sorted(accs.items(), key=str))
            raise TopopruneError(f"task {name}: the parts of training seed {seed} started from different {model} "
                                 f"networks (dense accuracy {said}); allowed: parts that trained the same network; "
                                 "run that seed's targets in one folder")


def ran_in_parts(tasks: list[dict]) -> bool:
    """Whether some exported task's rows come from more than one folder here, or from an earlier export."""
    return any(len(t.get("parts", [])) > 1 or any(p.get("where") != "this checkout" for p in t.get("parts", []))
               for t in tasks if isinstance(t, dict))


def parts_lines(tasks: list[dict]) -> list[str]:
    """Where the rows of every task come from (Markdown lines, ending with a blank one), once some
    task did not run in one folder here; nothing when every task did (the command and commit of
    the export then say it all). Listing every task then keeps each row's commit on the page."""
    if not ran_in_parts(tasks):
        return []
    lines = [f"- Task `{t['name']}`: " + "; ".join(part_text(p) for p in t["parts"]) + "."
             for t in tasks if t.get("parts")]
    return [("Where the rows come from (a task's config is the same in each part, on some of its seeds and "
             "targets; each seed of these tasks trains its own network, and its cells start from that network "
             "only):"), "", *lines, ""]


def task_records(plan, folder: Path, carried: dict[str, dict] | None = None) -> list[dict]:
    """Every task of the evaluation as far as it ran: its config, its results rows, its baselines
    and candidates, where its rows come from (``parts``) and the failed cells the last run recorded.

    A task's rows come from its run folder here, from run folders of the same config on some of its
    seeds and targets, and from ``carried`` (an earlier export) for the seeds and targets none of
    those runs, when that export ran the same config. A cell's row is taken once: a folder here
    first. A cell missing from a folder here is not carried: it is still to run there (or to run
    again, after its method's code changed or ``--repair`` removed it)."""
    keys = [c.key for c in plan.candidates]
    carried = carried or {}
    record_path = folder / "evaluation.json"
    failures = json.loads(record_path.read_text()).get("failures", []) if record_path.exists() else []
    out = []
    for task, config in plan.tasks:
        full = config.to_dict()
        run_dir = run_dir_for(config, folder / "tasks")
        here = {run_dir: full} if run_dir.exists() else {}
        for d in sorted((folder / "tasks").glob(f"{config.name}-*")):
            saved = _saved_config(d) if d != run_dir else None
            if saved is not None and _same_task(saved, full):
                here[d] = saved
        rows: dict[tuple, dict] = {}
        origin: dict[tuple, str] = {}
        parts, executions = [], []
        for d in here:
            mine = [r for r in read_results(d) if row_key(r) not in rows]
            rows.update((row_key(r), r) for r in mine)
            origin.update((row_key(r), f"run folder {d.name}") for r in mine)
            executions.append(run_execution(d, mine))
            if mine:
                parts.append(_part(d.name, mine, "this checkout"))
        before = carried.get(task.name)
        if before is not None and before.get("run_dir") == run_dir.name:
            earlier = before.get("parts") or [_part(before["run_dir"], before["rows"], "an earlier export")]
            # only what no folder here runs: a folder's missing cell is to run (or to redo), not to carry
            owned = set().union(*(_owned(saved) for saved in here.values()))
            kept = [r for r in before["rows"] if (r["seed"], r["sparsity"]) not in owned]
            placed: set[tuple] = set()
            for part in earlier:  # each carried row to the first earlier part that ran its seed and target
                mine = [r for r in kept if row_key(r) not in placed and r["seed"] in part["seeds"]
                        and r["sparsity"] in part.get("targets", full["sparsities"])]
                placed.update(row_key(r) for r in mine)
                if mine:
                    parts.append(_part(part["run_dir"], mine, "carried from an earlier export"))
                    origin.update((row_key(r), f"run folder {part['run_dir']} (carried)") for r in mine)
            rows.update((row_key(r), r) for r in kept)
            if kept:  # how the carried rows ran: the earlier starts, and these rows' thread counts
                executions.append({**run_execution(None, kept),
                                   "executors": before.get("execution", {}).get("executors", [])})
            carried_failures = [f for f in before.get("failures", []) if (f.get("seed"), f.get("sparsity")) not in owned]
        else:
            carried_failures = []
        execution = {"executors": list(dict.fromkeys(e for x in executions for e in x["executors"])),
                     "threads": sorted({n for x in executions for n in x["threads"]}),
                     "rows_without_threads": sum(x["rows_without_threads"] for x in executions)}
        check_networks(task.name, list(rows.values()), origin)
        order = {c.row_key: i for i, c in enumerate(cells_of(config))}
        out.append({"name": task.name, "description": task.description, "run_dir": run_dir.name,
                    "config": full, "rows": sorted(rows.values(), key=lambda r: order.get(row_key(r), len(order))),
                    "execution": execution, "parts": parts,
                    "baselines": [m.key for m in config.methods if m.key not in keys],
                    "candidates": [m.key for m in config.methods if m.key in keys],
                    "failures": [{**f, "log": os.path.relpath(f["log"], folder.parent)} if f.get("log") else f
                                 for f in failures if f.get("task") == task.name
                                 and (f.get("model"), f.get("method"), f.get("sparsity"), f.get("seed")) not in rows]
                    + carried_failures,
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


def _numbers(text: str, kind: type) -> list:
    """Comma-separated numbers of ``kind``, distinct and sorted; empty when one does not parse (the
    caller refuses an empty list in one line)."""
    try:
        return sorted({kind(x) for x in text.split(",") if x.strip()})
    except ValueError:
        return []


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
    ap.add_argument("--seeds", default=None, help="run only these seeds of the chosen tasks (comma-separated; "
                    "tasks whose seeds each train their own network); the export joins the parts' folders")
    ap.add_argument("--targets", default=None, help="run only these targets (sparsities, comma-separated) of the "
                    "chosen tasks")
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
    seeds = None
    if args.seeds is not None:
        seeds = _numbers(args.seeds, int)
        for task, config in plan.tasks:
            if task.name in chosen and (not seeds or not set(seeds) <= set(config.seeds) or not config.seed_each):
                print(f"--seeds {args.seeds}: not a subset of {task.name}'s seeds with a network each; allowed: "
                      f"comma-separated seeds from {', '.join(map(str, config.seeds))} of a task with "
                      "train.seed: each", file=sys.stderr)
                raise SystemExit(2)
    targets = None
    if args.targets is not None:
        targets = _numbers(args.targets, float)
        for task, config in plan.tasks:
            if task.name in chosen and (not targets or not set(targets) <= set(config.sparsities)):
                print(f"--targets {args.targets}: not a subset of {task.name}'s targets; allowed: comma-separated "
                      f"values from {', '.join(map(str, config.sparsities))}", file=sys.stderr)
                raise SystemExit(2)
            shared = [m.key for m in config.methods if m.method.needs().trajectory]
            if task.name in chosen and shared:  # each part would retrain the whole trajectory: unchecked
                print(f"--targets {args.targets}: task {task.name} has methods whose targets share one pruning "
                      f"trajectory per seed ({', '.join(shared)}); allowed: --seeds alone for it", file=sys.stderr)
                raise SystemExit(2)
    failed = None
    folder = plan.folder(args.runs)
    stem = f"evaluate-{plan.suite.name}"
    results_file = args.out / f"{stem}.json"
    before = previous_export(results_file)
    carried = carried_tasks(before, plan.suite.name)
    if args.export_only and not folder.is_dir() and not carried:
        print(f"--export-only: {folder} does not exist; run without --export-only first", file=sys.stderr)
        raise SystemExit(2)
    if not args.export_only:
        part = dataclasses.replace(plan, tasks=[(t, part_config(c, seeds=seeds, targets=targets))
                                                for t, c in plan.tasks if t.name in chosen])
        with registered(part.candidates):
            part.estimate(device=args.device or part.suite.device or "cpu", workers=args.workers)
            print("\n".join(part.lines()), flush=True)
        failed = run_plan(part, out=args.runs, device=args.device, workers=args.workers).failure_line()
    tasks = task_records(plan, folder, carried)
    done, total = sum(len(t["rows"]) for t in tasks), sum(t["cells_total"] for t in tasks)
    runs_shown = os.path.relpath(args.runs)
    flags = "".join([" --export-only" if args.export_only else "",
                     f" --suite {args.suite}" if args.suite != "standard" else "",
                     f" --runs {runs_shown}" if args.runs.resolve() != (HERE / "runs").resolve() else "",
                     f" --out {os.path.relpath(args.out)}" if args.out.resolve() != (HERE / "results").resolve() else "",
                     f" --device {args.device}" if args.device else "",
                     f" --workers {args.workers}" if args.workers != 1 else "",
                     f" --tasks {','.join(chosen)}" if args.tasks is not None else "",
                     f" --seeds {','.join(map(str, seeds))}" if seeds is not None else "",
                     f" --targets {','.join(map(str, targets))}" if targets is not None else ""])
    record = {"command": f"python benchmarks/evaluate_ours.py{flags}", **environment(),
              "run_dir": folder.name, "suite": plan.suite.name, "suite_digest": plan.suite.digest(),
              "seeds": sorted({s for t in tasks for s in t["config"]["seeds"]}),
              "candidates": [{"name": c.key, "method_class": c.class_name, "settings": c.method.settings(),
                              "structured": c.structured} for c in plan.candidates],
              "description": plan.suite.description, "tasks": tasks, "cells_done": done, "cells_total": total,
              "complete": done == total, "runs": runs_shown}
    args.out.mkdir(parents=True, exist_ok=True)
    had = before.get("cells_done", 0)
    if isinstance(had, int) and done < had:  # a stray run over a committed export: say so (git holds the old file)
        print(f"warning: {results_file} held {had} cells; this export holds {done}", file=sys.stderr)
    results_file.write_text(json.dumps(record, indent=2) + "\n")
    summary, sections = leaderboard_sections(task_rows(tasks), [c.key for c in plan.candidates])
    status = ("complete" if record["complete"] else
              f"**PARTIAL: {done} of {total} cells finished**; rerun the command to resume, then export")
    execution = {"executors": list(dict.fromkeys(e for t in tasks for e in t["execution"]["executors"])),
                 "threads": sorted({n for t in tasks for n in t["execution"]["threads"]}),
                 "rows_without_threads": sum(t["execution"]["rows_without_threads"] for t in tasks)}
    carried_lines = parts_lines(tasks)
    carried_lines = ["", *carried_lines] if carried_lines else []
    md = [f"# {stem}", "", *provenance_lines(record), f"Evaluation folder `{folder.name}` ({status}).",
          *carried_lines,
          *([execution_text(execution)] if execution["executors"] else []), "", *sections_markdown(summary, sections)]
    (args.out / f"{stem}.md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out / stem}.json and .md: {done} of {total} cells")
    if failed:  # exported with the failed cells marked; the command still says it did not finish
        print(failed, file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    try:
        main()
    except TopopruneError as exc:  # missing data, a damaged folder, ...: one line, as the CLI says it
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # the finished cells are kept; the same command resumes
        print("interrupted: the finished cells are kept; rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None
