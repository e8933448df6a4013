"""The ``topoprune`` command line: parse, call the library, print.

Bad input ends in one line on stderr (``topoprune: error: ...``) naming the bad value and what
is allowed, exit code 2, and no traceback.
"""

from __future__ import annotations

import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.exceptions import TyperException
from rich.console import Console
from rich.table import Table

from ._version import __version__
from .errors import TopopruneError

app = typer.Typer(
    name="topoprune",
    help="Topology-aware neural network pruning: neural persistence, critical compression, "
    "and (coming) the Topological Pruner, IMP/T-IMP and Betti pruning.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console()


class Convention(str, Enum):
    paper = "paper"
    exact = "exact"


class Normalization(str, Enum):
    layer = "layer"
    global_ = "global"


class ConvGraph(str, Enum):
    channel = "channel"
    toeplitz = "toeplitz"


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.5f}"


def _build_model(name: str, input_shape: Optional[str], num_classes: int, width: float):
    from .models import create_model, model_defaults, parse_shape

    in_channels, input_size, _ = model_defaults(name)
    if input_shape is not None:
        shape = parse_shape(input_shape)
        if len(shape) != 3:
            raise TopopruneError(
                f"malformed shape {input_shape!r}: expected three positive integers C,H,W "
                "(e.g. 1,28,28)"
            )
        in_channels, input_size = shape[0], (shape[1], shape[2])
    return create_model(
        name, num_classes=num_classes, in_channels=in_channels, input_size=input_size, width=width
    )


@app.command("models")
def models_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the model registry with default input shapes and parameter counts."""
    from .models import create_model, list_models, model_defaults

    rows = []
    for name in list_models():
        c, (h, w), desc = model_defaults(name)
        params = sum(p.numel() for p in create_model(name).parameters())
        rows.append({"name": name, "input_shape": [c, h, w], "params": params, "description": desc})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="topoprune models (10 classes, width 1)")
    for col in ("name", "input", "params", "description"):
        table.add_column(col, justify="right" if col == "params" else "left")
    for r in rows:
        table.add_row(r["name"], "x".join(map(str, r["input_shape"])), f"{r['params']:,}", r["description"])
    console.print(table)


@app.command("critical")
def critical_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Registry model name.")],
    input_shape: Annotated[
        Optional[str], typer.Option("--input-shape", help="C,H,W of one input (default: the model's).")
    ] = None,
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classifier outputs.")] = 10,
    convention: Annotated[
        Convention, typer.Option("--convention", help="paper: one-channel Toeplitz count; exact: full unrolled graph.")
    ] = Convention.paper,
    width: Annotated[float, typer.Option("--width", help="Width multiplier.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Topologically critical compression ratio per layer and for the model (Balwani & Krzyston)."""
    from .analysis import critical_compression

    net = _build_model(model, input_shape, num_classes, width)
    report = critical_compression(net, convention=convention.value)
    if as_json:
        print(json.dumps({"model": model, **report.to_dict()}, indent=2))
        return
    shape = "x".join(map(str, net.meta.input_shape))
    table = Table(title=f"critical compression: {model} at {shape}, convention={convention.value}")
    for col in ("layer", "kind", "edges", "tree size", "ratio"):
        table.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for x in report.layers:
        table.add_row(x.name, x.kind, f"{x.edges:,}", f"{x.tree_size:,}", _fmt(x.ratio))
    table.add_section()
    table.add_row(
        "final", "", f"{sum(x.edges for x in report.layers):,}",
        f"{sum(x.tree_size for x in report.layers):,}", _fmt(report.final),
    )
    console.print(table)


@app.command("persistence")
def persistence_cmd(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Registry model name.")] = None,
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", help="State dict to load into --model.")
    ] = None,
    weights: Annotated[
        Optional[Path], typer.Option("--weights", help="A .npy (one layer, n_out x n_in) or .npz (one layer per array).")
    ] = None,
    p: Annotated[float, typer.Option("--p", help="Norm exponent, > 0 (inf allowed).")] = 2.0,
    normalization: Annotated[
        Normalization, typer.Option("--normalization", help="layer: each layer by its max |w|; global: by the network's.")
    ] = Normalization.layer,
    conv_graph: Annotated[
        ConvGraph, typer.Option("--conv-graph", help="channel: kernel-slice norms; toeplitz: exact unrolled graph.")
    ] = ConvGraph.channel,
    include_bias: Annotated[bool, typer.Option("--include-bias", help="Fold biases in as an extra input vertex.")] = False,
    essential: Annotated[bool, typer.Option("--essential", help="Count the never-dying class as (1, 0).")] = False,
    input_shape: Annotated[Optional[str], typer.Option("--input-shape", help="C,H,W (default: the model's).")] = None,
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classifier outputs.")] = 10,
    width: Annotated[float, typer.Option("--width", help="Width multiplier.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Neural persistence per layer and for the network (Rieck et al. 2019)."""
    from .analysis import neural_persistence

    if (model is None) == (weights is None):
        raise TopopruneError("give exactly one of --model NAME or --weights FILE")
    if checkpoint is not None and model is None:
        raise TopopruneError("--checkpoint needs --model NAME (the architecture to load it into)")
    if model is not None:
        target = _build_model(model, input_shape, num_classes, width)
        if checkpoint is not None:
            from .experiments import load_checkpoint_into

            load_checkpoint_into(target, checkpoint)
        source = model
    else:
        from .experiments import load_weights_file

        target = load_weights_file(weights)
        source = str(weights)
    report = neural_persistence(
        target, p=p, normalization=normalization.value, include_bias=include_bias,
        essential=essential, conv_graph=conv_graph.value,
    )
    if as_json:
        print(json.dumps({"source": source, **report.to_dict()}, indent=2))
        return
    table = Table(
        title=f"neural persistence: {source}, p={_fmt(report.p)}, normalization={report.normalization}"
    )
    for col in ("layer", "kind", "graph", "|V|", "NP", "normalized"):
        table.add_column(col, justify="left" if col in ("layer", "kind", "graph") else "right")
    for x in report.layers:
        table.add_row(x.name, x.kind, x.graph, f"{x.n_vertices:,}", _fmt(x.np), _fmt(x.normalized))
    table.add_section()
    table.add_row("network", "", "", "", f"total {_fmt(report.total)}", f"mean {_fmt(report.mean_normalized)}")
    console.print(table)


@app.command("version")
def version_cmd() -> None:
    """Print the topoprune version."""
    print(__version__)


def _fail(message: str) -> None:
    """Print an error as one line (whitespace folded) and exit with status 2."""
    print(f"topoprune: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: turns every user error into one line and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="topoprune", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("topoprune: aborted", file=sys.stderr)
        sys.exit(130)
    except TyperException as exc:  # usage errors: unknown option, bad choice, bad number
        _fail(exc.format_message())
    except TopopruneError as exc:
        _fail(str(exc))
    sys.exit(0)


if __name__ == "__main__":
    main()
