"""The ``satclip`` run config: data, model (image backbone, location encoder, heads) and
loss sections. The bottom of the line: it imports only the core."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from workbench.config import RunConfig, TrainConfig, option
from workbench.errors import ConfigError
from workbench.registry import RegistryNames

LOCATION_ENCODERS = RegistryNames("workbench.encoders.location:LOCATION_ENCODERS")
SOURCES = ("geo-patches", "s2-100k")
# the frozen baselines ``probes.default_encoders`` builds (named here: the config imports only the core)
PROBE_ENCODERS = ("raw_latlon", "geoclip", "rff", "sh10", "sh40", "sh40_siren")


@dataclass
class SatClipDataConfig:
    source: str = option("geo-patches", "geo-patches: the offline demo tiles (RGB + relief + ETOPO + land mask); "
                                        "s2-100k: a folder of multi-band GeoTIFFs + index.csv", choices=SOURCES)
    dir: str = option("data/geo-patches", "the dataset folder")
    image_size: int = option(64, "tiles are read at this size", unit="px", ge=8, le=512)
    # image augmentations need a backbone that runs every step (model.freeze_backbone=false);
    # frozen, the features are computed once and cached, so they stay off by default
    crop: int = option(64, "random crop for training, centre crop for evaluation (<= image_size)", unit="px",
                       ge=8, le=512)
    flips: bool = option(False, "random horizontal and vertical flips (training)")
    blur_p: float = option(0.0, "probability of a Gaussian blur per tile (training)", ge=0, le=1)
    jitter_deg: float = option(0.05, "coordinate jitter (training), degrees", unit="degrees", ge=0, le=5)
    val_fraction: float = option(0.2, "held out as whole S2 cells (s2-100k; geo-patches has its split)", gt=0, lt=1)
    split_level: int = option(4, "S2 level of the held-out cells (s2-100k)", ge=0, le=30)
    cache_dir: str = option("data/cache/satclip", "frozen-backbone features are cached here")


@dataclass
class SatClipModelConfig:
    backbone: str = option("efficientnet-lite0", "image encoder: a preset with offline weights "
                                                 "(efficientnet-lite0) or a timm name (resnet18, resnet50, "
                                                 "vit_small: any tile size)")
    weights: str = option("offline", "offline (the preset's packaged weights), none, hub (needs internet), "
                                     "or a state-dict file")
    freeze_backbone: bool = option(True, "train only the heads on cached backbone features (the note's setup); "
                                         "false fine-tunes the whole image encoder")
    location_encoder: str = option("sh_siren", "location encoder (trained with the heads unless frozen)",
                                   choices=LOCATION_ENCODERS)
    legendre_degrees: int = option(10, "sh_siren: spherical-harmonic degree L (L^2 features; 10 or 40)",
                                   ge=1, le=60, applies={"location_encoder": ("sh_siren",)})
    location_dim: int = option(256, "location encoder output width", unit="dims", ge=1)
    freeze_location: bool = option(False, "keep the location encoder fixed (e.g. pretrained geoclip)")
    embed_dim: int = option(256, "shared embedding width", unit="dims", ge=1)
    dropout: float = option(0.1, "dropout in the projection heads", ge=0, lt=1)


@dataclass
class SatClipProbeConfig:
    """The location-embedding probe table written when a run finishes (satclip probe)."""

    points: int = option(4000, "probe points sampled on the sphere; 0 = no probes", unit="points", ge=0, le=200000)
    where: str = option("anywhere", "where the points lie: anywhere (area-uniform), land, or the photo gallery",
                        choices=("anywhere", "land", "gallery"))
    seeds: int = option(5, "splits (held-out S2 cells) and probe inits; mean +- std over them", unit="seeds",
                        ge=1, le=20)
    baselines: list[str] = option(["raw_latlon", "geoclip", "rff", "sh10", "sh40"],
                                  "encoders probed beside the trained one (satclip probe --help lists them)")


@dataclass
class SatClipConfig(RunConfig):
    main_sections: ClassVar[tuple[str, ...]] = ("data", "model", "train")

    kind: str = option("satclip", "experiment kind")
    data: SatClipDataConfig = field(default_factory=SatClipDataConfig)
    model: SatClipModelConfig = field(default_factory=SatClipModelConfig)
    probe: SatClipProbeConfig = field(default_factory=SatClipProbeConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-3, batch_size=256, max_epochs=20))

    def __post_init__(self):
        super().__post_init__()
        check_config(self)


def check_config(cfg: SatClipConfig) -> None:
    d, m = cfg.data, cfg.model
    unknown = [name for name in cfg.probe.baselines if name not in PROBE_ENCODERS]
    if unknown:
        raise ConfigError(f"probe.baselines: unknown encoder(s) {unknown}. Available: {list(PROBE_ENCODERS)}")
    if d.crop > d.image_size:
        raise ConfigError(f"data.crop ({d.crop} px) must be <= data.image_size ({d.image_size} px)")
    if m.freeze_backbone and (d.crop != d.image_size or d.flips or d.blur_p):
        raise ConfigError("model.freeze_backbone computes each tile's features once, so image augmentation "
                          "cannot apply: set data.crop=data.image_size, data.flips=false and data.blur_p=0 "
                          "(coordinate jitter still applies), or model.freeze_backbone=false")
