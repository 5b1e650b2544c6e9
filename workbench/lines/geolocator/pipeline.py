"""The geolocator's data and model pipeline: everything a run, an evaluation or an export
builds from a config (the experiment kind is a facade over it).

``GeolocatorPipeline(cfg)``: ``prepare()`` reads the CSV, drops unreadable images and builds
the S2 partition on the training split; ``split_dataset(split)`` gives any split with
evaluation transforms labelled by that partition (``use_partition`` swaps in a
checkpoint's); ``cached_features`` computes frozen backbone features once;
``build_model()`` is the classifier over the label space; ``reference_scores`` are the
partition's oracle and the most-frequent-cell baseline.
"""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from workbench.config import validate
from workbench.data.subsets import sample_per_class
from workbench.encoders.image import Backbone, create_image_backbone
from workbench.errors import ConfigError, InputError
from workbench.geo import Partition, oracle_table
from workbench.lines.geolocator.config import GeolocatorConfig, check_config
from workbench.lines.geolocator.data import (
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
from workbench.lines.geolocator.evaluate import (
    evaluate_predictions,
    most_frequent_cell_baseline,
    predict_loader,
    predictions_frame,
)
from workbench.lines.geolocator.labels import LabelSpace, assign_labels, build_labels_partition
from workbench.lines.geolocator.models import GeoClassifier, build_classifier
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


class GeolocatorPipeline:
    """Data, partition, backbone and model of one geolocator config (built lazily, once)."""

    cfg: GeolocatorConfig

    def __init__(self, cfg: GeolocatorConfig):
        self.cfg = cfg
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

    def datasets(self):
        """(train, val) as a run trains on them; with ``data.cache_features`` both are
        frozen-backbone features computed once (eval transforms: no augmentation)."""
        p = self.prepare()
        val = self.image_dataset(p.val, p.y_val, train=False) if len(p.val) else None
        if not self.cfg.data.cache_features:
            return self.image_dataset(p.train, p.y_train, train=True), val
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

    def reference_scores(self, lat: np.ndarray, lon: np.ndarray) -> dict[str, dict]:
        """The partition's oracle and the most-frequent-cell baseline on points [N] degrees."""
        partition = self.prepare().partition
        oracle = oracle_table(partition, lat, lon)
        return {"oracle": oracle, "most_frequent_cell": most_frequent_cell_baseline(partition, lat, lon)}


def evaluate_split(model, cfg, partition: Partition, split: str, batch_size: int = 64,
                   num_workers: int = 0, keep_embeddings: bool = False) -> dict[str, Any]:
    """Evaluate a loaded geolocator on any split of its CSV (e.g. the held-out "test").

    Images are labelled with the model's own partition. Returns {"metrics", "predictions"
    (frame), "oracle", "most_frequent_cell", "n"} (and "raw", predict_loader's arrays with the
    features and logits, when ``keep_embeddings``).
    """
    from dataclasses import replace

    from torch.utils.data import DataLoader

    # weights=none: the model is already loaded; only the transforms are needed here
    exp = GeolocatorPipeline(replace(cfg, model=replace(cfg.model, weights="none"),
                             data=replace(cfg.data, overfit=0)))
    exp.use_partition(partition)
    ds = exp.split_dataset(split)
    loader = DataLoader(ds, batch_size=batch_size, collate_fn=collate_skip, num_workers=num_workers)
    pred = predict_loader(model, loader, cfg.eval.top_k, keep_embeddings=keep_embeddings)
    centroids = model.labels.centroid_latlon.cpu().numpy()
    metrics, pred_latlon = evaluate_predictions(pred, centroids, cfg.eval.location, cfg.eval.weighted_k)
    refs = exp.reference_scores(pred["latlon"][:, 0], pred["latlon"][:, 1])
    frame = predictions_frame(pred, pred_latlon, partition, ds.frame)
    return {"metrics": metrics, "predictions": frame, "n": int(pred["n"]), **refs,
            **({"raw": pred} if keep_embeddings else {})}
