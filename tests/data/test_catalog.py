"""The dataset catalog: discovery, registration, loading, and one-line errors naming the file
and the line at fault."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.data import catalog
from workbench.errors import InputError, NotFoundError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """An empty data root that the catalog finds through $WORKBENCH_DATA."""
    root = tmp_path / "data"
    monkeypatch.setenv(catalog.DATA_ENV, str(root))
    return root


@pytest.fixture
def demo_root(root) -> Path:
    """A demo-style dataset (manifest listing its CSV) and a plain <name>/<name>.csv one."""
    write(root / "patches" / "patches.csv",
          "path,lat,lon,split,place,country\n"
          'a.jpg,48.85,2.35,train,"Paris, FR",FR\n'
          'b.jpg,-22.56,17.08,Validation,"Windhoek, NA",NA\n'
          "c.jpg,35.68,139.69,TEST,Tokyo,JP\n"
          "d.jpg,40.71,-74.0,,New York,US\n")
    write(root / "patches" / "manifest.json",
          json.dumps({"dataset": "patches", "files": ["patches.csv", "images/"],
                      "source": "test", "counts": {"patches": 4}}))
    write(root / "points" / "points.csv", "Latitude,LNG\n10,20\n-30.5,-170.25\n")
    write(root / "notes" / "readme.txt", "not a dataset\n")
    return root


def test_lists_demo_folders_registered_csvs_and_subsets(demo_root, tmp_path):
    mine = write(tmp_path / "elsewhere" / "mine.csv", "lat,lon\n1,2\n")
    catalog.register_dataset(mine, "mine")
    write(demo_root / "patches" / "patches.overfit-5.csv", "path,lat,lon\na.jpg,48.85,2.35\n")
    write(demo_root / "patches" / "patches.overfit-1.csv", "path,lat,lon\na.jpg,48.85,2.35\n")
    write(demo_root / "patches" / "patches.partition-t1-5-l2-20.csv", "# partition\n")

    found = {d.name: d for d in catalog.list_datasets()}
    assert list(found) == ["patches", "patches/overfit-1", "patches/overfit-5", "points", "mine"]
    assert found["patches"].csv == demo_root / "patches" / "patches.csv"
    assert found["patches"].source == "demo" and "patches: 4" in found["patches"].description
    assert found["points"].csv == demo_root / "points" / "points.csv"
    assert found["patches/overfit-1"].source == "subset"
    assert found["mine"].csv == mine.resolve() and found["mine"].source == "user"
    assert json.loads((demo_root / catalog.REGISTRY_FILE).read_text())["mine"]["path"] == str(mine.resolve())
    assert catalog.get_dataset("mine").csv == mine.resolve()

    catalog.unregister_dataset("mine")
    assert "mine" not in [d.name for d in catalog.list_datasets()]
    assert mine.exists()  # forgetting a dataset never deletes the user's file


def test_empty_or_missing_root_lists_nothing(root):
    assert catalog.list_datasets() == []
    with pytest.raises(NotFoundError, match="build-demo"):
        catalog.get_dataset("gallery")


def test_unknown_name_lists_available(demo_root):
    with pytest.raises(NotFoundError, match=r"'nope' not found\. Available: \['patches', 'points'\]"):
        catalog.load_points("nope")


def test_load_points_normalises_columns_and_splits(demo_root):
    points = catalog.load_points("patches")
    assert list(points.columns) == ["lat", "lon", "split", "path", "place", "country"]
    assert points["lat"].dtype == np.float64 and points["lon"].dtype == np.float64
    np.testing.assert_allclose(points["lat"], [48.85, -22.56, 35.68, 40.71])
    assert points["split"].tolist() == ["train", "val", "test", catalog.UNASSIGNED]
    assert points["place"].tolist() == ["Paris, FR", "Windhoek, NA", "Tokyo", "New York"]
    assert points["country"].tolist() == ["FR", "NA", "JP", "US"]  # Namibia is not a NaN

    aliased = catalog.load_points("points")  # Latitude / LNG, no split column
    assert list(aliased.columns) == ["lat", "lon", "split"]
    np.testing.assert_allclose(aliased[["lat", "lon"]].to_numpy(), [[10, 20], [-30.5, -170.25]])
    assert set(aliased["split"]) == {catalog.NO_SPLIT}


def test_split_counts_and_fit_eval_split(demo_root):
    points = catalog.load_points("patches")
    counts = catalog.split_counts(points)
    assert counts.to_dict("list") == {"split": ["train", "val", "test", "unassigned"],
                                      "count": [1, 1, 1, 1]}
    plan = catalog.fit_eval_split(points)
    assert plan.fit.tolist() == [True, False, False, False] and plan.fit_name == "train"
    assert plan.eval.tolist() == [False, True, False, False] and plan.eval_name == "val"
    assert plan.held_out

    no_split = catalog.fit_eval_split(catalog.load_points("points"))
    assert no_split.fit.all() and no_split.eval.all() and not no_split.held_out
    assert no_split.fit_name == no_split.eval_name == "all"

    test_only = pd.DataFrame({"split": ["test", "test", "unassigned"]})
    plan = catalog.fit_eval_split(test_only)
    assert plan.fit.tolist() == [False, False, True] and plan.fit_name == "all but test"
    assert plan.eval.tolist() == [True, True, False] and plan.eval_name == "test"


@pytest.mark.parametrize("body, message", [
    ("lat,lon\n1,2\n3,4\n95,10\n", r"line 4 \(data row 3\): lat = 95 is outside \[-90, 90\]"),
    ("lat,lon\n1,2\n3,-181.5\n", r"line 3 \(data row 2\): lon = -181.5 is outside \[-180, 180\]"),
    ("lat,lon\n1,2\nabc,4\n", r"line 3 \(data row 2\): lat = 'abc' is not a number"),
    ("lat,lon\n1,2\n,4\n", r"line 3 \(data row 2\): lat is empty"),
    # a blank line still counts for the line number, not for the data row
    ("lat,lon\n1,2\n\n3,4\n-91,0\n", r"line 5 \(data row 3\): lat = -91 is outside"),
])
def test_bad_coordinates_name_the_file_and_row(tmp_path, body, message):
    csv = write(tmp_path / "bad.csv", body)
    with pytest.raises(InputError, match=message) as err:
        catalog.load_points(csv)
    assert str(csv) in str(err.value) and "\n" not in str(err.value)


def test_counts_every_bad_row_and_hints_at_swapped_columns(tmp_path):
    csv = write(tmp_path / "swapped.csv", "lat,lon\n120,45\n130,46\n10,10\n")
    with pytest.raises(InputError, match=r"line 2 \(data row 1\).*2 bad row\(s\).*swapped"):
        catalog.load_points(csv)


def test_missing_lat_lon_columns_lists_what_was_found(tmp_path):
    csv = write(tmp_path / "nocoords.csv", "x,y,label\n1,2,a\n")
    with pytest.raises(InputError, match=r"no latitude column: expected one named lat / latitude; "
                                         r"found columns \['x', 'y', 'label'\]") as err:
        catalog.load_points(csv)
    assert str(csv) in str(err.value)
    write(csv, "lat,y\n1,2\n")
    with pytest.raises(InputError, match="no longitude column: expected one named lon / lng"):
        catalog.load_points(csv)


def test_malformed_empty_and_headless_csvs(tmp_path):
    ragged = write(tmp_path / "ragged.csv", "lat,lon\n1,2\n3,4,5\n")
    with pytest.raises(InputError, match=rf"{ragged} is not a well-formed CSV \(Expected 2 fields "
                                         r"in line 3, saw 3\)"):
        catalog.load_points(ragged)
    empty = write(tmp_path / "empty.csv", "")
    with pytest.raises(InputError, match=rf"{empty} is empty"):
        catalog.load_points(empty)
    header = write(tmp_path / "header.csv", "lat,lon\n")
    with pytest.raises(InputError, match=rf"{header} has no rows"):
        catalog.load_points(header)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"lat,lon\n\xff\xfe,1\n")
    with pytest.raises(InputError, match="not UTF-8"):
        catalog.load_points(binary)


def test_missing_files(root, tmp_path):
    missing = tmp_path / "gone.csv"
    with pytest.raises(NotFoundError, match=rf"dataset file not found: {missing}; .*build-demo"):
        catalog.load_points(missing)
    csv = write(tmp_path / "mine.csv", "lat,lon\n1,2\n")
    catalog.register_dataset(csv, "mine")
    csv.unlink()
    info = catalog.get_dataset("mine")  # still listed, so the page can say what happened
    with pytest.raises(NotFoundError, match=rf"registered dataset 'mine': file not found: {csv}"):
        catalog.load_points(info)
    with pytest.raises(NotFoundError, match="registered dataset 'mine'"):
        info.signature()


def test_register_validates_file_and_name(demo_root, tmp_path):
    with pytest.raises(NotFoundError, match=rf"cannot register {tmp_path / 'nope.csv'}: no such file"):
        catalog.register_dataset(tmp_path / "nope.csv")
    bad = write(tmp_path / "bad.csv", "lat,lon\n100,0\n")
    with pytest.raises(InputError, match="lat = 100 is outside"):
        catalog.register_dataset(bad)
    good = write(tmp_path / "my data.csv", "lat,lon\n1,2\n")
    with pytest.raises(InputError, match="taken by the dataset in"):
        catalog.register_dataset(good, "patches")
    with pytest.raises(InputError, match="is not allowed"):
        catalog.register_dataset(good, "../escape")
    assert catalog.register_dataset(good).name == "my-data"  # default: the stem, made safe
    with pytest.raises(NotFoundError, match="no registered dataset 'other'"):
        catalog.unregister_dataset("other")
    assert [d.name for d in catalog.list_datasets() if d.source == "user"] == ["my-data"]


def test_corrupt_registry_is_an_input_error(root):
    write(root / catalog.REGISTRY_FILE, "{not json")
    with pytest.raises(InputError, match="datasets.json is not valid JSON"):
        catalog.list_datasets()


def test_signature_changes_when_the_file_changes(demo_root):
    info = catalog.get_dataset("points")
    before = info.signature()
    write(info.csv, "lat,lon\n10,20\n-30.5,-170.25\n1,1\n")
    assert info.signature() != before and info.signature()[0] == str(info.csv)


def test_partition_path_is_next_to_the_csv(demo_root):
    info = catalog.get_dataset("patches")
    path = catalog.partition_path(info, 5, 100, 2, 20)
    assert path == demo_root / "patches" / "patches.partition-t5-100-l2-20.csv"
