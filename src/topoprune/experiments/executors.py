"""Where a comparison's cells run: in this process, in local worker processes, or on a Ray cluster.

The runner (:mod:`.runner`) hands an executor the cells still to do and a callback for each
finished row; the driver stays the only writer of ``results.jsonl`` (the callback) and holds
the run folder's lock, while each cell writes its own artefacts into the run folder through the
store (atomically, sealed in the manifest before its stage record), so a cell that is killed
half-way leaves nothing that a rerun or a retry would use: it resumes from its last sealed stage
and its recovery checkpoint.

- :class:`LocalExecutor`: ``--workers 1`` runs cells in this process, ``--workers N`` in a pool
  of spawned processes that die with the driver.
- :class:`RayExecutor` (``--executor ray``): each cell is a Ray task with ``resources.cpus_per_cell``
  CPUs and ``resources.gpus_per_cell`` GPUs, retried up to ``resources.max_retries`` times if
  its worker dies. Before anything runs it checks that every node sees the run folder (a probe
  file written by the driver, read on each node): a cluster needs the folder on shared storage.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from ..errors import TopopruneError
from .cell import Cell, run_cell

__all__ = ["LocalExecutor", "RayExecutor", "EXECUTORS", "require_ray"]

EXECUTORS = ("local", "ray")

OnRow = Callable[[dict], None]
OnStatus = Callable[[str], None]


@dataclass
class LocalExecutor:
    """Cells in this process (``workers == 1``) or in ``workers`` spawned processes."""

    workers: int = 1
    modules: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"local, workers={self.workers}"

    def run(self, todo: Sequence[Cell], *, run_dir: str, config_dict: dict, device: str | None,
            on_row: OnRow, on_status: OnStatus, log) -> None:
        from ..train.scoped import usable_cores
        from .runner import _cell_job, _worker_init

        if self.workers == 1 or len(todo) <= 1:
            for cell in todo:
                on_status(f"cell {cell.key}")
                on_row(run_cell(run_dir, config_dict, cell, device=device))
            return
        cores = usable_cores()
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_worker_init,
                                 initargs=(max(1, cores // self.workers), self.modules, os.getpid())) as pool:
            futures = {pool.submit(_cell_job, (run_dir, config_dict, c, device)): c for c in todo}
            try:
                for fut in as_completed(futures):
                    on_row(fut.result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # cells not started are dropped
                raise


def require_ray():
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise TopopruneError('--executor ray needs Ray, an optional extra: pip install "topoprune[ray]" '
                             '(or pip install "ray>=2.60")') from None
    return ray


def _ray_cell(run_dir: str, config_dict: dict, cell: Cell, device: str | None, modules: tuple[str, ...],
              threads: int) -> dict:
    """One cell on a Ray worker: the config's method modules imported, ``threads`` CPU threads;
    returns the row and where it ran."""
    import importlib

    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    for name in modules:
        importlib.import_module(name)
    t0 = time.perf_counter()
    row = run_cell(run_dir, config_dict, cell, device=device)
    return {"row": row, "host": socket.gethostname(), "pid": os.getpid(), "seconds": time.perf_counter() - t0}


def _probe(path: str, token: str) -> tuple[str, bool]:
    """On one node: its host name, and whether the driver's probe file is there with ``token``."""
    try:
        with open(path) as f:
            return socket.gethostname(), f.read() == token
    except OSError:
        return socket.gethostname(), False


@dataclass
class RayExecutor:
    """Cells as Ray tasks on a cluster (``address``: ``"auto"`` joins a running cluster, ``None``
    starts a local one; ``"HOST:PORT"`` a remote head)."""

    address: str | None = None
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    max_retries: int = 2
    modules: tuple[str, ...] = ()
    num_cpus: int | None = None  # a local cluster's CPUs (tests); None: all of this machine's

    def describe(self) -> str:
        return (f"ray ({self.address or 'local cluster'}), {self.cpus_per_cell:g} CPU / {self.gpus_per_cell:g} GPU "
                f"per cell, up to {self.max_retries} retries")

    def _connect(self):
        ray = require_ray()
        self._started = False
        if not ray.is_initialized():
            self._started = True
            kwargs = dict(ignore_reinit_error=True, log_to_driver=False, include_dashboard=False,
                          configure_logging=False)
            if self.address:
                kwargs["address"] = self.address
            elif self.num_cpus:
                kwargs["num_cpus"] = self.num_cpus
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise TopopruneError(f"--address {self.address or '(local)'}: could not connect to a Ray cluster "
                                     f"({first}); start one with `ray start --head` or `ray up CLUSTER.yaml`, "
                                     "or leave --address out to start a local one") from None
        return ray

    def check_shared(self, ray, run_dir: str) -> None:
        """Refuse a run folder that some node cannot see (not on shared storage)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        token = secrets.token_hex(16)
        path = os.path.join(os.path.abspath(run_dir), f".shared-check-{token[:8]}")
        with open(path, "w") as f:
            f.write(token)
        try:
            probe = ray.remote(num_cpus=0)(_probe)
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                    .remote(path, token) for n in nodes]
            results = ray.get(refs, timeout=120)
        finally:
            os.remove(path)
        blind = [host for host, seen in results if not seen]
        if blind:
            raise TopopruneError(
                f"the run folder {os.path.abspath(run_dir)} is not visible on node(s) {', '.join(sorted(set(blind)))}: "
                "every Ray node must see it at the same path; mount shared storage (NFS, a cluster file "
                "system) there on every node, or give --out a path on storage they all mount")

    def run(self, todo: Sequence[Cell], *, run_dir: str, config_dict: dict, device: str | None,
            on_row: OnRow, on_status: OnStatus, log) -> None:
        ray = self._connect()
        try:
            self._run(ray, todo, run_dir=run_dir, config_dict=config_dict, device=device, on_row=on_row,
                      on_status=on_status, log=log)
        finally:
            if self._started:  # a local cluster this run started goes with it
                ray.shutdown()

    def _run(self, ray, todo: Sequence[Cell], *, run_dir: str, config_dict: dict, device: str | None,
             on_row: OnRow, on_status: OnStatus, log) -> None:
        self.check_shared(ray, run_dir)
        threads = max(1, int(self.cpus_per_cell))
        task = ray.remote(_ray_cell).options(num_cpus=self.cpus_per_cell, num_gpus=self.gpus_per_cell,
                                               max_retries=self.max_retries, retry_exceptions=False)
        pending = {task.remote(run_dir, config_dict, c, device, self.modules, threads): c for c in todo}
        done = failed = 0
        t0 = time.perf_counter()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    out = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a cell's error, after Ray's retries
                    failed += 1
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
                    log.error("%s failed on the cluster: %s", cell.key, first)
                    for other in pending:
                        ray.cancel(other)
                    raise TopopruneError(f"cell {cell.key} failed on the Ray cluster: {first}; finished cells are "
                                         "kept: fix the cause and rerun the same command to resume") from None
                done += 1
                log.info("%s: ran on %s (pid %s) in %.1f s", cell.key, out["host"], out["pid"], out["seconds"])
                on_row(out["row"])
            elapsed = time.perf_counter() - t0
            eta = elapsed / done * len(pending) if done else float("nan")
            on_status(f"cluster: {done} done, {len(pending)} running or queued, {failed} failed"
                      + (f", ETA {eta / 60:.0f} min" if done else ""))
