"""Curve figures: min/max downsampling keeps shape and bounds; figures carry the right traces."""
from __future__ import annotations

import time

import numpy as np
import pytest

from workbench.viz.curves import (
    compare_figure,
    curves_figure,
    metric_groups,
    metric_names,
    minmax_indices,
    records_frame,
)


def _reference_buckets(y: np.ndarray, target: int) -> set[int]:
    """Naive per-bucket loop with the same bucketing, to check the vectorised version."""
    n = len(y)
    interior = n - 2
    n_buckets = (target - 2) // 2
    width = -(-interior // n_buckets)
    keep = {0, n - 1}
    for start in range(1, n - 1, width):
        chunk = y[start : min(start + width, n - 1)]
        keep.add(start + int(np.argmin(chunk)))
        keep.add(start + int(np.argmax(chunk)))
    return keep


def test_minmax_short_series_untouched():
    np.testing.assert_array_equal(minmax_indices(np.arange(10.0), target=100), np.arange(10))


@pytest.mark.parametrize("n,target", [(100_003, 5000), (10_000, 4), (5001, 5000), (12_345, 777)])
def test_minmax_keeps_ends_extremes_and_bound(n, target):
    rng = np.random.default_rng(n)
    y = np.cumsum(rng.normal(size=n))
    y[n // 3] = 1e6  # a single spike must survive any downsampling
    y[2 * n // 3] = -1e6
    idx = minmax_indices(y, target)
    assert len(idx) <= target
    assert idx[0] == 0 and idx[-1] == n - 1
    assert np.all(np.diff(idx) > 0)  # sorted, unique
    assert n // 3 in idx and 2 * n // 3 in idx
    assert set(idx.tolist()) == _reference_buckets(y, target)


def test_minmax_ignores_nan_unless_bucket_is_all_nan():
    y = np.arange(1000, dtype=float)
    y[1:500] = np.nan  # several whole buckets of NaN, then finite values
    y[700] = 5000.0
    idx = minmax_indices(y, target=20)
    finite_part = idx[idx >= 500]
    assert 700 in finite_part and 999 in idx
    assert len(idx) <= 20


def test_minmax_is_vectorised_fast():
    y = np.random.default_rng(0).normal(size=2_000_000)
    t0 = time.perf_counter()
    idx = minmax_indices(y, 5000)
    elapsed = time.perf_counter() - t0
    assert len(idx) <= 5000 and y.argmax() in idx and y.argmin() in idx
    assert elapsed < 1.0, f"2M points took {elapsed:.2f} s"


def _records(n_train: int = 12_000, val_every: int = 1000) -> list[dict]:
    recs = []
    for step in range(1, n_train + 1):
        recs.append({"step": step, "epoch": step // 1000, "split": "train", "time": float(step),
                     "train/loss": 1.0 / step, "train/mae": 2.0 / step, "lr": 1e-3})
        if step % val_every == 0:
            recs.append({"step": step, "epoch": step // 1000, "split": "val", "time": float(step),
                         "val/loss": 1.5 / step, "val/acc@25km": step / n_train})
    return recs


def test_metric_names_and_groups():
    frame = records_frame(_records(2000))
    names = metric_names(frame)
    assert names == ["lr", "train/loss", "train/mae", "val/acc@25km", "val/loss"]
    groups = metric_groups(names)
    assert list(groups)[0] == "loss"
    assert groups["loss"] == ["train/loss", "val/loss"]
    assert groups["lr"] == ["lr"] and groups["acc@25km"] == ["val/acc@25km"]


def test_curves_figure_traces_downsampled():
    frame = records_frame(_records())
    fig = curves_figure(frame, ["train/loss", "val/loss"], title="loss", max_points=500)
    assert [t.name for t in fig.data] == ["train/loss", "val/loss"]
    train, val = fig.data
    assert len(train.x) <= 500 and train.x[0] == 1 and train.x[-1] == 12_000
    assert train.y[0] == pytest.approx(1.0) and train.y[-1] == pytest.approx(1 / 12_000)
    assert list(val.x) == list(range(1000, 12_001, 1000))  # 12 val points, untouched
    assert val.line.dash == "dash" and "markers" in val.mode
    assert train.line.dash == "solid" and train.mode == "lines"
    assert fig.layout.title.text == "loss"


def test_curves_figure_missing_metric_is_empty_trace():
    fig = curves_figure(records_frame(_records(100)), ["val/nope"])
    assert len(fig.data) == 1 and len(fig.data[0].x) == 0


def test_compare_figure_one_trace_per_run():
    a = records_frame(_records(3000))
    b = records_frame([{**r, "train/loss": 2 * r["train/loss"]} if r["split"] == "train" else r
                       for r in _records(1500)])
    fig = compare_figure({"run-a": a, "run-b": b}, "train/loss", max_points=1000, log_y=True)
    assert [t.name for t in fig.data] == ["run-a", "run-b"]
    assert len(fig.data[0].x) <= 1000 and fig.data[1].x[-1] == 1500
    assert fig.data[1].y[0] == pytest.approx(2.0)
    assert fig.layout.yaxis.type == "log"


def test_records_frame_empty():
    frame = records_frame([])
    assert frame.empty and metric_names(frame) == []
