"""The ``geolocator`` run config: data, labels, model and evaluation sections.

Declared here (not in the experiment module) so that the data, label and model builders can
take their own section without importing the experiment.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workbench.config import RunConfig, TrainConfig, option


@dataclass
class GeoDataConfig:
    csv: str = option("data/geo-patches/patches.csv",
                      "CSV with columns path, lat, lon [, split]; one row per image")
    image_root: str = option("", "folder the CSV's paths are relative to; empty = the CSV's folder")
    train_split: str = option("train", "value of the split column used for training")
    val_split: str = option("val", "value of the split column used for validation")
    val_fraction: float = option(0.1, "CSV without a split column: fraction of the points held out "
                                      "for validation, drawn by whole level-4 S2 cells")
    image_size: int = option(64, "side of the square network input, pixels")
    resize: int = option(0, "resize the shorter side to this before the crop; 0 = image_size")
    crop: str = option("center", "center / random (RandomResizedCrop, training only) / none "
                                 "(squash to image_size)", choices=("center", "random", "none"))
    crop_scale: float = option(0.6, "random crop: smallest fraction of the image area kept")
    color_jitter: list[float] = option([0.0, 0.0, 0.0, 0.0],
                                       "training colour jitter: brightness, contrast, saturation, hue")
    hflip: bool = option(False, "random horizontal flips in training (they mirror geography)")
    normalize: str = option("backbone", "input normalisation: the backbone's own mean/std, "
                                        "ImageNet's, mean = std = 0.5, or none",
                            choices=("backbone", "imagenet", "half", "none"))
    bands_file: str = option("", "extra bands: .npy uint8 [N, C, H, W] row-aligned with the CSV "
                                 "(relative to the CSV's folder); empty = RGB only")
    band_indices: list[int] = option([], "channels of bands_file appended to RGB (in_chans = 3 + len)")
    verify_images: bool = option(True, "open every image header at start-up; missing or corrupt "
                                       "files are counted, reported and skipped")
    cache_features: bool = option(False, "compute frozen backbone features once and train the head "
                                         "on them (needs model.freeze_epochs=-1 and no random "
                                         "augmentation)")
    overfit: int = option(0, "debug: train AND validate on N images per cell (overfit-1, "
                             "overfit-5); 0 = off")
    balanced: bool = option(False, "class-balanced sampling (each cell drawn equally often)")


@dataclass
class GeoLabelsConfig:
    mode: str = option("flat", "flat: one softmax over cells; multilabel: sigmoid per cell of "
                               "every level (parent + child); per_level: one softmax head per level",
                       choices=("flat", "multilabel", "per_level"))
    t_min: int = option(10, "cells with fewer training images are dropped")
    t_max: int = option(100, "cells with more training images are split")
    min_level: int = option(2, "coarsest S2 level (2: ~2500 km cells)")
    max_level: int = option(10, "finest S2 level allowed")
    outside: str = option("nearest", "training images outside every kept cell: label them with "
                                     "the nearest cell, or drop them", choices=("nearest", "drop"))
    smoothing_km: float = option(0.0, "haversine label smoothing (PIGEON) temperature tau in km: "
                                      "target_i ~ exp(-(d_i - d_min) / tau); 0 = one-hot")
    partition_file: str = option("", "load this partition CSV instead of building one from the "
                                     "training split")


@dataclass
class GeoModelConfig:
    backbone: str = option("efficientnet-lite0", "a preset with offline weights or any timm model name")
    weights: str = option("offline", "offline (preset's packaged weights), none, hub (needs "
                                     "internet), or a state-dict file path")
    head: str = option("linear", "classifier head", choices=("linear", "mlp"))
    hidden: int = option(512, "mlp head: hidden units")
    dropout: float = option(0.0, "dropout probability in the head")
    dropout_position: str = option("after", "mlp head: dropout before the hidden layer (on the "
                                             "features) or after it", choices=("before", "after"))
    freeze_epochs: int = option(0, "train only the head for this many epochs, then unfreeze the "
                                   "backbone; -1 = always frozen")
    backbone_lr_scale: float = option(0.1, "backbone LR = train.lr * this, once unfrozen")


@dataclass
class GeoEvalConfig:
    location: str = option("top1", "predicted point: the top cell's centroid, or the "
                                    "probability-weighted mean of the top weighted_k centroids",
                           choices=("top1", "weighted"))
    weighted_k: int = option(5, "cells averaged by location=weighted")
    top_k: int = option(5, "cells (and probabilities) saved per prediction")


def _geo_train() -> TrainConfig:
    return TrainConfig(lr=1e-3, weight_decay=0.05, batch_size=64, max_epochs=10,
                       early_stop_metric="", log_every=10)


@dataclass
class GeolocatorConfig(RunConfig):
    kind: str = option("geolocator", "experiment kind")
    data: GeoDataConfig = field(default_factory=GeoDataConfig)
    labels: GeoLabelsConfig = field(default_factory=GeoLabelsConfig)
    model: GeoModelConfig = field(default_factory=GeoModelConfig)
    eval: GeoEvalConfig = field(default_factory=GeoEvalConfig)
    train: TrainConfig = field(default_factory=_geo_train)
