"""Overfit subsets: exactly k training samples per partition cell, deterministic, written
next to the dataset in its own format and readable by the catalog."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.data import catalog
from workbench.data.subsets import make_overfit_subset, overfit_subset_path, sample_per_class
from workbench.errors import ConfigError, InputError
from workbench.geo import build_partition

# (lat, lon, train samples): cluster sizes straddle k = 1 and k = 5
CLUSTERS = [(48.85, 2.35, 12), (35.68, 139.69, 7), (-33.87, 151.21, 3), (40.71, -74.0, 1),
            (-1.29, 36.82, 9)]


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    """data/places/places.csv with a manifest: path, lat, lon, split, place (quoted commas)."""
    monkeypatch.setenv(catalog.DATA_ENV, str(tmp_path / "data"))
    rng = np.random.default_rng(0)
    rows = []
    for c, (lat, lon, n_train) in enumerate(CLUSTERS):
        for i in range(n_train + 2):  # + 2 val samples that must never be picked
            rows.append({"path": f"images/{c}_{i}.jpg",
                         "lat": f"{lat + rng.uniform(-0.2, 0.2):.5f}",
                         "lon": f"{lon + rng.uniform(-0.2, 0.2):.5f}",
                         "split": "train" if i < n_train else "val",
                         "place": f"cluster {c}, sample {i}", "score": f"{rng.uniform():.3f}"})
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # classes interleaved
    folder = tmp_path / "data" / "places"
    folder.mkdir(parents=True)
    frame.to_csv(folder / "places.csv", index=False)
    (folder / "manifest.json").write_text('{"files": ["places.csv"]}')
    info = catalog.get_dataset("places")
    points = catalog.load_points(info)
    train = points[points["split"] == "train"]
    # t_max above every cluster size: one level-2 cell per cluster, classes 0..4
    partition = build_partition(train["lat"].to_numpy(), train["lon"].to_numpy(), t_min=1,
                                t_max=100, min_level=2, max_level=20)
    assert len(partition) == len(CLUSTERS)
    return info, partition


@pytest.mark.parametrize("k", [1, 5])
def test_exactly_k_training_samples_per_class(dataset, k):
    info, partition = dataset
    result = make_overfit_subset(info, partition, k, seed=0)
    assert result.path == info.folder / f"places.overfit-{k}.csv" == overfit_subset_path(info, k)

    subset = catalog.load_points(result.path)  # the catalog reads it like any dataset
    per_class = np.bincount(partition.assign(subset["lat"], subset["lon"]), minlength=len(partition))
    expected = np.minimum(k, partition.cells["count"].to_numpy())
    np.testing.assert_array_equal(per_class, expected)
    assert (subset["split"] == "train").all()
    assert result.n_rows == len(subset) == expected.sum()
    assert result.n_classes == len(CLUSTERS) and result.n_empty == 0
    assert result.n_short == int((partition.cells["count"] < k).sum())
    assert result.counts() == {"k": k, "n_rows": result.n_rows, "n_classes": 5,
                               "n_short": result.n_short, "n_empty": 0, "seed": 0}
    # listed next to its dataset
    assert f"places/overfit-{k}" in [d.name for d in catalog.list_datasets()]


def test_same_format_and_exact_rows_as_the_source(dataset):
    info, partition = dataset
    path = make_overfit_subset(info, partition, 5).path
    source_lines = info.csv.read_text().splitlines()
    subset_lines = path.read_text().splitlines()
    assert subset_lines[0] == source_lines[0]  # same header, same column order
    assert set(subset_lines[1:]) <= set(source_lines[1:])  # rows copied verbatim
    assert source_lines.index(subset_lines[1]) < source_lines.index(subset_lines[-1])  # file order
    assert any('"cluster 0, sample' in line for line in subset_lines)  # quoting kept


def test_deterministic_given_the_seed(dataset):
    info, partition = dataset
    first = make_overfit_subset(info, partition, 1, seed=3).path.read_bytes()
    again = make_overfit_subset(info, partition, 1, seed=3).path.read_bytes()
    other = [make_overfit_subset(info, partition, 1, seed=s).path.read_bytes() for s in range(4, 8)]
    assert first == again
    assert any(o != first for o in other)  # the seed really picks the samples


def test_sample_per_class_reference():
    labels = np.array([2, 0, -1, 2, 2, 1, 0, -1, 2])
    picked = sample_per_class(labels, 2, seed=0)
    assert np.all(np.diff(picked) > 0) and (labels[picked] >= 0).all()
    np.testing.assert_array_equal(np.bincount(labels[picked]), [2, 1, 2])
    assert sample_per_class(labels, 10, seed=0).tolist() == [0, 1, 3, 4, 5, 6, 8]
    assert sample_per_class(np.array([-1, -1]), 1).size == 0
    # every sample of a class is equally likely: over seeds, each of 4 is chosen ~1/4 of the time
    hits = np.bincount([sample_per_class(np.zeros(4, int), 1, seed=s)[0] for s in range(400)])
    assert hits.min() > 60


def test_rejects_bad_k_and_foreign_partitions(dataset):
    info, partition = dataset
    with pytest.raises(ConfigError, match="k .* must be an integer >= 1, got 0"):
        make_overfit_subset(info, partition, 0)
    elsewhere = build_partition(np.array([-75.0, -75.1]), np.array([0.0, 0.1]), t_min=1, t_max=10)
    with pytest.raises(InputError, match="no training sample of .*places.csv falls in a cell"):
        make_overfit_subset(info, elsewhere, 1)
    assert not overfit_subset_path(info, 1).exists()
