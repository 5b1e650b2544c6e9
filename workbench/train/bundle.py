"""The one model-bundle format every line exports and every page loads.

A bundle is a folder (``checkpoints/<name>/``):

| file | content |
| --- | --- |
| ``model.pt`` | ``{"format", "kind", "config", "model", ...}``: the resolved config (enough to rebuild the model) and its state dict on the CPU, readable with ``torch.load(weights_only=True)``; a line may add plain entries (dims, parameter counts) |
| ``config.yaml`` | the same config, readable |
| ``metrics.json`` | the numbers the bundle reports: the model next to an untrained model and a simple baseline |
| ``README.md`` | what it is, how it was made, how to reproduce it |

plus whatever artifacts its line's pages read (``predictions.parquet``, ``index.pt``, ...).
A Trainer checkpoint (``runs/<id>/checkpoints/best.pt``) holds the same ``config`` and
``model`` keys, so a loader that reads one reads the other.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
import yaml

from workbench.errors import NotFoundError, WorkbenchError
from workbench.io import atomic_path, write_json, write_text
from workbench.train.checkpoint import load_checkpoint

BUNDLE_FORMAT = "workbench-bundle/1"
MODEL_FILE = "model.pt"
REQUIRED_FILES = (MODEL_FILE, "config.yaml", "metrics.json", "README.md")


def cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state dict (safe to save while training goes on)."""
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def save_bundle(folder: str | Path, config: dict, model_state: Mapping[str, torch.Tensor], metrics: dict,
                readme: str, **extra: Any) -> Path:
    """Write a bundle folder (see the module doc); every file is written atomically."""
    if not isinstance(config, dict) or not config.get("kind"):
        raise WorkbenchError("a bundle needs the resolved config as a dict with its 'kind'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"format": BUNDLE_FORMAT, "kind": config["kind"], "config": config,
               "model": cpu_state(model_state), **extra}
    with atomic_path(folder / MODEL_FILE) as tmp:
        torch.save(payload, tmp)
    write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    write_json(folder / "metrics.json", metrics)
    write_text(folder / "README.md", readme.rstrip() + "\n")
    return folder


def model_file(path: str | Path) -> Path:
    """``model.pt`` of a bundle folder, or the file itself."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def load_bundle(path: str | Path, kind: str | None = None,
                map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The ``model.pt`` dict of a bundle folder (or of a bundle / Trainer checkpoint file),
    loaded with ``weights_only=True``; ``kind`` checks the config's kind."""
    file = model_file(path)
    if not file.is_file():
        raise NotFoundError(f"no {MODEL_FILE} in {path}: a bundle folder holds {', '.join(REQUIRED_FILES)}")
    ckpt = load_checkpoint(file, map_location=map_location)
    config = ckpt.get("config") if isinstance(ckpt, dict) else None
    if not isinstance(config, dict):
        raise WorkbenchError(f"{file} has no 'config': not a workbench bundle or checkpoint")
    if kind is not None and config.get("kind") != kind:
        raise WorkbenchError(f"{file} is a {config.get('kind')!r} model, not {kind!r}")
    return ckpt


def bundle_kind(folder: str | Path) -> str | None:
    """The ``kind`` in a bundle folder's config.yaml (None when absent or unreadable); reads
    no weights, so listing bundles is instant."""
    try:
        data = yaml.safe_load((Path(folder) / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def missing_files(folder: str | Path) -> list[str]:
    """The required bundle files a folder lacks."""
    return [name for name in REQUIRED_FILES if not (Path(folder) / name).is_file()]
