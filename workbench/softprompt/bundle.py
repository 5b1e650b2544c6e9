"""Checkpoint bundles of the soft-prompt line, in the reference's layout.

A bundle (``model.pt``) is a plain dict that ``torch.load(weights_only=True)`` reads:

| key | content |
| --- | --- |
| ``model_state_dict`` | every model tensor except the dictionary (the conditioning network, ...) |
| ``dict_state_dict`` | the dictionary (``{"entries": [K, L, D]}``); ``{}`` for models without one |
| ``config`` | the resolved run config (a dict), enough to rebuild the model |
| ``format``, ``arch``, ``dims``, ``param_counts`` | description |

The reference loaded its bundles as ``model.load_state_dict(b["model_state_dict"])`` and
``soft_dict.load_state_dict(b["dict_state_dict"])``; here ``model.soft_dict`` takes the
second and the rest of the model the first (``load_model``). ``load_model`` also reads the
Trainer's own checkpoints (``runs/<id>/checkpoints/best.pt``, key ``model``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.train.checkpoint import load_checkpoint

BUNDLE_FORMAT = "workbench-softprompt-bundle/1"
DICT_PREFIX = "soft_dict."


def split_state_dict(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(model_state_dict without the dictionary, dict_state_dict)."""
    state = model.state_dict()
    rest = {k: v for k, v in state.items() if not k.startswith(DICT_PREFIX)}
    dictionary = {k[len(DICT_PREFIX):]: v for k, v in state.items() if k.startswith(DICT_PREFIX)}
    return rest, dictionary


def make_bundle(model: nn.Module, config: dict, **extra: Any) -> dict[str, Any]:
    """The bundle dict of ``model`` (tensors detached, on the CPU)."""
    from workbench.softprompt.models import parameter_counts

    rest, dictionary = split_state_dict(model)
    cpu = lambda d: {k: v.detach().cpu().clone() for k, v in d.items()}  # noqa: E731
    return {
        "format": BUNDLE_FORMAT,
        "config": config,
        "arch": config["model"]["arch"],
        "dims": {"features": model.feature_dim, "seq_len": model.seq_len, "token_dim": model.token_dim},
        "param_counts": parameter_counts(model),
        "model_state_dict": cpu(rest),
        "dict_state_dict": cpu(dictionary),
        **extra,
    }


def save_bundle(model: nn.Module, config: dict, path: str | Path, **extra: Any) -> Path:
    """Write ``make_bundle(...)`` to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(make_bundle(model, config, **extra), tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make a shipped bundle unreadable to others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_model(path: str | Path, map_location: str | torch.device = "cpu"):
    """(config, model in eval mode) from a bundle or a Trainer checkpoint of kind softprompt."""
    from workbench.experiments import build_config
    from workbench.experiments.softprompt import build_sequence_model

    ckpt = load_checkpoint(path, map_location=map_location)
    config = ckpt.get("config")
    if not isinstance(config, dict) or config.get("kind") != "softprompt":
        kind = config.get("kind") if isinstance(config, dict) else None
        raise WorkbenchError(f"{path} is not a softprompt checkpoint (kind: {kind!r}); pick a bundle made by "
                             "`python -m workbench softprompt export` or a softprompt run's checkpoint")
    cfg = build_config(config)
    model = build_sequence_model(cfg).to(map_location)
    if "model_state_dict" in ckpt:
        state = {**ckpt["model_state_dict"], **{DICT_PREFIX + k: v for k, v in ckpt["dict_state_dict"].items()}}
    elif "model" in ckpt:
        state = ckpt["model"]
    else:
        raise WorkbenchError(f"{path} holds neither 'model_state_dict' (bundle) nor 'model' (Trainer checkpoint)")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WorkbenchError(f"{path} does not match the model its config describes: {str(exc).splitlines()[0]}") from None
    return cfg, model.eval()
