"""Where a comparison's cells run: in this process, in local worker processes, or on a Ray cluster.

The runner (:mod:`.runner`) hands an executor the cells still to do and a callback for each
finished row; the driver stays the only writer of ``results.jsonl`` (the callback) and holds
the run folder's lock, while each cell writes its own artefacts into the run folder through the
store (atomically, sealed in the manifest before its stage record), so a cell that is killed
half-way leaves nothing that a rerun or a retry would use: it resumes from its last sealed stage
and its recovery checkpoint.

- :class:`LocalExecutor`: ``--workers 1`` runs cells in this process, ``--workers N`` in a pool
  of spawned processes that die with the driver.
- :class:`RayExecutor` (``--executor ray``): each baseline and each cell is a Ray task with
  ``resources.cpus_per_cell`` CPUs and ``resources.gpus_per_cell`` GPUs (the device is resolved
  on the worker's node), retried up to ``resources.max_retries`` times if its worker dies. Before
  anything runs it checks that every node that can hold a cell sees the run folder (a probe file
  written by the driver, read on each node); a task on a node added later checks again.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import TopopruneError
from ..train.scoped import using_threads
from .cell import Cell, run_cell

__all__ = ["LocalExecutor", "RayExecutor", "EXECUTORS", "CellError", "require_ray"]

EXECUTORS = ("local", "ray")

OnRow = Callable[[dict], None]
OnStatus = Callable[[str], None]
OnError = Callable[[Cell, BaseException], None]


@dataclass
class LocalExecutor:
    """Cells in this process (``workers == 1``) or in ``workers`` spawned processes."""

    workers: int = 1
    modules: tuple[str, ...] = ()
    registrations: tuple[tuple[str, str, str], ...] = ()  # classes a worker registers (evaluate's candidates)

    def describe(self) -> str:
        return f"local, workers={self.workers}"

    def start(self, run_dir: str) -> None:
        """Nothing to connect to."""

    def close(self) -> None:
        """Nothing to release."""

    def baseline(self, config, store, spec, *, log, progress: bool, device: str | None,
                 seed: int | None = None) -> None:
        """Stages 1 and 2 of one model (of ``seed``'s own baseline under ``train.seed: each``), here;
        the dense latency with a worker's threads, as the cells will measure theirs."""
        from .stages import analysis_stage, baseline_stage

        baseline_stage(config, store, spec, log=log, progress=progress, device=device, seed=seed)
        analysis_stage(config, store, spec, log=log, seed=seed, latency_threads=self.cell_threads())

    def cell_threads(self) -> int | None:
        """The torch threads each cell gets: a worker's share of the cores (None: this process's)."""
        from ..train.scoped import usable_cores

        return max(1, usable_cores() // self.workers) if self.workers > 1 else None

    def run(self, todo: Sequence[Cell], *, run_dir: str, config_dict: dict, device: str | None,
            on_row: OnRow, on_status: OnStatus, log, on_error: OnError | None = None) -> None:
        """Run ``todo``, handing each finished row to ``on_row``. Without ``on_error`` the first
        cell that raises stops the run; with it, a cell that raises is handed to ``on_error`` and
        the others go on (a worker process that dies still stops the run)."""
        if self.workers == 1 or len(todo) <= 1:  # here, with a worker's threads when there are workers
            for cell in todo:
                on_status(f"cell {cell.key}")
                try:
                    with _cell_threads(self.cell_threads()):
                        row = run_cell(run_dir, config_dict, cell, device=device)
                except (KeyboardInterrupt, SystemExit, MemoryError):
                    raise
                except Exception as exc:
                    if on_error is None:
                        raise
                    on_error(cell, exc)
                    continue
                on_row(row)
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_worker_init,
                                 initargs=(self.cell_threads(), self.modules, os.getpid(),
                                           self.registrations)) as pool:
            futures: dict = {}
            try:
                for c in todo:
                    futures[pool.submit(_cell_job, (run_dir, config_dict, c, device))] = c
                for fut in as_completed(futures):
                    exc = fut.exception()
                    if exc is None:
                        on_row(fut.result())
                    elif isinstance(exc, BrokenProcessPool):
                        raise exc  # one line, below
                    elif on_error is None or not isinstance(exc, Exception) or isinstance(exc, MemoryError):
                        raise exc  # Ctrl-C or an exit inside a worker stops the run, as it does here
                    else:
                        on_error(futures[fut], exc)
            except BrokenProcessPool as exc:  # a worker died: while a cell ran, or at start-up (then submit raises)
                pool.shutdown(wait=True, cancel_futures=True)
                raise TopopruneError(
                    f"a worker process of --workers {self.workers} died (out of memory, killed, or it could not "
                    "import the config's methods; its error, if any, is above); the finished cells are kept: rerun "
                    "the same command to resume, with fewer workers if memory ran out") from exc
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # cells not started are dropped
                raise


@contextmanager
def _cell_threads(threads: int | None) -> Iterator[None]:
    """A cell here with a worker's threads, as a worker process has them: torch's and numba's
    (numba's parallel kernels, at more threads than torch, would raise torch's count); both are
    put back afterwards. ``None``: leave both alone."""
    if threads is None:
        yield
        return
    import numba

    before = numba.get_num_threads()
    _set_numba_threads(threads)
    try:
        with using_threads(threads):
            yield
    finally:
        numba.set_num_threads(before)


def _set_numba_threads(threads: int) -> None:
    """numba's parallel kernels at a cell's thread count (never above the threads numba started
    with: it refuses more), so that they do not raise torch's count back up."""
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _worker_init(threads: int, modules: tuple[str, ...], parent: int,
                 registrations: tuple[tuple[str, str, str], ...] = ()) -> None:
    """A cell worker: its share of the cores, the modules that register the config's methods (and
    the classes registered only in the parent), and death with the parent (which holds the run
    folder's lock: a worker must not outlive it)."""
    import importlib

    import torch

    from ..train.scoped import die_with_parent
    from .candidate import register_classes

    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an idle worker ignores Ctrl-C; a cell takes it (_cell_job)
    torch.set_num_threads(threads)
    _set_numba_threads(threads)
    for name in modules:
        importlib.import_module(name)
    register_classes(registrations)


class CellError(Exception):
    """A cell's error as it leaves a worker process when the original exception cannot travel
    (it does not pickle, or cannot be rebuilt in the parent: a custom ``__init__``): its type
    name and message, with the worker's traceback as text, as the cause. Exceptions that can
    travel reach the parent as themselves."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.kind, self.message = kind, message

    def __str__(self) -> str:
        return self.message


def _cell_job(args):
    run_dir, config_dict, cell, device = args
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C stops a running cell
    try:
        return run_cell(run_dir, config_dict, cell, device=device)
    except (TopopruneError, MemoryError):  # ours pickle as they are; memory stops the run
        raise
    except Exception as exc:
        if _travels(exc):
            raise  # as itself: the parent's one-line handling (out of memory, a missing file) applies
        raise CellError(type(exc).__name__, str(exc)) from exc
    finally:
        signal.signal(signal.SIGINT, previous)


def _travels(exc: BaseException) -> bool:
    """Whether ``exc`` survives the trip to the parent: pickled and rebuilt as the same type."""
    import pickle

    try:
        back = pickle.loads(pickle.dumps(exc))
    except Exception:
        return False
    return type(back) is type(exc) and str(back) == str(exc)


def require_ray():
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise TopopruneError('--executor ray needs Ray, an optional extra: pip install "topoprune[ray]" '
                             '(or pip install "ray>=2.60")') from None
    return ray


def _on_worker(run_dir: str, device: str | None, modules: tuple[str, ...], threads: int) -> str | None:
    """Set up a Ray worker for a task: its threads, the config's method modules, the run folder
    it must see, and the device resolved here (on the worker's node, not the driver's)."""
    import importlib

    import torch

    from ..train import resolve_device

    torch.set_num_threads(threads)
    _set_numba_threads(threads)
    for name in modules:
        importlib.import_module(name)
    if not os.path.isfile(os.path.join(run_dir, "config.json")):
        raise TopopruneError(f"node {socket.gethostname()} does not see the run folder {run_dir}: mount the "
                             "shared storage there on every node (a node added after the run started is not probed)")
    return None if device is None else str(resolve_device(device))


def _ray_cell(run_dir: str, config_dict: dict, cell: Cell, device: str | None, modules: tuple[str, ...],
              threads: int) -> dict:
    """One cell on a Ray worker; returns the row and where it ran."""
    device = _on_worker(run_dir, device, modules, threads)
    t0 = time.perf_counter()
    row = run_cell(run_dir, config_dict, cell, device=device)
    return {"row": row, "host": socket.gethostname(), "pid": os.getpid(), "seconds": time.perf_counter() - t0}


def _ray_baseline(run_dir: str, config_dict: dict, model_key: str, device: str | None, modules: tuple[str, ...],
                  threads: int, seed: int | None = None) -> str:
    """Stages 1 and 2 of one model on a Ray worker (with a cell's resources); returns the host."""
    from .config import parse_config
    from .stages import analysis_stage, baseline_stage
    from .store import RunStore, run_log

    device = _on_worker(run_dir, device, modules, threads)
    config = parse_config(config_dict)
    store = RunStore(run_dir)
    spec = config.model(model_key)
    log = run_log(store.root)
    baseline_stage(config, store, spec, log=log, progress=False, device=device, seed=seed)
    analysis_stage(config, store, spec, log=log, seed=seed)
    return socket.gethostname()


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    line = lines[-1] if lines else type(exc).__name__
    return line.split("TopopruneError: ", 1)[-1][:300]


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

    def start(self, run_dir: str) -> None:
        """Join (or start) the cluster and check that every node that can run a cell sees the run
        folder: before any baseline trains, so a wrong --address or --out fails at once."""
        self._ray = self._connect()
        try:
            self.check_shared(self._ray, run_dir)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        ray = getattr(self, "_ray", None)
        if ray is not None and getattr(self, "_started", False):  # a local cluster this run started goes with it
            ray.shutdown()
        self._ray = None

    def _task(self, fn):
        return self._ray.remote(fn).options(num_cpus=self.cpus_per_cell, num_gpus=self.gpus_per_cell,
                                            max_retries=self.max_retries, retry_exceptions=False)

    def baseline(self, config, store, spec, *, log, progress: bool, device: str | None,
                 seed: int | None = None) -> None:
        """Stages 1 and 2 of one model (of ``seed``'s own baseline under ``train.seed: each``) as a
        Ray task with a cell's resources (a GPU if cells get one)."""
        from .stages import analysis_path, baseline_dir

        key = config.baseline_key(spec.key, seed) if seed is not None else spec.key
        if (store.path(f"{baseline_dir(key)}/baseline.json").exists()
                and store.path(analysis_path(key)).exists()):
            return
        threads = max(1, int(self.cpus_per_cell))
        ref = self._task(_ray_baseline).remote(str(store.root), config.to_dict(), spec.key, device, self.modules,
                                               threads, seed)
        try:
            host = self._ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - the task's error, after Ray's retries
            raise TopopruneError(f"baseline {key} failed on the Ray cluster: {_last_line(exc)}") from None
        log.info("baseline %s: ran on %s", key, host)

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
        try:
            with open(path, "w") as f:
                f.write(token)
            probe = ray.remote(num_cpus=0)(_probe)
            nodes = [n for n in ray.nodes() if n.get("Alive")  # only nodes that can hold a cell
                     and n.get("Resources", {}).get("CPU", 0) >= self.cpus_per_cell
                     and n.get("Resources", {}).get("GPU", 0) >= self.gpus_per_cell]
            if not nodes:
                raise TopopruneError(f"no node of the Ray cluster has {self.cpus_per_cell:g} CPU(s) and "
                                     f"{self.gpus_per_cell:g} GPU(s) free for a cell (resources in the config)")
            refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                    .remote(path, token) for n in nodes]
            try:
                results = ray.get(refs, timeout=120)
            except Exception as exc:  # noqa: BLE001 - a timeout, a node lost meanwhile
                raise TopopruneError(f"the shared-storage check did not finish on every node ({_last_line(exc)}); "
                                     "check the cluster (`ray status`) and rerun") from None
        except OSError as exc:
            raise TopopruneError(f"cannot write the storage probe into {run_dir}: {exc.strerror}") from None
        finally:
            if os.path.exists(path):
                os.remove(path)
        blind = [host for host, seen in results if not seen]
        if blind:
            raise TopopruneError(
                f"the run folder {os.path.abspath(run_dir)} is not visible on node(s) {', '.join(sorted(set(blind)))}: "
                "every Ray node must see it at the same path; mount shared storage (NFS, a cluster file "
                "system) there on every node, or give --out a path on storage they all mount")

    def run(self, todo: Sequence[Cell], *, run_dir: str, config_dict: dict, device: str | None,
            on_row: OnRow, on_status: OnStatus, log) -> None:
        ray = self._ray
        threads = max(1, int(self.cpus_per_cell))
        task = self._task(_ray_cell)
        pending = {task.remote(run_dir, config_dict, c, device, self.modules, threads): c for c in todo}
        done = 0
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
                for ref in ready:
                    cell = pending.pop(ref)
                    try:
                        out = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a cell's error, after Ray's retries
                        log.error("%s failed on the cluster: %s", cell.key, _last_line(exc))
                        raise TopopruneError(f"cell {cell.key} failed on the Ray cluster: {_last_line(exc)}; finished "
                                             "cells are kept: fix the cause and rerun the same command to resume") from None
                    done += 1
                    log.info("%s: ran on %s (pid %s) in %.1f s", cell.key, out["host"], out["pid"], out["seconds"])
                    on_row(out["row"])
                on_status(f"cluster: {done} done, {len(pending)} running or queued")
        finally:  # an error, a failed cell or Ctrl-C: nothing keeps running once the driver lets go
            if pending:
                for ref in pending:
                    ray.cancel(ref, force=True)
                ray.wait(list(pending), num_returns=len(pending), timeout=30)
