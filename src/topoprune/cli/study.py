"""``topoprune study activations`` and ``topoprune study damage``: topology through the layers,
and whether topology explains pruning damage (both resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .common import check_out, console, print_run_files
from .options import DeviceOption, NoProgressDisplayOption, RunParentOption


study_app = typer.Typer(help="Studies: topology through the layers (Kochar et al.), and whether topology explains "
                         "pruning damage (Perera).", no_args_is_help=True)
app.add_typer(study_app, name="study")


@study_app.command("activations")
def study_activations_cmd(
    config: Annotated[Path, typer.Argument(help="Study YAML, e.g. configs/study-activations.yaml.")],
    out: RunParentOption = Path("runs"),
    quiet: NoProgressDisplayOption = False,
    device: DeviceOption = "auto",
) -> None:
    """Train one MLP per activation and seed on a synthetic set with many holes; report epochs
    to the target accuracy, final accuracy and Betti numbers per layer (resumable)."""
    from ..experiments.study import load_study_config, run_study, summary_dict

    check_out("--out", out)

    run_dir = run_study(load_study_config(config), out, quiet=quiet, device=device)
    console.print(summary_dict(run_dir)["verdict"])
    print_run_files(run_dir)


@study_app.command("damage")
def study_damage_cmd(
    config: Annotated[Path, typer.Argument(help="Damage-study YAML, e.g. configs/digits-damage.yaml (or a "
                                                "shipped name: digits-damage).")],
    out: RunParentOption = Path("runs"),
    quiet: NoProgressDisplayOption = False,
    device: DeviceOption = "auto",
    repair: Annotated[bool, typer.Option("--repair", help="Redo the candidates (or the baseline and every candidate) whose files no longer match the run's manifest.")] = False,
) -> None:
    """Draw candidate prunings of a trained model (random ones and each method's choice), score
    each before retraining (topological and magnitude scores), measure accuracy raw, after BN
    recalibration and after K recovery epochs, and correlate (resumable)."""
    from ..experiments.study.damage import damage_summary, load_damage_config, run_damage_study

    check_out("--out", out)
    cfg = load_damage_config(config)
    run_dir = run_damage_study(cfg, out, quiet=quiet, device=device, repair=repair,
                               command=" ".join(["topoprune study damage", str(config), "--out", str(out)]))
    summary = damage_summary(run_dir)
    for sentence in summary["verdicts"]:
        console.print(sentence)
    if summary["verdicts_random_only"]:
        console.print("Among the random candidates only (the method choices left out):")
        for sentence in summary["verdicts_random_only"]:
            console.print(sentence)
    print_run_files(run_dir)
