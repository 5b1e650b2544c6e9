"""Overfit subsets: k training samples per class of a partition, for debugging models.

A geolocation classifier that cannot drive its training loss to ~0 on one or five samples
per class has a bug (labels, loss, learning rate, augmentations). ``make_overfit_subset``
writes such a subset as ``<csv stem>.overfit-<k>.csv`` next to the dataset's CSV: the same
columns and the exact text of the source rows, so relative image paths still resolve and a
geolocator trains on it like on the full dataset; the catalog lists it as
``<name>/overfit-<k>``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from workbench.data.catalog import (
    DatasetInfo,
    fit_eval_split,
    points_from_table,
    read_table,
    resolve,
)
from workbench.errors import ConfigError, InputError
from workbench.geo import Partition
from workbench.io import atomic_path


@dataclass(frozen=True)
class OverfitSubset:
    """What ``make_overfit_subset`` wrote."""

    path: Path
    k: int  # samples asked per class
    n_rows: int  # rows written
    n_classes: int  # partition classes with at least one sample in the subset
    n_short: int  # classes with fewer than k training samples (all of them were taken)
    n_empty: int  # partition classes without any training sample of this dataset
    seed: int

    def counts(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "path"}


def overfit_subset_path(info: DatasetInfo, k: int) -> Path:
    """``<folder>/<csv stem>.overfit-<k>.csv``, next to the dataset's CSV."""
    stem = info.csv.name[: -len(info.csv.suffix)] if info.csv.suffix else info.csv.name
    return info.folder / f"{stem}.overfit-{k}.csv"


def sample_per_class(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of up to ``k`` random samples of every class, sorted; int64 [M].

    labels: int [N] class per sample, negative = no class (never chosen). Classes with
    fewer than k samples give all of them. Deterministic given (labels, k, seed).
    """
    labels = np.asarray(labels).ravel()
    rng = np.random.default_rng(seed)
    valid = np.flatnonzero(labels >= 0)
    # Sort by class, randomly within a class; then keep the first k of every run.
    order = valid[np.lexsort((rng.random(valid.size), labels[valid]))]
    runs = labels[order]
    starts = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]]) if runs.size else np.zeros(0, int)
    rank = np.arange(runs.size) - np.repeat(starts, np.diff(np.r_[starts, runs.size]))
    return np.sort(order[rank < k]).astype(np.int64)


def make_overfit_subset(dataset: DatasetInfo | str | Path, partition: Partition, k: int,
                        seed: int = 0, root: str | Path | None = None,
                        path: str | Path | None = None) -> OverfitSubset:
    """Write k training samples per class of ``partition`` and return what was written.

    dataset: a DatasetInfo, a catalog name or a CSV path. Samples come from the dataset's
    training rows (``fit_eval_split``: the train split, or all rows without one) and are
    classed by ``partition.assign``; rows outside every cell are never chosen. The rows are
    written in file order with the source's exact text (same columns, same format).
    path: where to write (default ``overfit_subset_path``); written atomically.
    Raises ConfigError for k < 1 and InputError when no training sample falls in a cell.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k (samples per class) must be an integer >= 1, got {k!r}")
    info = resolve(dataset, root)
    info.signature()  # NotFoundError that says how to get the file back
    table = read_table(info.csv, text=True)
    points = points_from_table(table, info.csv)
    fit = np.flatnonzero(fit_eval_split(points).fit)
    labels = partition.assign(points["lat"].to_numpy()[fit], points["lon"].to_numpy()[fit])
    if not (labels >= 0).any():
        raise InputError(f"no training sample of {info.csv} falls in a cell of the partition "
                         f"({len(partition)} cells); build the partition on this dataset")
    chosen = fit[sample_per_class(labels, k, seed)]

    per_class = np.bincount(labels[labels >= 0], minlength=len(partition))
    target = Path(path) if path is not None else overfit_subset_path(info, int(k))
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:  # a reader never sees half a file
        table.iloc[chosen].to_csv(tmp, index=False)
    return OverfitSubset(path=target, k=int(k), n_rows=int(chosen.size),
                         n_classes=int((per_class > 0).sum()),
                         n_short=int(((per_class > 0) & (per_class < k)).sum()),
                         n_empty=int((per_class == 0).sum()), seed=int(seed))
