"""The dataset registry: ``list_datasets()``, ``load_dataset()``, ``prepare_data()``, ``fetch()``.

Every split is loaded into memory once as float tensors ``(N, C, H, W)``; transforms (fitting
to a model's input shape, normalization with the training split's statistics, a seeded
validation split) are applied once, never per sample in the training loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ..errors import TopopruneError
from ..registry import Registry
from .formats import read_cifar_batch, read_idx
from .loader import BatchLoader
from .sources import RemoteFile, default_cache, download_file, extract_tar, search_roots
from .transforms import channel_stats, fit_to_shape, normalize, split_indices

__all__ = [
    "DatasetInfo",
    "DataSplits",
    "list_datasets",
    "dataset_info",
    "locate",
    "load_dataset",
    "prepare_data",
    "fetch",
    "SPLITS",
]

SPLITS = ("train", "val", "test")
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is and where it comes from."""

    name: str
    shape: tuple[int, int, int]
    classes: tuple[str, ...]
    description: str
    remote: tuple[RemoteFile, ...] = ()
    system_paths: tuple[str, ...] = ()
    how_to_get: str = ""
    sizes: tuple[int, int] = (0, 0)  # (train, test) samples when known without loading (cost estimates)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"

_BUILTIN: dict[str, DatasetInfo] = {
    "digits": DatasetInfo(
        "digits", (1, 8, 8), tuple("0123456789"),
        "scikit-learn's bundled 8x8 handwritten digits (1797 images; fixed seeded 80/20 split)",
        how_to_get="it ships with scikit-learn: pip install scikit-learn",
        sizes=(1438, 359),
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", (1, 28, 28),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"),
        "Zalando's Fashion-MNIST, official 60000/10000 split (IDX files)",
        remote=(
            RemoteFile("train-images-idx3-ubyte.gz", _FASHION + "train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            RemoteFile("train-labels-idx1-ubyte.gz", _FASHION + "train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            RemoteFile("t10k-images-idx3-ubyte.gz", _FASHION + "t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", _FASHION + "t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        system_paths=("/usr/share/datasets/fashion-mnist",),
        how_to_get="run `topoprune data fetch fashion-mnist`, or on Debian/Ubuntu "
        "`apt-get install dataset-fashion-mnist`",
        sizes=(60000, 10000),
    ),
    "mnist": DatasetInfo(
        "mnist", (1, 28, 28), tuple("0123456789"),
        "LeCun's MNIST, official 60000/10000 split (IDX files)",
        remote=(
            RemoteFile("train-images-idx3-ubyte.gz", _MNIST + "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            RemoteFile("train-labels-idx1-ubyte.gz", _MNIST + "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            RemoteFile("t10k-images-idx3-ubyte.gz", _MNIST + "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", _MNIST + "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
        system_paths=("/usr/share/datasets/mnist",),
        how_to_get="run `topoprune data fetch mnist`",
        sizes=(60000, 10000),
    ),
    "cifar10": DatasetInfo(
        "cifar10", (3, 32, 32),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        "Krizhevsky's CIFAR-10, official 50000/10000 split (python pickle batches)",
        remote=(
            RemoteFile("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                       "c58f30108f718f92721af3b95e74349a"),
        ),
        how_to_get="run `topoprune data fetch cifar10` (about 170 MB)",
        sizes=(50000, 10000),
    ),
}


DATASETS: Registry[DatasetInfo] = Registry("dataset")
for _name, _info in _BUILTIN.items():
    DATASETS.register(_name, _info)


MAX_SIDE = 4096  # largest input side accepted
MAX_BYTES = 8 * 2**30  # in-memory splits larger than this are refused before resizing


def list_datasets() -> list[str]:
    """Names of the registered datasets, sorted."""
    return sorted(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS.get(name)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _has_files(name: str, folder: Path) -> bool:
    if name in ("mnist", "fashion-mnist"):
        return all(_idx_file(folder, s) is not None for s in _IDX_FILES)
    if name == "cifar10":
        return all((folder / _CIFAR_DIR / f).is_file() for f in _CIFAR_FILES)
    return True


def check_root(root: str | Path | None, what: str = "data root") -> None:
    """Refuse a ``root`` that is given but is not an existing folder: a mistyped path must not
    fall back to the other places silently."""
    if root is None:
        return
    path = Path(root).expanduser()
    if not path.exists():
        raise TopopruneError(f"{what} {path} does not exist; allowed: an existing folder (or none: the "
                             "default search order, $TOPOPRUNE_DATA then ~/.cache/topoprune)")
    if not path.is_dir():
        raise TopopruneError(f"{what} {path} is a file; allowed: a folder")


def locate(name: str, root: str | Path | None = None) -> Path | None:
    """The first folder in the search order that holds all of the dataset's files, or None.
    ``digits`` is embedded and has no folder. A ``root`` that does not exist is refused."""
    info = dataset_info(name)
    check_root(root)
    if name == "digits":
        return None
    for folder in search_roots(name, root, info.system_paths):
        if _has_files(name, folder):
            return folder
    return None


def _missing(name: str, root) -> TopopruneError:
    info = dataset_info(name)
    looked = ", ".join(str(p) for p in search_roots(name, root, info.system_paths))
    return TopopruneError(f"dataset {name!r} not found; looked in: {looked}. To get it: {info.how_to_get}")


def _load_digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    train, test = split_indices(len(y), 0.2, seed=0)  # fixed: the same test set for everyone
    return x[train], y[train], x[test], y[test]


def _load_idx(name: str, root):
    folder = locate(name, root)
    if folder is None:
        raise _missing(name, root)
    arrays = [read_idx(_idx_file(folder, s)) for s in _IDX_FILES]
    xtr, ytr, xte, yte = arrays
    for images, labels, split in ((xtr, ytr, "train"), (xte, yte, "test")):
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise TopopruneError(
                f"{name} {split}: images {images.shape} and labels {labels.shape} do not match in "
                f"{folder}"
            )
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)  # noqa: E731
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return to_x(xtr), to_y(ytr), to_x(xte), to_y(yte)


def _load_cifar(name: str, root):
    folder = locate(name, root)
    if folder is None:
        raise _missing(name, root)
    parts = [read_cifar_batch(folder / _CIFAR_DIR / f) for f in _CIFAR_FILES]
    xtr = np.concatenate([p[0] for p in parts[:5]])
    ytr = np.concatenate([p[1] for p in parts[:5]])
    xte, yte = parts[5]
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)  # noqa: E731
    return to_x(xtr), torch.from_numpy(ytr), to_x(xte), torch.from_numpy(yte)


_LOADERS: dict[str, Callable] = {
    "digits": lambda name, root: _load_digits(),
    "fashion-mnist": _load_idx,
    "mnist": _load_idx,
    "cifar10": _load_cifar,
}


@dataclass
class DataSplits:
    """In-memory, transformed splits of one dataset, ready for training.

    ``mean``/``std`` are the per-channel statistics of the training split (after fitting to
    ``input_shape``) that every split was normalized with.
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    augment: bool = False

    def split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in SPLITS:
            raise TopopruneError(f"split must be one of {SPLITS}, got {split!r}")
        return getattr(self, f"{split}_x"), getattr(self, f"{split}_y")

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """A fixed, seeded sample of ``n`` training inputs (in index order), for methods that look
        at a layer's outputs (Betti numbers, activation fitness)."""
        total = self.train_x.shape[0]
        if not 1 <= n <= total:
            raise TopopruneError(f"sample size must be in [1, {total}] (the training inputs), got {n}")
        idx = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
        return self.train_x[idx.sort().values]

    def loader(self, split: str, batch_size: int = 128, *, seed: int = 0,
               shuffle: bool | None = None, rank: int = 0, world: int = 1) -> BatchLoader:
        """A batch iterator over one split; the training split is shuffled (and augmented if
        ``augment``) by default. ``rank``/``world``: this process's shard of each batch (DDP)."""
        x, y = self.split(split)
        is_train = split == "train"
        return BatchLoader(x, y, batch_size, shuffle=is_train if shuffle is None else shuffle,
                           seed=seed, augment=self.augment and is_train, rank=rank, world=world)


def check_training_size(name: str, total: int, kept: int, val_fraction: float, num_classes: int,
                        limit: int | None = None) -> None:
    """Refuse a split that leaves fewer training samples than classes (at least 2): training on
    none divides by zero, and on fewer than one per class cannot learn the task. The message
    names the counts and the largest ``val_fraction`` that would do."""
    least = max(2, num_classes)
    if kept >= least:
        return
    if total < least:
        where = f" (limit={limit})" if limit is not None else ""
        raise TopopruneError(f"dataset {name!r} has {total} training samples{where}; allowed: at least "
                             f"{least} (one per class), so that training has something to learn")
    most = (total - least) / total
    raise TopopruneError(f"val_fraction: bad value {val_fraction!r}: it holds out {total - kept} of the {total} "
                         f"training samples of {name!r} for validation, leaving {kept} to train on; allowed: "
                         f"at most {math.floor(most * 1000) / 1000:g}, which leaves at least {least} (one per class)")


def prepare_data(
    name: str,
    root: str | Path | None = None,
    *,
    input_shape: tuple[int, int, int] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    normalize_inputs: bool = True,
    augment: bool = False,
    limit: int | None = None,
) -> DataSplits:
    """Load a dataset once and prepare its train/val/test splits.

    Args:
        name: one of :func:`list_datasets`.
        root: a folder to look in first (``--data-root``).
        input_shape: ``(C, H, W)`` to fit the images to (pad/resize, 1 -> C replication);
            default the dataset's own shape.
        val_fraction: fraction of the official training split held out as validation, chosen
            with ``seed``; 0 gives an empty validation split (validation is then off: training
            records ``val_loss``/``val_acc`` as ``None``). A fraction that leaves fewer training
            samples than classes is refused.
        seed: seed of the validation split.
        normalize_inputs: subtract the training split's per-channel mean, divide by its std.
        augment: random crop + flip on training batches (CIFAR style).
        limit: keep only the first ``limit`` training and test samples (quick runs, tests).
    """
    info = dataset_info(name)
    check_root(root)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise TopopruneError(f"limit must be an integer >= 1 or None, got {limit!r}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise TopopruneError(f"val_fraction must be a fraction in [0, 1), got {val_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TopopruneError(f"seed must be an integer >= 0, got {seed!r}")
    shape = info.shape if input_shape is None else input_shape
    if (isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE for v in shape)):
        raise TopopruneError(f"input_shape must be (C, H, W), integers in [1, {MAX_SIDE}], got {input_shape!r}")
    shape = tuple(shape)
    xtr, ytr, xte, yte = _LOADERS[name](name, root)
    if limit is not None:
        xtr, ytr, xte, yte = xtr[:limit], ytr[:limit], xte[:limit], yte[:limit]
    need = (len(ytr) + len(yte)) * shape[0] * shape[1] * shape[2] * 4
    if need > MAX_BYTES:
        raise TopopruneError(f"input_shape {shape} would take {need / 2**30:.1f} GiB for the "
                             f"{len(ytr) + len(yte)} images of {name!r}; allowed: at most "
                             f"{MAX_BYTES / 2**30:.0f} GiB in memory (a smaller shape, or limit)")
    xtr, xte = fit_to_shape(xtr, shape), fit_to_shape(xte, shape)
    keep, held = split_indices(len(ytr), val_fraction, seed)
    check_training_size(name, len(ytr), len(keep), val_fraction, info.num_classes, limit)
    xva, yva = xtr[held], ytr[held]
    xtr, ytr = xtr[keep], ytr[keep]
    mean, std = channel_stats(xtr)
    if normalize_inputs:
        xtr, xva, xte = (normalize(t, mean, std).contiguous() for t in (xtr, xva, xte))
    return DataSplits(name, shape, info.num_classes, xtr, ytr, xva, yva, xte, yte,
                      mean, std, augment)


def load_dataset(name: str, root: str | Path | None = None, split: str = "train",
                 **kwargs) -> TensorDataset:
    """One split as a ``TensorDataset`` of ``(x, y)``; keyword arguments as in
    :func:`prepare_data`."""
    if split not in SPLITS:
        raise TopopruneError(f"split must be one of {SPLITS}, got {split!r}")
    return TensorDataset(*prepare_data(name, root, **kwargs).split(split))


def fetch(name: str, root: str | Path | None = None, *, progress: bool = True,
          mirror: str | None = None) -> Path:
    """Download a dataset's official files into ``root/<name>`` (default
    ``~/.cache/topoprune/<name>``), verifying each MD5. ``mirror`` replaces the base URL.

    Returns the folder :func:`locate` will find.
    """
    info = dataset_info(name)
    if not info.remote:
        raise TopopruneError(f"dataset {name!r} needs no download: {info.how_to_get}")
    dest = (Path(root).expanduser() / name) if root is not None else default_cache(name)
    for f in info.remote:
        url = f.url if mirror is None else mirror.rstrip("/") + "/" + f.filename
        target = dest / f.filename
        download_file(url, target, f.md5, progress=progress)
        if f.filename.endswith(".tar.gz"):
            extract_tar(target, dest, _CIFAR_DIR)
            target.unlink()
    return dest
