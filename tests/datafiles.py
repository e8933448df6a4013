"""Writers of small files in the official dataset formats, for the loader tests.

Written from the format descriptions (IDX: big-endian magic 0x000008NN + dims; CIFAR-10: pickled
dict with b'data' (N, 3072) uint8 and b'labels'), so the parsers are checked against the formats,
not against themselves.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def write_idx_dataset(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = True,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """Four IDX files like MNIST's, with random 28x28 images and labels 0..9."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, a in arrays.items():
        data = idx_bytes(a)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


def write_cifar_batch(path: Path, n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(x) for x in rng.integers(0, 10, n)]
    with path.open("wb") as f:
        pickle.dump({b"batch_label": b"test", b"labels": labels, b"data": data,
                     b"filenames": [b"x.png"] * n}, f, protocol=2)
    return data, labels


def write_cifar_dataset(root: Path, n_per_batch: int = 10) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", n_per_batch, seed=i)
    write_cifar_batch(folder / "test_batch", n_per_batch, seed=99)
    return folder
