"""The sample images the Geolocate page offers, in the order a user should try them.

1. **Test tiles** (``assets/tiles``): a handful of held-out test tiles of the ``geo-patches``
   demo data set, the images the demo model is built for and was measured on
   (checkpoints/geolocator-demo/metrics.json, split ``test``), with their true positions,
   so a guess is scored at once. The JPEG bytes are copied unchanged, so the model sees
   exactly what it saw in evaluation. ``write_sample_tiles`` picks and writes them.
2. **Photos** (``assets/photos``): street and close-up photos, and satellite views at a
   larger scale than the tiles; outside the demo model's training distribution. Their true
   position (if any) is in their EXIF GPS.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import InputError, NotFoundError
from workbench.paths import ASSETS

TILES_DIR = ASSETS / "tiles"
PHOTOS_DIR = ASSETS / "photos"
TILES_CSV = "tiles.csv"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
TILE_NOTE = "held-out test tile of the demo data set (what the demo model was trained for)"
PHOTO_NOTE = "outside the demo model's training distribution (it was trained on 64 px satellite tiles)"


@dataclass(frozen=True)
class Sample:
    """One offered image. lat / lon: its true position in degrees (None: from EXIF or a click)."""

    kind: str  # "tile" | "photo"
    name: str
    path: Path
    what: str = ""
    lat: float | None = None
    lon: float | None = None

    @property
    def label(self) -> str:
        return f"{self.name} · {self.what}" if self.what else self.name


def sample_tiles(folder: str | Path = TILES_DIR) -> list[Sample]:
    """The committed test tiles with their positions ([] if the folder has none)."""
    csv = Path(folder) / TILES_CSV
    if not csv.is_file():
        return []
    frame = pd.read_csv(csv, keep_default_na=False)
    return [Sample("tile", str(r.file), Path(folder) / str(r.file), str(r.place), float(r.lat), float(r.lon))
            for r in frame.itertuples() if (Path(folder) / str(r.file)).is_file()]


def sample_photos(folder: str | Path = PHOTOS_DIR) -> list[Sample]:
    """The photos in assets/photos with their manifest's description."""
    folder = Path(folder)
    described = {}
    if (folder / "manifest.json").is_file():
        manifest = json.loads((folder / "manifest.json").read_text())
        described = {p["file"]: p.get("what", "") for p in manifest.get("photos", [])}
    return [Sample("photo", p.name, p, described.get(p.name, ""))
            for p in sorted(folder.glob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]


def spread_sample(lat: np.ndarray, lon: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of n points spread over the globe: greedy farthest-point sampling on the
    sphere (each pick maximises its distance to the ones already picked), from a seeded start."""
    from workbench.geo import latlon_to_xyz

    xyz = latlon_to_xyz(np.asarray(lat, np.float64), np.asarray(lon, np.float64)).reshape(-1, 3)  # [N, 3]
    n = min(n, len(xyz))
    picked = [int(np.random.default_rng(seed).integers(len(xyz)))] if n else []
    nearest = np.full(len(xyz), np.inf)
    for _ in range(n - 1):  # n picks (a handful), each one vectorised over all points
        nearest = np.minimum(nearest, np.linalg.norm(xyz - xyz[picked[-1]], axis=1))
        picked.append(int(np.argmax(nearest)))
    return np.asarray(picked, np.int64)


def write_sample_tiles(patches_csv: str | Path, out: str | Path = TILES_DIR, n: int = 8,
                       split: str = "test", seed: int = 0) -> pd.DataFrame:
    """Copy n tiles of ``split`` (spread over the globe) and write tiles.csv; return it.

    tiles.csv: file, lat, lon, place, country, split, source (the path in the data set).
    """
    patches_csv = Path(patches_csv)
    if not patches_csv.is_file():
        raise NotFoundError(f"{patches_csv} not found; build it with "
                            "python -m workbench data build-demo --only geo-patches")
    frame = pd.read_csv(patches_csv, keep_default_na=False)
    rows = frame[frame["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise InputError(f"{patches_csv} has no rows in split {split!r}")
    rows = rows.iloc[spread_sample(rows["lat"].to_numpy(), rows["lon"].to_numpy(), n, seed)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for src in rows["path"]:
        name = f"{split}_{Path(src).name}"
        shutil.copyfile(patches_csv.parent / src, out / name)
        files.append(name)
    table = pd.DataFrame({"file": files, "lat": rows["lat"].to_numpy(), "lon": rows["lon"].to_numpy(),
                          "place": rows["place"].to_numpy(), "country": rows["country"].to_numpy(),
                          "split": split, "source": rows["path"].to_numpy()})
    table.to_csv(out / TILES_CSV, index=False)
    return table
