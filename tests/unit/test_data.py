"""Dataset parsers, search order, transforms and the in-memory loader."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from topoprune.data import BatchLoader, list_datasets, load_dataset, locate, prepare_data
from topoprune.data.formats import read_cifar_batch, read_idx
from topoprune.data.transforms import fit_to_shape, random_crop_flip, split_indices
from topoprune.errors import TopopruneError

from ..datafiles import idx_bytes, write_cifar_batch, write_cifar_dataset, write_idx_dataset


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """No test sees the developer's ~/.cache or $TOPOPRUNE_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TOPOPRUNE_DATA", raising=False)


def test_registry_names():
    assert list_datasets() == ["cifar10", "digits", "fashion-mnist", "mnist"]
    with pytest.raises(TopopruneError, match="unknown dataset 'svhn'; available: cifar10, digits"):
        prepare_data("svhn")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_raw_and_gzip(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(a)
    path = tmp_path / "x.idx"
    path.write_bytes(gzip.compress(data) if gz else data)
    np.testing.assert_array_equal(read_idx(path), a)


def test_idx_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad-magic"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(TopopruneError, match="bad-magic: not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(idx_bytes(np.zeros((4, 4), np.uint8))[:-3])
    with pytest.raises(TopopruneError, match="short: IDX size mismatch"):
        read_idx(short)


def test_cifar_batch_parser(tmp_path):
    data, labels = write_cifar_batch(tmp_path / "b", 7, seed=0)
    x, y = read_cifar_batch(tmp_path / "b")
    assert x.shape == (7, 3, 32, 32) and y.tolist() == labels
    # channel-major rows: the first 1024 bytes are the red plane
    np.testing.assert_array_equal(x[:, 0].reshape(7, -1), data[:, :1024])
    (tmp_path / "junk").write_bytes(b"junk")
    with pytest.raises(TopopruneError, match="junk: not a CIFAR-10 python batch"):
        read_cifar_batch(tmp_path / "junk")


def test_idx_dataset_from_root_with_normalization_and_val_split(tmp_path):
    arrays = write_idx_dataset(tmp_path / "fashion-mnist", n_train=60, n_test=20)
    d = prepare_data("fashion-mnist", root=tmp_path, val_fraction=0.25, seed=3)
    assert d.train_x.shape == (45, 1, 28, 28) and d.val_x.shape == (15, 1, 28, 28)
    assert d.test_x.shape == (20, 1, 28, 28)
    assert torch.equal(d.test_y, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)))
    assert abs(d.train_x.mean().item()) < 1e-4 and abs(d.train_x.std().item() - 1) < 1e-2
    # raw values: the test split is normalized with the train statistics
    raw = arrays["t10k-images-idx3-ubyte"][0].astype(np.float32) / 255
    np.testing.assert_allclose(d.test_x[0, 0].numpy() * d.std[0] + d.mean[0], raw, atol=1e-5)
    again = prepare_data("fashion-mnist", root=tmp_path, val_fraction=0.25, seed=3)
    assert torch.equal(again.val_y, d.val_y)
    other = prepare_data("fashion-mnist", root=tmp_path, val_fraction=0.25, seed=4)
    assert not torch.equal(other.val_x, d.val_x)


def test_cifar_dataset_and_augmented_loader(tmp_path):
    write_cifar_dataset(tmp_path / "cifar10", n_per_batch=8)
    d = prepare_data("cifar10", root=tmp_path, val_fraction=0.1, augment=True)
    assert d.train_x.shape == (36, 3, 32, 32) and d.test_x.shape == (8, 3, 32, 32)
    xb, yb = next(iter(d.loader("train", batch_size=16)))
    assert xb.shape == (16, 3, 32, 32)
    assert len(load_dataset("cifar10", root=tmp_path, split="test")) == 8


def test_search_order_root_then_env_then_cache(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "a" / "mnist")
    write_idx_dataset(tmp_path / "b", gz=False)
    write_idx_dataset(tmp_path / "cache" / "topoprune" / "mnist")
    monkeypatch.setenv("TOPOPRUNE_DATA", str(tmp_path / "b"))
    assert locate("mnist", root=tmp_path / "a") == tmp_path / "a" / "mnist"
    assert locate("mnist") == tmp_path / "b"
    monkeypatch.delenv("TOPOPRUNE_DATA")
    assert locate("mnist") == tmp_path / "cache" / "topoprune" / "mnist"


def test_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TopopruneError) as exc:
        prepare_data("mnist", root=tmp_path / "empty")
    msg = str(exc.value)
    assert "not found; looked in:" in msg and str(tmp_path / "empty") in msg
    assert "topoprune data fetch mnist" in msg


def test_a_data_root_that_does_not_exist_is_refused_not_skipped(tmp_path):
    for call in (lambda: locate("mnist", root=tmp_path / "nowhere"),
                 lambda: prepare_data("digits", root=tmp_path / "nowhere"),
                 lambda: prepare_data("mnist", root=tmp_path / "nowhere")):
        with pytest.raises(TopopruneError, match=f"data root {tmp_path / 'nowhere'} does not exist"):
            call()


def test_digits_is_embedded_with_a_fixed_test_split():
    a = prepare_data("digits", seed=0)
    b = prepare_data("digits", seed=1)
    assert a.train_x.shape[1:] == (1, 8, 8)
    assert a.test_x.shape[0] == 359
    assert torch.equal(a.test_y, b.test_y)  # the test split does not depend on the seed
    big = prepare_data("digits", input_shape=(3, 28, 28))
    assert big.train_x.shape[1:] == (3, 28, 28)
    with pytest.raises(TypeError, match="positional"):  # options after name and root are keyword-only
        prepare_data("digits", None, (3, 28, 28))


def test_fit_to_shape_pads_replicates_and_resizes():
    x = torch.rand(2, 1, 28, 28)
    padded = fit_to_shape(x, (1, 32, 32))
    assert torch.equal(padded[:, :, 2:30, 2:30], x) and padded[:, :, :2].abs().sum() == 0
    rgb = fit_to_shape(x, (3, 28, 28))
    assert torch.equal(rgb[:, 0], rgb[:, 2])
    assert fit_to_shape(x, (1, 20, 20)).shape == (2, 1, 20, 20)
    with pytest.raises(TopopruneError, match=r"cannot turn 3-channel images into 1 channels"):
        fit_to_shape(torch.rand(1, 3, 8, 8), (1, 8, 8))


def test_split_indices_is_a_seeded_partition():
    kept, held = split_indices(100, 0.2, seed=5)
    assert len(held) == 20 and len(kept) == 80
    assert sorted(torch.cat([kept, held]).tolist()) == list(range(100))
    assert torch.equal(split_indices(100, 0.2, seed=5)[1], held)
    with pytest.raises(TopopruneError, match="val_fraction must be in"):
        split_indices(10, 1.0, 0)


def test_batch_loader_orders_are_seeded_per_epoch_and_cover_everything():
    x, y = torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10)
    loader = BatchLoader(x, y, batch_size=4, shuffle=True, seed=1)
    first = torch.cat([b for _, b in loader])
    assert sorted(first.tolist()) == list(range(10)) and len(loader) == 3
    assert torch.equal(first, torch.cat([b for _, b in loader]))
    loader.set_epoch(1)
    assert not torch.equal(first, torch.cat([b for _, b in loader]))


def test_random_crop_flip_keeps_pixels_when_padding_is_zero():
    x = torch.rand(6, 3, 5, 5)
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, g, padding=0)
    for a, b in zip(out, x):
        assert torch.equal(a, b) or torch.equal(a, b.flip(2))
    shifted = random_crop_flip(x, torch.Generator().manual_seed(1), padding=2)
    assert shifted.shape == x.shape


def test_real_fashion_mnist_when_installed():
    folder = locate("fashion-mnist", root=None)
    if folder is None:
        pytest.skip("Fashion-MNIST is not installed here (apt-get install dataset-fashion-mnist); "
                    "`make test` installs it where apt is available")
    d = prepare_data("fashion-mnist", val_fraction=0.0)
    assert d.train_x.shape == (60000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    assert d.num_classes == 10
    assert sorted(d.train_y.unique().tolist()) == list(range(10))
    assert d.train_y.bincount().tolist() == [6000] * 10
