"""The contract every experiment kind fulfils; the Trainer and the app only use this.

A kind is one module under ``workbench/experiments/`` (or a plugin module named in the
``WORKBENCH_PLUGINS`` environment variable) that registers a subclass of ``Experiment``:

    @EXPERIMENTS.register("softprompt")
    class SoftPrompt(Experiment):
        config_cls = SoftPromptConfig
        ...
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from workbench.config import RunConfig
from workbench.registry import Registry


class Experiment:
    """Builds the parts of a run and defines one training step and one evaluation."""

    config_cls: ClassVar[type[RunConfig]] = RunConfig
    description: ClassVar[str] = ""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        """(train, val); val may be None. Heavy loading happens here, not in __init__."""
        raise NotImplementedError

    def param_groups(self, model: nn.Module) -> list[dict] | None:
        """Optimiser parameter groups (e.g. a lower LR for a backbone); None = one group.

        Each group may carry ``lr_scale``: its LR is ``train.lr * lr_scale``.
        """
        return None

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """Called before each epoch (also after a resume), e.g. to unfreeze a backbone."""

    def place_data(self, device: torch.device) -> bool:
        """Move in-memory datasets (built by ``build_datasets``) to ``device`` once, so that
        batches are gathered there; return True if they now live on it (the Trainer then
        does not pin host memory). The default keeps them where they are."""
        return False

    def sample_weights(self, train_ds: Dataset) -> torch.Tensor | None:
        """Per-sample weights [N] for weighted sampling (class balancing); None = shuffle."""
        return None

    def collate(self, samples: list) -> Any:
        return torch.utils.data.default_collate(samples)

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """Returns {"loss": scalar tensor, ...other scalars to log}."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: torch.utils.data.DataLoader) -> dict[str, float]:
        """Validation metrics; the default averages the training-step scalars."""
        totals: dict[str, float] = {}
        count = 0
        for batch in loader:
            batch = self.move_to(batch, next(model.parameters()).device)
            out = self.training_step(model, batch)
            n = _batch_len(batch)
            for key, value in out.items():
                totals[key] = totals.get(key, 0.0) + float(value) * n
            count += n
        return {key: value / max(count, 1) for key, value in totals.items()}

    def best_model(self, model: nn.Module, artifacts_dir: Path) -> tuple[nn.Module, str]:
        """(model, "best"): the run's best validation checkpoint (``artifacts_dir`` is
        ``runs/<id>/artifacts``) rebuilt with ``build_model``, in eval mode on ``model``'s
        device; (model, "final") when there is none. What an exported bundle holds."""
        from workbench.train.checkpoint import load_checkpoint

        best = Path(artifacts_dir).parent / "checkpoints" / "best.pt"
        if not best.is_file():
            return model, "final"
        chosen = self.build_model()
        chosen.load_state_dict(load_checkpoint(best, map_location="cpu")["model"])
        return chosen.to(next(model.parameters()).device).eval(), "best"

    def save_artifacts(self, model: nn.Module, val_loader, artifacts_dir: Path) -> None:
        """Write predictions / embeddings the pages read. Optional."""

    @staticmethod
    def move_to(batch: Any, device: torch.device) -> Any:
        if isinstance(batch, torch.Tensor):
            return batch.to(device, non_blocking=True)
        if isinstance(batch, dict):
            return {k: Experiment.move_to(v, device) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)):
            return type(batch)(Experiment.move_to(v, device) for v in batch)
        return batch


def _batch_len(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, dict):
        return _batch_len(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)):
        return _batch_len(batch[0])
    return 1


EXPERIMENTS: Registry[type[Experiment]] = Registry("experiment kind")
