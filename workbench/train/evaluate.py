"""Evaluate a run's checkpoint on its validation set (``python -m workbench eval``)."""
from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader

from workbench.errors import NotFoundError
from workbench.experiments import create_experiment
from workbench.runs.store import Run
from workbench.train.checkpoint import load_checkpoint
from workbench.train.trainer import select_device


def load_model(run: Run, which: str = "best"):
    """(experiment, model in eval mode) rebuilt from the run's config and checkpoint."""
    path = run.checkpoint_dir / f"{which}.pt"
    if not path.is_file() and which == "best" and run.last_checkpoint.is_file():
        path = run.last_checkpoint
    if not path.is_file():
        raise NotFoundError(f"run '{run.id}' has no checkpoint {which}.pt yet; wait for a validation or train longer")
    exp = create_experiment(run.load_config())
    device = select_device(exp.cfg.train.device)
    model = exp.build_model().to(device)
    model.load_state_dict(load_checkpoint(path, map_location=device)["model"])
    return exp, model.eval()


def evaluate_run(run: Run, which: str = "best") -> dict[str, Any]:
    exp, model = load_model(run, which)
    _, val_ds = exp.build_datasets()
    if val_ds is None or len(val_ds) == 0:
        raise NotFoundError(f"run '{run.id}' has no validation set to evaluate on")
    loader = DataLoader(val_ds, batch_size=exp.cfg.train.batch_size, collate_fn=exp.collate)
    return {f"val/{k}": float(v) for k, v in exp.evaluate(model, loader).items()}
