"""Stand-ins for MNIST and CIFAR-10, for tests that must run offline.

`write(folder)` writes small synthetic data sets in the files' own formats: MNIST as the
raw IDX files that torchvision's `MNIST` reads from `MNIST/raw/`, CIFAR-10 as the pickled
batches and `batches.meta` of `cifar-10-batches-py/`. `install(folder)` replaces
`torchvision.datasets.MNIST` and `CIFAR10` with subclasses that read those files with
torchvision's own code, whatever root they are given, so that `aecourse.data.load` gets
exactly the types and shapes that torchvision returns for the real data sets (MNIST: a
uint8 tensor (N, 28, 28) and int64 targets; CIFAR-10: a uint8 NumPy array
(N, 32, 32, 3), a list of int targets and the class names from the meta file). They
never download: the real files' checksums are replaced by those of the files written.

The images are not noise: each class has its own smooth template (a random coarse
pattern, blown up), varied per image in contrast, position and pixel noise, so that
PCA, the autoencoders and the classifier have structure to find.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np

# images per split: the notebooks use up to 1,000 + a few hundred test images
SIZES = {"train": 2400, "test": 1200}
NUM_CLASSES = 10
CIFAR_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]
CIFAR_TRAIN_BATCHES = 5  # data_batch_1 .. data_batch_5, as in the real archive
_MNIST_FILES = {  # split -> (images, labels), torchvision's names in MNIST/raw
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def images(
    split: str, size: int, channels: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic images (N, size, size, channels) uint8 and labels (N,) int64.

    The labels cycle through the classes in a shuffled order, so every class
    occurs among the first few images of a split.
    """
    n = SIZES[split]
    rng = np.random.default_rng(seed)
    coarse = rng.random((NUM_CLASSES, 7, 7, channels))
    factor = size // 7 + 1
    # (classes, size, size, channels): each coarse cell blown up to a block
    templates = coarse.repeat(factor, 1).repeat(factor, 2)[:, :size, :size]
    split_rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    labels = np.concatenate(
        [split_rng.permutation(NUM_CLASSES) for _ in range(-(-n // NUM_CLASSES))]
    )[:n]
    contrast = split_rng.uniform(0.5, 1.0, (n, 1, 1, 1))
    x = templates[labels] * contrast
    shifts = split_rng.integers(-2, 3, (n, 2))
    for i, (dy, dx) in enumerate(shifts):
        x[i] = np.roll(x[i], (dy, dx), axis=(0, 1))
    x += split_rng.normal(0.0, 0.05, x.shape)
    return (x.clip(0, 1) * 255).round().astype(np.uint8), labels.astype(np.int64)


def write(folder: str | Path) -> Path:
    """Write both stand-ins under `folder` (idempotent); return the folder."""
    folder = Path(folder)
    _write_mnist(folder / "MNIST" / "raw")
    _write_cifar10(folder / "cifar-10-batches-py")
    return folder


def _write_mnist(raw: Path) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for split, (image_file, label_file) in _MNIST_FILES.items():
        x, y = images(split, 28, 1, seed=1)
        _write_idx(raw / image_file, x[..., 0])
        _write_idx(raw / label_file, y.astype(np.uint8))


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX file of unsigned bytes: magic, dimensions, data."""
    header = bytes([0, 0, 0x08, array.ndim])
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + dims + array.astype(np.uint8).tobytes())


def _write_cifar10(base: Path) -> None:
    base.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        x, y = images(split, 32, 3, seed=2)
        # the archive's layout: rows of 3072 bytes, channel-major (R, G, B)
        rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        if split == "train":
            names = [f"data_batch_{i + 1}" for i in range(CIFAR_TRAIN_BATCHES)]
        else:
            names = ["test_batch"]
        parts = np.array_split(np.arange(len(x)), len(names))
        for name, part in zip(names, parts):
            batch = {
                "batch_label": name,
                "labels": y[part].tolist(),
                "data": rows[part],
                "filenames": [f"standin_{i}.png" for i in part],
            }
            (base / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": CIFAR_CLASSES, "num_cases_per_batch": 0}
    (base / "batches.meta").write_bytes(pickle.dumps(meta))


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def install(folder: str | Path) -> None:
    """Make torchvision.datasets.MNIST and CIFAR10 read the stand-ins in `folder`.

    Only this process is affected (a notebook kernel calls it in a cell that
    the test inserts after the parameters).
    """
    import torchvision

    folder = Path(folder).resolve()
    if not (folder / "MNIST" / "raw").is_dir():
        raise FileNotFoundError(f"no stand-ins in {folder}: call write() first")
    real_mnist = torchvision.datasets.MNIST
    real_cifar = torchvision.datasets.CIFAR10
    base = folder / real_cifar.base_folder

    class MNIST(real_mnist):  # the class name names the folder, MNIST/raw
        mirrors: list[str] = []  # a download attempt fails, it never fetches

        def __init__(self, root: object, *args: object, **kwargs: object):
            super().__init__(folder, *args, **kwargs)

    class CIFAR10(real_cifar):
        url = "file:///nonexistent/cifar-10-python.tar.gz"
        train_list = [[name, _md5(base / name)] for name, _ in real_cifar.train_list]
        test_list = [[name, _md5(base / name)] for name, _ in real_cifar.test_list]
        meta = {**real_cifar.meta, "md5": _md5(base / real_cifar.meta["filename"])}

        def __init__(self, root: object, *args: object, **kwargs: object):
            super().__init__(folder, *args, **kwargs)

    torchvision.datasets.MNIST = MNIST
    torchvision.datasets.CIFAR10 = CIFAR10
