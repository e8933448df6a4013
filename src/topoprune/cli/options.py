"""Options that several commands share, declared once.

Each alias is a parameter type with its flag and help text: a command declares
``device: DeviceOption = "auto"``. An option whose help text differs between commands (what
``--out`` or ``--input-shape`` is for) is declared in its command; ``--model`` shares its flag
and the first part of its help through :func:`model_option`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

MODEL_HELP = ("A registry model (`topoprune models`), or your own: pkg.module:factory (a function or class "
              "returning an nn.Module; see --model-kwargs)")


def model_option(tail: str) -> Any:
    """``--model``/``-m``: :data:`MODEL_HELP`, then ``tail`` (what else the command takes)."""
    return typer.Option("--model", "-m", help=MODEL_HELP + tail)


KwargsOption = Annotated[Optional[str], typer.Option(
    "--model-kwargs", help="JSON object of keyword arguments for --model: the factory's, or a registry "
    "model's extra options (e.g. '{\"shortcut\": \"B\"}').")]
TrustOption = Annotated[bool, typer.Option(
    "--trust-pickle", help="Allow a model file saved whole with torch.save(model): unpickling runs code "
    "stored in the file, so only for files you trust.")]
WidthOption = Annotated[float, typer.Option("--width", help="Width multiplier.")]
NumClassesOption = Annotated[int, typer.Option("--num-classes", help="Classifier outputs.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

DeviceOption = Annotated[str, typer.Option(
    "--device", help="Where training runs: auto (cuda if available, else cpu), cpu, cuda, cuda:N or mps.")]
DataRootOption = Annotated[Optional[Path], typer.Option("--data-root", help="Folder to look for data in first.")]
RunParentOption = Annotated[Path, typer.Option("--out", help="Parent folder of the run folder.")]
NoProgressBarOption = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]
NoProgressDisplayOption = Annotated[bool, typer.Option("--quiet", help="No progress display.")]
