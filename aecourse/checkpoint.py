"""Checkpoints from which an interrupted `aecourse.train.fit` continues exactly.

At the end of every epoch `fit` saves the model, the optimiser, the gradient scaler, the
random states and the history to ``<checkpoint_dir>/checkpoint.pt``. Started again with
the same settings, it loads them and continues with the next epoch, drawing the batches
and the noise that an uninterrupted run would have drawn: a Colab session that dies after
epoch 7 continues with epoch 8.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from aecourse.distributed import Distributed, all_gather

if TYPE_CHECKING:
    from aecourse.train import TrainConfig

CHECKPOINT = "checkpoint.pt"  # file name inside TrainConfig.checkpoint_dir
RESUME_KEYS = ("batch_size", "lr", "seed")  # settings that must match to resume a run

Record = dict[str, float]  # one epoch of a History


class Checkpoint:
    """One run's state in ``config.checkpoint_dir``; does nothing when that is None."""

    def __init__(
        self,
        config: TrainConfig,
        device: torch.device,
        ddp: Distributed,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: Any,  # a GradScaler
        batch_generator: torch.Generator,  # the batch order, the same in every process
        loss_generator: torch.Generator,  # the noise of the loss, one per process
    ) -> None:
        directory = config.checkpoint_dir
        self.path = Path(directory) / CHECKPOINT if directory is not None else None
        self.settings = {**{k: getattr(config, k) for k in RESUME_KEYS}, "device_type": device.type}
        self.device, self.ddp = device, ddp
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        self.batch_generator, self.loss_generator = batch_generator, loss_generator

    def load(self) -> list[Record]:
        """Restore the saved run, if there is one, and return its history (else [])."""
        if self.path is None or not self.path.exists():
            return []
        state = torch.load(self.path, map_location="cpu", weights_only=True)  # no code
        self._check(state["config"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):  # the loss scale of a float16 run
            self.scaler.load_state_dict(state["scaler"])
        self.batch_generator.set_state(state["batch_generator"])
        if self.ddp.rank < len(state["rng"]):
            self._set_rng(state["rng"][self.ddp.rank])
        return state["history"]

    def save(self, history: list[Record]) -> None:
        """Write the state after the epochs of `history` (process 0 writes)."""
        if self.path is None:
            return
        rng = all_gather(self._rng())  # every process's random state: each draws its own
        if self.ddp.rank == 0:  # the plain module, never a DDP wrapper
            _save_atomically(self.path, {
                "epoch": len(history), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "batch_generator": self.batch_generator.get_state(), "rng": rng,
                "history": list(history), "config": self.settings,
            })

    def _rng(self) -> dict[str, Tensor | None]:
        cuda = self.device.type == "cuda"
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.device) if cuda else None,
            "loss_generator": self.loss_generator.get_state(),
        }

    def _set_rng(self, state: dict[str, Tensor | None]) -> None:
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None:
            torch.cuda.set_rng_state(state["cuda"], self.device)
        self.loss_generator.set_state(state["loss_generator"])

    def _check(self, saved: dict[str, Any]) -> None:
        """A checkpoint continues only the run that wrote it: same settings and device."""
        now = self.settings
        # (a key missing from an older checkpoint is not compared)
        different = {k: (saved[k], now[k]) for k in now if k in saved and saved[k] != now[k]}
        if different:
            details = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in different.items())
            raise ValueError(
                f"{self.path} was written by a different run ({details}); use the same "
                "settings to resume it, or another checkpoint_dir (or delete it) to start afresh"
            )


def _save_atomically(path: Path, state: dict[str, Any]) -> None:
    """torch.save to a temporary file, then rename: never half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
