"""``topoprune critical`` and ``topoprune persistence``: a model's critical compression ratio
and its neural persistence, per layer and for the whole model."""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import TopopruneError
from .app import app
from .common import console, inputs_to_trace, load_net, nn_module
from .options import JsonOption, KwargsOption, NumClassesOption, TrustOption, WidthOption, model_option


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


@app.command("critical")
def critical_cmd(
    model: Annotated[str, model_option(", or a pruned-model folder or model file.")],
    input_shape: Annotated[
        Optional[str], typer.Option("--input-shape", help="C,H,W of one input (default: the model's).")
    ] = None,
    num_classes: NumClassesOption = 10,
    convention: Annotated[
        Convention, typer.Option("--convention", help="paper: one-channel Toeplitz count; exact: full unrolled graph.")
    ] = Convention.paper,
    width: WidthOption = 1.0,
    model_kwargs: KwargsOption = None,
    example_inputs: Annotated[Optional[Path], typer.Option("--example-inputs", help="Inputs the model takes (a tensor, tuple or dict saved with torch.save); they size the conv layers.")] = None,
    trust_pickle: TrustOption = False,
    as_json: JsonOption = False,
) -> None:
    """Topologically critical compression ratio per layer and for the model (Balwani & Krzyston)."""
    from ..analysis import critical_compression

    net = load_net(model, None, model_kwargs=model_kwargs, input_shape=input_shape, num_classes=num_classes,
                    width=width, trust_pickle=trust_pickle)
    meta = getattr(net.model, "meta", None)
    if meta is not None or example_inputs is not None or net.example_inputs is not None:
        inputs = inputs_to_trace(net, example_inputs, None, "--model")
        report = critical_compression(net.model, inputs, convention.value)
        shape = "x".join(map(str, meta.input_shape)) if meta is not None and inputs is None else "the example inputs"
    else:  # a model of one's own: --input-shape sizes its conv layers (a dense model needs none)
        from ..models import parse_shape

        try:
            report = critical_compression(net.model, convention=convention.value,
                                          input_shape=parse_shape(input_shape) if input_shape else None)
        except TopopruneError as exc:
            if input_shape is None and "input sizes" in str(exc):
                raise TopopruneError(f"--model {model} has conv layers, whose input sizes are unknown: give "
                                     "--input-shape C,H,W or --example-inputs FILE.pt") from None
            raise
        shape = input_shape.replace(",", "x") if input_shape else "any input"
    if as_json:
        print(json.dumps({"model": model, **report.to_dict()}, indent=2))
        return
    table = Table(title=f"critical compression: {net.label} at {shape}, convention={convention.value}")
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
    model: Annotated[Optional[str], model_option(", or a model file.")] = None,
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", help="Weights to load into --model (a state dict or a `topoprune train` checkpoint); alone: a pruned-model folder, a train checkpoint or a model file.")
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
    num_classes: NumClassesOption = 10,
    width: WidthOption = 1.0,
    null: Annotated[Optional[int], typer.Option("--null", help="Also place each layer's NP in its permutation null: K random permutations of the layer's weights; adds null z-score and quantile columns.")] = None,
    null_seed: Annotated[int, typer.Option("--null-seed", help="Seed of the permutations.")] = 0,
    dgp: Annotated[bool, typer.Option("--dgp", help="Also compute deep graph persistence (a chain of Linear/conv layers: no residual connections or attention).")] = False,
    model_kwargs: KwargsOption = None,
    trust_pickle: TrustOption = False,
    as_json: JsonOption = False,
) -> None:
    """Neural persistence per layer and for the network (Rieck et al. 2019), optionally against its
    permutation null and with deep graph persistence (Girrbach et al. 2023)."""
    from ..analysis import neural_persistence

    if null is not None and null < 1:
        raise TopopruneError(f"--null: bad value {null}; allowed: a number of permutations >= 1")
    if dgp and weights is not None:
        raise TopopruneError("--dgp needs a model (--model or --checkpoint): it follows the layers' chain")

    if weights is not None and checkpoint is not None:
        raise TopopruneError("--checkpoint needs --model NAME (the architecture to load it into), not --weights")
    if (model is None and checkpoint is None) == (weights is None):
        raise TopopruneError("give exactly one of --model NAME or --weights FILE")
    if model is not None or checkpoint is not None:
        net = load_net(model, checkpoint, model_kwargs=model_kwargs, input_shape=input_shape,
                        num_classes=num_classes, width=width, trust_pickle=trust_pickle)
        target, source = net.model, model or str(checkpoint)
    else:
        from ..experiments import load_weights_file

        target = load_weights_file(weights)
        source = str(weights)
    own_shape = None  # a model of one's own: --input-shape sizes its conv layers (toeplitz graph)
    if input_shape is not None and isinstance(target, nn_module()) and getattr(target, "meta", None) is None:
        from ..models import parse_shape

        own_shape = parse_shape(input_shape)
    deep = None
    if dgp:  # before the (slower) null: a model DGP cannot handle is refused before any work
        from ..analysis_dgp import deep_graph_persistence

        deep = deep_graph_persistence(target, input_shape=own_shape)
    report = neural_persistence(
        target, p=p, normalization=normalization.value, include_bias=include_bias,
        essential=essential, conv_graph=conv_graph.value, input_shape=own_shape, null=null, null_seed=null_seed,
    )
    if as_json:
        print(json.dumps({"source": source, **report.to_dict(), **({"dgp": deep.to_dict()} if deep else {})},
                         indent=2))
        return
    nulled = f", permutation null K={null} (seed {null_seed})" if null is not None else ""
    table = Table(
        title=f"neural persistence: {source}, p={_fmt(report.p)}, normalization={report.normalization}{nulled}"
    )
    columns = ["layer", "kind", "graph", "|V|", "NP", "normalized"] + (["null z", "null quantile"] if null else [])
    for col in columns:
        table.add_column(col, justify="left" if col in ("layer", "kind", "graph") else "right")
    for x in report.layers:
        extra = ([_fmt(x.null_z) if x.null_z is not None else "-",
                  _fmt(x.null_quantile) if x.null_quantile is not None else "-"] if null else [])
        table.add_row(x.name, x.kind, x.graph, f"{x.n_vertices:,}", _fmt(x.np), _fmt(x.normalized), *extra)
    table.add_section()
    table.add_row("network", "", "", "", f"total {_fmt(report.total)}", f"mean {_fmt(report.mean_normalized)}",
                  *([""] * (2 if null else 0)))
    console.print(table)
    if deep is not None:
        console.print(f"deep graph persistence: {_fmt(deep.dgp)} over {deep.n_inputs} inputs and "
                      f"{deep.n_outputs} outputs ({len(deep.layers)} layers)")
