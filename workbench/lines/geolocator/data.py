"""Geolocation data: an image folder + CSV (path, lat, lon [, split]), transforms, datasets.

The layout is the one of im2gps / MP-16 / OSV-5M style datasets and of the demo
``data/geo-patches`` (see docs/DATA_FORMATS.md): one CSV row per image, ``path`` relative
to an image root (the CSV's folder by default), coordinates in degrees. Extra input bands
(multi-band tiles) come from an optional ``.npy`` array [N, C, H, W] row-aligned with the
CSV and are stacked after RGB, so the network sees ``in_chans = 3 + len(band_indices)``.

Missing, corrupt and truncated images never stop a run: ``scan_images`` drops the files it
cannot open at start-up (counted in a ``DataReport``), and a file that still fails to decode
later makes ``GeoImageDataset`` return None for that sample, which ``collate_skip`` drops.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from workbench.data.images import MAX_DECODED_PIXELS, SUPPORTED_FORMATS, UPLOAD_TYPES, decode_image  # noqa: F401
from workbench.errors import ConfigError, InputError, NotFoundError
from workbench.geo import validate_latlon

REQUIRED_COLUMNS = ("path", "lat", "lon")
IMAGE_FORMATS = SUPPORTED_FORMATS
_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


# -- images -------------------------------------------------------------------------------


def load_image(source: str | Path | bytes | BinaryIO | Image.Image, target_size: int | None = None,
               name: str | None = None, max_pixels: int = MAX_DECODED_PIXELS) -> Image.Image:
    """Decode an image as faithful 8-bit RGB with its EXIF orientation applied
    (``workbench.data.images.decode_image``: every PIL mode, alpha on white, first frame).

    source: a path, the file's bytes (an upload), a binary file object or a PIL image.
    target_size: the smallest side the caller needs; JPEGs much larger than that are decoded
    at 1/2, 1/4 or 1/8 scale (libjpeg's draft mode), so a 50-megapixel photo never becomes a
    50-megapixel array. Other formats above ``max_pixels`` are refused with a message.
    Raises InputError (one line naming the file) for missing, empty, non-image, corrupt or
    truncated data.
    """
    return decode_image(source, name=name, target_size=target_size, max_pixels=max_pixels)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


# -- the CSV table ------------------------------------------------------------------------


def read_table(csv: str | Path, image_root: str | Path | None = None) -> pd.DataFrame:
    """The CSV as a frame: path (absolute), lat, lon, split (or missing), row (CSV row index).

    Raises InputError for a missing column, non-numeric or out-of-range coordinates (the
    message names the row) and NotFoundError for a missing CSV.
    """
    csv = Path(csv)
    if not csv.is_file():
        raise NotFoundError(f"data CSV not found: {csv}; for the demo data run: "
                            "python -m workbench data build-demo --only geo-patches")
    try:
        frame = pd.read_csv(csv, keep_default_na=False, dtype={"path": str, "split": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"cannot parse {csv} as CSV: {_first_line(exc)}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{csv} lacks column(s) {missing}; found {list(frame.columns)}. "
                         f"Expected: path, lat, lon [, split]")
    lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(np.float64)
    lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(np.float64)
    try:
        validate_latlon(lat, lon)
    except InputError as exc:
        raise InputError(f"{csv}: {exc}") from None
    root = Path(image_root) if image_root else csv.parent
    out = pd.DataFrame({
        "path": [str(root / p) for p in frame["path"].astype(str)],
        "lat": lat, "lon": lon, "row": np.arange(len(frame)),
    })
    if "split" in frame.columns:
        out["split"] = frame["split"].astype(str).str.strip().to_numpy()
    for col in ("place", "country"):
        if col in frame.columns:
            out[col] = frame[col].astype(str).to_numpy()
    return out


def ensure_splits(frame: pd.DataFrame, val_fraction: float, seed: int,
                  train: str = "train", val: str = "val") -> pd.DataFrame:
    """Add a ``split`` column when the CSV has none: whole level-4 S2 cells (~600 km) go to
    validation until it holds ``val_fraction`` of the points, so that nearby images never sit
    on both sides."""
    if "split" in frame.columns:
        return frame
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    from workbench.geo.splits import split_by_cell

    split, _ = split_by_cell(frame["lat"].to_numpy(), frame["lon"].to_numpy(), level=4, seed=seed,
                             fractions=(1.0 - val_fraction, val_fraction, 0.0))
    names = np.where(split == "train", train, val)
    return frame.assign(split=names)


# -- scanning for unreadable files --------------------------------------------------------


@dataclass
class DataReport:
    """What was dropped from the data and why (written to artifacts/data_report.json)."""

    n_rows: int = 0
    n_missing: int = 0
    n_corrupt: int = 0
    n_failed_at_load: int = 0
    examples: list[str] = field(default_factory=list)  # first few "path: reason" lines

    def add(self, path: str, reason: str, kind: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < 20:
            self.examples.append(f"{path}: {reason}")

    @property
    def n_skipped(self) -> int:
        return self.n_missing + self.n_corrupt + self.n_failed_at_load

    def summary(self) -> str:
        return (f"{self.n_skipped} of {self.n_rows} images skipped ({self.n_missing} missing, "
                f"{self.n_corrupt} corrupt, {self.n_failed_at_load} failed while loading)")

    def to_dict(self) -> dict:
        return {"n_rows": self.n_rows, "n_missing": self.n_missing, "n_corrupt": self.n_corrupt,
                "n_failed_at_load": self.n_failed_at_load, "n_skipped": self.n_skipped,
                "examples": list(self.examples)}


def scan_images(paths: Sequence[str], report: DataReport) -> np.ndarray:
    """Bool mask [N]: files that exist and whose header Pillow can parse. Failures go to
    ``report``. Only headers are read (``Image.verify``), ~0.1 ms per file; a file truncated
    after its header passes and is caught at load time instead."""
    ok = np.ones(len(paths), dtype=bool)
    report.n_rows += len(paths)
    for i, path in enumerate(paths):  # file I/O: one open per file
        if not Path(path).is_file():
            ok[i] = False
            report.add(path, "file not found", "n_missing")
            continue
        try:
            with Image.open(path) as image:
                image.verify()
        except _READ_ERRORS as exc:
            ok[i] = False
            report.add(path, _first_line(exc), "n_corrupt")
    return ok


# -- transforms ---------------------------------------------------------------------------


@dataclass
class ImageTransform:
    """[C, H, W] float tensor in [0, 1] -> the network input [C, S, S] (S = size).

    Geometry applies to all channels (RGB and extra bands alike); colour jitter to the first
    three (RGB) only; then per-channel normalisation ``(x - mean) / std``.
    """

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop: str = "center"  # center | random | none
    resize: int = 0
    crop_scale: float = 0.6
    color_jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    hflip: bool = False
    train: bool = False

    def __post_init__(self) -> None:
        from torchvision.transforms import v2

        self._jitter = v2.ColorJitter(*self.color_jitter) if self.train and any(self.color_jitter) else None
        self._mean = torch.tensor(self.mean, dtype=torch.float32)[:, None, None]
        self._std = torch.tensor(self.std, dtype=torch.float32)[:, None, None]

    @property
    def random(self) -> bool:
        """True if the output depends on the RNG (training augmentation)."""
        return self.train and (self.crop == "random" or self.hflip or self._jitter is not None)

    def geometry(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as F

        if self.crop == "none":
            return F.resize(x, [self.size, self.size], antialias=True)
        if self.crop == "random" and self.train:
            from torchvision.transforms import v2

            top, left, h, w = v2.RandomResizedCrop.get_params(x, (self.crop_scale, 1.0), (3 / 4, 4 / 3))
            return F.resized_crop(x, top, left, h, w, [self.size, self.size], antialias=True)
        x = F.resize(x, self.resize or self.size, antialias=True)  # shorter side
        return F.center_crop(x, [self.size, self.size])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != len(self.mean):
            raise InputError(f"the image has {x.shape[0]} channels, the model expects {len(self.mean)}")
        x = self.geometry(x)
        if self.train and self.hflip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        if self._jitter is not None:
            x = torch.cat([self._jitter(x[:3]).clamp(0, 1), x[3:]], 0)
        return (x - self._mean) / self._std


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> float [3, H, W] in [0, 1]."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def normalization(mode: str, backbone_mean: Sequence[float], backbone_std: Sequence[float],
                  in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per input channel for data.normalize; extra bands use 0.5 / 0.5."""
    from workbench.encoders.image import IMAGENET_MEAN, IMAGENET_STD

    rgb = {"backbone": (backbone_mean[:3], backbone_std[:3]), "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
           "half": ((0.5,) * 3, (0.5,) * 3), "none": ((0.0,) * 3, (1.0,) * 3)}[mode]
    extra_mean = tuple(backbone_mean[3:in_chans]) if mode == "backbone" else ()
    extra_std = tuple(backbone_std[3:in_chans]) if mode == "backbone" else ()
    mean = tuple(float(v) for v in rgb[0]) + extra_mean
    std = tuple(float(v) for v in rgb[1]) + extra_std
    fill = in_chans - len(mean)
    return mean + (0.5,) * fill, std + (0.5,) * fill


# -- datasets -----------------------------------------------------------------------------


class GeoImageDataset(Dataset):
    """Samples {"image" [C, S, S], "label" int64, "latlon" [2] float64, "index" int64}.

    frame: rows with path (absolute), lat, lon, row (CSV row, for the bands file);
    labels: [N] class index per row; bands: optional uint8 array [N_csv, C, H, W] (memory-
    mapped) and the channel indices to append. Returns None for an image that fails to
    decode (reported once on stderr and counted in ``report``).
    """

    def __init__(self, frame: pd.DataFrame, labels: np.ndarray, transform: ImageTransform,
                 bands: np.ndarray | None = None, band_indices: Sequence[int] = (),
                 report: DataReport | None = None):
        self.frame = frame.reset_index(drop=True)
        self.paths = self.frame["path"].tolist()
        self.rows = self.frame["row"].to_numpy()
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.latlon = torch.from_numpy(self.frame[["lat", "lon"]].to_numpy(np.float64).copy())
        self.transform = transform
        self.bands = bands
        self.band_indices = list(band_indices)
        self.report = report if report is not None else DataReport()
        self._failed: set[int] = set()
        self._load_size = max(transform.size, transform.resize)

    def __len__(self) -> int:
        return len(self.paths)

    def raw(self, i: int) -> torch.Tensor:
        """Float [C, H, W] in [0, 1] before the transform (RGB + extra bands)."""
        x = to_tensor(load_image(self.paths[i], target_size=self._load_size))
        if self.bands is not None and self.band_indices:
            from torchvision.transforms.v2 import functional as F

            extra = torch.from_numpy(np.asarray(self.bands[self.rows[i], self.band_indices], np.float32))
            extra = extra / 255.0
            if extra.shape[-2:] != x.shape[-2:]:
                extra = F.resize(extra, list(x.shape[-2:]), antialias=True)
            x = torch.cat([x, extra], 0)
        return x

    def __getitem__(self, i: int) -> dict[str, torch.Tensor] | None:
        try:
            x = self.transform(self.raw(i))
        except InputError as exc:
            if i not in self._failed:
                self._failed.add(i)
                self.report.add(self.paths[i], str(exc), "n_failed_at_load")
                print(f"warning: skipping image: {exc}", file=sys.stderr)
            return None
        return {"image": x, "label": self.labels[i], "latlon": self.latlon[i],
                "index": torch.tensor(i, dtype=torch.int64)}


class FeatureDataset(Dataset):
    """Precomputed backbone features: samples {"image": [D] features, "label", "latlon", "index"}.

    The classifier's forward takes [B, D] features as well as [B, C, H, W] images, so the
    same training step and evaluation run on either.
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, latlon: torch.Tensor,
                 frame: pd.DataFrame):
        self.features, self.labels, self.latlon = features, labels, latlon
        self.frame = frame.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.features[i], "label": self.labels[i], "latlon": self.latlon[i],
                "index": torch.tensor(i, dtype=torch.int64)}


def collate_skip(samples: list[dict | None]) -> dict[str, torch.Tensor]:
    """default_collate without the samples that failed to load (None). An all-failed batch
    becomes an empty batch (B = 0), which the training step turns into a zero loss."""
    kept = [s for s in samples if s is not None]
    if not kept:
        return {"image": torch.zeros(0), "label": torch.zeros(0, dtype=torch.int64),
                "latlon": torch.zeros(0, 2, dtype=torch.float64),
                "index": torch.zeros(0, dtype=torch.int64)}
    return torch.utils.data.default_collate(kept)


def load_bands(path: str | Path, n_rows: int, indices: Sequence[int]) -> np.ndarray:
    """Memory-map a bands file [N, C, H, W] and check it against the CSV and the indices."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"bands file not found: {path} (data.bands_file)")
    bands = np.load(path, mmap_mode="r")
    if bands.ndim != 4 or bands.shape[0] != n_rows:
        raise InputError(f"{path} has shape {bands.shape}; expected [N={n_rows}, C, H, W] "
                         "row-aligned with the CSV")
    bad = [i for i in indices if not 0 <= i < bands.shape[1]]
    if bad:
        raise ConfigError(f"data.band_indices {bad} out of range: {path} has {bands.shape[1]} channels")
    return bands


def in_chans_of(cfg: Any) -> int:
    """Input channels the config implies: RGB plus the selected extra bands."""
    return 3 + (len(cfg.band_indices) if cfg.bands_file else 0)
