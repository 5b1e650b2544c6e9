"""AppTest of pages/2_Data.py on a tiny dataset in a temporary data root ($WORKBENCH_DATA).

The oracle numbers are recomputed here from first principles (spherical means, haversine,
s2sphere for the cell membership) rather than with workbench.geo.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import s2sphere
from streamlit.testing.v1 import AppTest

from workbench.data import catalog
from workbench.geo import Partition

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = str(REPO_ROOT / "pages" / "2_Data.py")
NAME = "tiny"
CLUSTERS = [(48.85, 2.35), (35.68, 139.69), (-33.87, 151.21)]  # Paris, Tokyo, Sydney
N_TRAIN, N_VAL = 20, 6
FAR = (-60.0, -120.0)  # a val sample in the South Pacific, outside every cell
R_KM = 6371.0088


def tiny_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for c, (lat, lon) in enumerate(CLUSTERS):
        for i in range(N_TRAIN + N_VAL):
            rows.append({"lat": round(lat + rng.normal(0, 0.25), 5),
                         "lon": round(lon + rng.normal(0, 0.25), 5),
                         "split": "train" if i < N_TRAIN else "val", "cluster": c})
    rows.append({"lat": FAR[0], "lon": FAR[1], "split": "val", "cluster": -1})
    return pd.DataFrame(rows)


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv(catalog.DATA_ENV, str(root))
    return root


@pytest.fixture
def tiny(data_root) -> pd.DataFrame:
    folder = data_root / NAME
    folder.mkdir(parents=True)
    frame = tiny_frame()
    frame.to_csv(folder / f"{NAME}.csv", index=False)
    return frame


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def set_partition(at: AppTest, t_min: int, t_max: int, max_level: int = 20) -> AppTest:
    at.select_slider(key=f"data_tmin::{NAME}").set_value(t_min)
    at.select_slider(key=f"data_tmax::{NAME}").set_value(t_max)
    at.slider(key=f"data_maxlevel::{NAME}").set_value(max_level)
    return at.run()


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r}; have {[m.label for m in at.metric]}"
    return values[0]


def oracle(at: AppTest) -> dict[str, float]:
    frames = [d.value for d in at.dataframe if list(d.value.columns) == ["metric", "value"]]
    assert frames, "no oracle table"
    return dict(zip(frames[0]["metric"], frames[0]["value"]))


def button(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


def haversine(lat1, lon1, lat2, lon2):
    p1, p2, dl = np.radians(lat1), np.radians(lat2), np.radians(lon2 - lon1)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * R_KM * np.arcsin(np.sqrt(a))


def spherical_mean(lat, lon):
    p, l = np.radians(lat), np.radians(lon)
    x, y, z = (np.cos(p) * np.cos(l)).sum(), (np.cos(p) * np.sin(l)).sum(), np.sin(p).sum()
    return math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x))


def level2_token(lat, lon) -> str:
    ll = s2sphere.LatLng.from_degrees(float(lat), float(lon))
    return s2sphere.CellId.from_lat_lng(ll).parent(2).to_token()


def expected_oracle(frame: pd.DataFrame) -> dict[str, float]:
    """Each cluster is one level-2 S2 cell (checked with s2sphere); each val sample is
    predicted as its cluster's train centroid, the far one as the nearest centroid."""
    for c in range(len(CLUSTERS)):
        rows = frame[frame["cluster"] == c]
        assert len({level2_token(a, b) for a, b in zip(rows["lat"], rows["lon"])}) == 1
    train, val = frame[frame["split"] == "train"], frame[frame["split"] == "val"]
    centroids = np.array([spherical_mean(*train[train["cluster"] == c][["lat", "lon"]].to_numpy().T)
                          for c in range(len(CLUSTERS))])
    d = []
    for lat, lon, c in val[["lat", "lon", "cluster"]].itertuples(index=False):
        to_all = haversine(lat, lon, centroids[:, 0], centroids[:, 1])
        d.append(to_all[c] if c >= 0 else to_all.min())
    d = np.array(d)
    out = {f"acc@{t}km (%)": 100 * np.mean(d <= t) for t in (1, 25, 200, 750, 2500)}
    out["GeoGuessr (mean)"] = np.mean(5000 * np.exp(-d / 1492.7))
    out["mean error (km)"] = d.mean()
    out["samples"] = len(d)
    out["outside every cell"] = 1
    return out


def test_page_shows_points_partition_and_exact_oracle(tiny):
    at = page()
    assert not at.exception and not at.error
    assert at.title[0].value == "Data"
    assert at.selectbox(key="data_dataset").value == NAME
    assert metric(at, "samples") == f"{len(tiny)}"
    splits = next(d.value for d in at.dataframe if list(d.value.columns) == ["split", "count"])
    assert splits.to_dict("list") == {"split": ["train", "val"], "count": [60, 19]}

    at = set_partition(at, t_min=1, t_max=100)
    assert not at.exception and not at.error
    assert metric(at, "cells") == "3"
    assert metric(at, "train samples in a cell") == "60 / 60"
    shown, expected = oracle(at), expected_oracle(tiny)
    assert 0 < expected["acc@25km (%)"] < 100  # the table is not trivially 0 / 100
    for key, value in expected.items():
        assert shown[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
    assert any("on the **val** split (19 samples), cells built on **train** (60)" in m.value
               for m in [*at.markdown, *at.caption])
    assert at.get("plotly_chart"), "no class-size histogram"


def test_t_max_changes_the_number_of_cells(tiny):
    at = set_partition(page(), t_min=1, t_max=100)
    assert metric(at, "cells") == "3"
    at = set_partition(at, t_min=1, t_max=5)
    assert not at.exception and not at.error
    fine = int(metric(at, "cells"))
    assert fine >= 3 * N_TRAIN // 5  # each 20-point cluster split into cells of <= 5
    at = set_partition(at, t_min=1, t_max=5, max_level=3)  # splitting stops at level 3
    assert 3 <= int(metric(at, "cells")) < fine
    at = set_partition(at, t_min=50, t_max=100)
    assert metric(at, "cells") == "0" and "lower t_min" in at.warning[0].value
    at = set_partition(at, t_min=100, t_max=50)
    assert not at.exception and "t_min <= t_max" in at.error[0].value


def test_buttons_save_partition_and_write_overfit_subsets(tiny, data_root):
    at = set_partition(page(), t_min=1, t_max=100)
    button(at, "data_overfit_1").click()
    at.run()
    assert not at.exception and not at.error
    path = data_root / NAME / f"{NAME}.overfit-1.csv"
    assert path.exists() and str(path) in at.success[0].value
    subset = pd.read_csv(path)
    assert list(subset.columns) == list(tiny.columns) and len(subset) == 3
    assert sorted(subset["cluster"]) == [0, 1, 2] and set(subset["split"]) == {"train"}

    button(at, "data_overfit_5").click()
    at.run()
    five = pd.read_csv(data_root / NAME / f"{NAME}.overfit-5.csv")
    assert five["cluster"].value_counts().to_dict() == {0: 5, 1: 5, 2: 5}

    button(at, "data_save_partition").click()
    at.run()
    saved = data_root / NAME / f"{NAME}.partition-t1-100-l2-20.csv"
    assert saved.exists() and str(saved) in at.success[0].value
    assert len(Partition.load(saved)) == 3
    # the subsets are datasets now
    assert f"{NAME}/overfit-5  (subset)" in at.selectbox(key="data_dataset").options


def test_no_dataset_shows_how_to_build_the_demo(data_root):
    at = page()
    assert not at.exception and not at.error
    assert "python -m workbench data build-demo" in at.info[0].value


def test_missing_and_malformed_datasets_show_errors(data_root, tmp_path):
    gone = tmp_path / "gone.csv"
    gone.write_text("lat,lon\n1,2\n")
    catalog.register_dataset(gone, "gone")
    gone.unlink()
    (data_root / "bad").mkdir()
    (data_root / "bad" / "bad.csv").write_text("lat,lon\n10,20\n91,0\n")
    at = page()
    assert not at.exception
    assert at.selectbox(key="data_dataset").value == "bad"
    assert "line 3 (data row 2): lat = 91 is outside [-90, 90]" in at.error[0].value
    at.selectbox(key="data_dataset").set_value("gone").run()
    assert not at.exception
    assert f"registered dataset 'gone': file not found: {gone}" in at.error[0].value


def test_register_form_adds_and_selects_a_csv(data_root, tmp_path):
    csv = tmp_path / "mine.csv"
    tiny_frame().to_csv(csv, index=False)
    at = page()
    at.text_input(key="data_register_path").input(str(csv))
    at.text_input(key="data_register_name").input("mine")
    button(at, "data_register").click()
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="data_dataset").value == "mine"
    assert any("Registered mine" in s.value for s in at.success)
    at.text_input(key="data_register_path").input(str(tmp_path / "nope.csv"))
    button(at, "data_register").click()
    at.run()
    assert f"cannot register {tmp_path / 'nope.csv'}: no such file" in at.error[0].value
