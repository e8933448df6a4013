"""The training loop: deterministic, checkpointed every epoch, resumable after a kill.

The loop is deliberately thin (the benchmark holds it within 1.1x of a minimal hand-written
loop): per step only forward, loss, backward, step, and two running sums; evaluation, callbacks,
checkpoints and the progress display happen once per epoch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from ..data import DataSplits
from ..errors import TopopruneError
from .callbacks import Callback
from .checkpoint import atomic_save, atomic_write_json, load_training_checkpoint
from .config import TrainConfig
from .device import model_device, resolve_device
from .scoped import seeded_rng, set_threads  # noqa: F401  (set_threads: re-exported)
from .speedups import (Speedups, as_channels_last, autocast, channels_last_model, compile_fallback, compile_module,
                       resolve_speedups)

__all__ = ["train", "evaluate", "TrainResult", "set_threads", "check_compatible"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024,
             precision: str = "fp32", channels_last: bool = False) -> tuple[float, float]:
    """``(mean cross-entropy loss, accuracy in percent)`` over ``(x, y)``; ``(nan, nan)`` if empty.

    Runs on the model's device under ``torch.inference_mode()``, ``batch_size`` samples at a time
    (batches of ``x`` and ``y`` are moved there as they are used). ``precision="bf16"`` runs the
    forward passes under bfloat16 autocast (the loss is summed in float32) and ``channels_last``
    feeds channels-last batches to a channels-last model (see :class:`~topoprune.train.TrainConfig`;
    the model's memory layout is put back afterwards). With the defaults, every number is computed
    exactly as a plain float32 loop over the same batches computes it.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TopopruneError(f"batch_size: bad value {batch_size!r}; allowed: an integer >= 1")
    if x.shape[0] == 0:
        return float("nan"), float("nan")
    device = model_device(model)
    run = resolve_speedups(precision=precision, channels_last=channels_last, device=device)
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    # the layout changes outside inference mode: parameters made in it could not train afterwards
    with channels_last_model(model, run.channels_last), torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device, non_blocking=True)
            yb = y[start : start + batch_size].to(device, non_blocking=True)
            if run.channels_last:
                xb = as_channels_last(xb)
            with autocast(device, run.precision):
                out = model(xb)
            out = out.float()
            loss += F.cross_entropy(out, yb, reduction="sum").item()
            correct += (out.argmax(1) == yb).sum().item()
    model.train(was_training)
    return loss / x.shape[0], 100.0 * correct / x.shape[0]


def evaluate_validation(model: nn.Module, data: DataSplits, **scoring) -> tuple[float | None, float | None]:
    """``(loss, accuracy)`` on the validation split, or ``(None, None)`` when it is empty
    (``val_fraction=0``: validation is off, and no NaN reaches a record or a file). ``scoring``:
    :func:`evaluate`'s keyword options."""
    if data.val_x.shape[0] == 0:
        return None, None
    return evaluate(model, data.val_x, data.val_y, **scoring)


def check_compatible(model: nn.Module, data: DataSplits) -> None:
    """Refuse, before any training, data the model cannot take: both shapes in the message."""
    meta = getattr(model, "meta", None)
    if meta is not None and tuple(meta.input_shape) != tuple(data.input_shape):
        raise TopopruneError(
            f"dataset {data.name!r} gives inputs of shape {tuple(data.input_shape)} but model "
            f"{meta.name!r} was built for {tuple(meta.input_shape)}"
        )
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(data.train_x[:2].to(model_device(model)))
    except Exception as exc:  # noqa: BLE001 - any failure means the shapes do not fit
        raise TopopruneError(
            f"the model rejects inputs of shape {tuple(data.input_shape)} from dataset "
            f"{data.name!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    finally:
        model.train(was_training)
    if out.ndim != 2 or out.shape[1] < data.num_classes:
        raise TopopruneError(
            f"the model outputs shape {tuple(out.shape[1:])} per input but dataset {data.name!r} "
            f"has {data.num_classes} classes"
        )


@dataclass
class TrainResult:
    """Per-epoch history and how training ended."""

    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    resumed_from: int = 0
    # the speed options that ran (precision, channels_last, compile) after any fallback; for a
    # finished run resumed without training, those its checkpoint recorded
    settings: dict = field(default_factory=lambda: Speedups().to_dict())

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    def to_dict(self) -> dict:
        return {"history": list(self.history), "stopped_early": self.stopped_early,
                "resumed_from": self.resumed_from}


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=cfg.momentum > 0)


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.schedule == "multistep":
        steps = sorted({max(1, int(round(m * cfg.epochs))) for m in cfg.milestones})
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=steps, gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def train(
    model: nn.Module,
    data: DataSplits,
    config: TrainConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    description: str = "train",
    device: str | torch.device | None = None,
    nproc: int = 1,
) -> TrainResult:
    """Train ``model`` on ``data`` in place.

    ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``; default: where the
    model already is) is where the epochs run; the model is handed back on the device it came
    on, so pruning, metrics and saving need not care. Batches move to the device one at a time.

    With ``out_dir``, a checkpoint and ``metrics.json`` are written after every epoch, and a
    later call with the same ``out_dir`` and settings resumes after the last finished epoch
    (a finished run returns its history without training again). A checkpoint written under
    other settings is refused rather than overwritten.

    Deterministic for ``config.seed``: the epochs draw from torch's global generators seeded
    with it (the CPU's and the device's), inside :func:`~topoprune.train.seeded_rng`, so
    the caller's generator state is handed back unchanged. The thread count is left alone:
    entry points set it once with :func:`~topoprune.train.set_threads`.

    ``config.precision``, ``config.channels_last`` and ``config.compile`` make the steps faster
    (:mod:`~topoprune.train.speedups`); one this machine cannot run falls back with a warning,
    and ``settings`` of the result says what ran. The model comes back in the memory layout it
    came in, and a compiled run's checkpoints hold the model's own state dict.

    ``nproc`` > 1 trains data-parallel (DDP) in that many processes
    (:func:`~topoprune.train.distributed.train_distributed`): gloo on the CPU, nccl on GPUs; each
    step's batch is split across the ranks, only rank 0 evaluates and checkpoints. Callbacks run
    in rank 0's process (they are pickled to it) and the ranks end with ``os._exit``, so a
    callback must not leave work to ``atexit``.

    Returns:
        :class:`TrainResult` whose ``history`` has one record per epoch: ``epoch``, ``lr``,
        ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` (``None`` without a validation
        split), ``test_loss``, ``test_acc``,
        ``seconds`` (training time of that epoch), ``eval_seconds``, and whatever callbacks add;
        ``settings``: the speed options that ran.
    """
    cfg = config or TrainConfig()
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise TopopruneError(f"nproc: bad value {nproc!r}; allowed: an integer >= 1")
    if nproc > 1:
        from .distributed import train_distributed

        check_compatible(model, data)
        state, resumed_from = train_distributed(model, data, cfg, nproc=nproc, out_dir=out_dir, callbacks=callbacks,
                                                progress=progress, description=description, device=device,
                                                train_on=_train_on, checkpoint=CHECKPOINT)
        return TrainResult(history=list(state["history"]), stopped_early=bool(state.get("stopped_early", False)),
                           resumed_from=resumed_from, settings=dict(state.get("speedups") or Speedups().to_dict()))
    home = model_device(model)
    target = resolve_device(device, default=home)
    check_compatible(model, data)
    model.to(target)
    try:
        with seeded_rng(cfg.seed, target), channels_last_model(model, cfg.channels_last):
            return _train_on(model, data, cfg, out_dir, callbacks, progress, description, target)
    finally:
        model.to(home)


def _train_on(model: nn.Module, data: DataSplits, cfg: TrainConfig, out_dir, callbacks: Sequence[Callback],
              progress: bool, description: str, device: torch.device, *, rank: int = 0, world: int = 1,
              net: nn.Module | None = None) -> TrainResult:
    """The epochs. With ``world`` > 1 this is rank ``rank`` of a DDP group: ``net`` is the DDP
    wrapper of ``model`` (the forward and backward go through it), each rank sees its shard of
    every batch, the epoch's sums are all-reduced, and only rank 0 evaluates, calls back and
    checkpoints (its decision to stop early is broadcast)."""
    net = model if net is None else net
    lead = rank == 0
    run = resolve_speedups(precision=cfg.precision, channels_last=cfg.channels_last, compile=cfg.compile,
                           device=device)
    step_net, first_compiled = net, False
    if run.compile:
        step_net, why = compile_module(net)
        if why:
            run = compile_fallback(why, run, "when wrapping the model")
        first_compiled = not why
    opt = _optimizer(model, cfg)
    sched = _scheduler(opt, cfg)
    result = TrainResult()
    start_epoch = 0
    ckpt_path = Path(out_dir) / CHECKPOINT if out_dir is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        state = load_training_checkpoint(ckpt_path)
        if state.get("config_digest") != cfg.digest():
            raise TopopruneError(
                f"{ckpt_path} was written with other training settings ({state.get('config')}); "
                "use another --out, or delete it to start over"
            )
        if int(state.get("world", 1)) != world:
            raise TopopruneError(
                f"{ckpt_path} was written by {state.get('world', 1)} process(es), not {world}: resume with "
                f"nproc={state.get('world', 1)}, or use another --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        saved_cuda = state.get("cuda_rng")
        if saved_cuda is not None and device.type == "cuda":  # dropout on the GPU resumes too
            torch.cuda.set_rng_state(saved_cuda, device)
        for cb, cb_state in zip(callbacks, state.get("callbacks", [])):
            cb.load_state_dict(cb_state)
        result.history = list(state["history"])
        result.stopped_early = bool(state.get("stopped_early", False))
        start_epoch = result.resumed_from = int(state["epoch"])
        if result.stopped_early or start_epoch >= cfg.epochs:  # nothing to train: what ran is on record
            result.settings = dict(state.get("speedups") or Speedups().to_dict())
            if result.stopped_early:
                return result

    loader = data.loader("train", cfg.batch_size, seed=cfg.seed, rank=rank, world=world)
    n_train = data.train_x.shape[0]
    model.train()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[status]}"), TimeRemainingColumn())
    with Progress(*columns, disable=not (progress and lead), transient=False) as bar:
        total_steps = (cfg.epochs - start_epoch) * len(loader)
        task = bar.add_task(description, total=total_steps, status="")
        for epoch in range(start_epoch, cfg.epochs):
            loader.set_epoch(epoch)
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.long, device=device)
            seen = step = 0
            for xb, yb in loader:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                if run.channels_last:
                    xb = as_channels_last(xb)
                # DDP averages the ranks' gradients: each shard's sum is scaled by world / batch,
                # so the average is the batch's mean loss even when the shards are uneven
                batch = min(cfg.batch_size, n_train - step * cfg.batch_size) if world > 1 else 0
                try:
                    out, loss = _forward(step_net, xb, yb, device, run.precision, world, batch)
                except Exception as exc:  # noqa: BLE001 - torch.compile compiles at the first call
                    if not first_compiled:
                        raise
                    run, step_net = compile_fallback(exc, run, "at the first step"), net
                    out, loss = _forward(net, xb, yb, device, run.precision, world, batch)
                first_compiled = False
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    loss_sum += (loss.detach() * (batch / world) if world > 1 else loss.detach() * yb.shape[0])
                    correct += (out.argmax(1) == yb).sum()
                seen += yb.shape[0]
                bar.advance(task)
                step += 1
                if progress and lead and step % 25 == 0:  # a running figure, not a per-step sync
                    bar.update(task, status=f"epoch {epoch + 1}/{cfg.epochs} loss "
                               f"{loss_sum.item() / seen:.3f} acc {100.0 * correct.item() / seen:.1f}%")
            seconds = time.perf_counter() - t0
            lr = opt.param_groups[0]["lr"]
            sched.step()
            if world > 1:  # the epoch's figures over every rank's shards
                import torch.distributed as dist

                sums = torch.stack([loss_sum.double(), correct.double(),
                                    torch.tensor(float(seen), device=device, dtype=torch.float64)])
                dist.all_reduce(sums)
                loss_sum, correct, seen = sums[0], sums[1], int(sums[2].item())
            t1 = time.perf_counter()
            stop = False
            if lead:
                scoring = {"batch_size": cfg.eval_batch_size, "precision": run.precision,
                           "channels_last": run.channels_last}
                val_loss, val_acc = evaluate_validation(model, data, **scoring)
                test_loss, test_acc = evaluate(model, data.test_x, data.test_y, **scoring)
                record = {
                    "epoch": epoch + 1, "lr": lr,
                    "train_loss": loss_sum.item() / seen, "train_acc": 100.0 * correct.item() / seen,
                    "val_loss": val_loss, "val_acc": val_acc,
                    "test_loss": test_loss, "test_acc": test_acc,
                    "seconds": seconds,
                }
                if world > 1:
                    record["processes"] = world
                for cb in callbacks:
                    stop = bool(cb.on_epoch_end(model, record, result.history)) or stop
                record["eval_seconds"] = time.perf_counter() - t1
                result.history.append(record)
                result.stopped_early = stop and epoch + 1 < cfg.epochs
                bar.update(task, status=f"epoch {epoch + 1}/{cfg.epochs} loss {record['train_loss']:.3f} "
                                        f"val {'off' if val_acc is None else f'{val_acc:.2f}%'} "
                                        f"test {test_acc:.2f}%")
                result.settings = run.to_dict()
                if ckpt_path is not None:
                    _save(ckpt_path, model, opt, sched, cfg, epoch + 1, result, callbacks, device, world)
            if world > 1:  # every rank stops when rank 0 does
                import torch.distributed as dist

                flag = torch.tensor([1.0 if stop else 0.0], device=device)
                dist.broadcast(flag, src=0)
                stop = bool(flag.item())
            model.train()
            if stop:
                break
    return result


def _forward(net: nn.Module, xb: torch.Tensor, yb: torch.Tensor, device: torch.device, precision: str, world: int,
             batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's ``(logits, loss)``: the forward pass and the loss under the precision's autocast;
    the loss is computed from float32 logits, so it is float32 at every precision. With ``world``
    > 1 the loss is this shard's sum scaled by ``world / batch`` (see ``_train_on``)."""
    with autocast(device, precision):
        out = net(xb)
        logits = out.float()
        if world > 1:
            loss = F.cross_entropy(logits, yb, reduction="sum") * (world / batch)
        else:
            loss = F.cross_entropy(logits, yb)
    return out, loss


def _save(path: Path, model, opt, sched, cfg: TrainConfig, epoch: int, result: TrainResult,
          callbacks: Sequence[Callback], device: torch.device, world: int = 1) -> None:
    meta = getattr(model, "meta", None)
    atomic_save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "epoch": epoch,
            "history": result.history,
            "stopped_early": result.stopped_early,
            "callbacks": [cb.state_dict() for cb in callbacks],
            "config": cfg.to_dict(),
            "config_digest": cfg.digest(),
            "speedups": result.settings,  # what ran (after any fallback)
            "world": world,  # DDP processes (a resume must use as many: the shards differ)
            "model_spec": None if meta is None else meta.spec(),
        },
        path,
    )
    atomic_write_json(
        {"config": cfg.to_dict(), "epochs_done": epoch, "stopped_early": result.stopped_early,
         "history": result.history},
        path.parent / METRICS,
    )
