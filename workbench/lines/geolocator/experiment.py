"""``geolocator``: image -> timm backbone -> classifier over adaptive S2 cells (PlaNet).

The partition is built on the training split only; labels are flat or hierarchical
(``workbench.lines.geolocator.labels``); the predicted location is the top cell's centroid or a
probability-weighted mean of the top k. Debugging aids from the work log are config
switches: ``data.overfit=1`` / ``5`` (train and validate on N images per cell),
``model.freeze_epochs`` + ``model.backbone_lr_scale`` (head first, then everything at a
lower backbone LR), ``data.balanced`` (class-balanced sampling), ``train.val_every``
(validation every N steps), and ``python -m workbench lr-find`` (LR range test).

Artifacts (``save_artifacts``): predictions.parquet (one row per validation image: true and
predicted location, distance, top-k cells and probabilities), metrics.json (validation
metrics next to the partition's oracle and a most-frequent-cell baseline), partition.csv,
data_report.json (images skipped as missing / corrupt).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import Dataset

from workbench.experiments.base import EXPERIMENTS, Experiment
from workbench.io import json_safe
from workbench.lines.geolocator.config import GeolocatorConfig
from workbench.lines.geolocator.data import collate_skip
from workbench.lines.geolocator.evaluate import (evaluate_predictions, predict_loader, predictions_frame,
                                                write_embedding_sets)
from workbench.lines.geolocator.models import GeoClassifier
from workbench.lines.geolocator.pipeline import GeolocatorPipeline
from workbench.runs import progress


@EXPERIMENTS.register("geolocator")
class Geolocator(GeolocatorPipeline, Experiment):
    """The Experiment contract over ``GeolocatorPipeline``: steps, evaluation, artifacts."""

    config_cls = GeolocatorConfig
    description = "photo -> S2-cell classifier (PlaNet-style) on a timm backbone"
    cfg: GeolocatorConfig

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        return self.datasets()

    # -- model -----------------------------------------------------------------------------
    def param_groups(self, model: GeoClassifier) -> list[dict]:
        # head first: the Trainer logs the first group's LR
        return [{"params": list(model.head.parameters())},
                {"params": list(model.backbone.parameters()), "lr_scale": self.cfg.model.backbone_lr_scale}]

    def on_epoch_start(self, model: GeoClassifier, epoch: int) -> None:
        n = self.cfg.model.freeze_epochs
        model.freeze_backbone(n == -1 or epoch < n)

    def sample_weights(self, train_ds: Dataset) -> torch.Tensor | None:
        if not self.cfg.data.balanced:
            return None
        labels = _dataset_labels(train_ds)
        counts = torch.bincount(labels, minlength=self.label_space().n_cells).clamp(min=1)
        return 1.0 / counts[labels].double()

    def collate(self, samples: list):
        return collate_skip(samples)

    # -- steps -----------------------------------------------------------------------------
    def training_step(self, model: GeoClassifier, batch) -> dict[str, torch.Tensor]:
        labels, latlon = batch["label"], batch["latlon"]
        if labels.shape[0] == 0:  # every image of this batch failed to load
            zero = sum(p.sum() for p in model.head.parameters()) * 0.0
            return {"loss": zero, "cell_acc": zero.detach()}
        logits = model(batch["image"])
        loss = model.labels.loss(logits, labels, latlon)
        acc = (model.labels.predicted_classes(logits.detach()) == labels).float().mean()
        return {"loss": loss, "cell_acc": acc}

    @torch.no_grad()
    def evaluate(self, model: GeoClassifier, loader) -> dict[str, float]:
        pred = predict_loader(model, loader, self.cfg.eval.top_k)
        metrics, _ = evaluate_predictions(pred, model.labels.centroid_latlon.cpu().numpy(),
                                          self.cfg.eval.location, self.cfg.eval.weighted_k)
        return metrics

    def save_artifacts(self, model: GeoClassifier, val_loader, artifacts_dir: Path) -> None:
        artifacts_dir = Path(artifacts_dir)
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        p = self.prepare()
        p.partition.save(artifacts_dir / "partition.csv")
        (artifacts_dir / "data_report.json").write_text(json.dumps(p.report.to_dict(), indent=2))
        if val_loader is None:
            return
        progress.set_phase("artifacts", "predicting the validation split", total=len(val_loader.dataset))
        pred = predict_loader(model, val_loader, self.cfg.eval.top_k, keep_embeddings=True)
        progress.set_phase("artifacts", "writing predictions and metrics")
        centroids = model.labels.centroid_latlon.cpu().numpy()
        metrics, pred_latlon = evaluate_predictions(pred, centroids, self.cfg.eval.location,
                                                    self.cfg.eval.weighted_k)
        frame = predictions_frame(pred, pred_latlon, p.partition, val_loader.dataset.frame)
        frame.to_parquet(artifacts_dir / "predictions.parquet", index=False)
        write_embedding_sets(artifacts_dir / "embeddings", pred, frame, self.cfg.data.val_split)
        ref = self.reference_scores(pred["latlon"][:, 0], pred["latlon"][:, 1])
        summary = {"split": self.cfg.data.val_split, "n": int(pred["n"]), "model": metrics, **ref,
                   "n_cells": len(p.partition), "data_report": p.report.to_dict()}
        (artifacts_dir / "metrics.json").write_text(json.dumps(json_safe(summary), indent=2))


def _dataset_labels(ds: Dataset) -> torch.Tensor:
    """Labels [N] of a GeoImageDataset / FeatureDataset, also through a Subset."""
    if isinstance(ds, torch.utils.data.Subset):
        return _dataset_labels(ds.dataset)[torch.as_tensor(list(ds.indices))]
    return ds.labels
