"""Training checkpoints: written atomically (temp file + rename), refused loudly when corrupt.

A run directory holds ``checkpoint.pt`` (model, optimizer, scheduler, history, RNG state) and
``metrics.json``. A kill at any moment leaves either the previous or the new checkpoint, never a
half-written one, and a corrupt checkpoint is reported with its path and never overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import TopopruneError

__all__ = ["atomic_write_bytes", "atomic_save", "atomic_write_json", "load_training_checkpoint"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename: readers see the old file or
    the new one, never half of it. An ``OSError`` (a full disk, say) names ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def atomic_write_json(obj: Any, path: str | Path) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def load_training_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint written by :func:`atomic_save`.

    Raises:
        TopopruneError: naming the path, if the file is corrupt or not a training checkpoint.
    """
    p = Path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise TopopruneError(
            f"checkpoint {str(p)!r} is corrupt ({first}); it was left untouched: move or delete it "
            "to start over"
        ) from None
    if not isinstance(obj, dict) or "model" not in obj or "epoch" not in obj:
        raise TopopruneError(f"checkpoint {str(p)!r} is not a topoprune training checkpoint")
    return obj
