"""Data-parallel training (DDP) in several processes on one machine: ``train(..., nproc=N)``.

Pruning stays single-process (prune first, then train under DDP), as the NNI and Torch-Pruning
maintainers advise. The launcher is ``torch.multiprocessing.spawn``: N processes, each one rank
of a ``torch.distributed`` group (gloo on the CPU, nccl with one GPU per rank), rendezvous on a
free local port. Each rank:

- wraps the model in ``DistributedDataParallel`` (gradients averaged over the ranks);
- takes every N-th sample of each batch (:class:`~topoprune.data.loader.BatchLoader` with
  ``rank``/``world``), so one step's shards make up the batch a single process would see, and
  the order of epoch ``e`` depends only on ``(seed, e)`` as before;
- all-reduces the epoch's loss and accuracy sums; rank 0 alone evaluates, runs the callbacks and
  writes the checkpoint and ``metrics.json`` (other ranks write nothing);
- resumes from rank 0's checkpoint after a kill (every rank loads it; the number of processes
  must match, since the shards differ).

BatchNorm statistics are per rank (each rank normalizes its shard), as plain DDP does; the
result therefore differs slightly from one process (the test pins the difference). The data
tensors reach the ranks through shared memory; the model is pickled, so its class must be
importable (a class defined in a script needs the ``if __name__ == "__main__":`` guard).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import TopopruneError
from .callbacks import Callback
from .config import TrainConfig

__all__ = ["train_distributed"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, model: nn.Module, data, cfg: TrainConfig, out_dir: str,
               callbacks: Sequence[Callback], progress: bool, description: str, device_type: str,
               threads: int, parent: int, train_on) -> None:
    """One rank: join the group, train, leave. It dies with the process that launched it (a
    killed driver must not leave ranks writing checkpoints behind a rerun)."""
    import copy
    import datetime

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from .scoped import die_with_parent, seeded_rng

    die_with_parent(parent)

    # torch.multiprocessing hands every rank the SAME shared-memory parameters; each rank must
    # own its copy, or every optimizer step would be applied once per rank (Hogwild)
    model = copy.deepcopy(model)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(threads)
    backend = "nccl" if device_type == "cuda" else "gloo"
    # rank 0 evaluates and checkpoints while the others wait in a broadcast: allow it an hour
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=datetime.timedelta(hours=1))
    try:
        device = torch.device(f"cuda:{rank}") if device_type == "cuda" else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        model.to(device)  # a resumed run: every rank loads rank 0's last checkpoint in _train_on
        if cfg.channels_last:  # before DDP lays out its gradient buckets after the parameters
            model.to(memory_format=torch.channels_last)
        net = DistributedDataParallel(model, device_ids=[rank] if device.type == "cuda" else None)
        with seeded_rng(cfg.seed, device):
            train_on(model, data, cfg, out_dir, callbacks if rank == 0 else (), progress, description, device,
                     rank=rank, world=world, net=net)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    _exit_without_finalizing()


def _exit_without_finalizing() -> None:
    """End a rank that finished cleanly without running the interpreter's finalization.

    Gloo's worker threads destroy each finished collective after the Python call has returned
    (a barrier's work holds the broadcasts before it, and so the tensors that went through them).
    When such a tensor's Python object outlives its Python references, freeing it takes the GIL;
    if the main thread is already finalizing, the worker thread is told to exit inside a
    ``noexcept`` destructor and the process aborts ("terminate called without an active
    exception", SIGABRT: seen in about 1 of 25 two-rank runs, backtrace in
    ``docs/design-notes.md``). Everything a rank owes is written by now (rank 0's checkpoint
    and metrics are saved before the last barrier), so the rank flushes its streams and leaves
    with ``os._exit(0)``, which ``torch.multiprocessing.spawn`` reads as success. ``atexit``
    handlers do not run in a rank, so a callback must not leave work to them: it writes what it
    owes in ``on_epoch_end`` (a writer it opens is flushed there)."""
    import logging
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001 - a closed or odd stream must not fail a finished rank
            pass
    os._exit(0)


def train_distributed(model: nn.Module, data, cfg: TrainConfig, *, nproc: int, train_on, checkpoint: str,
                      out_dir=None, callbacks: Sequence[Callback] = (), progress: bool = True,
                      description: str = "train", device=None) -> tuple[dict, int]:
    """Train ``model`` in place with ``nproc`` DDP processes, each running ``train_on`` (the
    loop's epochs, ``topoprune.train.loop._train_on``) as one rank; returns rank 0's final
    checkpoint (``checkpoint`` names its file) and the epoch the run resumed from. Called by
    :func:`~topoprune.train.train` with ``nproc`` > 1. ``device``: ``"cpu"`` (default) or
    ``"cuda"`` (one GPU per rank)."""
    import torch.multiprocessing as mp

    from .checkpoint import load_training_checkpoint
    from .device import model_device, resolve_device
    from .scoped import usable_cores

    CHECKPOINT = checkpoint  # noqa: N806 - the loop's file name, passed in (no import of the loop)
    home = model_device(model)
    target = resolve_device(device, default=torch.device("cpu"))
    if target.type not in ("cpu", "cuda"):
        raise TopopruneError(f"nproc {nproc}: DDP runs on the CPU (gloo) or CUDA GPUs (nccl), not {target.type}")
    if target.type == "cuda" and nproc > torch.cuda.device_count():
        raise TopopruneError(f"nproc {nproc}: one GPU per process, but {torch.cuda.device_count()} GPU(s) are visible")
    if cfg.batch_size < nproc:
        raise TopopruneError(f"nproc {nproc}: batch_size {cfg.batch_size} cannot be split over {nproc} processes; "
                             "allowed: batch_size >= nproc")
    temporary = out_dir is None
    folder = Path(tempfile.mkdtemp(prefix="topoprune-ddp-")) if temporary else Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / CHECKPOINT).exists():  # a resume: refused here, in one line, rather than in every rank
        state = load_training_checkpoint(folder / CHECKPOINT)
        if state.get("config_digest") != cfg.digest():
            raise TopopruneError(f"{folder / CHECKPOINT} was written with other training settings "
                                 f"({state.get('config')}); use another --out, or delete it to start over")
        if int(state.get("world", 1)) != nproc:
            raise TopopruneError(f"{folder / CHECKPOINT} was written by {state.get('world', 1)} process(es), not "
                                 f"{nproc}: resume with nproc={state.get('world', 1)}, or use another --out")
        resumed_from = int(state["epoch"])
    else:
        resumed_from = 0
    # the caller's thread budget (a cell worker's or Ray task's share), split between the ranks
    threads = max(1, min(usable_cores(), torch.get_num_threads()) // nproc) if target.type == "cpu" else 1
    model.to("cpu")
    try:
        try:
            mp.spawn(_rank_main, nprocs=nproc, join=True, daemon=True,
                     args=(nproc, _free_port(), model, data, cfg, str(folder), tuple(callbacks), progress,
                           description, target.type, threads, os.getpid(), train_on))
        except mp.ProcessRaisedException as exc:
            last = [line for line in str(exc).strip().splitlines() if line.strip()]
            line = last[-1] if last else str(exc)
            line = line.split("TopopruneError: ", 1)[-1]
            raise TopopruneError(f"DDP training failed in a worker process: {line[:300]}") from None
        except mp.ProcessExitedException as exc:
            raise TopopruneError(f"DDP training failed: a worker process exited ({exc}); rerun to resume from the "
                                 "last checkpoint") from None
        state = load_training_checkpoint(folder / CHECKPOINT)
        model.load_state_dict(state["model"])
        for cb, cb_state in zip(callbacks, state.get("callbacks", [])):
            cb.load_state_dict(cb_state)
        return state, resumed_from
    finally:
        model.to(home)
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
