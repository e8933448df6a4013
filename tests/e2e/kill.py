"""SIGKILL a running command at the moment a file appears: the resume tests' shared step."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def kill_when(process: subprocess.Popen, folder: Path, pattern: str, *, what: str, timeout: float = 240) -> Path:
    """Wait until ``folder.glob(pattern)`` finds a file while ``process`` still runs, SIGKILL it and
    return that file; fail (naming ``what`` the process was to be caught in) if it ends first."""
    deadline, found = time.time() + timeout, None
    while time.time() < deadline and found is None:
        found = next(iter(folder.glob(pattern)), None)
        if process.poll() is not None:
            break
        time.sleep(0.005)
    assert found is not None and process.poll() is None, f"the process ended before {what}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return found
