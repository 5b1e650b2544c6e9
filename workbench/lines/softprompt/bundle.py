"""Model bundles of the soft-prompt line, in the core format (``workbench.train.bundle``).

``model.pt`` is the core bundle dict (``format``, ``kind``, ``config``, ``model``: every
tensor of the sequence model, dictionary included) plus ``arch``, ``dims`` and
``param_counts``; next to it a soft-prompt bundle folder holds ``index.pt`` and
``cities.csv`` (the held-out cities the Explorer searches) besides the core's
``config.yaml``, ``metrics.json`` and ``README.md``.

``load_model`` also reads the Trainer's own checkpoints (``runs/<id>/checkpoints/best.pt``,
same ``config`` / ``model`` keys) and bundles in the reference implementation's layout
(``model_state_dict`` without the dictionary + ``dict_state_dict``), so a model trained with
the reference code loads here as it did there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.io import atomic_path
from workbench.train.bundle import BUNDLE_FORMAT, cpu_state
from workbench.train.checkpoint import load_checkpoint

DICT_PREFIX = "soft_dict."


def split_state_dict(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(model_state_dict without the dictionary, dict_state_dict)."""
    state = model.state_dict()
    rest = {k: v for k, v in state.items() if not k.startswith(DICT_PREFIX)}
    dictionary = {k[len(DICT_PREFIX):]: v for k, v in state.items() if k.startswith(DICT_PREFIX)}
    return rest, dictionary


def make_bundle(model: nn.Module, config: dict, **extra: Any) -> dict[str, Any]:
    """The bundle dict of ``model`` (tensors detached, on the CPU)."""
    return {
        "format": BUNDLE_FORMAT,
        "kind": "softprompt",
        "config": config,
        "model": cpu_state(model.state_dict()),
        **bundle_info(model, config),
        **extra,
    }


def bundle_info(model: nn.Module, config: dict) -> dict[str, Any]:
    """The descriptive entries of a soft-prompt bundle: arch, dims and parameter counts."""
    from workbench.lines.softprompt.models import parameter_counts

    return {"arch": config["model"]["arch"],
            "dims": {"features": model.feature_dim, "seq_len": model.seq_len, "token_dim": model.token_dim},
            "param_counts": parameter_counts(model)}


def save_bundle(model: nn.Module, config: dict, path: str | Path, **extra: Any) -> Path:
    """Write ``make_bundle(...)`` to the file ``path`` atomically (readable by everyone)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(make_bundle(model, config, **extra), tmp)
    return path


def reference_layout(model: nn.Module, config: dict) -> dict[str, Any]:
    """The reference implementation's bundle dict (for interchange and its loader test)."""
    rest, dictionary = split_state_dict(model)
    return {"config": config, "model_state_dict": cpu_state(rest), "dict_state_dict": cpu_state(dictionary)}


def load_model(path: str | Path, map_location: str | torch.device = "cpu"):
    """(config, model in eval mode) from a bundle or a Trainer checkpoint of kind softprompt."""
    from workbench.experiments import build_config
    from workbench.lines.softprompt.models import build_sequence_model

    ckpt = load_checkpoint(path, map_location=map_location)
    config = ckpt.get("config")
    if not isinstance(config, dict) or config.get("kind") != "softprompt":
        kind = config.get("kind") if isinstance(config, dict) else None
        raise WorkbenchError(f"{path} is not a softprompt checkpoint (kind: {kind!r}); pick a bundle made by "
                             "`python -m workbench softprompt export` or a softprompt run's checkpoint")
    cfg = build_config(config)
    model = build_sequence_model(cfg).to(map_location)
    if "model" in ckpt:  # the core bundle format, or a Trainer checkpoint
        state = ckpt["model"]
    elif "model_state_dict" in ckpt:  # the reference's layout
        state = {**ckpt["model_state_dict"], **{DICT_PREFIX + k: v for k, v in ckpt.get("dict_state_dict", {}).items()}}
    else:
        raise WorkbenchError(f"{path} holds neither 'model' (bundle or Trainer checkpoint) nor "
                             "'model_state_dict' (the reference's bundle layout)")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WorkbenchError(f"{path} does not match the model its config describes: {str(exc).splitlines()[0]}") from None
    return cfg, model.eval()


def bundle_readme(name: str, metrics: dict) -> str:
    """README.md of a soft-prompt bundle: what it is, how to remake it, its held-out numbers
    beside the untrained model and the model-free baselines (from ``metrics``)."""
    keys = ("token_cosine", "seq_mse_norm", "retrieval_r1", "retrieval_r10", "country_match")
    rows = [("trained", metrics.get("held_out") or {}), ("untrained (step 0)", metrics.get("untrained") or {})]
    rows += [(f"baseline: {k}", v) for k, v in (metrics.get("baselines") or {}).items()]

    def cell(row: dict, key: str) -> str:
        value = row.get(key)
        return "-" if value is None else f"{value:.3f}"

    table = ["| model | " + " | ".join(keys) + " |", "| --- |" + " --- |" * len(keys)]
    table += [f"| {label} | " + " | ".join(cell(row, k) for k in keys) + " |" for label, row in rows]
    dims = metrics.get("dims") or {}
    counts = metrics.get("param_counts") or {}
    return "\n".join([
        f"# {name}",
        "",
        "A soft-prompt model: GPS -> frozen location encoder -> mixture weights over K learnable "
        "soft-token sequences -> a text encoder's token states "
        f"[L={dims.get('seq_len', '?')}, D={dims.get('token_dim', '?')}]. The Soft-Prompt Explorer "
        "page and `python -m workbench softprompt weights` load it.",
        "",
        "Remake it:",
        "",
        *[f"    {line}" for line in metrics.get("reproduce", [])],
        "",
        "| file | content |",
        "| --- | --- |",
        "| `model.pt` | the core bundle: config, weights (dictionary included), arch, dims, parameter counts |",
        "| `config.yaml` | the resolved run config |",
        "| `metrics.json` | held-out metrics of these weights, of the untrained model and of the baselines |",
        "| `index.pt`, `cities.csv` | the held-out cities' pooled targets, for nearest-city search |",
        "",
        f"Held-out cities ({metrics.get('n_val', '?')} in S2 cells never seen in training; "
        f"{metrics.get('n_train', '?')} training cities):",
        "",
        *table,
        "",
        f"Trainable parameters: {counts.get('trainable', '?'):,}" if isinstance(counts.get("trainable"), int)
        else "Trainable parameters: ?",
        "",
        baseline_verdict(metrics),
    ])


LOWER_IS_BETTER = ("seq_mse_norm",)


def baseline_verdict(metrics: dict) -> str:
    """One sentence naming every metric on which a baseline beats the trained model."""
    trained = metrics.get("held_out") or {}
    wins = []
    for name, row in (metrics.get("baselines") or {}).items():
        for key, value in row.items():
            mine = trained.get(key)
            if value is None or mine is None or key not in ("token_cosine", "seq_mse_norm", "retrieval_r1",
                                                              "retrieval_r5", "retrieval_r10", "country_match"):
                continue
            if (value < mine) if key in LOWER_IS_BETTER else (value > mine):
                wins.append(f"{name} on {key} ({value:.3f} vs {mine:.3f})")
    if not wins:
        return "No baseline beats the trained model on these metrics."
    return "A baseline wins here: " + "; ".join(wins) + "."
