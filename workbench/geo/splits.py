"""Held-out splits by whole S2 cells: points of one cell never land on two sides.

Photo collections and city tables are clustered, so a random split by point would put
near-duplicates of a training point in validation; splitting by cell keeps every
neighbourhood on one side. Two policies, both vectorised and deterministic by seed:

- ``split_by_cell``: three splits (train / val / test) by point fractions, cells shuffled by a
  hash of (cell id, seed) (the demo data sets; the geolocator's CSVs without a split column);
- ``held_out_cells``: one held-out side of a fraction of the points, cells visited in a seeded
  permutation (the soft-prompt line's held-out cities).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from workbench.errors import ConfigError
from workbench.geo.s2 import s2_cell_ids

SPLITS = ("train", "val", "test")


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash of uint64 values (vectorised SplitMix64 finaliser)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)  # uint64 arithmetic wraps, as intended
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def split_by_cell(lat: np.ndarray, lon: np.ndarray, level: int = 4, seed: int = 0,
                  fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Assign each point to train / val / test by its S2 cell at ``level``.

    Every point of a cell gets the same split, so nearby tiles cannot leak across splits
    (level-4 cells are ~600 km across, level 5 ~300 km). The cells are shuffled by a hash of
    (cell id, seed) and then filled into train, val and test in that order until each holds
    its fraction of the *points* (a cell goes where the middle of its run of points falls):
    photo collections are so clustered that splitting the cells 80/10/10 by count would
    leave val or test with a few percent of the points. Returns (split [N] str, cell ids [N]
    uint64).
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ConfigError(f"split fractions must be 3 non-negative numbers summing to 1, "
                          f"got {fractions}")
    cells = s2_cell_ids(lat, lon, level)
    unique, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    order = np.argsort(_splitmix64(unique ^ np.uint64(seed)), kind="stable")
    end = np.cumsum(counts[order]) / len(cells)  # fraction of points up to each cell's end
    middle = end - counts[order] / (2 * len(cells))
    cell_split = np.empty(len(unique), np.intp)
    cell_split[order] = np.searchsorted(np.cumsum(fractions)[:2], middle, side="right")
    return np.asarray(SPLITS)[cell_split[inverse]], cells


def held_out_cells(lat: Any, lon: Any, level: int = 5, fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean mask [N]: True for held-out points, chosen as whole S2 cells of ``level``.

    Cells are visited in a seeded random order and added to the held-out side until it
    holds ``fraction`` of the points, so the fraction is met closely however unequal the
    cells are. Same inputs -> same split.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"data.val_fraction must be in (0, 1), got {fraction}")
    cells = s2_cell_ids(lat, lon, level)
    unique, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    before = np.cumsum(counts[order]) - counts[order]  # points already held out when a cell is visited
    held = np.zeros(len(unique), dtype=bool)
    held[order[before < fraction * len(cells)]] = True
    return held[inverse.ravel()]
