"""Datasets: digits (embedded), MNIST, Fashion-MNIST, CIFAR-10; loaded once into memory."""

from .loader import BatchLoader
from .registry import (
    SPLITS,
    DataSplits,
    DatasetInfo,
    dataset_info,
    fetch,
    list_datasets,
    load_dataset,
    locate,
    prepare_data,
)
from .sources import ChecksumError, RemoteFile, download_file, search_roots

__all__ = [
    "SPLITS",
    "BatchLoader",
    "ChecksumError",
    "DataSplits",
    "DatasetInfo",
    "RemoteFile",
    "dataset_info",
    "download_file",
    "fetch",
    "list_datasets",
    "load_dataset",
    "locate",
    "prepare_data",
    "search_roots",
]
