"""The downloader against a local HTTP server on 127.0.0.1: a good file, a corrupted one."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from dataclasses import replace

import pytest

from topoprune.data import ChecksumError, download_file, fetch, locate, prepare_data
from topoprune.data import registry
from topoprune.data.sources import RemoteFile

from ..datafiles import write_idx_dataset


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path/served`` on 127.0.0.1 (an ephemeral port) for the test's duration."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_good_download_lands_atomically(server, tmp_path):
    served, url = server
    (served / "f.bin").write_bytes(b"hello" * 1000)
    dest = tmp_path / "out" / "f.bin"
    download_file(f"{url}/f.bin", dest, md5(b"hello" * 1000), progress=False)
    assert dest.read_bytes() == b"hello" * 1000
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.bin"]


def test_corrupt_download_leaves_nothing(server, tmp_path):
    served, url = server
    (served / "f.bin").write_bytes(b"corrupted bytes")
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(ChecksumError, match="checksum mismatch for f.bin"):
        download_file(f"{url}/f.bin", dest, md5(b"the real bytes"), progress=False)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no partial file either


def test_unreachable_url_is_a_clear_error(server, tmp_path):
    _, url = server
    with pytest.raises(Exception, match="could not download"):
        download_file(f"{url}/missing.bin", tmp_path / "x", None, progress=False)
    assert not (tmp_path / "x").exists()


def test_fetch_whole_dataset_from_a_mirror(server, tmp_path, monkeypatch):
    served, url = server
    write_idx_dataset(served)
    files = tuple(
        RemoteFile(p.name, f"unused/{p.name}", md5(p.read_bytes())) for p in sorted(served.iterdir())
    )
    with registry.DATASETS.replaced("mnist", replace(registry.DATASETS.get("mnist"), remote=files)):
        dest = fetch("mnist", root=tmp_path / "data", progress=False, mirror=url)
        assert locate("mnist", root=tmp_path / "data") == dest
        assert prepare_data("mnist", root=tmp_path / "data").test_x.shape == (20, 1, 28, 28)


def test_fetch_with_official_checksums_refuses_other_bytes(server, tmp_path):
    served, url = server
    write_idx_dataset(served)  # right names, wrong bytes: the official MD5s cannot match
    with pytest.raises(ChecksumError):
        fetch("fashion-mnist", root=tmp_path / "data", progress=False, mirror=url)
    assert list((tmp_path / "data" / "fashion-mnist").iterdir()) == []


def test_fetch_cifar_archive_is_extracted_and_removed(server, tmp_path, monkeypatch):
    import tarfile

    from ..datafiles import write_cifar_dataset

    served, url = server
    folder = write_cifar_dataset(tmp_path / "src", n_per_batch=4)
    archive = served / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    files = (RemoteFile(archive.name, "unused", md5(archive.read_bytes())),)
    with registry.DATASETS.replaced("cifar10", replace(registry.DATASETS.get("cifar10"), remote=files)):
        dest = fetch("cifar10", root=tmp_path / "data", progress=False, mirror=url)
        assert sorted(p.name for p in dest.iterdir()) == ["cifar-10-batches-py"]  # archive removed
        d = prepare_data("cifar10", root=tmp_path / "data", val_fraction=0.0)
        assert d.train_x.shape == (20, 3, 32, 32) and d.test_x.shape == (4, 3, 32, 32)
