"""One plain PyTorch training loop for every model of the course, and its
command line.

    python -m aecourse.train vae --epochs 20 --out runs/
    # the same, on two processes (DDP)
    torchrun --nproc_per_node 2 -m aecourse.train vae

`fit` takes the model, its loss function (from `aecourse.losses`) and the data,
and runs Adam over shuffled mini-batches. With a checkpoint directory it saves
the run every epoch and resumes where it stopped (`aecourse.checkpoint`);
`train_recipe` and the command line set up several processes under torchrun
(`aecourse.distributed`).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import random
import re
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from aecourse import distributed
from aecourse.checkpoint import Checkpoint
from aecourse.cli import positive
from aecourse.data import DATASETS, Batches, ImageData, load
from aecourse.distributed import Distributed, all_reduce

# steps between progress-bar updates (each one waits for the GPU)
LOG_EVERY = 20


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator
    seeded too."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def default_device() -> torch.device:
    """The fastest device here: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class TrainConfig:
    epochs: int = 10  # passes over the training data
    # images per step (the global batch, split across DDP processes)
    batch_size: int = 128
    lr: float = 1e-3  # Adam's peak learning rate, decayed along a half cosine
    seed: int = 0  # seeds the batch order and the noise the loss draws
    amp: bool = True  # mixed precision on CUDA (see autocast_dtype)
    # checkpoint.pt goes here each epoch
    checkpoint_dir: str | Path | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{name} must be a positive integer, got {value!r}"
                )
        if not self.lr > 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")


class History(list):
    """One dict per epoch: {"epoch", "loss", <the loss's terms>..., "seconds",
    "images_per_second"}, the losses being means over the epoch's images."""

    def column(self, key: str) -> list[float]:
        """One value per epoch, e.g. ``history.column("loss")`` for a plot."""
        return [record[key] for record in self]

    @property
    def seconds(self) -> float:
        """Training time over all epochs, resumed sessions included."""
        return sum(self.column("seconds"))

    @property
    def images_per_second(self) -> float:
        """Throughput over all epochs."""
        images = sum(r["images_per_second"] * r["seconds"] for r in self)
        return images / self.seconds if self else 0.0


# -> losses.Loss
LossFn = Callable[[nn.Module, tuple[Tensor, ...], torch.Generator], Any]


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    data: tuple[Tensor, ...] | ImageData,
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
    ddp: Distributed | None = None,
) -> History:
    """Train `model` in place on loss_fn(model, batch, generator).total;
    return the history.

    Args:
        model: any nn.Module; moved to `device`.
        loss_fn: one of `aecourse.losses` (or any function with the same
            signature). A loss with a `progress` attribute (a schedule,
            e.g. `losses.KLWarmup`) gets the fraction of the training steps
            done before each step.
        data: tensors sharing their first dimension, e.g.
            (x (N, C, H, W), y (N,)) or (indices (N, h, w),); an ImageData is
            taken as (x, y).
        config: epochs, batch size, learning rate, seed, precision,
            checkpoint_dir.
        device: default `default_device()`.
        progress: show a tqdm bar per epoch.
        ddp: this process's part in a torchrun job (`train_recipe` passes
            it); None: one process.
    """
    device = torch.device(device) if device is not None else default_device()
    ddp = ddp if ddp is not None else Distributed()
    model.to(device)
    data = _on_device(data, device)  # once: batches are cut where the data are
    # the same batch order in every process, and each process its own noise
    batch_generator = torch.Generator(device).manual_seed(config.seed)
    loss_seed = config.seed + 1 + ddp.rank
    loss_generator = torch.Generator(device).manual_seed(loss_seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    dtype = autocast_dtype(device, config.amp)  # None: float32 throughout
    # float16 needs its loss scaled; else it does nothing
    scaler = grad_scaler(dtype)
    checkpoint = Checkpoint(
        config,
        device,
        ddp,
        model=model,
        optimizer=optimizer,
        scaler=scaler,
        batch_generator=batch_generator,
        loss_generator=loss_generator,
    )
    # the epochs of an interrupted run, if any
    history = History(checkpoint.load())
    net = ddp.wrap(model, device)  # the model itself on one process
    batches = Batches(
        *data, batch_size=config.batch_size, generator=batch_generator
    )
    # under DDP, this process's slice of each batch
    batches = ddp.shard(batches)
    total_steps = config.epochs * len(batches)
    for epoch in range(len(history), config.epochs):
        model.train()
        start = time.perf_counter()
        # loss and terms, summed over the epoch's images
        sums: dict[str, Tensor] = {}
        images = 0
        desc = f"epoch {epoch + 1}/{config.epochs}"
        bar = tqdm(batches, desc=desc, disable=not progress)
        for step, batch in enumerate(bar):
            # lr and any loss schedule are functions of the step alone, so
            # that a resumed run continues exactly
            global_step = epoch * len(batches) + step
            if hasattr(loss_fn, "progress"):  # e.g. losses.KLWarmup
                loss_fn.progress = global_step / total_steps
            with autocast(device, dtype):
                loss = loss_fn(net, batch, loss_generator)
            optimizer.zero_grad(set_to_none=True)
            lr = _learning_rate(config, global_step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            scaler.scale(loss.total).backward()
            scaler.step(optimizer)
            scaler.update()
            n = len(batch[0])
            images += n
            for key, value in {"loss": loss.total, **loss.terms}.items():
                sums[key] = sums.get(key, 0.0) + value.detach().float() * n
            if step % LOG_EVERY == 0:
                bar.set_postfix(loss=loss.total.item())
        means, images = _epoch_means(sums, images, device)
        seconds = time.perf_counter() - start
        history.append(
            {
                "epoch": epoch + 1,
                **means,
                "seconds": seconds,
                "images_per_second": images / seconds,
            }
        )
        bar.set_postfix(loss=history[-1]["loss"])
        bar.close()
        checkpoint.save(history)
    return history


# --- helpers of fit ----------------------------------------------------------


def _learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """A half cosine from config.lr down to 0:
    lr * (1 + cos(pi * step / steps)) / 2."""
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def autocast_dtype(
    device: torch.device, amp: bool = True
) -> torch.dtype | None:
    """The dtype of mixed precision on `device`, or None for plain float32.

    bfloat16 on GPUs of compute capability 8.0 or newer (A100, L4, H100,
    RTX 30xx); float16 on older ones, which have no fast bfloat16 (a T4 is
    7.5); None on the CPU and MPS, or when amp is False.
    """
    if not amp or device.type != "cuda":
        return None
    if torch.cuda.get_device_capability(device) >= (8, 0):
        return torch.bfloat16
    return torch.float16


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """torch.autocast to `dtype` on `device`, or nothing when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(dtype: torch.dtype | None) -> Any:
    """A GradScaler, on for float16 (whose small gradients would underflow
    to 0), else a pass-through: scale(loss) is loss, step(optimizer) is
    optimizer.step()."""
    enabled = dtype == torch.float16
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def _on_device(
    data: tuple[Tensor, ...] | ImageData, device: torch.device
) -> tuple[Tensor, ...]:
    tensors = (data.x, data.y) if isinstance(data, ImageData) else tuple(data)
    if not tensors or len(tensors[0]) == 0:
        shapes = [tuple(t.shape) for t in tensors]
        raise ValueError(
            "expected at least one training example, "
            f"got tensors of shapes {shapes}"
        )
    return tuple(t.to(device) for t in tensors)


def _epoch_means(
    sums: dict[str, Tensor], images: int, device: torch.device
) -> tuple[dict[str, float], float]:
    """Per-image means of the summed loss terms over every process, and the
    image count."""
    totals = torch.stack(
        [*sums.values(), torch.tensor(float(images), device=device)]
    )
    # one device -> host copy per epoch
    *totals, count = all_reduce(totals).tolist()
    return {key: total / count for key, total in zip(sums, totals)}, count


# --- command line ------------------------------------------------------------


def train_recipe(
    name: str,
    *,
    epochs: int | None = None,
    data: str | None = None,
    device: torch.device | str | None = None,
    out: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    lr: float | None = None,
    vqvae_from: str | Path | None = None,
    activations_of: nn.Module | None = None,
    progress: bool = True,
    command: str | None = None,
    **config_overrides: Any,
) -> nn.Module:
    """Train the recipe `name` of `aecourse.recipes` and return the model, in
    eval mode.

    What the notebooks call when TRAIN = True, and what the command line runs.
    With `out`, the model is saved there with its card
    (`<out>/<name>.safetensors` and `.json`) and a checkpoint each epoch in
    `<out>/<name>-checkpoint`, from which an interrupted run resumes.
    `config_overrides` replace fields of the recipe's model config, e.g.
    ``train_recipe("ae", latent_dim=8)``. epochs, batch_size, lr and data
    default to the recipe's (None); `limit` keeps the first `limit` training
    images. Under torchrun each process trains on its slice of every batch.
    A sparse autoencoder (a recipe with `activations_from`) learns the
    penultimate features of the shipped classifier, or of `activations_of`,
    e.g. one trained in a notebook on another data set.
    """
    from aecourse.pretrained import save_pretrained
    from aecourse.recipes import RECIPES

    if name not in RECIPES:
        raise ValueError(
            f"unknown recipe {name!r}; expected one of {sorted(RECIPES)}"
        )
    recipe = RECIPES[name]
    config = TrainConfig(  # checks the values
        epochs=recipe.epochs if epochs is None else epochs,
        batch_size=recipe.batch_size if batch_size is None else batch_size,
        lr=recipe.lr if lr is None else lr,
        seed=seed,
        checkpoint_dir=(
            Path(out) / f"{name}-checkpoint" if out is not None else None
        ),
    )
    data_name = recipe.data if data is None else data
    images = load(data_name, "train")
    if limit is not None:
        images = images.subset(limit)
    device = torch.device(device) if device is not None else default_device()
    with distributed.process_group(device) as (ddp, device):
        set_seed(seed)
        # the prior learns the code grids of a VQ-VAE
        if recipe.codes_from is not None:
            indices, vq_config = _encode(
                recipe.codes_from, images, data_name, vqvae_from, device
            )
            model = recipe.model(
                codebook_size=vq_config.codebook_size,
                grid=indices.shape[-1],
                **config_overrides,
            )
            tensors: tuple[Tensor, ...] = (indices,)  # (N, h, w)
        # a sparse autoencoder learns a classifier's penultimate features
        elif recipe.activations_from is not None:
            h = _activations(
                recipe.activations_from, images, data_name, device,
                activations_of,
            )
            model = recipe.model(input_dim=h.shape[1], **config_overrides)
            tensors = (h,)  # (N, feature_dim)
        else:
            model = recipe.model(
                **_image_fields(recipe.config, images), **config_overrides
            )
            tensors = (images.x, images.y)
        show = progress and ddp.rank == 0
        history = fit(
            model,
            recipe.loss,
            tensors,
            config,
            device=device,
            progress=show,
            ddp=ddp,
        )
    if out is not None and ddp.rank == 0:
        save_pretrained(
            model,
            name,
            out,
            data=data_name,
            **_sources(recipe),
            train_images=len(images),
            epochs=config.epochs,
            batch_size=config.batch_size,
            lr=config.lr,
            seed=config.seed,
            device=device.type,
            device_name=device_name(device),
            processes=ddp.world_size,
            # summed over resumed sessions
            wall_time_s=round(history.seconds, 1),
            train_history=list(history),
            command=(
                f"aecourse.train.train_recipe({name!r}, ...)"
                if command is None
                else command
            ),
            trained_at=datetime.now(timezone.utc).isoformat(
                timespec="seconds"
            ),
        )
    return model.eval()


def main(argv: list[str] | None = None) -> Path | None:
    """`python -m aecourse.train MODEL ...`: train a recipe and save it under
    --out. Returns the path of the weights (None on the other DDP ranks)."""
    from aecourse.recipes import RECIPES

    argv = sys.argv[1:] if argv is None else argv
    args = _parser(sorted(RECIPES)).parse_args(argv)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = (
        f"torchrun --nproc_per_node {world_size}"
        if world_size > 1
        else "python"
    )
    train_recipe(
        args.model,
        epochs=args.epochs,
        data=args.data,
        device=args.device,
        out=args.out,
        limit=args.limit,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        vqvae_from=args.vqvae_from,
        command=f"{launcher} -m aecourse.train {shlex.join(argv)}",
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    return Path(args.out) / f"{args.model}.safetensors"


def _parser(models: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aecourse.train",
        description="Train one of the course's models.",
    )
    count, number = positive(int), positive(float)
    add = parser.add_argument
    add("model", choices=models, help="a recipe of aecourse.recipes")
    add("--epochs", type=count, help="default: the recipe's")
    add("--out", default="runs", help="output directory (default: runs/)")
    add("--batch-size", type=count, help="global batch; default: the recipe's")
    add("--lr", type=number, help="learning rate; default: the recipe's")
    add("--seed", type=int, default=0)
    add("--device", help="cuda, mps or cpu; default: the fastest available")
    add("--data", choices=DATASETS, help="default: the recipe's")
    add("--limit", type=count, help="train on the first N images (for tests)")
    add(
        "--vqvae-from",
        metavar="DIR",
        help="for the prior: the vqvae to encode with (default: shipped)",
    )
    return parser


def _image_fields(config: Any, images: ImageData) -> dict[str, int]:
    """in_channels and image_size of the data, for the configs that have those
    fields."""
    _, c, h, _ = images.x.shape  # (N, C, H, W)
    names = {f.name for f in fields(config)}
    return {
        k: v
        for k, v in {"in_channels": c, "image_size": h}.items()
        if k in names
    }


@torch.no_grad()
def _encode(
    name: str,
    images: ImageData,
    data_name: str,
    weights_dir: str | None,
    device: torch.device,
) -> tuple[Tensor, Any]:
    """Code indices (N, h, w) of the images under the pretrained VQ-VAE `name`,
    and its config."""
    vqvae = _trained_on(name, data_name, weights_dir, device)
    x = images.x.to(device)  # (N, C, H, W), once
    batches = Batches(x, batch_size=1024, shuffle=False)
    # (N, h, w) int64
    return torch.cat([vqvae.encode(xb) for (xb,) in batches]), vqvae.config


def _sources(recipe: Any) -> dict[str, str]:
    """The card field naming the pretrained model whose outputs a recipe
    trains on, if any."""
    if recipe.activations_from is None:
        return {}
    return {"activations_from": recipe.activations_from}


@torch.no_grad()
def _activations(
    name: str,
    images: ImageData,
    data_name: str,
    device: torch.device,
    classifier: nn.Module | None = None,
) -> Tensor:
    """The penultimate features (N, feature_dim) of the images under
    `classifier`, default the shipped classifier `name`, computed once, on
    `device`."""
    from aecourse.metrics import classifier_features

    if classifier is None:
        classifier = _trained_on(name, data_name, None, device)
    return classifier_features(classifier.to(device), images.x, batch_size=1000)


def _trained_on(
    name: str,
    data_name: str,
    weights_dir: str | None,
    device: torch.device,
) -> nn.Module:
    """The pretrained model `name`, checked to have been trained on
    `data_name`."""
    from aecourse.pretrained import load_card, load_pretrained

    trained_on = load_card(name, weights_dir=weights_dir).get("data")
    if trained_on != data_name:
        where = "the package" if weights_dir is None else weights_dir
        raise ValueError(
            f"the {name} in {where} was trained on {trained_on}, "
            f"not {data_name}"
        )
    return load_pretrained(name, weights_dir=weights_dir, device=device)


def device_name(device: torch.device) -> str:
    """A readable name of the device, for model cards and benchmarks."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple {platform.machine()} (MPS)"
    cpu = platform.processor() or platform.machine() or "unknown"
    # Linux names the processor model here; platform.processor() is often
    # empty
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = (
            re.search(r"^model name\s*:\s*(.+)$", text, re.M).group(1).strip()
        )
    except (OSError, AttributeError):
        pass
    return f"CPU: {cpu}, {torch.get_num_threads()} thread(s)"


if __name__ == "__main__":
    main()
