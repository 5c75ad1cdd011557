"""Pretrained weights: save a model as safetensors + a JSON model card, and rebuild it.

Each shipped model is two files in ``aecourse/weights/``:

- ``<name>.safetensors``: the state dict (parameters and persistent buffers, such as a
  VQ-VAE's EMA codebook statistics). safetensors holds raw tensors only, so loading never
  unpickles anything.
- ``<name>.json``: the model card: the model class, its config, how it was trained (data,
  epochs, device, wall time, loss history), its test metrics and the sha256 of the weights.

``load_pretrained(name)`` reads the card, checks the sha256, rebuilds the config dataclass,
instantiates the class named in the card and loads the weights strictly (every key must match).

``python -m aecourse.pretrained`` prints how each shipped model was trained (device, epochs,
wall time, size), from the cards alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from aecourse import __version__

WEIGHTS_DIR = Path(__file__).parent / "weights"

# Card fields that save_pretrained computes itself; callers may not pass or overwrite them.
COMPUTED_FIELDS = ("name", "model", "config", "sha256", "aecourse_version", "torch_version")

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def save_pretrained(model: nn.Module, name: str, out_dir: str | Path, **card_fields: Any) -> Path:
    """Write ``<out_dir>/<name>.safetensors`` and ``<out_dir>/<name>.json``.

    Args:
        model: the model to save; a DDP (``.module``) or ``torch.compile`` (``._orig_mod``)
            wrapper is unwrapped first. It needs a dataclass ``config`` attribute.
        name: file stem, e.g. ``"vae"`` (letters, digits, ``.``, ``_``, ``-``).
        out_dir: directory to write into (created if missing).
        **card_fields: the rest of the model card (data, epochs, batch_size, lr, seed, device,
            device_name, wall_time_s, train_history, test_metrics, trained_at, command, ...).
            ``test_metrics`` defaults to ``{}`` and ``trained_at`` to now (UTC).

    Returns:
        The path of the written ``.safetensors`` file.
    """
    _check_name(name)
    reserved = sorted(set(card_fields) & set(COMPUTED_FIELDS))
    if reserved:
        raise ValueError(f"save_pretrained computes the card fields {reserved}; do not pass them")
    model = unwrap(model)
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ValueError(
            f"expected a model with a dataclass `config` attribute, got {type(model).__name__} "
            f"with config of type {type(config).__name__}"
        )

    # Parameters and persistent buffers (e.g. EMA codebook statistics), as contiguous CPU
    # copies: safetensors refuses non-contiguous and memory-sharing tensors.
    state = {key: t.detach().to("cpu").contiguous().clone() for key, t in model.state_dict().items()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / f"{name}.safetensors"
    tmp_path = out_dir / f".{name}.safetensors.tmp"
    save_file(state, str(tmp_path), metadata={"format": "pt", "model": type(model).__name__})
    os.replace(tmp_path, weights_path)

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    card: dict[str, Any] = {"test_metrics": {}, "trained_at": now}
    card.update(card_fields)
    card.update(
        name=name,
        model=type(model).__name__,
        config=dataclasses.asdict(config),
        sha256=sha256_file(weights_path),
        aecourse_version=__version__,
        torch_version=torch.__version__,
    )
    _write_card(out_dir / f"{name}.json", card)
    return weights_path


def list_pretrained(weights_dir: str | Path | None = None) -> list[str]:
    """Sorted names that have both a ``.safetensors`` file and a ``.json`` card."""
    weights_dir = _weights_dir(weights_dir)
    if not weights_dir.is_dir():
        return []
    weights = weights_dir.glob("*.safetensors")
    return sorted(p.stem for p in weights if p.with_suffix(".json").is_file())


def load_card(name: str, weights_dir: str | Path | None = None) -> dict[str, Any]:
    """The model card of ``name`` as a dict (see the module docstring for its fields)."""
    path = _card_path(name, _weights_dir(weights_dir))
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"the model card {path} is not valid JSON: {error}") from error
    if not isinstance(card, dict):
        raise ValueError(f"the model card {path} must hold a JSON object, got {type(card).__name__}")
    return card


def update_card(name: str, weights_dir: str | Path | None = None, **fields: Any) -> dict[str, Any]:
    """Replace top-level card fields (e.g. ``test_metrics=...``) and return the new card.

    The weights are untouched, so the card's sha256 stays valid; it is checked first, so a card
    is never updated for weights that do not match it. The computed fields (name, model, config,
    sha256, versions) describe the weights and cannot be changed here.
    """
    weights_dir = _weights_dir(weights_dir)
    reserved = sorted(set(fields) & set(COMPUTED_FIELDS))
    if reserved:
        raise ValueError(f"update_card cannot change {reserved}: they describe the weights file")
    card = load_card(name, weights_dir)
    _verify_sha256(weights_dir / f"{name}.safetensors", card)
    card.update(fields)
    _write_card(_card_path(name, weights_dir), card)
    return card


def load_pretrained(
    name: str,
    *,
    weights_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    data: str | None = None,
) -> nn.Module:
    """Rebuild the model saved as ``name`` from its card and weights, in eval mode on ``device``.

    Raises ValueError for an unknown name (listing the known ones), a sha256 mismatch, a model
    class that is not in ``aecourse.models.MODEL_CLASSES`` or a config key the class does not know;
    and, when ``data`` names a data set, for a model that its card says was trained on another.
    """
    weights_dir = _weights_dir(weights_dir)
    card = load_card(name, weights_dir)
    if data is not None and card.get("data") != data:
        raise ValueError(
            f"{name!r} in {weights_dir} was trained on {card.get('data')}, not {data}: train "
            f"one on {data} (TRAIN = True in a notebook, or python -m aecourse.train {name} "
            f"--data {data})"
        )
    weights_path = weights_dir / f"{name}.safetensors"
    if not weights_path.is_file():
        raise ValueError(
            f"the card for {name!r} exists but {weights_path} does not; "
            f"known: {list_pretrained(weights_dir)}"
        )
    _verify_sha256(weights_path, card)

    classes = _model_classes()
    cls = classes.get(card.get("model"))
    if cls is None:
        raise ValueError(
            f"card {name!r} names model {card.get('model')!r}; expected one of {sorted(classes)}"
        )
    if not isinstance(card.get("config"), dict):
        raise ValueError(f"card {name!r} in {weights_dir} holds no config (a JSON object)")
    config = config_from_dict(cls.config_class, card["config"])
    model = cls(config)
    state = load_file(str(weights_path))  # plain tensors, no pickle
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise RuntimeError(f"{weights_path} does not fit {cls.__name__}({config}): {error}") from error
    return model.eval().to(device)


def config_from_dict(config_class: type, values: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from its ``asdict`` JSON form.

    JSON has no tuples, so every list becomes a tuple (the configs hold tuples, never
    lists). Missing keys take the defaults; keys that are not fields raise ValueError.
    """
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(
            f"config keys {unknown} are not fields of {config_class.__name__}; "
            f"its fields are {sorted(fields)}"
        )
    return config_class(**{key: _to_tuple(value) for key, value in values.items()})


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        elif isinstance(getattr(model, "module", None), nn.Module):
            model = model.module
        else:
            return model


def _model_classes() -> dict[str, type]:
    from aecourse.models import MODEL_CLASSES  # imported late: models do not depend on this module

    return MODEL_CLASSES


def _weights_dir(weights_dir: str | Path | None) -> Path:
    return WEIGHTS_DIR if weights_dir is None else Path(weights_dir)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(f"expected a name of letters, digits, '.', '_', '-' (no path), got {name!r}")


def _card_path(name: str, weights_dir: Path) -> Path:
    _check_name(name)
    path = weights_dir / f"{name}.json"
    if not path.is_file():
        raise ValueError(
            f"unknown pretrained model {name!r} in {weights_dir}; known: {list_pretrained(weights_dir)}"
        )
    return path


def _verify_sha256(weights_path: Path, card: dict[str, Any]) -> None:
    actual = sha256_file(weights_path)
    if actual != card.get("sha256"):
        raise ValueError(
            f"sha256 mismatch for {weights_path}: the card says {card.get('sha256')}, "
            f"the file hashes to {actual}; the weights are corrupt or do not belong to this card "
            "(restore the file or retrain)"
        )


def _write_card(path: Path, card: dict[str, Any]) -> None:
    text = json.dumps(card, indent=2, sort_keys=True, default=_json_default) + "\n"
    # Write then rename, so an interrupted write never leaves a half card behind.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays
        return obj.tolist()
    if isinstance(obj, (Path, torch.device, torch.dtype)):
        return str(obj)
    raise TypeError(f"card value of type {type(obj).__name__} is not JSON serialisable")


def _to_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value


TRAINING_COLUMNS = ("model", "class", "parameters", "MB", "data", "device", "epochs", "wall time", "command")


def training_table(weights_dir: str | Path | None = None) -> str:
    """A Markdown table of how each saved model was trained, read from its card."""
    weights_dir = _weights_dir(weights_dir)
    rows = []
    for name in list_pretrained(weights_dir):
        card = load_card(name, weights_dir)
        weights = weights_dir / f"{name}.safetensors"
        parameters = sum(p.numel() for p in load_pretrained(name, weights_dir=weights_dir).parameters())
        device = card.get("device", "?")
        if card.get("device_name"):
            device += f" ({card['device_name']})"
        minutes = card.get("wall_time_s")
        rows.append((name, card.get("model", "?"), f"{parameters:,}", f"{weights.stat().st_size / 1e6:.2f}",
                     card.get("data", "?"), device, str(card.get("epochs", "?")),
                     "?" if minutes is None else f"{minutes / 60:.1f} min", f"`{card.get('command', '?')}`"))
    lines = [TRAINING_COLUMNS, ("---",) * len(TRAINING_COLUMNS), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def main(argv: list[str] | None = None) -> None:
    from aecourse.cli import directory

    parser = argparse.ArgumentParser(prog="python -m aecourse.pretrained",
                                     description="How each saved model was trained, from its card.")
    parser.add_argument("--weights-dir", type=directory, default=WEIGHTS_DIR,
                        help="default: the package's weights")
    args = parser.parse_args(argv)
    if not list_pretrained(args.weights_dir):
        parser.error(f"--weights-dir {args.weights_dir} holds no model (<name>.safetensors with <name>.json)")
    print(training_table(args.weights_dir))


if __name__ == "__main__":
    main()
