"""Experiment kind ``projection``: heads aligning two frozen embedding spaces.

Frozen image embeddings [N, D_img] and caption embeddings [M, D_txt] (pre-encoded; the
demo: EfficientNet-Lite0 tiles vs MiniLM captions) -> a head per modality
(``workbench.lines.projection.models.HEADS``) -> one shared normalised space, trained with a
contrastive loss (``workbench.contrastive.LOSSES``). Validation logs the loss and R@K both
ways (a sigmoid loss can keep falling while R@K collapses); ``val/r_mean`` (the mean of the
six recalls) selects the best checkpoint. ``save_artifacts`` evaluates the best weights on
the test split next to the baselines and writes what the pages read:

    artifacts/metrics.json          test R@K / ranks of the trained heads under "test", the
                                    untrained heads and the baselines beside them
    artifacts/embeddings/           test images + captions: paired.npy + paired.parquet
    artifacts/top_captions.parquet  the top-5 captions of every test image
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from workbench.config import to_dict
from workbench.experiments.base import EXPERIMENTS, Experiment
from workbench.io import write_json
from workbench.lines.projection import evaluate as ev
from workbench.lines.projection.config import ProjectionConfig
from workbench.lines.projection.data import PairBatches, ProjectionData, collate_batch, load_data
from workbench.lines.projection.models import build_model, count_parameters, parameter_groups
from workbench.runs import progress


@EXPERIMENTS.register("projection")
class ProjectionExperiment(Experiment):
    config_cls = ProjectionConfig
    description = "frozen image / text embeddings -> two projection heads aligned by a contrastive loss"

    def __init__(self, cfg: ProjectionConfig, data: ProjectionData | None = None):
        super().__init__(cfg)
        self.data = data

    # -- parts -----------------------------------------------------------------------
    def build_datasets(self):
        if self.data is None:
            self.data = load_data(self.cfg)
        self._datasets = (PairBatches(self.data.train), PairBatches(self.data.val))
        return self._datasets

    def place_data(self, device: torch.device) -> bool:
        if device.type != "cuda" or not self.cfg.data.on_device or self.cfg.train.num_workers:
            return False
        for ds in self._datasets:
            ds.to(device)
        return True

    def steps_per_epoch(self) -> int:
        n = len(self.data.train.text)
        if self.cfg.train.max_samples:
            n = min(n, self.cfg.train.max_samples)
        return math.ceil(n / self.cfg.train.batch_size)

    def build_model(self) -> nn.Module:
        if self.data is None:
            self.data = load_data(self.cfg)
        return build_model(self.cfg, *self.data.dims, ramp_steps=self.steps_per_epoch())

    def param_groups(self, model: nn.Module) -> list[dict]:
        return parameter_groups(model)

    def collate(self, samples):
        return collate_batch(samples)

    # -- training and evaluation -----------------------------------------------------
    def training_step(self, model: nn.Module, batch) -> dict[str, torch.Tensor]:
        return model.loss(batch["image"], batch["text"], batch["image_id"])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        """The loss terms over the val pairs plus R@K / ranks of the val split."""
        out = super().evaluate(model, loader)
        return {**out, **ev.evaluate_model(model, self.data.val, self.cfg.eval.chunk_size)}

    def untrained_model(self) -> nn.Module:
        return self.build_model().eval()

    # -- artifacts -------------------------------------------------------------------
    def save_artifacts(self, model: nn.Module, val_loader, artifacts_dir: Path) -> None:
        artifacts_dir = Path(artifacts_dir)
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        cfg, data = self.cfg, self.data
        if data.test is None:
            data.test = load_data(cfg).test
        model, which = self.best_model(model, artifacts_dir)
        progress.set_phase("eval", f"test R@K of the {which} heads, the untrained heads and the baselines")
        report = {
            "test": ev.evaluate_model(model, data.test, cfg.eval.chunk_size),
            "untrained": ev.evaluate_model(self.untrained_model(), data.test, cfg.eval.chunk_size),
            "baselines": ev.baselines(data.train, data.test, cfg.model.output_dim, cfg.eval.baseline_seed,
                                      cfg.eval.chunk_size),
            "val": ev.evaluate_model(model, data.val, cfg.eval.chunk_size),
            "weights": which,
            "logit_scale": float(model.scale().detach()),
            "logit_bias": float(model.logit_bias.detach()) if model.logit_bias is not None else None,
            "params": count_parameters(model),
            "counts": {part.split: {"images": part.n_images, "pairs": len(part.text)}
                       for part in (data.train, data.val, data.test)},
            "dims": {"image": data.dims[0], "text": data.dims[1], "output": cfg.model.output_dim},
            "encoders": data_encoders(data),
            "config": to_dict(cfg),
        }
        progress.set_phase("artifacts", "test embeddings and the caption gallery")
        report["artifacts"] = ev.write_artifacts(model, data.test, artifacts_dir, cfg.eval.top_k, cfg.data.test_split)
        write_json(artifacts_dir / "metrics.json", report)


def data_encoders(data: ProjectionData) -> dict:
    """The frozen encoders named in the data's metadata (the demo: efficientnet-lite0 / minilm)."""
    encoders = data.train.extra.get("encoders")
    return encoders if isinstance(encoders, dict) else {}
