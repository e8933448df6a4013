"""torch's process-wide settings, set once or scoped to a block.

Library code never leaves torch's thread count or global random generator changed: it uses
:func:`seeded_rng` and :func:`using_threads`, which hand the caller's state back on exit. Only entry
points (the CLI, the experiment runner, benchmark scripts) call :func:`set_threads`, once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["seeded_rng", "set_threads", "usable_cores", "using_threads", "die_with_parent"]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_threads(n: int | None = None) -> int:
    """Use ``n`` intra-op threads (default: the cores this process may run on) from now on.

    A process-wide setting for entry points; library code uses :func:`using_threads` instead."""
    if n is None:
        n = usable_cores()
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


@contextmanager
def using_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` intra-op threads (``None``: leave the count alone), then restore
    the count the caller had. Yields the count in force inside the block."""
    before = torch.get_num_threads()
    try:
        yield before if n is None else set_threads(n)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _accelerator(device: torch.device | None) -> tuple[str, int] | None:
    """``(type, index)`` of the accelerator whose generator a block on ``device`` draws from."""
    if device is None or device.type in ("cpu", "meta"):
        return None
    if device.type == "cuda":
        return "cuda", device.index if device.index is not None else torch.cuda.current_device()
    return device.type, device.index or 0


@contextmanager
def seeded_rng(seed: int, device: str | torch.device | None = None) -> Iterator[None]:
    """Run the block on torch's global generators seeded from ``seed``, then give the caller's
    generator states back.

    The CPU generator is always forked and seeded; with an accelerator ``device`` (``cuda:N``,
    ``mps``) that device's generator too (dropout on a GPU draws from it). Inside the block the
    draws are exactly those after ``torch.manual_seed(seed)``, so results do not change, but no
    other device's generator is touched and the caller's stream continues as if nothing ran.
    """
    acc = _accelerator(None if device is None else torch.device(device))
    devices, kind = ([acc[1]], acc[0]) if acc is not None else ([], None)
    with torch.random.fork_rng(devices=devices, device_type=kind):
        torch.default_generator.manual_seed(seed)
        if acc is not None:
            if acc[0] == "cuda":
                with torch.cuda.device(acc[1]):
                    torch.cuda.manual_seed(seed)
            else:
                torch.get_device_module(acc[0]).manual_seed(seed)
        yield


def die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``); and if the
    parent died already, while this worker was still starting, exit now."""
    import ctypes
    import os
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent:
        os._exit(1)
