"""aecourse: autoencoders from the manifold hypothesis to VQ-VAE with a learned prior.

The package behind the course's notebooks: data, models, losses, one training loop,
pretrained weights and metrics. Heavy submodules are imported on first use.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# OpenMP threads that wait for work sleep instead of spinning. With spinning (the
# default), a loop of small CPU ops on a machine whose cores other processes share
# slows many fold: sampling 64 code grids from the prior took 120 s with 2 threads
# spinning and 9 s with them sleeping, on 2 busy cores; notebook 5 beside one busy loop
# on 2 cores ran in 385 s before this line (a311a03) and 53 s after. OpenMP reads it when
# torch is first imported, so it applies where `import aecourse` comes first (the
# notebooks' first cell, `python -m aecourse....`); a value already set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# name -> submodule that defines it; resolved lazily so that `import aecourse` stays cheap
_EXPORTS = {
    "load_pretrained": "pretrained",
    "list_pretrained": "pretrained",
    "load_card": "pretrained",
    "set_seed": "train",
    "default_device": "train",
    "fit": "train",
    "TrainConfig": "train",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"aecourse.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'aecourse' has no attribute {name!r}")
