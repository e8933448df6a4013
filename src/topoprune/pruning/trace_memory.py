"""A memory limit on dependency tracing, so a model too large to trace fails in one line instead
of taking the machine down.

Torch-Pruning's ``DependencyGraph.build_dependency`` runs the model once and keeps, for every
operation of the autograd graph, a node with its inputs and outputs; on a large model (a Swin or a
long sequence) that can take far more memory than the model itself, and the operating system's
out-of-memory killer then ends the process, or the machine swaps until it stops answering.

:func:`guard_memory` runs the tracing under a watchdog thread that reads the process's resident
memory (``/proc/self/statm``; ``psutil`` where there is no ``/proc``) every few milliseconds. When
the memory the tracing added passes the limit, the watchdog raises an exception *in the tracing
thread* with CPython's ``PyThreadState_SetAsyncExc``; it arrives at the next Python bytecode the
thread runs, unwinds the tracing (freeing what it held), and leaves as one
:class:`~topoprune.errors.TopopruneError` line.

Why this mechanism:

- ``_thread.interrupt_main()`` only reaches the main thread, and it raises through the process's
  SIGINT handler, which a host program (a notebook, a job runner, the CLI) may have replaced;
  the asynchronous exception goes to exactly the thread that traces, whichever it is.
- the exception derives from ``BaseException``, as ``KeyboardInterrupt`` does, so the
  ``except Exception`` clauses of the model's or the tracer's code do not swallow it.
- forward hooks the tracer registered and could not remove (it was stopped mid-forward) are
  removed, so a model pruned with ``inplace=True`` is not left with tracing hooks.
- a pending exception that has not arrived by the time tracing ends is withdrawn and raised
  there, so it can never surface in unrelated code later.

Limits of the mechanism: the exception waits for the thread to run Python code, so one single
allocation inside a C function (a huge tensor) cannot be stopped half-way; the memory is measured
for the whole process, so other threads' allocations count too.

The limit, in GB of memory the tracing may add to what the process holds when it starts:
``limit_gb`` if given, else the environment variable ``TOPOPRUNE_TRACE_MEMORY`` (a number of GB,
or ``off``), else 80 % of the memory available when tracing starts (``MemAvailable``). Where
neither ``/proc`` nor ``psutil`` can be read, there is no default limit.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

from torch import nn

from ..errors import TopopruneError

__all__ = ["guard_memory", "trace_memory_limit", "resident_bytes", "ENV", "DEFAULT_FRACTION"]

ENV = "TOPOPRUNE_TRACE_MEMORY"
DEFAULT_FRACTION = 0.8  # of the memory available when tracing starts
_INTERVAL = 0.005  # seconds between two readings
_GB = 1024 ** 3

T = TypeVar("T")


class _MemoryLimitReached(BaseException):
    """Raised in the tracing thread by the watchdog (a BaseException: nothing catches it by accident)."""


def resident_bytes() -> int | None:
    """The process's resident memory in bytes, or None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # optional
    except ImportError:
        return None
    return int(psutil.Process().memory_info().rss)


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # optional
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def trace_memory_limit(limit_gb: float | str | None = None) -> int | None:
    """The memory tracing may add, in bytes (None: no limit), from ``limit_gb``, else
    ``TOPOPRUNE_TRACE_MEMORY``, else :data:`DEFAULT_FRACTION` of the available memory."""
    source = "limit_gb"
    if limit_gb is None:
        limit_gb, source = os.environ.get(ENV), ENV
    if limit_gb is None or (isinstance(limit_gb, str) and not limit_gb.strip()):
        available = _available_bytes()
        return None if available is None else int(DEFAULT_FRACTION * available)
    if isinstance(limit_gb, str) and limit_gb.strip().lower() == "off":
        return None
    try:
        value = float(limit_gb)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(limit_gb, bool) or not value > 0 or value == float("inf"):
        raise TopopruneError(f"{source}: bad value {limit_gb!r}; allowed: the GB of memory dependency tracing "
                             "may use, a number > 0 (e.g. 8 or 0.5), or 'off'")
    return int(value * _GB)


def _set_async_exc(ident: int, exc: type | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc) if exc else None)


class _Watchdog(threading.Thread):
    """Reads the resident memory until stopped; past ``ceiling`` bytes it raises
    :class:`_MemoryLimitReached` in thread ``target`` once, then stops."""

    def __init__(self, target: int, ceiling: int) -> None:
        super().__init__(name="topoprune-trace-memory", daemon=True)
        self.target, self.ceiling = target, ceiling
        self.lock = threading.Lock()
        self.armed, self.fired, self.peak = True, False, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(_INTERVAL):
            now = resident_bytes()
            if now is None:
                return
            self.peak = max(self.peak, now)
            if now > self.ceiling:
                with self.lock:
                    if self.armed:
                        self.fired = True
                        _set_async_exc(self.target, _MemoryLimitReached)
                return

    def disarm(self) -> bool:
        """Stop watching; whether the watchdog fired (its exception then raised here if it has
        not arrived yet: it is withdrawn first, so it cannot arrive later)."""
        with self.lock:
            self.armed = False
            fired = self.fired
        self.done.set()
        if fired:
            _set_async_exc(self.target, None)
        return fired


def _hooks(modules: Iterable[nn.Module]) -> dict[int, tuple[set, set]]:
    return {id(m): (set(m._forward_hooks), set(m._forward_pre_hooks)) for m in modules}


def _drop_new_hooks(modules: Iterable[nn.Module], before: dict[int, tuple[set, set]]) -> None:
    """Remove the forward hooks registered since ``before`` (the tracer's, left by the interruption)."""
    for m in modules:
        post, pre = before.get(id(m), (set(), set()))
        for key in [k for k in m._forward_hooks if k not in post]:
            del m._forward_hooks[key]
        for key in [k for k in m._forward_pre_hooks if k not in pre]:
            del m._forward_pre_hooks[key]


def guard_memory(trace: Callable[[], T], *, model: nn.Module | None = None, limit_gb: float | str | None = None,
                 what: str = "tracing the model's channel dependencies") -> T:
    """``trace()``, stopped with a one-line :class:`TopopruneError` if the process's resident
    memory grows by more than the limit (see the module docstring) while it runs. ``model``:
    the traced model, whose forward hooks left by an interrupted trace are removed."""
    limit = trace_memory_limit(limit_gb)
    start = resident_bytes()
    if limit is None or start is None:
        return trace()
    modules = list(model.modules()) if model is not None else []
    hooks = _hooks(modules)
    dog = _Watchdog(threading.get_ident(), start + limit)
    try:
        dog.start()
        try:
            result = trace()
        finally:
            if dog.disarm():
                raise _MemoryLimitReached
    except _MemoryLimitReached:
        pass
    else:
        return result
    _drop_new_hooks(modules, hooks)
    gc.collect()
    raise TopopruneError(
        f"{what} stopped: it used more than {limit / _GB:.3g} GB of memory (the limit; "
        f"the process had {start / _GB:.3g} GB before, {dog.peak / _GB:.3g} GB at the peak); use smaller "
        f"example inputs (one sample, a shorter sequence) or raise the limit with {ENV}=<GB> ('off' disables it)")
