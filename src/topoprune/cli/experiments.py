"""``topoprune compare`` and ``topoprune report``: resumable method comparisons, and their
reports rebuilt from a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import TopopruneError
from .app import app
from .common import console, print_run_files
from .options import DeviceOption, RunParentOption


def _default_config() -> Path:
    """The quickstart config shipped inside the package (configs/quickstart.yaml in a checkout)."""
    from ..experiments.config import shipped_configs

    return shipped_configs()["quickstart"]


@app.command("compare")
def compare_cmd(
    config: Annotated[Optional[Path], typer.Argument(help="Experiment YAML, or the name of a shipped one (default: quickstart).")] = None,
    out: RunParentOption = Path("runs"),
    workers: Annotated[int, typer.Option("--workers", help="Cells run in parallel processes (--executor local).")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display (CI logs).")] = False,
    device: DeviceOption = "auto",
    repair: Annotated[bool, typer.Option("--repair", help="Redo the stages whose artefacts no longer match the run's manifest (and what used them).")] = False,
    executor: Annotated[str, typer.Option("--executor", help="local (processes on this machine) or ray (each cell a Ray task with the config's resources; pip install \"topoprune[ray]\").")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help="--executor ray: auto (a running cluster) or HOST:PORT; default: start a local cluster.")] = None,
) -> None:
    """Prune a model with every method, let it recover, compare (resumable: rerun to continue).
    Training runs on --device; pruning and the latency columns stay on the CPU."""
    from ..experiments.config import load_config
    from ..experiments.runner import run_experiment

    cfg = load_config(config or _default_config())
    run_dir = run_experiment(cfg, out, workers=workers, quiet=quiet, device=device, repair=repair,
                             executor=executor, address=address)
    print_run_files(run_dir)


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `topoprune compare` or `topoprune study`.")],
) -> None:
    """(Re)build report.md and report.html from a run folder's results (a comparison, the damage
    study or the activation study)."""
    from ..experiments.report import build_report
    from ..experiments.store import read_json_file

    if not (run_dir / "config.json").is_file():
        raise TopopruneError(f"{run_dir} is not a run folder (no config.json)")
    config = read_json_file(run_dir / "config.json", "config file")
    if isinstance(config, dict) and {"experiment", "damage"} <= set(config):
        from ..experiments.study.damage import build_damage_report as build
    elif isinstance(config, dict) and "activations" in config:
        from ..experiments.study import build_study_report as build
    else:
        build = build_report
    md, page = build(run_dir)
    console.print(f"wrote {md} and {page}")
