"""Error analysis on a hand-made predictions frame, and the figures built from it."""
import numpy as np
import pandas as pd
import pytest

from workbench.geo import build_partition
from workbench.lines.geolocator import errors_analysis as ea
from workbench.lines.geolocator.figures import class_size_figure, render_prediction_map, thresholds_figure


@pytest.fixture(scope="module")
def partition():
    lat = np.r_[np.full(20, 10.0), np.full(10, -40.0), np.full(5, 50.0)] + np.linspace(0, 0.01, 35)
    lon = np.r_[np.full(20, 20.0), np.full(10, 150.0), np.full(5, -100.0)]
    return build_partition(lat, lon, t_min=1, t_max=100, min_level=3, max_level=3)


@pytest.fixture(scope="module")
def frame(partition):
    tokens = partition.cells["token"].to_numpy()
    true = np.array([0, 0, 0, 0, 1, 1, 1, 2])
    pred = np.array([0, 0, 1, 2, 1, 0, 0, 2])
    dist = np.array([10.0, 20.0, 9000.0, 12000.0, 5.0, 8000.0, 8500.0, 1.0])
    return pd.DataFrame({
        "true_cell": true, "pred_cell": pred, "distance_km": dist, "correct": true == pred,
        "true_token": tokens[true], "pred_token": tokens[pred],
        "true_lat": 0.0, "true_lon": 0.0, "pred_lat": 1.0, "pred_lon": 1.0,
        "topk_cells": [np.array([p, (p + 1) % 3]) for p in pred], "topk_probs": [np.array([0.7, 0.2])] * 8,
        "topk_tokens": [tokens[[p, (p + 1) % 3]] for p in pred],
    })


def test_per_cell_accuracy(frame, partition):
    cells = ea.per_cell_accuracy(frame, partition)
    assert cells["n_val"].tolist() == [4, 3, 1]
    assert cells["accuracy"].tolist() == pytest.approx([0.5, 1 / 3, 1.0])
    assert cells["n_predicted"].tolist() == [4, 2, 2]
    assert cells["within"].tolist() == pytest.approx([0.5, 1 / 3, 1.0])  # <= 750 km
    assert cells["median_km"].tolist() == pytest.approx([4510.0, 8000.0, 1.0])
    assert cells["train_count"].tolist() == partition.cells["count"].tolist()


def test_confused_pairs_for_the_least_accurate_cells(frame, partition):
    cells = ea.per_cell_accuracy(frame, partition)
    pairs = ea.confused_pairs(frame, cells, n_cells=2, top=2, min_images=2)
    tokens = partition.cells["token"].tolist()
    # cell 1 (1/3 correct) is always confused with cell 0; cell 0 (1/2) with 1 and 2 once each
    assert pairs["true_token"].tolist() == [tokens[1], tokens[0], tokens[0]]
    assert pairs["pred_token"].tolist()[0] == tokens[0]
    assert pairs["count"].tolist() == [2, 1, 1]
    assert pairs["share"].tolist() == pytest.approx([2 / 3, 0.25, 0.25])


def test_worst_errors_and_filters(frame, partition):
    tokens = partition.cells["token"].tolist()
    assert ea.worst_errors(frame, 3)["distance_km"].tolist() == [12000.0, 9000.0, 8500.0]
    only = ea.worst_errors(frame, 10, true_token=tokens[1], pred_token=tokens[0])
    assert only["distance_km"].tolist() == [8500.0, 8000.0]
    assert ea.worst_errors(frame, 5, pred_token="nope").empty


def test_metrics_table_for_runs_and_bundles():
    block = {"n": 10, "model": {"acc@750km": 0.5, "geoguessr": 2000.0},
             "oracle": {"acc@750km": 0.9}, "most_frequent_cell": {"acc@750km": 0.1}}
    run_table = ea.metrics_table(block)
    assert run_table.loc["model", "acc@750km"] == 0.5 and run_table.loc["model", "n"] == 10
    bundle = ea.metrics_table({"val": block, "test": {**block, "model": {"acc@750km": 0.7}}})
    assert bundle.loc["model", "acc@750km"] == 0.7  # test by default
    assert list(bundle.index) == ["model", "oracle", "most_frequent_cell"]
    fig = thresholds_figure({name: row.to_dict() for name, row in bundle.iterrows()})
    assert len(fig.data) == 3


def test_static_map_marks_the_points_and_colours_cells(partition, frame):
    polys = partition.polygons()
    image = render_prediction_map(polys, [0.1, 0.8, 0.05], pred=(10.0, 20.0), true=(-40.0, 150.0), width=360)
    assert image.size == (360, 180)
    px = np.asarray(image)
    x, y = int((20 + 180) / 360 * 360), int((90 - 10) / 180 * 180)
    assert tuple(px[y, x]) == (255, 65, 54)  # red prediction dot
    x, y = int((150 + 180) / 360 * 360), int((90 + 40) / 180 * 180)
    assert tuple(px[y, x]) == (46, 204, 64)  # green true dot
    fig = class_size_figure(ea.per_cell_accuracy(frame, partition))
    assert fig.data[0].x.tolist() == partition.cells["count"].tolist()


def test_display_helpers_use_one_unit_per_kind_and_no_none(frame, partition):
    metrics = {"model": {"n": 34006, "acc@25km": 0.41234, "geoguessr": 2880.97, "median_km": 446.98,
                         "mean_km": 3.456, "cell_top1": 0.5, "macro_f1": None},
               "most_frequent_cell": {"acc@25km": 0.0, "mean_km": float("nan")}}
    shown = ea.metrics_display(ea.metrics_table(metrics))
    model, base = shown.loc["model"], shown.loc["most_frequent_cell"]
    assert (model["n"], model["acc@25km"], model["geoguessr"]) == ("34,006", "41.2%", "2,881")
    assert (model["median_km"], model["mean_km"], model["cell_top1"]) == ("447 km", "3.5 km", "50.0%")
    assert model["macro_f1"] == base["mean_km"] == base["n"] == "—"
    assert base["acc@25km"] == "0.0%"

    cells = ea.per_cell_accuracy(frame.iloc[:4], partition)  # cells 1 and 2 have no images
    tips = ea.cell_tooltips(cells)
    assert tips[0] == f"{cells['token'][0]}: 50.0% of 4 images (train {cells['train_count'][0]:,})"
    assert tips[1].startswith(f"{cells['token'][1]}: — of 0 images")

    pairs = ea.pairs_display(ea.confused_pairs(frame, ea.per_cell_accuracy(frame, partition), min_images=1))
    assert set(pairs["share"]) <= {"25.0%", "33.3%", "66.7%"} and "nan" not in pairs.to_string()

    caption = ea.error_caption(1234.6, "a", "b", None, ["a", "b"], [0.6549, 0.0004])
    assert caption == "**1,235 km** · true `a` → predicted `b`  \n  \ntop-5: a 65.5%, b 0.0%"


def test_predictions_split_and_summary(frame, partition, tmp_path):
    assert ea.predictions_split({"predictions_split": "test", "split": "val"}) == "test"
    assert ea.predictions_split({"split": "val2"}) == "val2"
    assert ea.predictions_split({}) == "val"
    saved = ea.SavedPredictions(frame, partition, {"predictions_split": "test"}, tmp_path)
    assert ea.predictions_summary(saved) == f"8 test images · {len(partition)} cells · `{tmp_path}`"


def test_cell_filters_offer_every_true_or_predicted_cell(frame, partition):
    options = ea.cell_filter_options(frame.iloc[:4])  # cells 0, 1, 2 as true or predicted
    assert options[0] == ea.ALL_CELLS == "(all)"
    assert options[1:] == sorted(partition.cells["token"].tolist()[:3])
    assert ea.cell_filter(ea.ALL_CELLS) is None and ea.cell_filter(options[1]) == options[1]
    only = ea.worst_errors(frame, 12, ea.cell_filter(options[1]), ea.cell_filter(ea.ALL_CELLS))
    assert set(only["true_token"]) == {options[1]}


def test_threshold_rows_are_the_table_by_row():
    table = ea.metrics_table({"n": 10, "model": {"acc@750km": 0.5}, "oracle": {"acc@750km": 0.9}})
    rows = ea.threshold_rows(table)
    assert list(rows) == ["model", "oracle"] and rows["oracle"]["acc@750km"] == 0.9
    assert set(rows["model"]) == set(ea.TABLE_COLUMNS)


def test_gallery_items_in_order_with_images_maps_and_captions(frame, partition, tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"jpeg")
    rows = ea.worst_errors(frame, 3).assign(path=[str(image), str(tmp_path / "gone.jpg"), ""],
                                             place=["Somewhere", "", ""])
    polygons = partition.polygons()
    items = ea.gallery_items(rows, polygons)
    assert [i.caption.split("**")[1] for i in items] == ["12,000 km", "9,000 km", "8,500 km"]  # worst first
    assert [i.image for i in items] == [str(image), None, None]  # a missing file is no image
    first = rows.iloc[0]
    decoded = np.frombuffer(items[0].polygons, dtype=np.float64).reshape(len(items[0].probs), -1, 2)
    np.testing.assert_array_equal(decoded, polygons[np.asarray(first["topk_cells"])])
    assert items[0].probs == (0.7, 0.2) and items[0].pred == (1.0, 1.0) and items[0].true == (0.0, 0.0)
    assert items[0].caption == ea.error_caption(first["distance_km"], first["true_token"], first["pred_token"],
                                                "Somewhere", first["topk_tokens"], first["topk_probs"])
    without_place = ea.gallery_items(ea.worst_errors(frame, 1), polygons)  # no path / place columns
    assert without_place[0].image is None and "\n  \ntop-5" in without_place[0].caption
