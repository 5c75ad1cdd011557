"""Datasets, a batch iterator that stays on the GPU, dynamic binarisation, input checks.

Fashion-MNIST (Xiao et al. 2017) is the course's dataset: 28x28 grayscale images of 10
kinds of clothing, 60,000 for training and 10,000 for testing. Offline it is read from
the original IDX files that Debian's `dataset-fashion-mnist` package installs; online it
comes through torchvision. MNIST and CIFAR-10 are offered through torchvision only.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DATASETS = ("fashion-mnist", "mnist", "cifar10")
SPLITS = ("train", "test")
DATA_DIR_ENV = "AECOURSE_DATA_DIR"  # overrides the directory of the Fashion-MNIST IDX files
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # apt install dataset-fashion-mnist
DEFAULT_ROOT = Path("~/.cache/aecourse")  # where torchvision downloads go

# The IDX format (LeCun et al.): two zero bytes, a type code (0x08 = unsigned byte), the
# number of dimensions, each dimension as a big-endian int32, then the raw data.
_IDX_UBYTE = 0x08
_IDX_FILES = {  # split -> (images, labels), the original file names
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_TORCHVISION = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "cifar10": "CIFAR10"}


@dataclass(frozen=True)
class ImageData:
    """A labelled image dataset held in memory."""

    x: Tensor  # (N, C, H, W) float32 in [0, 1]
    y: Tensor  # (N,) int64 class labels
    classes: tuple[str, ...]  # class names, indexed by the labels

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> ImageData:
        return ImageData(self.x.to(device), self.y.to(device), self.classes)

    def subset(self, n: int) -> ImageData:
        """The first n images (all of them when n >= len)."""
        if n <= 0:
            raise ValueError(f"subset size must be positive, got {n}")
        return ImageData(self.x[:n], self.y[:n], self.classes)


def load(
    name: str = "fashion-mnist",
    split: str = "train",
    *,
    root: str | Path | None = None,
    download: bool = True,
) -> ImageData:
    """Load a dataset split as float32 images (N, C, H, W) in [0, 1] and int64 labels (N,).

    Fashion-MNIST is read from the Debian IDX files when they exist (or from the directory
    that the AECOURSE_DATA_DIR environment variable names, which must hold them),
    otherwise from torchvision, which
    downloads into `root` (default ~/.cache/aecourse) when `download` is true. The decoded
    uint8 arrays are cached, so loading a split again in the same process is cheap.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    root = Path(root if root is not None else DEFAULT_ROOT).expanduser()
    idx_dir = Path(os.environ.get(DATA_DIR_ENV, DEBIAN_DIR))
    idx_found = all((idx_dir / f).exists() for f in _IDX_FILES[split])
    if name == "fashion-mnist" and DATA_DIR_ENV in os.environ and not idx_found:
        # a directory asked for is never passed over in silence
        raise FileNotFoundError(_idx_help(idx_dir, split))
    if name == "fashion-mnist" and idx_found:
        x, y, classes = _load_idx(str(idx_dir.resolve()), split)
    else:
        x, y, classes = _load_torchvision(name, split, str(root.resolve()), download)
    # copies, so that callers may modify what they get without touching the cache
    images = ImageData(x.float().div_(255), y.to(torch.int64, copy=True), classes)
    # The one value check of the training images: the models skip it in training mode,
    # where reading every batch back to the host would stall the GPU.
    check_images(images.x, name=f"{name} {split} images")
    return images


def read_idx(path: str | Path, ndim: int) -> Tensor:
    """Read a gzipped IDX file of unsigned bytes with `ndim` dimensions as a uint8 tensor."""
    with gzip.open(path, "rb") as f:
        raw = bytearray(f.read())
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path} is not an IDX file: only {len(raw)} bytes")
    magic = int.from_bytes(raw[:4], "big")
    expected = (_IDX_UBYTE << 8) | ndim  # 0x00000803 for images, 0x00000801 for labels
    if magic != expected:
        raise ValueError(
            f"{path} is not an IDX file of {ndim}-D unsigned bytes: "
            f"expected magic number {expected:#010x}, got {magic:#010x}"
        )
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset, count = 4 + 4 * ndim, math.prod(shape)
    if len(raw) - offset != count:
        raise ValueError(
            f"{path} is truncated or padded: header says shape {tuple(shape)} "
            f"({count} bytes of data), the file holds {len(raw) - offset}"
        )
    return torch.frombuffer(raw, dtype=torch.uint8, offset=offset, count=count).reshape(shape)


@functools.lru_cache(maxsize=None)
def _load_idx(directory: str, split: str) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    images, labels = (Path(directory) / f for f in _IDX_FILES[split])
    x = read_idx(images, ndim=3).unsqueeze(1)  # (N, 1, 28, 28) uint8
    y = read_idx(labels, ndim=1)  # (N,) uint8
    if len(x) != len(y):
        raise ValueError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels")
    return x, y, CLASS_NAMES


@functools.lru_cache(maxsize=None)
def _idx_help(folder: Path, split: str) -> str:
    """What is missing from a folder of Fashion-MNIST IDX files, and what works."""
    missing = [f for f in _IDX_FILES[split] if not (folder / f).exists()]
    setting = os.environ.get(DATA_DIR_ENV)
    where = f"{DATA_DIR_ENV}={setting}" if setting is not None else f"{DATA_DIR_ENV} is not set"
    return (
        f"the folder searched, {folder} ({where}), lacks {missing}. Fix: install "
        f"Debian's package (sudo apt-get install dataset-fashion-mnist, after apt-get "
        f"update), which puts the files in {DEBIAN_DIR}; or set {DATA_DIR_ENV} to a "
        f"folder holding the four IDX files {[f for pair in _IDX_FILES.values() for f in pair]}"
    )


def _load_torchvision(
    name: str, split: str, root: str, download: bool
) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    import torchvision  # imported here: the offline Fashion-MNIST path does not need it

    dataset_class = getattr(torchvision.datasets, _TORCHVISION[name])
    folder = Path(root) / name
    try:
        dataset = dataset_class(str(folder), train=split == "train", download=download)
    except Exception as err:
        offline = ""
        if name == "fashion-mnist":  # the one dataset with an offline path
            offline = " Offline: " + _idx_help(Path(os.environ.get(DATA_DIR_ENV, DEBIAN_DIR)), split)
        if not download:
            raise FileNotFoundError(
                f"{name} ({split}) was not found in {folder}; call load(..., "
                f"download=True) with an internet connection.{offline}"
            ) from err
        raise RuntimeError(
            f"could not download {name} into {folder} ({type(err).__name__}: {err}). "
            f"Fix: connect to the internet and try again.{offline}"
        ) from err
    x = torch.as_tensor(dataset.data)  # (N, H, W) for the MNISTs, (N, H, W, 3) for CIFAR-10
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    y = torch.as_tensor(dataset.targets)
    classes = CLASS_NAMES if name == "fashion-mnist" else tuple(dataset.classes)
    return x, y, classes


class Batches:
    """Mini-batches of tensors that share their first dimension, sliced where they live.

    The permutation is drawn with torch.randperm on the tensors' device, so a dataset held
    on the GPU is never copied back to the host. Re-iterable: each pass is a new epoch.
    """

    def __init__(
        self,
        *tensors: Tensor,
        batch_size: int,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> None:
        if not tensors:
            raise ValueError("Batches needs at least one tensor")
        n, device = len(tensors[0]), tensors[0].device
        for t in tensors:
            if len(t) != n or t.device != device:
                raise ValueError(
                    f"all tensors must have the same length and device; expected ({n}, {device}), "
                    f"got ({len(t)}, {t.device})"
                )
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if generator is not None and generator.device.type != device.type:
            raise ValueError(f"the generator must live on {device}, got one on {generator.device}")
        self.tensors, self.batch_size = tensors, batch_size
        self.shuffle, self.generator, self.drop_last = shuffle, generator, drop_last

    def __len__(self) -> int:
        n = len(self.tensors[0])
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        n, device = len(self.tensors[0]), self.tensors[0].device
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=device)  # (N,)
        for i in range(len(self)):
            if self.shuffle:
                index = order[i * self.batch_size : (i + 1) * self.batch_size]
                yield tuple(t[index] for t in self.tensors)
            else:
                yield tuple(t[i * self.batch_size : (i + 1) * self.batch_size] for t in self.tensors)


def binarize(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Dynamic binarisation: each pixel becomes 1 with probability x (float 0/1, x's shape)."""
    return torch.bernoulli(x, generator=generator)


def check_images(
    x: object,
    *,
    channels: int | None = None,
    size: int | None = None,
    name: str = "x",
    values: bool = True,
) -> None:
    """Raise ValueError unless x is a floating tensor (B, C, H, W) with the given channels and
    size, finite and in [0, 1]. values=False skips the value checks, which read the tensor
    back to the host (a device sync): for training batches, checked once by `load`."""
    c = channels if channels is not None else "C"
    h, w = (size, size) if size is not None else ("H", "W")
    expected = f"a float tensor of shape (B, {c}, {h}, {w}) with values in [0, 1]"
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be {expected}, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be {expected}, got a {x.ndim}-D tensor of shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s), got shape {tuple(x.shape)}")
    if size is not None and tuple(x.shape[2:]) != (size, size):
        raise ValueError(f"{name} must be {size}x{size} images, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be {expected}, got dtype {x.dtype} (divide uint8 by 255)")
    if values and x.numel():
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} must be {expected}, got NaN or infinite values")
        low, high = x.min().item(), x.max().item()
        if low < 0 or high > 1:
            raise ValueError(f"{name} must be {expected}, got values in [{low:.3g}, {high:.3g}]")
