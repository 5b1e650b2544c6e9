"""The SatCLIP line's data: multi-band tiles with their locations, batch augmentations and a
cache of frozen-backbone features.

Two sources, one output ([n, C, S, S] float32 images + lat/lon degrees); ``in_chans`` is C:

- **S2-100K** (SatCLIP's release): ``index.csv`` (``fn,lon,lat`` -- lon first) + GeoTIFF
  patches of 12 or 13 Sentinel-2 bands, uint16 reflectance / 10,000. The released files have
  12 bands; SatCLIP inserts a zero B10 at index 10 to reach the 13 of its MoCo backbones
  (``insert_b10``).
- **geo-patches** (the offline demo): the Blue Marble RGB JPEGs + the 7 bands of
  ``bands.npy`` (shaded relief RGB, ETOPO colour RGB, land mask) = 10 channels.

Batches are gathered by index from tensors held in memory (``TileBatches.__getitems__``), so
the DataLoader never collates per sample; augmentations act on the whole batch with one
gather (crop + flips) and one depthwise convolution (blur).
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from workbench.errors import ConfigError, InputError, NotFoundError
from workbench.io import write_bytes

S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
            "B11", "B12"]  # the 13 Sentinel-2 L1C bands; the 12-band files lack B10
S2_SCALE = 10_000.0  # DN -> reflectance
FILE_COLUMNS = ("fn", "file", "path")  # accepted names of the file-name column, first wins
LAND_MASK_CODES = {"sea": 0, "land": 1, "lake": 2}  # values in geo-patches bands.npy


def s2_band_names(n_bands: int) -> list[str]:
    """Sentinel-2 band names for a 12- (no B10) or 13-band stack."""
    if n_bands == 13:
        return list(S2_BANDS)
    if n_bands == 12:
        return [b for b in S2_BANDS if b != "B10"]
    raise InputError(f"S2 patches must have 12 or 13 bands, got {n_bands}")


# -- S2-100K -------------------------------------------------------------------------------
def load_s2_index(folder: str | Path) -> pd.DataFrame:
    """The S2-100K index as a DataFrame(path, lat, lon): absolute file paths, degrees.

    ``index.csv`` needs a file-name column (``fn``, ``file`` or ``path``) and ``lon``,
    ``lat`` in any order (names case-insensitive). A file name is looked up in
    ``folder/images/`` (the released layout) and then in ``folder/``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFoundError(f"S2-100K folder {folder} does not exist; pass the folder that "
                            "holds index.csv and images/")
    csv = folder / "index.csv"
    if not csv.is_file():
        raise NotFoundError(f"no index.csv in {folder}; an S2-100K folder holds index.csv "
                            "(columns fn,lon,lat) and the GeoTIFF patches")
    raw = pd.read_csv(csv)
    columns = {str(c).strip().lower(): c for c in raw.columns}
    file_col = next((columns[c] for c in FILE_COLUMNS if c in columns), None)
    missing = [c for c in ("lon", "lat") if c not in columns] + (
        [] if file_col is not None else ["fn (or file / path)"])
    if missing:
        raise InputError(f"{csv} lacks column(s) {missing}; found {list(raw.columns)}; "
                         "expected a file name column (fn, file or path), lon and lat")
    lat = pd.to_numeric(raw[columns["lat"]], errors="coerce").to_numpy(np.float64)
    lon = pd.to_numeric(raw[columns["lon"]], errors="coerce").to_numpy(np.float64)
    for name, values, bound in (("lat", lat, 90.0), ("lon", lon, 180.0)):
        bad = np.flatnonzero(~(np.abs(values) <= bound))  # also catches NaN
        if len(bad):
            i = bad[0]
            raise InputError(
                f"{csv}: {len(bad)} row(s) with {name} outside [-{bound:g}, {bound:g}] or not a "
                f"number, first row {i} ({raw[file_col].iloc[i]}: {name}={raw[columns[name]].iloc[i]}); "
                "S2-100K lists lon before lat (fn,lon,lat): check the columns are not swapped")
    names = raw[file_col].astype(str).str.strip()
    base = folder / "images" if (folder / "images").is_dir() else folder
    paths = [base / n if (base / n).is_file() else folder / n for n in names]  # one stat per file
    absent = [p for p in paths if not p.is_file()]
    if absent:
        raise NotFoundError(f"{len(absent)} of {len(paths)} files in {csv} are missing, first "
                            f"{absent[0]}; looked in {base}")
    return pd.DataFrame({"path": [str(p) for p in paths], "lat": lat, "lon": lon})


def _read_tif_chw(path: str | Path) -> np.ndarray:
    """One GeoTIFF as [C, H, W] in its stored integer dtype.

    tifffile returns [C, H, W] for band-separate files and [H, W, C] for pixel-interleaved
    ones; the bands are the smallest axis (a patch has at most a few dozen bands and is at
    least as wide), so a last axis smaller than the first means [H, W, C].
    """
    import tifffile

    try:
        array = tifffile.imread(path)
    except Exception as error:  # tifffile raises TiffFileError, ValueError, struct.error, ...
        raise InputError(f"cannot read GeoTIFF {path}: {type(error).__name__}: {error}; "
                         "re-download or remove it from index.csv") from error
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or 0 in array.shape:  # tifffile gives an empty array for a bad page offset
        raise InputError(f"cannot read GeoTIFF {path}: got an array of shape {array.shape}, "
                         "expected [C, H, W] or [H, W, C]; re-download or remove it from index.csv")
    if array.shape[-1] < array.shape[0]:
        array = array.transpose(2, 0, 1)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"GeoTIFF {path} holds {array.dtype}; expected integer reflectance "
                         "(uint16 DN, divided by 10,000 here)")
    return array


def read_patches(paths: Sequence[str | Path], size: int, *, resize: bool = False,
                 insert_b10: bool = False) -> np.ndarray:
    """S2 patches as reflectance [n, C, size, size] float32 (DN / 10,000).

    A patch larger than ``size`` is center-cropped, or resized (bilinear, antialiased) when
    ``resize``; a smaller one needs ``resize``. ``insert_b10`` turns 12-band patches into
    SatCLIP's 13 by inserting a zero band at index 10. All patches must have the same bands.
    """
    if not paths:
        raise InputError("read_patches needs at least one path")
    out: np.ndarray | None = None
    for i, path in enumerate(paths):  # file I/O is per file; the pixels move as whole arrays
        chw = _read_tif_chw(path)
        c, h, w = chw.shape
        if out is None:
            out = np.empty((len(paths), c, size, size), np.float32)
        elif c != out.shape[1]:
            raise InputError(f"{path} has {c} bands but {paths[0]} has {out.shape[1]}; "
                             "all patches of a set must have the same bands")
        if resize and (h, w) != (size, size):
            tile = torch.from_numpy(chw.astype(np.float32))[None]
            out[i] = F.interpolate(tile, size=(size, size), mode="bilinear",
                                   antialias=True, align_corners=False)[0].numpy()
        elif h >= size and w >= size:
            top, left = (h - size) // 2, (w - size) // 2
            out[i] = chw[:, top:top + size, left:left + size]
        else:
            raise InputError(f"{path} is {h}x{w} px, smaller than size={size}; pass "
                             "resize=True or a smaller size")
    out /= S2_SCALE  # exact DN in float32, then one correctly rounded division
    if insert_b10:
        if out.shape[1] != 12:
            raise InputError(f"insert_b10 expects 12-band patches, got {out.shape[1]} bands")
        out = np.insert(out, 10, 0.0, axis=1)
    return out


def make_s2_100k_sample(folder: str | Path, n: int, bands: int = 13, size: int = 32,
                        seed: int = 0, layout: str = "chw") -> np.ndarray:
    """Write a tiny S2-100K-shaped set: ``images/{i:05d}.tif`` + ``index.csv`` (fn,lon,lat).

    In the library (not only the tests) so that the demo and the bench can time GeoTIFF
    decoding offline. ``layout``: ``"chw"`` (band-separate) or ``"hwc"`` (pixel-interleaved),
    the two orders tifffile hands back. Locations are uniform on the sphere. Returns the
    written DN [n, bands, size, size] uint16.
    """
    import tifffile

    if layout not in ("chw", "hwc"):
        raise ConfigError(f"layout must be 'chw' or 'hwc', got {layout!r}")
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    dn = rng.integers(0, 12_000, size=(n, bands, size, size), dtype=np.uint16)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lon = rng.uniform(-180, 180, n)
    names = [f"{i:05d}.tif" for i in range(n)]
    for name, tile in zip(names, dn, strict=True):
        if layout == "chw":
            tifffile.imwrite(folder / "images" / name, tile, photometric="minisblack",
                             planarconfig="separate")
        else:
            tifffile.imwrite(folder / "images" / name, tile.transpose(1, 2, 0),
                             photometric="minisblack", planarconfig="contig")
    pd.DataFrame({"fn": names, "lon": np.round(lon, 6), "lat": np.round(lat, 6)}).to_csv(
        folder / "index.csv", index=False)
    return dn


# -- geo-patches ---------------------------------------------------------------------------
def geo_patch_band_names(land_mask: str = "scaled") -> list[str]:
    """Channel names of ``load_geo_patch_bands`` (10 with a scaled mask, 12 one-hot)."""
    from workbench.data.demo_patches import BAND_NAMES

    rgb = ["bluemarble_r", "bluemarble_g", "bluemarble_b"]
    if land_mask == "scaled":
        return rgb + BAND_NAMES
    if land_mask == "onehot":
        return rgb + BAND_NAMES[:-1] + [f"land_mask_{k}" for k in LAND_MASK_CODES]
    raise ConfigError(f"land_mask must be 'scaled' or 'onehot', got {land_mask!r}")


def load_geo_patch_bands(folder: str | Path, rows: Sequence[int] | np.ndarray | None = None,
                         land_mask: str = "scaled", dtype=np.float32) -> np.ndarray:
    """Demo tiles as [n, C, S, S] in [0, 1]: Blue Marble RGB (JPEG) + the 7 extra bands.

    Colour bands are divided by 255. The land mask (0 sea, 1 land, 2 lake) becomes one
    channel with sea 0, lake 0.5, land 1 (``"scaled"``, C = 10: the value orders how much
    land a pixel is, which 0/1/2 / 2 would not) or three one-hot channels (``"onehot"``,
    C = 12). ``rows`` selects tiles (all by default); ``dtype=np.float16`` halves memory.
    Names: ``geo_patch_band_names(land_mask)``.
    """
    from workbench.data.demo_patches import load_geo_patches

    names = geo_patch_band_names(land_mask)  # validates land_mask
    patches = load_geo_patches(folder)
    rows = np.arange(len(patches.frame)) if rows is None else np.asarray(rows, dtype=np.intp)
    rgb = patches.rgb(rows)  # (n, 3, S, S) uint8
    bands = np.asarray(patches.bands[rows])  # (n, 7, S, S) uint8, read from the memmap
    mask = bands[:, -1]
    if mask.size and mask.max() > 2:
        raise InputError(f"{folder}/bands.npy land_mask holds {int(mask.max())}; expected 0 sea, "
                         "1 land, 2 lake: rebuild with python -m workbench data build-demo "
                         "--only geo-patches --force")
    n, _, s, _ = rgb.shape
    out = np.empty((n, len(names), s, s), dtype)
    out[:, :3] = rgb / np.float32(255)
    out[:, 3:9] = bands[:, :6] / np.float32(255)
    if land_mask == "scaled":
        out[:, 9] = np.array([0.0, 1.0, 0.5], np.float32)[mask]  # sea, land, lake
    else:
        out[:, 9:] = mask[:, None] == np.arange(3, dtype=np.uint8)[None, :, None, None]
    return out


# -- batches gathered by index -------------------------------------------------------------
def _as_ids(ids, n: int) -> torch.Tensor:
    ids = torch.arange(n) if ids is None else torch.as_tensor(np.asarray(ids), dtype=torch.long)
    if ids.shape != (n,):
        raise InputError(f"ids has shape {tuple(ids.shape)}; expected ({n},), one per tile")
    return ids


def _as_latlon(latlon, n: int) -> torch.Tensor:
    latlon = torch.as_tensor(np.asarray(latlon), dtype=torch.float32)
    if latlon.shape != (n, 2):
        raise InputError(f"latlon has shape {tuple(latlon.shape)}; expected ({n}, 2) degrees")
    return latlon


class TileBatches(Dataset):
    """Image tiles + locations in memory; ``__getitems__`` gathers a whole batch.

    images [N, C, S, S]: uint8 (4x smaller than float32; multiplied by ``scale``, default
    1/255, when gathered), uint16 (e.g. raw S2 DN with ``scale=1e-4``), or float16 / float32
    (used as stored, times ``scale`` if given). latlon [N, 2] degrees; ids [N] (default row
    numbers) come back as ``"row"``.
    """

    def __init__(self, images: torch.Tensor, latlon, ids=None, band_names: list[str] | None = None,
                 scale: float | None = None):
        if images.ndim != 4:
            raise InputError(f"images must be [N, C, S, S], got shape {tuple(images.shape)}")
        n = len(images)
        self.images, self.latlon, self.ids = images, _as_latlon(latlon, n), _as_ids(ids, n)
        self.scale = scale if scale is not None else (1 / 255 if images.dtype == torch.uint8 else None)
        if band_names is not None and len(band_names) != images.shape[1]:
            raise InputError(f"{len(band_names)} band names for {images.shape[1]} channels")
        self.band_names = band_names

    @property
    def n_bands(self) -> int:
        """``in_chans`` of an image encoder for these tiles."""
        return self.images.shape[1]

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        image = self.images[idx].float()  # (B, C, S, S)
        if self.scale is not None:
            image.mul_(self.scale)
        return {"image": image, "latlon": self.latlon[idx], "row": self.ids[idx]}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}


class FeatureBatches(Dataset):
    """Frozen-backbone features [N, D] + locations; batches like ``TileBatches`` with
    ``"features"`` (float32) in place of ``"image"``."""

    def __init__(self, features: torch.Tensor, latlon, ids=None):
        if features.ndim != 2:
            raise InputError(f"features must be [N, D], got shape {tuple(features.shape)}")
        n = len(features)
        self.features, self.latlon, self.ids = features, _as_latlon(latlon, n), _as_ids(ids, n)

    def __len__(self) -> int:
        return len(self.features)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {"features": self.features[idx].float(), "latlon": self.latlon[idx],
                "row": self.ids[idx]}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}


def collate_batch(batch):
    """``__getitems__`` already returns the batch (a list of samples only from a Subset)."""
    return batch if isinstance(batch, dict) else torch.utils.data.default_collate(batch)


# -- augmentations -------------------------------------------------------------------------
@dataclass
class AugmentDraw:
    """The random choices of one ``augment_batch`` call, one entry per sample."""

    top: torch.Tensor  # [B] long, crop offsets in pixels
    left: torch.Tensor  # [B] long
    hflip: torch.Tensor  # [B] bool, mirror left-right
    vflip: torch.Tensor  # [B] bool, mirror top-bottom
    blur: torch.Tensor  # [B] bool
    jitter: torch.Tensor  # [B, 2] degrees (lat, lon), uniform in +-jitter_deg
    crop: int


def draw_augment(batch: int, size: int, generator: torch.Generator, crop: int | None = None,
                 flips: bool = True, blur_p: float = 0.5, jitter_deg: float = 0.01) -> AugmentDraw:
    """Draw per-sample crop offsets, flips, blur choice and jitter (all on the CPU, in a
    fixed order, so one generator state gives one draw whatever the device)."""
    crop = size if crop is None else crop
    if not 1 <= crop <= size:
        raise ConfigError(f"crop must be in [1, {size}] (the tile size), got {crop}")
    if not 0.0 <= blur_p <= 1.0:
        raise ConfigError(f"blur_p must be in [0, 1], got {blur_p}")
    if jitter_deg < 0:
        raise ConfigError(f"jitter_deg must be >= 0 degrees, got {jitter_deg}")
    g = generator
    top, left = torch.randint(0, size - crop + 1, (2, batch), generator=g)
    hflip, vflip = torch.rand(2, batch, generator=g) < (0.5 if flips else 0.0)
    blur = torch.rand(batch, generator=g) < blur_p
    # symmetric, unlike SatCLIP's rand * 0.01 which only ever moves north-east
    jitter = (torch.rand(batch, 2, generator=g) * 2 - 1) * jitter_deg
    return AugmentDraw(top, left, hflip, vflip, blur, jitter, crop)


def _gaussian_kernel(channels: int, kernel_size: int, sigma: float, device, dtype) -> torch.Tensor:
    """Depthwise 2-D Gaussian weights [C, 1, k, k] summing to 1 per channel."""
    x = torch.arange(kernel_size, device=device, dtype=dtype) - (kernel_size - 1) / 2
    k1 = torch.exp(-0.5 * (x / sigma) ** 2)
    k1 = k1 / k1.sum()
    return (k1[:, None] * k1[None, :]).expand(channels, 1, kernel_size, kernel_size)


def gaussian_blur(images: torch.Tensor, kernel_size: int = 3, sigma: float = 1.0) -> torch.Tensor:
    """Blur every channel of [B, C, H, W] with one Gaussian (depthwise conv, reflect pad)."""
    c, pad = images.shape[1], kernel_size // 2
    weight = _gaussian_kernel(c, kernel_size, sigma, images.device, images.dtype)
    return F.conv2d(F.pad(images, (pad,) * 4, mode="reflect"), weight, groups=c)


def apply_augment(images: torch.Tensor, latlon: torch.Tensor, draw: AugmentDraw,
                  blur_kernel: int = 3, blur_sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a draw: crop + flips as one gather, blur on the chosen samples, jitter.

    images [B, C, S, S] float -> [B, C, crop, crop]; latlon [B, 2] degrees -> lat clipped to
    [-90, 90], lon wrapped to [-180, 180).
    """
    b, c, h, w = images.shape
    dev, crop = images.device, draw.crop
    steps = torch.arange(crop, device=dev)
    # a flip reverses the order the cropped rows / columns are read in
    rows = draw.top.to(dev)[:, None] + torch.where(draw.vflip.to(dev)[:, None], crop - 1 - steps, steps)
    cols = draw.left.to(dev)[:, None] + torch.where(draw.hflip.to(dev)[:, None], crop - 1 - steps, steps)
    flat = (rows[:, :, None] * w + cols[:, None, :]).reshape(b, 1, crop * crop)  # (B, 1, crop^2)
    out = images.reshape(b, c, h * w).gather(2, flat.expand(b, c, crop * crop)).view(b, c, crop, crop)
    chosen = draw.blur.to(dev)
    if chosen.any():
        out[chosen] = gaussian_blur(out[chosen], blur_kernel, blur_sigma)
    return out, shift_latlon(latlon, draw.jitter)


def shift_latlon(latlon: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """latlon + shift [B, 2] degrees: lat clipped to [-90, 90], lon wrapped to [-180, 180)."""
    moved = latlon + shift.to(latlon.device, latlon.dtype)
    lat = moved[:, 0].clamp(-90.0, 90.0)
    lon = torch.remainder(moved[:, 1] + 180.0, 360.0) - 180.0
    lon = torch.where(lon >= 180.0, lon - 360.0, lon)  # remainder can round up to 360
    return torch.stack([lat, lon], dim=1)


def jitter_latlon(latlon: torch.Tensor, jitter_deg: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The coordinate jitter of ``augment_batch`` alone (cached features: no image to augment)."""
    shift = (torch.rand(len(latlon), 2, generator=generator) * 2 - 1) * jitter_deg
    return shift_latlon(latlon, shift)


def augment_batch(images: torch.Tensor, latlon: torch.Tensor, generator: torch.Generator,
                  crop: int | None = None, flips: bool = True, blur_p: float = 0.5,
                  jitter_deg: float = 0.01, blur_kernel: int = 3,
                  blur_sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """SatCLIP's training augmentations on a whole batch, deterministic per generator.

    images [B, C, S, S] float, latlon [B, 2] degrees -> ([B, C, crop, crop], [B, 2]):
    random crop (per-sample offsets), horizontal and vertical flips (each p = 0.5 when
    ``flips``), Gaussian blur with probability ``blur_p`` and a uniform +-``jitter_deg``
    shift of each coordinate. See ``draw_augment`` / ``apply_augment`` for the two halves.
    """
    if images.ndim != 4 or images.shape[2] != images.shape[3]:
        raise InputError(f"images must be square tiles [B, C, S, S], got {tuple(images.shape)}")
    draw = draw_augment(len(images), images.shape[-1], generator, crop, flips, blur_p, jitter_deg)
    return apply_augment(images, latlon, draw, blur_kernel, blur_sigma)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central [.., size, size] of [B, C, H, W] (evaluation's crop)."""
    h, w = images.shape[-2:]
    if not (1 <= size <= h and size <= w):
        raise ConfigError(f"crop size must be in [1, {min(h, w)}] (the tile size), got {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


# -- frozen-feature cache ------------------------------------------------------------------
def tensor_fingerprint(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes: the data part of a cache key."""
    h = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def feature_cache_path(cache_dir: str | Path, key_parts: dict[str, Any]) -> Path:
    """``cache_dir/<sha256 of the key as sorted JSON, 24 hex>.pt``."""
    key = json.dumps(key_parts, sort_keys=True, default=str)
    return Path(cache_dir) / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.pt"


@torch.no_grad()
def _encode(backbone: nn.Module, images, batch_size: int) -> torch.Tensor:
    param = next(backbone.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    n, chunks = len(images), []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        if isinstance(images, TileBatches):
            x = images.__getitems__(list(range(start, stop)))["image"]
        else:
            x = images[start:stop].float()
        y = backbone(x.to(device))
        if y.ndim > 2:  # a feature map (B, D, h, w): global average pool
            y = y.flatten(2).mean(-1)
        chunks.append(y.float().cpu())
    return torch.cat(chunks)


def cached_features(backbone: nn.Module, images: torch.Tensor | TileBatches, cache_dir: str | Path,
                    key_parts: dict[str, Any], batch_size: int = 64) -> torch.Tensor:
    """Pooled features [N, D] float32 (CPU) of a frozen backbone, computed once per key.

    images: float [N, C, S, S] (fed as is) or a ``TileBatches`` (gathered, so scaled).
    key_parts should name everything the features depend on (backbone name, weights,
    in_chans, image size, ``tensor_fingerprint`` of the data); the image shape is added to
    it. The backbone runs in eval mode under no_grad and gets its train/eval mode back. A
    cache file that cannot be read, or was written for another key, is recomputed.
    """
    key = {**key_parts, "images_shape": list(images.images.shape if isinstance(images, TileBatches)
                                             else images.shape)}
    path = feature_cache_path(cache_dir, key)
    key_json = json.dumps(key, sort_keys=True, default=str)
    if path.is_file():
        try:
            payload = torch.load(io.BytesIO(path.read_bytes()), weights_only=True)
            if payload["key"] == key_json:
                return payload["features"]
        except Exception:  # a torn or foreign file: recompute and overwrite it
            pass
    was_training = backbone.training
    backbone.eval()
    try:
        features = _encode(backbone, images, batch_size)
    finally:
        backbone.train(was_training)
    buffer = io.BytesIO()
    torch.save({"features": features, "key": key_json}, buffer)
    write_bytes(path, buffer.getvalue())
    return features
