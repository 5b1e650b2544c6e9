"""Evaluation numbers against hand-computed cases."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from workbench.geo import Partition, build_partition, haversine_km
from workbench.lines.geolocator.evaluate import (
    geolocation_metrics,
    macro_f1,
    most_frequent_cell_baseline,
    predicted_location,
    predictions_frame,
)

KM_PER_DEG = 6371.0088 * np.pi / 180  # great-circle km per degree on the mean sphere


def test_metrics_on_hand_computed_errors():
    # predictions due east along the equator: d = dlon * KM_PER_DEG exactly
    dlon = np.array([0.0, 0.2, 5.0, 30.0])  # 0, 22.2, 556, 3336 km
    true = np.zeros((4, 2))
    pred = np.stack([np.zeros(4), dlon], 1)
    y_true = np.array([0, 1, 2, 3])
    top = np.array([[0, 1, 2, 3, 4], [2, 1, 0, 3, 4], [4, 3, 1, 0, 2], [1, 0, 2, 4, 5]])
    m = geolocation_metrics(true, pred, y_true, top, n_classes=6)
    d = dlon * KM_PER_DEG
    assert m["acc@1km"] == 0.25 and m["acc@25km"] == 0.5 and m["acc@200km"] == 0.5
    assert m["acc@750km"] == 0.75 and m["acc@2500km"] == 0.75
    assert m["median_km"] == pytest.approx((d[1] + d[2]) / 2, rel=1e-9)
    assert m["mean_km"] == pytest.approx(d.mean(), rel=1e-9)
    assert m["geoguessr"] == pytest.approx(np.mean(5000 * np.exp(-d / 1492.7)), rel=1e-9)
    assert m["cell_top1"] == 0.25  # only sample 0's first guess is right
    assert m["cell_top5"] == 0.75  # sample 3 (true cell 3) is the only miss in the top 5
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, top[:, 0], average="macro"))


def test_cell_top5_counts_membership():
    top = np.array([[5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]])
    m = geolocation_metrics(np.zeros((2, 2)), np.zeros((2, 2)), np.array([0, 5]), top, 6)
    assert m["cell_top1"] == 0.0 and m["cell_top5"] == 0.0  # both truths sit at rank 6
    m = geolocation_metrics(np.zeros((2, 2)), np.zeros((2, 2)), np.array([1, 4]), top, 6)
    assert m["cell_top5"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_f1_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, 12, 300), rng.integers(0, 15, 300)
    assert macro_f1(y, p, 15) == pytest.approx(f1_score(y, p, average="macro"), rel=1e-12)


def test_weighted_location_lies_between_the_top_cells():
    centroids = np.array([[0.0, 0.0], [0.0, 10.0], [60.0, 100.0]])
    idx = np.array([[0, 1, 2]])
    lat, lon = predicted_location(idx, np.array([[0.5, 0.5, 0.0]]), centroids, "weighted", k=2)
    assert (lat[0], lon[0]) == pytest.approx((0.0, 5.0), abs=1e-9)
    lat, lon = predicted_location(idx, np.array([[0.75, 0.25, 0.0]]), centroids, "weighted", k=2)
    # unit-vector mean: atan2(0.25 sin 10, 0.75 + 0.25 cos 10) degrees east
    expected = np.degrees(np.arctan2(0.25 * np.sin(np.radians(10)), 0.75 + 0.25 * np.cos(np.radians(10))))
    assert lon[0] == pytest.approx(expected, abs=1e-9) and lat[0] == pytest.approx(0.0, abs=1e-9)
    lat, lon = predicted_location(idx, np.array([[0.75, 0.25, 0.0]]), centroids, "top1")
    assert (lat[0], lon[0]) == (0.0, 0.0)


def test_most_frequent_cell_baseline_and_prediction_frame():
    lat = np.r_[np.full(30, 10.0), np.full(10, -40.0)] + np.linspace(0, 0.01, 40)
    lon = np.r_[np.full(30, 20.0), np.full(10, 150.0)]
    partition = build_partition(lat, lon, t_min=5, t_max=100, min_level=3, max_level=3)
    base = most_frequent_cell_baseline(partition, np.array([10.0, -40.0]), np.array([20.0, 150.0]))
    big = int(np.argmax(partition.cells["count"]))
    c_lat, c_lon = partition.centroids()
    assert base["cell"] == partition.cells["token"][big]
    assert base["median_km"] == pytest.approx(np.median(haversine_km([10.0, -40.0], [20.0, 150.0],
                                                                     c_lat[big], c_lon[big])))
    pred = {"index": np.array([0, 1]), "label": np.array([0, 1]), "latlon": np.array([[10.0, 20.0], [-40.0, 150.0]]),
            "top_idx": np.array([[0, 1], [0, 1]]), "top_prob": np.array([[0.9, 0.1], [0.6, 0.4]])}
    pred_latlon = np.stack(partition.centroids(), 1)[[0, 0]]
    frame = predictions_frame(pred, pred_latlon, partition, pd.DataFrame({"path": ["a.jpg", "b.jpg"]}))
    assert frame["correct"].tolist() == [True, False]
    assert frame["path"].tolist() == ["a.jpg", "b.jpg"]
    assert frame["topk_tokens"][1].tolist() == partition.cells["token"].tolist()[:2]
    assert frame["distance_km"][1] == pytest.approx(haversine_km(-40.0, 150.0, *pred_latlon[1]))
    assert isinstance(partition, Partition)
