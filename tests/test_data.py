"""Tests of aecourse.data: the offline Fashion-MNIST reader, Batches, binarize, check_images."""

from __future__ import annotations

import gzip
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from aecourse import data
from aecourse.data import CLASS_NAMES, Batches, ImageData, binarize, check_images, load

IDX_DIR = data.DEBIAN_DIR
needs_idx = pytest.mark.skipif(
    not (IDX_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed",
)


@needs_idx
@pytest.mark.parametrize("split, n, first_labels", [("train", 60_000, [9, 0, 0, 3, 0]), ("test", 10_000, [9, 2, 1, 1, 6])])
def test_fashion_mnist_split(split: str, n: int, first_labels: list[int]) -> None:
    d = load("fashion-mnist", split)
    assert len(d) == n and d.x.shape == (n, 1, 28, 28) and d.y.shape == (n,)
    assert d.x.dtype == torch.float32 and d.y.dtype == torch.int64
    assert d.x.min() == 0.0 and d.x.max() == 1.0
    assert d.y[:5].tolist() == first_labels
    assert torch.bincount(d.y).tolist() == [n // 10] * 10  # balanced classes
    assert d.classes == CLASS_NAMES and len(CLASS_NAMES) == 10 and CLASS_NAMES[9] == "Ankle boot"
    # an independent reading of the first image: skip the 16-byte header, nothing else
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(IDX_DIR / f"{prefix}-images-idx3-ubyte.gz", "rb") as f:
        first = np.frombuffer(f.read(16 + 784)[16:], dtype=np.uint8).reshape(28, 28)
    assert torch.equal(d.x[0, 0], torch.from_numpy(first.copy()).float() / 255)


@needs_idx
def test_load_is_cached_and_returns_copies() -> None:
    a = load("fashion-mnist", "test")
    hits = data._load_idx.cache_info().hits
    a.x.zero_()
    a.y.zero_()
    b = load("fashion-mnist", "test")
    assert data._load_idx.cache_info().hits == hits + 1
    assert b.x.max() == 1.0 and b.y.max() == 9  # the cache was not modified through a


@needs_idx
def test_subset_and_to() -> None:
    d = load("fashion-mnist", "test").subset(7)
    assert isinstance(d, ImageData) and len(d) == 7 and d.y.shape == (7,)
    assert d.to("cpu").x.device.type == "cpu"
    with pytest.raises(ValueError, match="positive"):
        d.subset(0)


@pytest.mark.parametrize("kwargs, expected", [({"name": "svhn"}, "fashion-mnist"), ({"split": "valid"}, "train")])
def test_unknown_name_or_split(kwargs: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        load(**kwargs)


def _write_idx(path: Path, magic: int, shape: tuple[int, ...], payload: bytes) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
    with gzip.open(path, "wb") as f:
        f.write(header + payload)


@pytest.mark.parametrize(
    "magic, shape, payload, message",
    [
        (0x0000080D, (2, 28, 28), bytes(2 * 784), "magic number 0x00000803"),  # float, not ubyte
        (0x00000803, (2, 28, 28), bytes(784), "truncated"),  # one image missing
        (0x00000803, (2,), b"", "IDX"),  # header too short for 3 dimensions
    ],
)
def test_malformed_idx_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, magic: int, shape, payload, message) -> None:
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", magic, shape, payload)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 0x00000801, (2,), bytes([1, 2]))
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=message):
        load("fashion-mnist", "test")


def test_idx_reader_on_a_valid_small_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pixels = np.arange(3 * 28 * 28, dtype=np.uint64) % 256
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x00000803, (3, 28, 28), pixels.astype(np.uint8).tobytes())
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 0x00000801, (3,), bytes([4, 0, 9]))
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    d = load("fashion-mnist", "test")
    assert d.x.shape == (3, 1, 28, 28) and d.y.tolist() == [4, 0, 9]
    assert torch.equal(d.x[0, 0, 0, :3], torch.tensor([0.0, 1.0, 2.0]) / 255)


def _without_local_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As on a machine without Debian's package: the torchvision path."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian-package")


def test_a_data_dir_without_the_files_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AECOURSE_DATA_DIR pointing nowhere is not passed over for a download."""
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "nothing-here"))
    with pytest.raises(FileNotFoundError) as error:
        load("fashion-mnist", "test", root=tmp_path)
    message = str(error.value)
    # the folder, the setting, the missing files, the install command, what works
    assert "nothing-here (AECOURSE_DATA_DIR=" in message
    assert "lacks ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "train-images-idx3-ubyte.gz" in message  # the four files that work


def test_missing_fashion_mnist_without_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_local_files(monkeypatch, tmp_path)
    with pytest.raises(FileNotFoundError, match="download=True.*AECOURSE_DATA_DIR is not set.*apt-get install"):
        load("fashion-mnist", "train", root=tmp_path, download=False)


@pytest.mark.parametrize("name, class_name", [("mnist", "MNIST"), ("cifar10", "CIFAR10"), ("fashion-mnist", "FashionMNIST")])
def test_failed_download_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, class_name: str) -> None:
    torchvision = pytest.importorskip("torchvision")

    def offline(self) -> None:  # what urllib raises without a network, and no network touched
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(getattr(torchvision.datasets, class_name), "download", offline)
    _without_local_files(monkeypatch, tmp_path)
    with pytest.raises(RuntimeError, match=f"could not download {name}.*Fix: connect to the internet") as error:
        load(name, "test", root=tmp_path)
    assert "by hand" not in str(error.value)  # copying into torchvision's folder fails its md5
    assert ("apt-get install dataset-fashion-mnist" in str(error.value)) == (name == "fashion-mnist")


def _indices_seen(batches: Batches) -> list[int]:
    return torch.cat([b[0] for b in batches]).tolist()


def test_batches_cover_every_index_once_per_epoch() -> None:
    x = torch.arange(10)
    y = x * 10
    batches = Batches(x, y, batch_size=3, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 4
    for _ in range(2):  # re-iterable: each pass is a full epoch
        seen = []
        for xb, yb in batches:
            assert len(xb) <= 3 and torch.equal(yb, xb * 10)  # rows stay aligned
            seen += xb.tolist()
        assert sorted(seen) == list(range(10))
    epoch1, epoch2 = _indices_seen(batches), _indices_seen(batches)
    assert epoch1 != epoch2  # a new permutation each epoch


def test_batches_same_seed_same_order() -> None:
    x = torch.arange(100)

    def order(seed: int) -> list[int]:
        return _indices_seen(Batches(x, batch_size=32, generator=torch.Generator().manual_seed(seed)))

    assert order(1) == order(1)
    assert order(1) != order(2)


def test_batches_unshuffled_and_drop_last() -> None:
    x = torch.arange(10)
    assert _indices_seen(Batches(x, batch_size=4, shuffle=False)) == list(range(10))
    dropped = Batches(x, batch_size=4, shuffle=False, drop_last=True)
    assert len(dropped) == 2 and _indices_seen(dropped) == list(range(8))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_batches_stay_on_their_device(device: str) -> None:
    x = torch.rand(20, 1, 4, 4, device=device)
    generator = torch.Generator(device).manual_seed(0)
    for (xb,) in Batches(x, batch_size=8, generator=generator):
        assert xb.device == x.device


def test_batches_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="same length"):
        Batches(torch.zeros(3), torch.zeros(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        Batches(torch.zeros(3), batch_size=0)
    with pytest.raises(ValueError, match="at least one tensor"):
        Batches(batch_size=2)


def test_binarize() -> None:
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    b = binarize(x, torch.Generator().manual_seed(1))
    assert b.shape == x.shape and b.dtype == x.dtype
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert abs(b.mean().item() - x.mean().item()) < 0.01  # E[b] = x, over 50k pixels
    assert torch.equal(b, binarize(x, torch.Generator().manual_seed(1)))  # seeded
    assert torch.equal(binarize(torch.ones(3)), torch.ones(3))
    assert torch.equal(binarize(torch.zeros(3)), torch.zeros(3))


def test_check_images_accepts_good_images() -> None:
    check_images(torch.rand(2, 1, 28, 28), channels=1, size=28)
    check_images(torch.rand(2, 3, 32, 32, dtype=torch.float64))
    check_images(torch.full((1, 1, 2, 2), 7.0), values=False)  # values not checked on request


def _with(value: float) -> torch.Tensor:
    x = torch.rand(2, 1, 28, 28)
    x[1, 0, 3, 4] = value
    return x


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((2, 1, 28, 28), dtype=np.float32), "float tensor.*got ndarray"),
        (torch.rand(1, 28, 28), "got a 3-D tensor of shape \\(1, 28, 28\\)"),
        (torch.rand(2, 3, 28, 28), "1 channel.*got shape \\(2, 3, 28, 28\\)"),
        (torch.rand(2, 1, 32, 32), "28x28.*got shape \\(2, 1, 32, 32\\)"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "got dtype torch.uint8"),
        (_with(float("nan")), "NaN or infinite"),
        (_with(float("inf")), "NaN or infinite"),
        (_with(1.5), "in \\[0, 1\\].*got values in \\[.*, 1.5\\]"),
        (_with(-0.25), "got values in \\[-0.25"),
    ],
)
def test_check_images_rejects(x: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_images(x, channels=1, size=28, name="x")


def test_check_images_names_the_argument() -> None:
    with pytest.raises(ValueError, match="^images must"):
        check_images(torch.rand(3), name="images")


def test_data_dir_env_var_redirects_the_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real files copied elsewhere and found through AECOURSE_DATA_DIR read the same."""
    if not (IDX_DIR / "t10k-labels-idx1-ubyte.gz").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(IDX_DIR / f, tmp_path / f)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    copy = load("fashion-mnist", "test")
    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert torch.equal(copy.y, load("fashion-mnist", "test").y)


@pytest.mark.parametrize(
    ("pixels", "message"),
    [(torch.full((2, 1, 4, 4), 300, dtype=torch.int16), r"values in \[0, 1\], got values in \[1.18"),
     (torch.zeros(2, 4, 4, 1, 1, dtype=torch.uint8), "5-D tensor")],
)
def test_load_checks_the_images_once(monkeypatch: pytest.MonkeyPatch, pixels, message) -> None:
    """The check the models skip in training mode happens here, when the data are loaded."""
    monkeypatch.setattr(data, "_load_torchvision", lambda *args: (pixels, torch.zeros(2), ("a",)))
    with pytest.raises(ValueError, match=f"^mnist train images must be .*{message}"):
        load("mnist", "train")
