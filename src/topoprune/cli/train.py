"""``topoprune train``: train a registry model or your own on a dataset, resumably."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import TopopruneError
from .app import app
from .common import (build_model, check_folder, check_out, check_range, console, field_default_help,
                     import_from_cwd, model_kind, registry_shape)
from .options import DataRootOption, DeviceOption, KwargsOption, NoProgressBarOption, WidthOption, model_option


class Optimizer(str, Enum):
    sgd = "sgd"
    adam = "adam"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


class Schedule(str, Enum):
    cosine = "cosine"
    multistep = "multistep"
    none = "none"


def _recipe(name: str) -> tuple:
    """A training setting (:class:`topoprune.experiments.config.TrainSpec`, from ``TrainConfig``)."""
    from ..experiments.config import TrainSpec

    return field_default_help(TrainSpec, name)


def _validated_recipe(**values):
    """The options of a training recipe, validated by the config's own model; an error names the
    option (``--batch-size``), the value and what is allowed."""
    from pydantic import ValidationError

    from ..experiments.config import TrainSpec
    from ..pruning.methods import format_validation_error

    try:
        return TrainSpec.model_validate(values).train_config()
    except ValidationError as exc:
        raise TopopruneError("--" + format_validation_error(exc).replace("_", "-", 1)) from None


@app.command("train")
def train_cmd(
    model: Annotated[str, model_option(".")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (see `topoprune data list`).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoint.pt and metrics.json; rerun to resume.")],
    width: WidthOption = 1.0,
    epochs: Annotated[int, typer.Option("--epochs", help=_recipe("epochs")[1])] = _recipe("epochs")[0],
    optimizer: Annotated[Optimizer, typer.Option("--optimizer", help=_recipe("optimizer")[1])] = Optimizer(_recipe("optimizer")[0]),
    lr: Annotated[float, typer.Option("--lr", help=_recipe("lr")[1])] = _recipe("lr")[0],
    weight_decay: Annotated[float, typer.Option("--weight-decay", help=_recipe("weight_decay")[1])] = _recipe("weight_decay")[0],
    schedule: Annotated[Schedule, typer.Option("--schedule", help=_recipe("schedule")[1])] = Schedule(_recipe("schedule")[0]),
    batch_size: Annotated[int, typer.Option("--batch-size", help=_recipe("batch_size")[1])] = _recipe("batch_size")[0],
    seed: Annotated[int, typer.Option("--seed", help=_recipe("seed")[1] + " (and of the val split)")] = _recipe("seed")[0],
    input_shape: Annotated[Optional[str], typer.Option("--input-shape", help="C,H,W to fit the data to (default: the dataset's).")] = None,
    data_root: DataRootOption = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of train held out for validation.")] = 0.1,
    augment: Annotated[bool, typer.Option("--augment", help="Random crop + flip (CIFAR style).")] = False,
    track_np: Annotated[bool, typer.Option("--track-np", help="Record every layer's neural persistence per epoch.")] = False,
    np_patience: Annotated[Optional[int], typer.Option("--np-early-stop", help="Stop after this many epochs without a rise in mean normalized NP.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Use only the first N train/test samples (quick runs).")] = None,
    quiet: NoProgressBarOption = False,
    device: DeviceOption = "auto",
    model_kwargs: KwargsOption = None,
    precision: Annotated[Precision, typer.Option("--precision", help=_recipe("precision")[1])] = Precision(_recipe("precision")[0]),
    channels_last: Annotated[bool, typer.Option("--channels-last/--no-channels-last", help=_recipe("channels_last")[1])] = _recipe("channels_last")[0],
    compile_model: Annotated[bool, typer.Option("--compile/--no-compile", help=_recipe("compile")[1])] = _recipe("compile")[0],
    eval_batch_size: Annotated[int, typer.Option("--eval-batch-size", help=_recipe("eval_batch_size")[1])] = _recipe("eval_batch_size")[0],
    nproc: Annotated[int, typer.Option("--nproc", help="Data-parallel (DDP) processes on this machine: gloo on the CPU, one GPU each with --device cuda; only rank 0 checkpoints.")] = 1,
) -> None:
    """Train a registry model (or your own, pkg.module:factory) on a dataset, checkpointing every
    epoch (rerun to resume)."""
    import torch

    from ..data import dataset_info, prepare_data
    from ..experiments.config import LIMITS
    from ..experiments.factory import build_from_factory, parse_kwargs, resolve_factory
    from ..models import parse_shape
    from ..train import NeuralPersistenceTracker, NPEarlyStopping, resolve_device, set_threads, train

    set_threads()  # the entry point sets torch's threads once; the library never does

    # every option is checked before data are loaded or --out is created: the recipe by the
    # config file's own model (the same ranges, no NaN/inf), the rest one by one
    cfg = _validated_recipe(epochs=epochs, optimizer=optimizer.value, lr=lr, weight_decay=weight_decay,
                            schedule=schedule.value, batch_size=batch_size, seed=seed, precision=precision.value,
                            channels_last=channels_last, compile=compile_model, eval_batch_size=eval_batch_size)
    check_range("--width", width, 0, LIMITS["width"], low_open=True)
    check_range("--val-fraction", val_fraction, 0, 1, high_open=True)
    check_range("--limit", limit, 1, math.inf)
    check_range("--np-early-stop", np_patience, 1, LIMITS["epochs"])
    check_range("--nproc", nproc, 1, 64)
    check_out("--out", out)
    check_folder("--data-root", data_root)
    kwargs = parse_kwargs(model_kwargs)
    factory = model_kind(model) == "factory"
    if factory:
        import_from_cwd()
        resolve_factory(model, "--model")  # a bad factory is refused now, not after loading the data
        if width != 1.0:
            raise TopopruneError(f"--width applies to registry models; --model {model} takes its own "
                                 "arguments: pass them in --model-kwargs JSON")
    else:
        registry_shape(model, None)  # an unknown model is refused now, not after loading the data
    resolve_device(device)  # a missing GPU too

    info = dataset_info(dataset)
    shape = parse_shape(input_shape) if input_shape is not None else info.shape
    if len(shape) != 3:
        raise TopopruneError(f"malformed shape {input_shape!r}: expected C,H,W (e.g. 1,32,32)")
    data = prepare_data(dataset, data_root, input_shape=shape, val_fraction=val_fraction,
                        seed=seed, augment=augment, limit=limit)
    torch.manual_seed(seed)
    if factory:
        net = build_from_factory(model, kwargs, what="--model")
    else:
        net = build_model(model, ",".join(map(str, shape)), info.num_classes, width, kwargs)
    callbacks = []
    if track_np or np_patience is not None:
        callbacks.append(NeuralPersistenceTracker())
    if np_patience is not None:
        callbacks.append(NPEarlyStopping(patience=np_patience))
    result = train(net, data, cfg, out_dir=out, callbacks=callbacks, progress=not quiet,
                   description=f"{model} on {dataset}", device=device, nproc=nproc)
    final = result.final
    how = "stopped early" if result.stopped_early else "done"
    console.print(
        f"{how}: {len(result.history)} epochs, train loss {final['train_loss']:.4f}, "
        f"val {'off' if final['val_acc'] is None else format(final['val_acc'], '.2f') + '%'}, "
        f"test {final['test_acc']:.2f}%; wrote {out / 'metrics.json'}"
    )
    if factory:  # the checkpoint holds weights only: the architecture is the factory's
        import shlex

        kw = f"--model-kwargs {shlex.quote(model_kwargs)} " if model_kwargs else ""
        console.print(f"prune it with: topoprune prune --model {model} {kw}--checkpoint {out} "
                      f"--input-shape {','.join(map(str, shape))} --out DIR")
