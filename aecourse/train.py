"""One plain PyTorch training loop for every model of the course, and its command line.

    python -m aecourse.train vae --epochs 20 --out runs/
    torchrun --nproc_per_node 2 -m aecourse.train vae      # the same, on two processes (DDP)

`fit` takes the model, its loss function (from `aecourse.losses`) and the data, and runs
AdamW over shuffled mini-batches. It checkpoints every epoch and resumes exactly where it
stopped, so a Colab session that dies after epoch 7 continues with epoch 8.
"""

from __future__ import annotations

import argparse
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
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from aecourse.data import DATASETS, Batches, ImageData, load

CHECKPOINT = "checkpoint.pt"  # file name inside TrainConfig.checkpoint_dir
LOG_EVERY = 20  # steps between progress-bar updates (each one waits for the GPU)
_RESUME_KEYS = ("batch_size", "lr", "weight_decay", "seed", "cosine")  # must match to resume a run


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator seeded too."""
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
    batch_size: int = 128  # images per step (the global batch, split across DDP processes)
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    seed: int = 0  # seeds the batch order and the noise the loss draws
    amp: bool = True  # bf16 autocast (mixed precision); only used on CUDA
    grad_clip: float | None = None  # clip the gradient norm to this; None: no clipping
    cosine: bool = True  # decay the learning rate to 0 along a half cosine over all steps
    checkpoint_dir: str | Path | None = None  # checkpoint.pt goes here each epoch; resumed from


class History(list):
    """One dict per epoch: {"epoch", "loss", <the loss's terms>..., "seconds", "images_per_second"},
    the losses being means over the epoch's images."""

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


LossFn = Callable[[nn.Module, tuple[Tensor, ...], torch.Generator], Any]  # -> losses.Loss


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    data: tuple[Tensor, ...] | ImageData,
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train `model` in place on `loss_fn(model, batch, generator).total` and return its history.

    Args:
        model: any nn.Module; moved to `device`.
        loss_fn: one of `aecourse.losses` (or any function with the same signature).
        data: tensors sharing their first dimension, e.g. (x (N, C, H, W), y (N,)) or
            (indices (N, h, w),); an ImageData is taken as (x, y). Moved to `device` once.
        config: epochs, batch size, learning rate, seed, checkpoint directory.
        device: default `default_device()`.
        progress: show a tqdm bar per epoch.
    """
    device = torch.device(device) if device is not None else default_device()
    rank, world_size, device, started_dist = _setup_distributed(device)
    model.to(device)
    data = (data.x, data.y) if isinstance(data, ImageData) else tuple(data)
    data = tuple(t.to(device) for t in data)
    if len(data[0]) == 0:
        raise ValueError(f"expected at least one training example, got tensors of shape {tuple(data[0].shape)}")
    batch_generator = torch.Generator(device).manual_seed(config.seed)  # same order on every rank
    loss_generator = torch.Generator(device).manual_seed(config.seed + 1 + rank)  # own noise per rank
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = History()
    path = Path(config.checkpoint_dir) / CHECKPOINT if config.checkpoint_dir is not None else None
    if path is not None and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code
        _check_resumable(state, config, device, path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        batch_generator.set_state(state["batch_generator"])
        if rank < len(state["rng"]):
            _set_rng_state(state["rng"][rank], loss_generator, device)
        history.extend(state["history"])

    # Under DDP the loss sees the wrapper, whose forward averages the gradients across ranks.
    net = _DDP(model, device_ids=[device] if device.type == "cuda" else None) if world_size > 1 else model
    batches = Batches(*data, batch_size=config.batch_size, generator=batch_generator)
    use_amp = config.amp and device.type == "cuda"
    for epoch in range(len(history), config.epochs):
        model.train()
        start = time.perf_counter()
        sums: dict[str, Tensor] = {}  # loss and terms, summed over this rank's images
        images = 0  # this rank's images this epoch
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress or rank != 0)
        for step, batch in enumerate(bar):
            n = len(batch[0])  # size of the global batch
            if world_size > 1:
                if n < world_size:  # a last batch too small to split: skipped on every rank
                    continue
                batch = tuple(t.tensor_split(world_size)[rank] for t in batch)  # contiguous slice
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = loss_fn(net, batch, loss_generator)
            optimizer.zero_grad(set_to_none=True)
            for group in optimizer.param_groups:  # a function of the step alone: resumes exactly
                group["lr"] = _learning_rate(config, epoch * len(batches) + step, config.epochs * len(batches))
            # DDP averages the ranks' gradients; weighting each by its share of the global batch
            # makes that average the gradient of the global batch's mean loss (scale 1 on one rank).
            (loss.total * (len(batch[0]) * world_size / n)).backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            images += len(batch[0])
            for key, value in {"loss": loss.total, **loss.terms}.items():
                sums[key] = sums.get(key, 0.0) + value.detach().float() * len(batch[0])
            if step % LOG_EVERY == 0:
                bar.set_postfix(loss=loss.total.item())
        means, images = _epoch_means(sums, images, device, world_size)  # over every rank's images
        seconds = time.perf_counter() - start
        history.append({"epoch": epoch + 1, **means, "seconds": seconds, "images_per_second": images / seconds})
        bar.set_postfix(loss=history[-1]["loss"])
        bar.close()
        if path is not None:
            rng = _gather_rng_states(loss_generator, device, world_size)
            if rank == 0:  # one writer; the plain module, never the DDP wrapper
                _save_checkpoint(path, {
                    "epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "batch_generator": batch_generator.get_state(), "rng": rng,
                    "history": list(history), "config": _resume_settings(config, device),
                })
    if started_dist:
        dist.destroy_process_group()
    return history


# --- helpers of fit ---------------------------------------------------------------------


def _learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """config.lr, or with config.cosine lr * (1 + cos(pi * step / total_steps)) / 2."""
    if not config.cosine:
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


class _DDP(DistributedDataParallel):
    """DDP whose unknown attributes fall through to the model (`model.corrupt`, `model.config`),
    so the loss functions work unchanged. Gradients are averaged only through `forward`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)


def _setup_distributed(device: torch.device) -> tuple[int, int, torch.device, bool]:
    """(rank, world_size, device, whether we started the process group). Under torchrun
    (WORLD_SIZE > 1) each process joins the group: NCCL on CUDA (one GPU per process), gloo on CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, device, False
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device, started


def _epoch_means(
    sums: dict[str, Tensor], images: int, device: torch.device, world_size: int
) -> tuple[dict[str, float], float]:
    """Per-image means of the summed loss terms over every rank, and the number of images."""
    totals = torch.stack([*sums.values(), torch.tensor(float(images), device=device)])
    if world_size > 1:
        dist.all_reduce(totals)
    *totals, count = totals.tolist()  # one device -> host copy per epoch
    return {key: total / count for key, total in zip(sums, totals)}, count


def _rng_state(loss_generator: torch.Generator, device: torch.device) -> dict[str, Tensor | None]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "loss_generator": loss_generator.get_state(),
    }


def _set_rng_state(state: dict[str, Tensor | None], loss_generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    loss_generator.set_state(state["loss_generator"])


def _gather_rng_states(loss_generator: torch.Generator, device: torch.device, world_size: int) -> list[dict]:
    """Every rank's random state (each rank draws its own noise), collected on every rank."""
    state = _rng_state(loss_generator, device)
    if world_size == 1:
        return [state]
    states: list[Any] = [None] * world_size
    dist.all_gather_object(states, state)
    return states


def _resume_settings(config: TrainConfig, device: torch.device) -> dict[str, Any]:
    return {**{key: getattr(config, key) for key in _RESUME_KEYS}, "device_type": device.type}


def _check_resumable(state: dict[str, Any], config: TrainConfig, device: torch.device, path: Path) -> None:
    """A checkpoint continues only the run that wrote it: same settings, same kind of device."""
    saved, now = state["config"], _resume_settings(config, device)
    # (a key missing from an older checkpoint is not compared)
    different = {key: (saved[key], now[key]) for key in now if key in saved and saved[key] != now[key]}
    if different:
        details = ", ".join(f"{key}: checkpoint {a!r}, now {b!r}" for key, (a, b) in different.items())
        raise ValueError(
            f"{path} was written by a different run ({details}); use the same settings to "
            "resume it, or another checkpoint_dir (or delete it) to start afresh"
        )


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save to a temporary file, then rename: an interrupted write never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


# --- command line -----------------------------------------------------------------------


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
    progress: bool = True,
    command: str | None = None,
    **config_overrides: Any,
) -> nn.Module:
    """Train the recipe `name` of `aecourse.recipes` and return the model, in eval mode.

    What the notebooks call when TRAIN = True, and what the command line runs. With `out`,
    the model is saved there with its card (`<out>/<name>.safetensors` and `.json`) and a
    checkpoint each epoch in `<out>/<name>-checkpoint`, from which an interrupted run
    resumes. `config_overrides` replace fields of the recipe's model config, e.g.
    ``train_recipe("ae", latent_dim=8)``. `data` defaults to the recipe's dataset and `limit`
    keeps the first `limit` training images.
    """
    from aecourse.pretrained import save_pretrained
    from aecourse.recipes import RECIPES

    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {sorted(RECIPES)}")
    recipe = RECIPES[name]
    device = torch.device(device) if device is not None else default_device()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))  # a GPU per process
    config = TrainConfig(
        epochs=epochs or recipe.epochs,
        batch_size=batch_size or recipe.batch_size,
        lr=lr or recipe.lr,
        seed=seed,
        checkpoint_dir=Path(out) / f"{name}-checkpoint" if out is not None else None,
    )
    data_name = data or recipe.data
    images = load(data_name, "train")
    if limit is not None:
        images = images.subset(limit)
    set_seed(seed)
    if recipe.codes_from is not None:  # the prior learns the code grids of a trained VQ-VAE
        indices, vq_config = _encode(recipe.codes_from, images, data_name, vqvae_from, device)
        model = recipe.model(
            codebook_size=vq_config.codebook_size, grid=indices.shape[-1], **config_overrides
        )
        tensors: tuple[Tensor, ...] = (indices,)  # (N, h, w)
    else:
        model = recipe.model(**_image_fields(recipe.config, images), **config_overrides)
        tensors = (images.x, images.y)
    history = fit(model, recipe.loss, tensors, config, device=device, progress=progress)
    if out is not None and int(os.environ.get("RANK", "0")) == 0:
        save_pretrained(
            model, name, out,
            data=data_name, train_images=len(images), epochs=config.epochs,
            batch_size=config.batch_size, lr=config.lr, seed=config.seed,
            device=device.type, device_name=device_name(device), processes=world_size,
            wall_time_s=round(history.seconds, 1),  # summed over resumed sessions
            train_history=list(history),
            command=command or f"aecourse.train.train_recipe({name!r}, ...)",
            trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
    return model.eval()


def main(argv: list[str] | None = None) -> Path | None:
    """`python -m aecourse.train MODEL ...`: train a recipe and save it under --out.
    Returns the path of the weights (None on the other DDP ranks)."""
    from aecourse.recipes import RECIPES

    argv = sys.argv[1:] if argv is None else argv
    args = _parser(sorted(RECIPES)).parse_args(argv)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = f"torchrun --nproc_per_node {world_size}" if world_size > 1 else "python"
    train_recipe(
        args.model, epochs=args.epochs, data=args.data, device=args.device, out=args.out,
        limit=args.limit, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
        vqvae_from=args.vqvae_from, command=f"{launcher} -m aecourse.train {shlex.join(argv)}",
    )
    return Path(args.out) / f"{args.model}.safetensors" if int(os.environ.get("RANK", "0")) == 0 else None


def _parser(models: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aecourse.train", description="Train one of the course's models."
    )
    parser.add_argument("model", choices=models, help="a recipe of aecourse.recipes")
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--out", default="runs", help="output directory (default: runs/)")
    parser.add_argument("--batch-size", type=int, help="global batch size; default: the recipe's")
    parser.add_argument("--lr", type=float, help="learning rate; default: the recipe's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="cuda, mps or cpu; default: the fastest available")
    parser.add_argument("--data", choices=DATASETS, help="default: the recipe's (fashion-mnist)")
    parser.add_argument("--limit", type=int, help="train on the first N images (smoke tests)")
    parser.add_argument("--vqvae-from", metavar="DIR",
                        help="for the prior: directory of the vqvae to encode with (default: shipped)")
    return parser


def _image_fields(config: Any, images: ImageData) -> dict[str, int]:
    """in_channels and image_size of the data, for the configs that have those fields."""
    _, c, h, _ = images.x.shape  # (N, C, H, W)
    names = {f.name for f in fields(config)}
    return {k: v for k, v in {"in_channels": c, "image_size": h}.items() if k in names}


@torch.no_grad()
def _encode(
    name: str, images: ImageData, data_name: str, weights_dir: str | None, device: torch.device
) -> tuple[Tensor, Any]:
    """Code indices (N, h, w) of the images under the pretrained VQ-VAE `name`, and its config."""
    from aecourse.pretrained import load_card, load_pretrained

    trained_on = load_card(name, weights_dir=weights_dir).get("data")
    if trained_on != data_name:
        raise ValueError(f"the {name} in {weights_dir or 'the package'} was trained on {trained_on}, not {data_name}")
    vqvae = load_pretrained(name, weights_dir=weights_dir, device=device)
    x = images.x.to(device)  # (N, C, H, W), once
    batches = Batches(x, batch_size=1024, shuffle=False)
    return torch.cat([vqvae.encode(xb) for (xb,) in batches]), vqvae.config  # (N, h, w) int64


def device_name(device: torch.device) -> str:
    """A readable name of the device, for model cards and benchmarks."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple {platform.machine()} (MPS)"
    cpu = platform.processor() or platform.machine() or "unknown"
    try:  # Linux names the processor model here; platform.processor() is often empty
        text = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"^model name\s*:\s*(.+)$", text, re.M).group(1).strip()
    except (OSError, AttributeError):
        pass
    return f"CPU: {cpu}, {torch.get_num_threads()} thread(s)"


if __name__ == "__main__":
    main()
