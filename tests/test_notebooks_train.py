"""Every chapter notebook runs to its last cell with TRAIN = True.

The book build runs the notebooks with the shipped models (TRAIN = False); this test runs
the path a reader takes who retrains: TRAIN = True, one epoch on the first LIMIT training
images (the notebooks hand LIMIT to `train_recipe`, as the command line's --limit), for
Fashion-MNIST and for MNIST and CIFAR-10. Those two come from stand-ins written here in
torchvision's own file formats (`standin_data`), so that nothing is downloaded and
CIFAR-10's 3-channel 32x32 images go through the models, plots and metrics end to end.

The parameters are set papermill's way: a cell inserted after the one tagged
`parameters` assigns the new values (each must be a name that cell defines). The test
also checks that the run used the data it was given: a last inserted cell compares the
shape of the notebook's test images `x` with the data set's.

    AECOURSE_TRAIN_TEST=1 pytest tests/test_notebooks_train.py -k cifar10    # six notebooks
"""

from __future__ import annotations

import ast
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import standin_data

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CHAPTERS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
IMAGE_SHAPE = {"fashion-mnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
# the retraining path, as short as it gets: one epoch on two batches of 128
RETRAIN = {"TRAIN": True, "EPOCHS": 1, "LIMIT": 256}
# smaller figures where a notebook has a parameter for them (the defaults are sized for a
# reader's run); names a notebook does not define are left out for it
SMALLER = {
    "N_TEST": 300,  # test images of the figures (the NLL-based cells need a few hundred)
    "N_MAP": 500,  # points on the 2-D latent maps
    "N_RANDOM": 300,  # random latents decoded per region
    "N_CURVE": 100,  # images per point of the PSNR curves
    "N_PCA": 2000,  # training images of the PCA baseline
    "N_NEIGHBOURS": 20,  # images whose nearest training images are searched
    "N_IW": 20,  # images of the importance-weighted bound
    "K_IW": 20,  # its importance samples
    "N_SAMPLES": 100,  # samples per Frechet distance
}
TIMEOUT = 900  # seconds per cell: training on a busy CPU


@pytest.fixture(scope="session")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return standin_data.write(tmp_path_factory.mktemp("standin-data"))


def parameters_cell(notebook: nbformat.NotebookNode) -> int:
    """The index of the cell tagged `parameters` (exactly one)."""
    tagged = [
        i for i, cell in enumerate(notebook.cells)
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    if len(tagged) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(tagged)}")
    return tagged[0]


def assigned_names(source: str) -> set[str]:
    """The names a cell's code assigns at its top level."""
    names = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:  # `A = 1`, `A: int = 1`, `A, B = 1, 2`
            elements = target.elts if isinstance(target, ast.Tuple) else [target]
            names |= {e.id for e in elements if isinstance(e, ast.Name)}
    return names


def with_parameters(
    notebook: nbformat.NotebookNode, values: dict[str, object], optional: dict[str, object]
) -> nbformat.NotebookNode:
    """A copy of the notebook with a cell after its parameters cell that sets `values`
    (each must be a parameter of the notebook) and those of `optional` it defines."""
    notebook = nbformat.from_dict(notebook)
    index = parameters_cell(notebook)
    defined = assigned_names(notebook.cells[index].source)
    missing = set(values) - defined
    if missing:
        raise ValueError(f"the parameters cell does not define {sorted(missing)}")
    values = {**values, **{k: v for k, v in optional.items() if k in defined}}
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(index + 1, cell)
    return notebook


def test_with_parameters_checks_the_names() -> None:
    notebook = nbformat.read(CHAPTERS[0], as_version=4)
    assert assigned_names("A = 1\nB: int = 2\nC, D = 3, 4\nf(E)\n") == {"A", "B", "C", "D"}
    injected = with_parameters(notebook, {"TRAIN": True}, {"NOT_A_PARAMETER": 1, "N_TEST": 5})
    index = parameters_cell(injected)
    assert injected.cells[index + 1].source == "TRAIN = True\nN_TEST = 5"
    assert len(injected.cells) == len(notebook.cells) + 1
    with pytest.raises(ValueError, match="does not define"):
        with_parameters(notebook, {"NOT_A_PARAMETER": 1}, {})


def test_standins_have_torchvision_types(standins: Path) -> None:
    """What torchvision's readers return for the stand-ins, and what aecourse makes of it."""
    import numpy as np
    import torch
    import torchvision

    from aecourse import data

    real = torchvision.datasets.MNIST, torchvision.datasets.CIFAR10
    standin_data.install(standins)
    try:
        mnist = torchvision.datasets.MNIST("ignored", train=False, download=True)
        assert isinstance(mnist, real[0])
        assert mnist.data.dtype == torch.uint8 and mnist.data.shape == (1200, 28, 28)
        assert mnist.targets.dtype == torch.int64 and mnist.classes == real[0].classes
        cifar = torchvision.datasets.CIFAR10("ignored", train=True, download=True)
        assert isinstance(cifar, real[1])
        assert isinstance(cifar.data, np.ndarray) and cifar.data.dtype == np.uint8
        assert cifar.data.shape == (2400, 32, 32, 3)
        assert isinstance(cifar.targets, list) and isinstance(cifar.targets[0], int)
        assert cifar.classes == standin_data.CIFAR_CLASSES
        images = data.load("cifar10", "test")
        assert images.x.shape == (1200, 3, 32, 32) and images.y.dtype == torch.int64
        # every class early on, and the channels differ (colour, not grey)
        assert set(images.y[:10].tolist()) == set(range(10))
        assert not torch.equal(images.x[:, 0], images.x[:, 1])
    finally:
        torchvision.datasets.MNIST, torchvision.datasets.CIFAR10 = real


# 18 notebook runs: `make test` and `make test-train` set the variable
RUN_NOTEBOOKS = os.environ.get("AECOURSE_TRAIN_TEST") == "1"


@pytest.mark.skipif(not RUN_NOTEBOOKS, reason="set AECOURSE_TRAIN_TEST=1 (make test sets it)")
@pytest.mark.parametrize("dataset", list(IMAGE_SHAPE))
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_notebook_runs_with_train(
    chapter: Path, dataset: str, standins: Path, tmp_path: Path
) -> None:
    notebook = with_parameters(
        nbformat.read(chapter, as_version=4), {**RETRAIN, "DATA": dataset}, SMALLER
    )
    if dataset != "fashion-mnist":  # read by torchvision, from the stand-ins
        setup = (
            f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            f"import standin_data\nstandin_data.install({str(standins)!r})"
        )
        notebook.cells.insert(
            parameters_cell(notebook) + 2, nbformat.v4.new_code_cell(setup)
        )
    check = f"assert tuple(x.shape[1:]) == {IMAGE_SHAPE[dataset]}, x.shape"
    notebook.cells.append(nbformat.v4.new_code_cell(check))
    # run where the notebook may write (runs/ of the retrained models)
    client = NotebookClient(
        notebook, timeout=TIMEOUT, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback
    print(f"{chapter.stem} with {dataset}: {time.perf_counter() - start:.0f} s")
