"""aecourse: autoencoders from the manifold hypothesis to VQ-VAE with a learned prior.

The package behind the course's notebooks: data, models, losses, one training loop,
pretrained weights and metrics. Heavy submodules are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

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
