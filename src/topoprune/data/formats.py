"""Parsers for the official on-disk formats: IDX (MNIST, Fashion-MNIST) and the CIFAR-10 python
pickle batches. Each checks what it reads and names the file when something is off."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from ..errors import TopopruneError

__all__ = ["read_idx", "read_cifar_batch"]

# IDX type codes (LeCun's format description): 0x08 ubyte ... 0x0E double.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (by content, not by name)."""
    p = Path(path)
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise TopopruneError(f"{p}: corrupt gzip data ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise TopopruneError(f"{p}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise TopopruneError(f"{p}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise TopopruneError(
            f"{p}: IDX size mismatch: header says shape {shape} ({expected} bytes), file has "
            f"{len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            d = pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise TopopruneError(f"{p}: not a CIFAR-10 python batch ({exc})") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise TopopruneError(f"{p}: not a CIFAR-10 python batch (no b'data'/b'labels' keys)")
    data = np.asarray(d[b"data"], dtype=np.uint8)
    labels = np.asarray(d[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise TopopruneError(
            f"{p}: CIFAR batch has data {data.shape} and {labels.shape[0]} labels; expected "
            "(N, 3072) and N labels"
        )
    return data.reshape(-1, 3, 32, 32), labels
