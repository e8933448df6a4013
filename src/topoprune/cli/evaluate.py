"""``topoprune evaluate``: a method of one's own through a suite, against the strongest
baselines and its own controls, with a leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..errors import TopopruneError
from .app import app
from .common import console
from .options import RunParentOption


@app.command("evaluate")
def evaluate_cmd(
    methods: Annotated[List[str], typer.Argument(help="The method(s) to test: pkg.module:MyMethod (a StructuredMethod "
                                                      "or UnstructuredMethod subclass, registered or only importable; "
                                                      "the working directory is searched too), or a registered name. "
                                                      "Several share the baselines' cells.")],
    suite: Annotated[str, typer.Option("--suite", help="quick (digits, under a minute on a CPU), standard (Fashion-MNIST, "
                                                        "hours on a CPU), standard-cifar10 (for a GPU), or a suite "
                                                        "YAML file of your own.")] = "quick",
    out: RunParentOption = Path("runs"),
    device: Annotated[Optional[str], typer.Option("--device", help="Where training runs: cpu, cuda, cuda:N, mps "
                                                                    "or auto (default: the suite's device, else "
                                                                    "cpu).")] = None,
    label: Annotated[Optional[List[str]], typer.Option("--label", help="How the leaderboard names the method "
                                                                        "(default: its registry name), once per "
                                                                        "method; needed to test a baseline's method "
                                                                        "with other settings.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Cells run in parallel processes on this machine, "
                                                          "sharing its cores (the method must live in an importable "
                                                          "module).")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and the cost estimate only.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display (CI logs).")] = False,
) -> None:
    """Run pruning methods through a suite of tasks against the strongest baselines and their own
    controls; write leaderboard.md and leaderboard.html (resumable: rerun to continue). Cells
    that fail are marked on the leaderboard and end the command with exit code 2."""
    method = methods if len(methods) > 1 else methods[0]
    if label and len(label) != len(methods):
        raise TopopruneError(f"--label: given {len(label)} time(s) for {len(methods)} method(s); allowed: once per "
                             "method, in the same order")
    label = (list(label) if len(methods) > 1 else label[0]) if label else None
    from ..experiments.candidate import registered
    from ..experiments.evaluate import plan_evaluation, run_plan
    from ..train import resolve_device
    from ..train.device import check_device_name

    plan = plan_evaluation(method, suite=suite, label=label)
    plan.check_workers(workers)  # a bad count, or a class the workers cannot import: refused, in a dry run too
    wanted = device or plan.suite.device or "cpu"
    check_device_name(wanted)  # a name no machine has: one line, exit 2, in a dry run too
    try:
        estimate_device = str(resolve_device(wanted))  # a device this machine lacks: one line, exit 2
    except TopopruneError as exc:
        if not dry_run:
            raise
        estimate_device = None  # a dry run may plan for another machine
        console.print(f"no estimate: {exc}", soft_wrap=True)
    with registered(plan.candidates):
        if estimate_device is not None:
            plan.estimate(device=estimate_device, workers=workers)
        for line in plan.lines():
            console.print(line, soft_wrap=True)
    if dry_run:
        for note in plan.missing_data():
            console.print(note, soft_wrap=True)
        console.print(f"dry run: nothing was run; the evaluation folder would be {plan.folder(out)}", soft_wrap=True)
        return
    result = run_plan(plan, out=out, device=device, quiet=quiet, workers=workers,
                      on_event=lambda text: console.print(text, soft_wrap=True))
    console.print(f"leaderboard: {result.leaderboard[0]} and {result.leaderboard[1]}", soft_wrap=True)
    line = result.failure_line()
    if line is not None:
        raise TopopruneError(line)
