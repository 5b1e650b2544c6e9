"""The ``geolocator`` run config: data, labels, model and evaluation sections.

The bottom of the line: it imports only the core, and every other module of the line takes
its section from here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from workbench.config import RunConfig, TrainConfig, option
from workbench.errors import ConfigError
from workbench.registry import RegistryNames

HEADS = RegistryNames("workbench.lines.geolocator.models:HEADS")
LABEL_MODES = ("flat", "multilabel", "per_level")  # labels.py implements each


@dataclass
class GeoDataConfig:
    csv: str = option("data/geo-patches/patches.csv",
                      "CSV with columns path, lat, lon [, split]; one row per image")
    image_root: str = option("", "folder the CSV's paths are relative to; empty = the CSV's folder")
    train_split: str = option("train", "value of the split column used for training")
    val_split: str = option("val", "value of the split column used for validation")
    val_fraction: float = option(0.1, "CSV without a split column: fraction of the points held out "
                                      "for validation, drawn by whole level-4 S2 cells", gt=0, lt=1)
    image_size: int = option(64, "side of the square network input", unit="px", ge=8, le=4096)
    resize: int = option(0, "resize the shorter side to this before the crop (>= image_size); "
                            "0 = image_size", unit="px", ge=0, le=8192)
    crop: str = option("center", "center / random (RandomResizedCrop, training only) / none "
                                 "(squash to image_size)", choices=("center", "random", "none"))
    crop_scale: float = option(0.6, "random crop: smallest fraction of the image area kept", gt=0, le=1,
                               applies={"crop": ("random",)})
    color_jitter: list[float] = option([0.0, 0.0, 0.0, 0.0],
                                       "training colour jitter: brightness, contrast, saturation "
                                       "(each >= 0), hue (in [0, 0.5]); 0 = off", ge=0)
    hflip: bool = option(False, "random horizontal flips in training (they mirror geography)")
    normalize: str = option("backbone", "input normalisation: the backbone's own mean/std, "
                                        "ImageNet's, mean = std = 0.5, or none",
                            choices=("backbone", "imagenet", "half", "none"))
    bands_file: str = option("", "extra bands: .npy uint8 [N, C, H, W] row-aligned with the CSV "
                                 "(relative to the CSV's folder); empty = RGB only")
    band_indices: list[int] = option([], "channels of bands_file appended to RGB (in_chans = 3 + len)",
                                     ge=0)
    verify_images: bool = option(True, "open every image header at start-up; missing or corrupt "
                                       "files are counted, reported and skipped")
    cache_features: bool = option(False, "compute frozen backbone features once and train the head "
                                         "on them (needs model.freeze_epochs=-1 and no random "
                                         "augmentation)")
    overfit: int = option(0, "debug: train AND validate on N images per cell (overfit-1, "
                             "overfit-5); 0 = off", unit="images per cell", ge=0)
    balanced: bool = option(False, "class-balanced sampling (each cell drawn equally often)")


@dataclass
class GeoLabelsConfig:
    mode: str = option("flat", "flat: one softmax over cells; multilabel: sigmoid per cell of "
                               "every level (parent + child); per_level: one softmax head per level",
                       choices=LABEL_MODES)
    t_min: int = option(10, "cells with fewer training images are dropped", unit="images", ge=1)
    t_max: int = option(100, "cells with more training images are split (>= t_min)", unit="images", ge=1)
    min_level: int = option(2, "coarsest S2 level (2: ~2500 km cells)", ge=0, le=30)
    max_level: int = option(10, "finest S2 level allowed (>= min_level; 10: ~10 km cells)", ge=0, le=30)
    outside: str = option("nearest", "training images outside every kept cell: label them with "
                                     "the nearest cell, or drop them", choices=("nearest", "drop"))
    smoothing_km: float = option(0.0, "haversine label smoothing (PIGEON) temperature tau: "
                                      "target_i ~ exp(-(d_i - d_min) / tau); 0 = one-hot",
                                 unit="km", ge=0)
    partition_file: str = option("", "load this partition CSV instead of building one from the "
                                     "training split")


@dataclass
class GeoModelConfig:
    backbone: str = option("efficientnet-lite0", "a preset with offline weights or any timm model name")
    weights: str = option("offline", "offline (preset's packaged weights), none, hub (needs "
                                     "internet), or a state-dict file path")
    head: str = option("linear", "classifier head", choices=HEADS)
    hidden: int = option(512, "mlp head: hidden units", unit="units", ge=1, applies={"head": ("mlp",)})
    dropout: float = option(0.0, "dropout probability in the head", ge=0, lt=1)
    dropout_position: str = option("after", "mlp head: dropout before the hidden layer (on the "
                                             "features) or after it", choices=("before", "after"),
                                  applies={"head": ("mlp",)})
    freeze_epochs: int = option(0, "train only the head for this many epochs, then unfreeze the "
                                   "backbone; -1 = always frozen", unit="epochs", ge=-1)
    backbone_lr_scale: float = option(0.1, "backbone LR = train.lr * this, once unfrozen", ge=0)


@dataclass
class GeoEvalConfig:
    location: str = option("top1", "predicted point: the top cell's centroid, or the "
                                    "probability-weighted mean of the top weighted_k centroids",
                           choices=("top1", "weighted"))
    weighted_k: int = option(5, "cells averaged by location=weighted (<= top_k)", unit="cells", ge=1,
                             applies={"location": ("weighted",)})
    top_k: int = option(5, "cells (and probabilities) saved per prediction", unit="cells", ge=1)


def _geo_train() -> TrainConfig:
    return TrainConfig(lr=1e-3, weight_decay=0.05, batch_size=64, max_epochs=10,
                       early_stop_metric="", log_every=10)


@dataclass
class GeolocatorConfig(RunConfig):
    main_sections: ClassVar[tuple[str, ...]] = ("data", "labels", "model", "train")

    kind: str = option("geolocator", "experiment kind")
    data: GeoDataConfig = field(default_factory=GeoDataConfig)
    labels: GeoLabelsConfig = field(default_factory=GeoLabelsConfig)
    model: GeoModelConfig = field(default_factory=GeoModelConfig)
    eval: GeoEvalConfig = field(default_factory=GeoEvalConfig)
    train: TrainConfig = field(default_factory=_geo_train)

    def __post_init__(self):
        super().__post_init__()  # declared choices and ranges
        check_config(self)  # at build time, so a bad value fails before a run directory exists


def check_config(cfg: GeolocatorConfig) -> None:
    """Constraints between fields (each field's own range is declared with it)."""
    d, lb, m, e = cfg.data, cfg.labels, cfg.model, cfg.eval
    if len(d.color_jitter) != 4 or d.color_jitter[3] > 0.5:
        raise ConfigError(f"data.color_jitter must be 4 numbers >= 0 (brightness, contrast, "
                          f"saturation, hue <= 0.5), got {d.color_jitter}")
    if d.resize and d.resize < d.image_size:
        raise ConfigError(f"data.resize ({d.resize} px) must be 0 or >= data.image_size "
                          f"({d.image_size} px): the crop cannot be larger than the resized image")
    if lb.t_min > lb.t_max:
        raise ConfigError(f"labels.t_min ({lb.t_min}) must be <= labels.t_max ({lb.t_max})")
    if lb.min_level > lb.max_level:
        raise ConfigError(f"labels.min_level ({lb.min_level}) must be <= labels.max_level ({lb.max_level})")
    if e.location == "weighted" and e.weighted_k > e.top_k:
        raise ConfigError(f"eval.weighted_k ({e.weighted_k}) must be <= eval.top_k ({e.top_k}): only "
                          "the top_k cells of each prediction are kept")
    if d.cache_features:
        always_frozen = m.freeze_epochs == -1 or m.freeze_epochs >= cfg.train.max_epochs
        if not always_frozen:
            raise ConfigError("data.cache_features needs a backbone frozen for the whole run: set "
                              "model.freeze_epochs=-1 (or >= train.max_epochs)")
        if d.crop == "random" or d.hflip or any(d.color_jitter):
            raise ConfigError("data.cache_features computes each image's features once, so random "
                              "augmentation cannot apply: set data.crop=center (or none), "
                              "data.hflip=false and data.color_jitter=[0,0,0,0]")
