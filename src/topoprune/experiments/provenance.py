"""Which source made a result: the git commit of the topoprune code that ran.

Every result row records it (with the package versions and its cell's start and end times), so
a number can be traced to the code that computed it.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

__all__ = ["source_commit"]


def _git(folder: Path, *args: str) -> str | None:
    """``git -C folder args`` stdout, or None when git is missing, fails or hangs."""
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The git commit (``HEAD``) of the checkout the ``topoprune`` package is imported from, with
    ``+dirty`` when a tracked file differs from it; ``None`` for an installed package (its folder
    is not tracked by git) or without git. Read once per process."""
    package = Path(__file__).resolve().parents[1]
    if _git(package, "ls-files", "--error-unmatch", "__init__.py") is None:  # not this package's checkout
        return None
    head = _git(package, "rev-parse", "HEAD")
    if not head:
        return None
    status = _git(package, "status", "--porcelain", "--untracked-files=no")
    return f"{head}+dirty" if status else head
