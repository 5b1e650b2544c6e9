"""``geolocator``: image -> timm backbone -> classifier over adaptive S2 cells (PlaNet).

The partition is built on the training split only; labels are flat or hierarchical
(``workbench.geolocator.labels``); the predicted location is the top cell's centroid or a
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

import copy
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from workbench.config import validate
from workbench.data.subsets import sample_per_class
from workbench.encoders.image import Backbone, create_image_backbone
from workbench.errors import ConfigError, InputError
from workbench.experiments.base import EXPERIMENTS, Experiment
from workbench.geo import Partition, oracle_table
from workbench.geolocator.config import GeolocatorConfig, check_config
from workbench.geolocator.data import (
    DataReport,
    FeatureDataset,
    GeoImageDataset,
    ImageTransform,
    collate_skip,
    ensure_splits,
    in_chans_of,
    load_bands,
    normalization,
    read_table,
    scan_images,
)
from workbench.geolocator.evaluate import (
    evaluate_predictions,
    most_frequent_cell_baseline,
    predict_loader,
    predictions_frame,
)
from workbench.geolocator.labels import LabelSpace, assign_labels, build_labels_partition
from workbench.geolocator.models import GeoClassifier, build_classifier
from workbench.runs import progress


@dataclass
class PreparedData:
    """The table split into train / val with labels, and the partition built on train."""

    table: pd.DataFrame  # every usable row, with "split"
    train: pd.DataFrame
    val: pd.DataFrame
    y_train: np.ndarray  # [N_train] class indices
    y_val: np.ndarray  # [N_val] (nearest cell for points outside every kept cell)
    partition: Partition
    report: DataReport
    n_csv_rows: int  # rows of the CSV (the bands file is aligned with these)


@EXPERIMENTS.register("geolocator")
class Geolocator(Experiment):
    config_cls = GeolocatorConfig
    description = "photo -> S2-cell classifier (PlaNet-style) on a timm backbone"
    cfg: GeolocatorConfig

    def __init__(self, cfg: GeolocatorConfig):
        super().__init__(cfg)
        self._prepared: PreparedData | None = None
        self._backbone: Backbone | None = None
        self._labels: LabelSpace | None = None

    # -- data ------------------------------------------------------------------------------
    @property
    def csv_dir(self) -> Path:
        return Path(self.cfg.data.csv).parent

    @property
    def in_chans(self) -> int:
        return in_chans_of(self.cfg.data)

    def check_config(self) -> None:
        """Ranges and cross-field constraints; they already ran when the config was built
        (``GeolocatorConfig.__post_init__``), this re-checks a config edited in place."""
        validate(self.cfg)
        check_config(self.cfg)

    def prepare(self) -> PreparedData:
        """Read the CSV, drop unreadable images, build the partition on the training split."""
        if self._prepared is not None:
            return self._prepared
        self.check_config()
        d = self.cfg.data
        progress.set_phase("setup", "reading the dataset CSV and checking images")
        table = ensure_splits(read_table(d.csv, d.image_root or None), d.val_fraction, self.cfg.seed,
                              d.train_split, d.val_split)
        splits = sorted(table["split"].unique().tolist())
        for name, key in ((d.train_split, "train_split"), (d.val_split, "val_split")):
            if name not in splits:
                raise ConfigError(f"data.{key}={name!r} matches no row of {d.csv}. Splits there: {splits}")
        report = DataReport()
        n_csv_rows = len(table)
        if d.verify_images:
            used = table["split"].isin([d.train_split, d.val_split]).to_numpy()
            ok = np.ones(len(table), bool)
            ok[used] = scan_images(table["path"].to_numpy()[used].tolist(), report)
            table = table[ok].reset_index(drop=True)
            if report.n_skipped:
                print(f"warning: {report.summary()}; e.g. {report.examples[0]}", file=sys.stderr)
        train = table[table["split"] == d.train_split].reset_index(drop=True)
        val = table[table["split"] == d.val_split].reset_index(drop=True)
        if len(train) == 0:
            raise InputError(f"no readable training image in {d.csv} ({report.summary()})")
        progress.set_phase("setup", f"building the S2 partition over {len(train):,} training points")
        partition = build_labels_partition(train["lat"].to_numpy(), train["lon"].to_numpy(), self.cfg.labels)
        y_train = assign_labels(partition, train["lat"].to_numpy(), train["lon"].to_numpy(),
                                self.cfg.labels.outside)
        keep = y_train >= 0
        train, y_train = train[keep].reset_index(drop=True), y_train[keep]
        y_val = assign_labels(partition, val["lat"].to_numpy(), val["lon"].to_numpy(), "nearest")
        if d.overfit > 0:  # the same few images for training and validation
            rows = sample_per_class(y_train, d.overfit, self.cfg.seed)
            train, y_train = train.iloc[rows].reset_index(drop=True), y_train[rows]
            val, y_val = train, y_train
        self._prepared = PreparedData(table, train, val, y_train, y_val, partition, report, n_csv_rows)
        return self._prepared

    def use_partition(self, partition: Partition) -> None:
        """Label every split with ``partition`` (e.g. a checkpoint's) instead of rebuilding it."""
        p = self.prepare()
        p.partition = partition
        p.y_train = assign_labels(partition, p.train["lat"].to_numpy(), p.train["lon"].to_numpy(), "nearest")
        p.y_val = assign_labels(partition, p.val["lat"].to_numpy(), p.val["lon"].to_numpy(), "nearest")
        self._labels = None

    def backbone(self) -> Backbone:
        """The backbone built once per experiment (weights read once); models get copies."""
        if self._backbone is None:
            m = self.cfg.model
            self._backbone = create_image_backbone(m.backbone, m.weights, self.in_chans)
        return self._backbone

    def transform(self, train: bool) -> ImageTransform:
        d, b = self.cfg.data, self.backbone()
        mean, std = normalization(d.normalize, b.mean, b.std, self.in_chans)
        return ImageTransform(d.image_size, mean, std, crop=d.crop, resize=d.resize, crop_scale=d.crop_scale,
                              color_jitter=tuple(d.color_jitter), hflip=d.hflip, train=train)

    def image_dataset(self, frame: pd.DataFrame, labels: np.ndarray, train: bool) -> GeoImageDataset:
        d = self.cfg.data
        bands = None
        if d.bands_file and d.band_indices:
            bands = load_bands(self.csv_dir / d.bands_file, self.prepare().n_csv_rows, d.band_indices)
        return GeoImageDataset(frame, labels, self.transform(train), bands, d.band_indices,
                               self.prepare().report)

    def split_dataset(self, split: str) -> GeoImageDataset:
        """Any split of the CSV (e.g. "test") with evaluation transforms, labelled by the
        training partition."""
        p = self.prepare()
        frame = p.table[p.table["split"] == split].reset_index(drop=True)
        if len(frame) == 0:
            raise ConfigError(f"split {split!r} has no rows. Splits: {sorted(p.table['split'].unique())}")
        y = assign_labels(p.partition, frame["lat"].to_numpy(), frame["lon"].to_numpy(), "nearest")
        return self.image_dataset(frame, y, train=False)

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        p = self.prepare()
        val = self.image_dataset(p.val, p.y_val, train=False) if len(p.val) else None
        if not self.cfg.data.cache_features:
            return self.image_dataset(p.train, p.y_train, train=True), val
        # eval transforms for both: features are computed once, so no augmentation
        train = self.cached_features(self.image_dataset(p.train, p.y_train, train=False), "training")
        return train, (self.cached_features(val, "validation") if val is not None else None)

    @torch.no_grad()
    def cached_features(self, ds: GeoImageDataset, split: str = "") -> FeatureDataset:
        """Backbone features [N, D] of every loadable image of ``ds`` (eval mode)."""
        model = self.backbone().model.eval()
        feats, idx = [], []
        loader = DataLoader(ds, batch_size=64, collate_fn=collate_skip,
                            num_workers=self.cfg.train.num_workers)
        progress.set_phase("setup", f"caching backbone features ({split or 'images'})", total=len(ds))
        done = 0
        for batch in loader:
            done = min(done + loader.batch_size, len(ds))  # failed images count as done
            progress.advance(done)
            if len(batch["label"]):
                feats.append(model(batch["image"]))
                idx.append(batch["index"])
        if not feats:
            raise InputError("no image could be loaded to compute features")
        index = torch.cat(idx)
        print(f"cached backbone features for {len(index)} images", file=sys.stderr)
        return FeatureDataset(torch.cat(feats), ds.labels[index], ds.latlon[index],
                              ds.frame.iloc[index.numpy()])

    # -- model -----------------------------------------------------------------------------
    def label_space(self) -> LabelSpace:
        if self._labels is None:
            lc = self.cfg.labels
            self._labels = LabelSpace(self.prepare().partition, lc.mode, lc.smoothing_km)
        return self._labels

    def build_model(self) -> GeoClassifier:
        b = self.backbone()
        fresh = Backbone(copy.deepcopy(b.model), b.num_features, b.mean, b.std, b.input_size, b.name,
                         b.weights, b.info)
        model, _ = build_classifier(self.cfg.model, copy.deepcopy(self.label_space()), self.in_chans, fresh)
        if self.cfg.model.freeze_epochs != 0:
            model.freeze_backbone(True)
        return model

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

    def reference_scores(self, lat: np.ndarray, lon: np.ndarray) -> dict[str, dict]:
        """The partition's oracle and the most-frequent-cell baseline on points [N] degrees."""
        partition = self.prepare().partition
        oracle = oracle_table(partition, lat, lon)
        return {"oracle": oracle, "most_frequent_cell": most_frequent_cell_baseline(partition, lat, lon)}

    def save_artifacts(self, model: GeoClassifier, val_loader, artifacts_dir: Path) -> None:
        artifacts_dir = Path(artifacts_dir)
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        p = self.prepare()
        p.partition.save(artifacts_dir / "partition.csv")
        (artifacts_dir / "data_report.json").write_text(json.dumps(p.report.to_dict(), indent=2))
        if val_loader is None:
            return
        progress.set_phase("artifacts", "predicting the validation split", total=len(val_loader.dataset))
        pred = predict_loader(model, val_loader, self.cfg.eval.top_k)
        progress.set_phase("artifacts", "writing predictions and metrics")
        centroids = model.labels.centroid_latlon.cpu().numpy()
        metrics, pred_latlon = evaluate_predictions(pred, centroids, self.cfg.eval.location,
                                                    self.cfg.eval.weighted_k)
        frame = predictions_frame(pred, pred_latlon, p.partition, val_loader.dataset.frame)
        frame.to_parquet(artifacts_dir / "predictions.parquet", index=False)
        ref = self.reference_scores(pred["latlon"][:, 0], pred["latlon"][:, 1])
        summary = {"split": self.cfg.data.val_split, "n": int(pred["n"]), "model": metrics, **ref,
                   "n_cells": len(p.partition), "data_report": p.report.to_dict()}
        (artifacts_dir / "metrics.json").write_text(json.dumps(_finite(summary), indent=2))


def _dataset_labels(ds: Dataset) -> torch.Tensor:
    """Labels [N] of a GeoImageDataset / FeatureDataset, also through a Subset."""
    if isinstance(ds, torch.utils.data.Subset):
        return _dataset_labels(ds.dataset)[torch.as_tensor(list(ds.indices))]
    return ds.labels


def _finite(obj):
    """JSON-safe copy: NaN / inf -> None."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj
