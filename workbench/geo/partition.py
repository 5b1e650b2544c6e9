"""Adaptive S2 partitions of the globe into classes (PlaNet / GeoEstimation style).

Start from every S2 cell at ``min_level`` that holds data; split every cell holding more than
``t_max`` points into its children (down to ``max_level``, where splitting stops); drop
every cell holding fewer than ``t_min`` points. Dense regions end up with small cells,
sparse ones with large cells, and empty ocean with none. Each kept cell is one class of a
geolocation classifier; its prediction is the centroid of the training points inside it.

Class indices follow the S2 id order (a Hilbert curve), so neighbouring classes are
usually neighbouring places.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ConfigError, InputError, NotFoundError
from workbench.geo.distances import haversine_km, latlon_to_xyz, xyz_to_latlon
from workbench.geo.metrics import DEFAULT_THRESHOLDS_KM, error_summary
from workbench.geo.s2 import (
    MAX_LEVEL,
    _parent_unchecked,
    cell_center_latlon,
    cell_id_to_token,
    cell_level,
    cell_polygons,
    cell_range,
    s2_cell_ids,
    token_to_cell_id,
)
from workbench.geo.validate import to_numpy, validate_latlon
from workbench.io import atomic_path

_HEADER = "# workbench S2 partition"
_COLUMNS = ["token", "level", "count", "lat", "lon", "center_lat", "center_lon"]


@dataclass
class Partition:
    """A set of disjoint S2 cells, one per class; row k of ``cells`` is class k.

    ``cells`` columns: token (S2 token), cell_id (uint64), level, count (training points
    inside), lat / lon (centroid of those points on the sphere: the class's predicted
    location), center_lat / center_lon (the S2 cell centre), and parent_l<L> for every
    level L the partition uses except its finest: the token of the cell's ancestor at level L
    (the cell's own token when the cell is at level L or coarser). Those columns give
    nested hierarchical labels; see ``hierarchy``.
    """

    cells: pd.DataFrame
    t_min: int
    t_max: int
    min_level: int
    max_level: int
    n_points: int  # points the partition was built from (kept or not)

    def __len__(self) -> int:
        return len(self.cells)

    @property
    def ids(self) -> np.ndarray:
        """uint64 [K] cell ids, sorted."""
        return self.cells["cell_id"].to_numpy(dtype=np.uint64)

    @property
    def levels(self) -> list[int]:
        """The distinct S2 levels of the kept cells, coarse to fine."""
        return sorted(int(v) for v in np.unique(self.cells["level"].to_numpy()))

    def centroids(self) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) [K] degrees: each class's predicted location."""
        return self.cells["lat"].to_numpy(np.float64), self.cells["lon"].to_numpy(np.float64)

    def polygons(self) -> np.ndarray:
        """Cell outlines [K, 4, 2] of (lat, lon) degrees, for drawing (see s2.cell_polygons)."""
        return cell_polygons(self.ids)

    def assign(self, lat: Any, lon: Any) -> np.ndarray:
        """Class index of each point: int64 [N], -1 for points outside every kept cell.

        lat, lon: [N] degrees (validated).
        """
        leaf = s2_cell_ids(lat, lon, MAX_LEVEL).ravel()
        if len(self) == 0:
            return np.full(leaf.size, -1, dtype=np.int64)
        lo, hi = cell_range(self.ids)  # disjoint ranges, sorted because ids are sorted
        k = np.searchsorted(lo, leaf, side="right") - 1
        inside = (k >= 0) & (leaf <= hi[np.maximum(k, 0)])
        return np.where(inside, k, -1)

    def ancestor_tokens(self, level: int) -> np.ndarray:
        """Token of each cell's ancestor at ``level`` ([K] str); a cell at ``level`` or
        coarser stands for itself, so the groups are nested across levels."""
        ids = self.ids
        own = self.cells["level"].to_numpy()
        anc = np.where(own > level, _parent_unchecked(ids, min(level, MAX_LEVEL)), ids)
        return cell_id_to_token(anc)

    def hierarchy(self, levels: list[int] | None = None) -> pd.DataFrame:
        """Hierarchical labels: for each class k (rows) and each level L (columns
        "l<L>"), the index of k's group at L, numbered 0.. in class order.

        A classifier with one head per level uses ``hierarchy().to_numpy()[y]`` as the
        targets for fine labels ``y``; groups nest (classes sharing a group at a fine level
        share it at every coarser level). Defaults to the partition's own levels, so the
        finest column is the identity.
        """
        levels = self.levels if levels is None else sorted(int(v) for v in levels)
        return pd.DataFrame(
            {f"l{lv}": pd.factorize(self.ancestor_tokens(lv))[0].astype(np.int64) for lv in levels}
        )

    def nest_in(self, coarser: "Partition") -> np.ndarray:
        """Index of the cell of ``coarser`` containing each of this partition's cells,
        int64 [K], -1 where none does (e.g. GeoEstimation's coarse / middle / fine)."""
        lo, hi = cell_range(self.ids)
        c_lo, c_hi = cell_range(coarser.ids)
        k = np.searchsorted(c_lo, lo, side="right") - 1
        safe = np.maximum(k, 0)
        inside = (k >= 0) & (lo >= c_lo[safe]) & (hi <= c_hi[safe])
        return np.where(inside, k, -1)

    def save(self, path: str | Path) -> Path:
        """Write a CSV file: one comment line with the build parameters, then one row per
        class (token, level, count, lat, lon, center_lat, center_lon, parent_l<L>...).
        Cell ids are rebuilt from tokens on load (uint64 does not survive CSV readers)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        params = f"t_min={self.t_min} t_max={self.t_max} min_level={self.min_level} " \
                 f"max_level={self.max_level} n_points={self.n_points}"
        table = self.cells.drop(columns=["cell_id"])
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:  # a reader never sees half a file
            fh.write(f"{_HEADER} {params}\n")
            table.to_csv(fh, index=False, float_format="%.10f")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Partition":
        """Read a file written by ``save``."""
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"partition file not found: {path}; build one with "
                                f"build_partition(...).save(path)")
        with open(path) as fh:
            first = fh.readline()
            if not first.startswith(_HEADER):
                raise InputError(f"{path} is not a partition file (first line should start "
                                 f"with {_HEADER!r})")
            params = dict(kv.split("=", 1) for kv in first[len(_HEADER):].split())
            cells = pd.read_csv(fh, dtype=str, keep_default_na=False)
        missing = [c for c in _COLUMNS if c not in cells.columns]
        if missing:
            raise InputError(f"{path} lacks column(s) {missing}; expected {_COLUMNS}")
        for col in ("level", "count"):
            cells[col] = cells[col].astype(np.int64)
        for col in ("lat", "lon", "center_lat", "center_lon"):
            cells[col] = cells[col].astype(np.float64)
        cells.insert(1, "cell_id", token_to_cell_id(cells["token"].to_numpy()))
        return cls(cells=cells, t_min=int(params["t_min"]), t_max=int(params["t_max"]),
                   min_level=int(params["min_level"]), max_level=int(params["max_level"]),
                   n_points=int(params["n_points"]))


def build_partition(lat: Any, lon: Any, t_min: int = 50, t_max: int = 1000,
                    min_level: int = 2, max_level: int = 20) -> Partition:
    """Adaptive partition of the points (lat, lon) [N] degrees.

    t_min: cells with fewer points are dropped (their points get class -1);
    t_max: cells with more points are split, except at ``max_level``;
    min_level: the starting level (2: 96 cells of ~2500 km);
    max_level: the finest level allowed (20: ~10 m; stops endless splitting of a spot
    shared by many photos).
    Note: GeoEstimation drops cells with count <= t_min; here count < t_min.
    """
    _check_params(t_min, t_max, min_level, max_level)
    validate_latlon(lat, lon)
    lat, lon = to_numpy(lat).ravel(), to_numpy(lon).ravel()
    if lat.size == 0:
        raise InputError("no points given: a partition needs at least one (lat, lon)")

    # Parents of sorted leaf ids are sorted too, so each level's cells are runs of equal
    # values: counting is a diff, never a re-sort.
    leaves = np.sort(s2_cell_ids(lat, lon, MAX_LEVEL))
    kept_ids, kept_counts = [], []
    for level in range(min_level, max_level + 1):
        ids = _parent_unchecked(leaves, level)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        counts = np.diff(np.r_[starts, ids.size])
        split = counts > t_max if level < max_level else np.zeros(counts.size, bool)
        keep = ~split & (counts >= t_min)
        kept_ids.append(ids[starts[keep]])
        kept_counts.append(counts[keep])
        leaves = leaves[np.repeat(split, counts)]  # only points of split cells go on
        if leaves.size == 0:
            break

    ids = np.concatenate(kept_ids)
    order = np.argsort(ids)
    ids, counts = ids[order], np.concatenate(kept_counts)[order]
    cells = pd.DataFrame({
        "token": cell_id_to_token(ids),
        "cell_id": ids,
        "level": cell_level(ids),
        "count": counts.astype(np.int64),
    })
    partition = Partition(cells, t_min=int(t_min), t_max=int(t_max), min_level=int(min_level),
                          max_level=int(max_level), n_points=int(lat.size))
    cells["lat"], cells["lon"] = _centroids(partition.assign(lat, lon), lat, lon, len(ids))
    cells["center_lat"], cells["center_lon"] = cell_center_latlon(ids)
    for level in partition.levels[:-1]:
        cells[f"parent_l{level}"] = partition.ancestor_tokens(level)
    return partition


def _centroids(labels: np.ndarray, lat: np.ndarray, lon: np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """Spherical mean of the points of each class [k]: normalised mean of unit vectors."""
    inside = labels >= 0
    xyz = latlon_to_xyz(lat[inside], lon[inside])  # [M, 3]
    sums = np.stack([np.bincount(labels[inside], weights=xyz[:, c], minlength=k)
                     for c in range(3)], -1)  # [k, 3]
    return xyz_to_latlon(sums)  # direction only: no need to divide by the count


def _check_params(t_min: Any, t_max: Any, min_level: Any, max_level: Any) -> None:
    for name, value in (("t_min", t_min), ("t_max", t_max), ("min_level", min_level),
                        ("max_level", max_level)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    if not 1 <= t_min <= t_max:
        raise ConfigError(f"need 1 <= t_min <= t_max, got t_min={t_min}, t_max={t_max}")
    if not 0 <= min_level <= max_level <= MAX_LEVEL:
        raise ConfigError(f"need 0 <= min_level <= max_level <= 30, got min_level={min_level}, "
                          f"max_level={max_level}")


def nearest_centroid(partition: Partition, lat: Any, lon: Any) -> np.ndarray:
    """Index of the nearest class centroid (great circle) for each point, int64 [N]."""
    lat, lon = to_numpy(lat).ravel(), to_numpy(lon).ravel()
    centres = latlon_to_xyz(*partition.centroids())  # [K, 3]
    points = latlon_to_xyz(lat, lon)  # [N, 3]
    # Largest dot product of unit vectors = smallest angle; blocks of chunk x K <= 4M floats.
    chunk = max(1, (1 << 22) // max(len(centres), 1))
    return np.concatenate([np.argmax(points[s:s + chunk] @ centres.T, axis=1)
                           for s in range(0, len(points), chunk)] or [np.zeros(0, np.int64)])


def oracle_table(partition: Partition, lat: Any, lon: Any,
                 thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS_KM) -> dict[str, Any]:
    """Best possible scores of a classifier on this partition: every sample predicted as
    the centroid of its own cell.

    lat, lon: [N] degrees (e.g. the validation set). Samples outside every kept cell
    (dropped cells, or regions without training data) are predicted as the nearest kept
    centroid, which is what a perfect classifier could at best output for them; they are
    also counted in "n_outside". Returns error_summary's keys (n, mean_km, median_km,
    acc@<t>km fractions, geoguessr) plus n_cells, n_outside, frac_outside, and "inside":
    the same summary over the samples that fall in kept cells only (None if there are none).
    """
    validate_latlon(lat, lon)
    lat, lon = to_numpy(lat).ravel(), to_numpy(lon).ravel()
    if len(partition) == 0:
        raise InputError("the partition has no cells (every cell had fewer than t_min "
                         "points); lower t_min or use more data")
    labels = partition.assign(lat, lon)
    outside = labels < 0
    labels[outside] = nearest_centroid(partition, lat[outside], lon[outside])
    c_lat, c_lon = partition.centroids()
    d = haversine_km(lat, lon, c_lat[labels], c_lon[labels])
    table: dict[str, Any] = {**error_summary(d, thresholds), "n_cells": len(partition),
                             "n_outside": int(outside.sum()),
                             "frac_outside": float(outside.mean()) if lat.size else math.nan}
    table["inside"] = error_summary(d[~outside], thresholds) if (~outside).any() else None
    return table
