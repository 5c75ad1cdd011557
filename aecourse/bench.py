"""Training speed: the course's training loop against the bare step it wraps.

    python -m aecourse.bench                         # every recipe, on the fastest device
    python -m aecourse.bench --models vae,vqvae --batches 50 --device cuda

For each recipe of `aecourse.recipes` (the prior on random code grids) this prints the
images per second of `aecourse.train.fit` (two epochs over a subset of the real training
images; the first warms up, the second is timed) next to those of a bare loop of forward,
backward and Adam step over the same batches already on the device, the most any loop can
reach. Their ratio is the loop's efficiency (1.0: it costs nothing). A benchmark, not a test:
nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import Tensor

from aecourse.data import Batches, load
from aecourse.recipes import RECIPES, Recipe
from aecourse.cli import positive
from aecourse.train import (
    TrainConfig, autocast, autocast_dtype, default_device, device_name, fit, grad_scaler,
)

SEED = 0  # model initialisation, random code grids, loss noise


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that the clock reads finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_data(recipe: Recipe, n: int) -> tuple[Tensor, ...]:
    """n training examples for the recipe: real images and labels, random code grids for a
    prior, or random features for a sparse autoencoder (the speed of its dense layers and
    top-t selection does not depend on the values)."""
    if recipe.codes_from is not None:
        k, g = recipe.config.codebook_size, recipe.config.grid
        return (torch.randint(k, (n, g, g), generator=torch.Generator().manual_seed(SEED)),)  # (n, g, g)
    if recipe.activations_from is not None:
        d = recipe.config.input_dim
        return (torch.rand((n, d), generator=torch.Generator().manual_seed(SEED)),)  # (n, d)
    images = load(recipe.data, "train").subset(n)
    return images.x, images.y  # (n, C, H, W), (n,)


def fit_throughput(recipe: Recipe, data: tuple[Tensor, ...], device: torch.device) -> float:
    """Images per second of `fit`'s second epoch over data (the first one warms up)."""
    torch.manual_seed(SEED)
    config = TrainConfig(epochs=2, batch_size=recipe.batch_size, lr=recipe.lr, seed=SEED)
    history = fit(recipe.model(), recipe.loss, data, config, device=device, progress=False)
    return history[-1]["images_per_second"]


def plain_throughput(recipe: Recipe, data: tuple[Tensor, ...], device: torch.device) -> float:
    """Images per second of forward + backward + Adam step over data's batches, already on
    the device, with fit's precision (`autocast_dtype`); one warm-up step first."""
    torch.manual_seed(SEED)
    model = recipe.model().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    generator = torch.Generator(device).manual_seed(SEED)
    batches = list(Batches(*(t.to(device) for t in data), batch_size=recipe.batch_size, shuffle=False))
    dtype = autocast_dtype(device, TrainConfig().amp)
    scaler = grad_scaler(dtype)

    def step(batch: tuple[Tensor, ...]) -> None:
        with autocast(device, dtype):
            loss = recipe.loss(model, batch, generator)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss.total).backward()
        scaler.step(optimizer)
        scaler.update()

    step(batches[0])  # warm-up: allocations, kernel selection
    _sync(device)
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    _sync(device)
    return len(data[0]) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    """Print the table; return name -> (fit images/s, plain images/s)."""
    parser = argparse.ArgumentParser(prog="python -m aecourse.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", help=f"comma-separated recipes (default: all of {', '.join(RECIPES)})")
    parser.add_argument("--batches", type=positive(int), default=10,
                        help="batches per epoch (default: 10)")
    parser.add_argument("--device", help="default: the fastest available")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    names = args.models.split(",") if args.models is not None else list(RECIPES)
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        parser.error(f"--models: unknown recipes {unknown}; expected names among {list(RECIPES)}")
    device = torch.device(args.device) if args.device is not None else default_device()

    print(f"device: {device} ({device_name(device)}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"{args.batches} batches per epoch; fit: 2 epochs, the second timed; "
          "plain: 1 warm-up step, then the same batches\n")
    header = f"{'model':<11} {'batch':>5} {'fit img/s':>10} {'plain img/s':>12} {'ratio':>6}"
    print(header + "\n" + "-" * len(header))
    figures = {}
    for name in names:
        recipe = RECIPES[name]
        data = training_data(recipe, args.batches * recipe.batch_size)
        fit_ips, plain_ips = fit_throughput(recipe, data, device), plain_throughput(recipe, data, device)
        figures[name] = fit_ips, plain_ips
        ratio = fit_ips / plain_ips
        print(f"{name:<11} {recipe.batch_size:>5} {fit_ips:>10.0f} {plain_ips:>12.0f} {ratio:>6.2f}", flush=True)
    return figures


if __name__ == "__main__":
    main()
