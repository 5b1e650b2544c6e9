"""The dataset catalog: discovery, registration, loading, and one-line errors naming the file
and the line at fault."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.data import catalog
from workbench.errors import ConfigError, InputError, NotFoundError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """An empty data root that the catalog finds through $WORKBENCH_DATA (and no extra
    allowed folders)."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv(catalog.DATA_ENV, str(root))
    monkeypatch.delenv(catalog.PATHS_ENV, raising=False)
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


def test_lists_demo_folders_registered_csvs_and_subsets(demo_root, tmp_path, monkeypatch):
    mine = write(tmp_path / "elsewhere" / "mine.csv", "lat,lon\n1,2\n")
    monkeypatch.setenv(catalog.PATHS_ENV, str(tmp_path / "elsewhere"))
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


def test_empty_root_lists_nothing(root):
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
    csv = write(root / "user-files" / "mine.csv", "lat,lon\n1,2\n")
    catalog.register_dataset(csv, "mine")
    csv.unlink()
    info = catalog.get_dataset("mine")  # still listed, so the page can say what happened
    with pytest.raises(NotFoundError, match=rf"registered dataset 'mine': file not found: {csv}"):
        catalog.load_points(info)
    with pytest.raises(NotFoundError, match="registered dataset 'mine'"):
        info.signature()


def test_register_validates_file_and_name(demo_root, tmp_path):
    with pytest.raises(NotFoundError, match=rf"cannot register {demo_root / 'nope.csv'}: no such file"):
        catalog.register_dataset(demo_root / "nope.csv")
    bad = write(demo_root / "mine" / "bad.csv", "lat,lon\n100,0\n")
    with pytest.raises(InputError, match="lat = 100 is outside"):
        catalog.register_dataset(bad)
    with pytest.raises(InputError, match=r"only \.csv files"):
        catalog.register_dataset(write(demo_root / "notes.txt", "lat,lon\n1,2\n"))
    good = write(demo_root / "mine" / "my data.csv", "lat,lon\n1,2\n")
    with pytest.raises(InputError, match="taken by the dataset in"):
        catalog.register_dataset(good, "patches")
    with pytest.raises(InputError, match="is not allowed"):
        catalog.register_dataset(good, "../escape")
    with pytest.raises(InputError, match="is not allowed"):
        catalog.register_dataset(good, "patches.overfit-1")  # would read as a subset
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


# -- the server's files stay private -------------------------------------------------------

SECRET = "SECRET-HEADER-7f3a"  # the first line of files outside the allowed folders


def assert_private(message: str, *texts: str) -> None:
    """One line, no file content, naming the allowed folders and how to add one."""
    assert "\n" not in message and SECRET not in message
    for text in texts:
        assert text not in message
    assert "outside the folders the workbench may read" in message
    assert catalog.PATHS_ENV in message and "upload" in message


@pytest.fixture
def outside(tmp_path) -> Path:
    """A malformed CSV outside the data root whose header is a secret."""
    return write(tmp_path / "private" / "secret.csv", f"{SECRET},x\nroot:x:0:0,1\n")


def test_a_system_file_is_refused_without_reading_it(root):
    passwd = Path("/etc/passwd")
    first_line = passwd.read_text().splitlines()[0] if passwd.is_file() else SECRET
    with pytest.raises(InputError) as err:
        catalog.register_dataset("/etc/passwd")
    assert_private(str(err.value), first_line, "root:x:0:0")
    assert str(err.value).startswith("cannot register /etc/passwd: it is outside")
    assert str(root.resolve()) in str(err.value)
    assert not (root / catalog.REGISTRY_FILE).exists()


def test_dot_dot_and_symlink_escapes_are_refused(root, outside):
    escapes = [root / "x" / ".." / ".." / "private" / "secret.csv",
               str(root) + "/../private/secret.csv",
               "../private/secret.csv"]  # relative to the data root
    (root / "link.csv").symlink_to(outside)
    (root / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    escapes += [root / "link.csv", root / "linkdir" / "secret.csv"]
    for path in escapes:
        with pytest.raises(InputError) as err:
            catalog.register_dataset(path, "leak")
        assert_private(str(err.value), "root:x:0:0")
    assert catalog.list_datasets() == []


def test_paths_inside_the_data_root_are_allowed(root):
    csv = write(root / "mine" / "points.csv", "lat,lon\n1,2\n3,4\n")
    info = catalog.register_dataset(csv, "abs")
    assert info.csv == csv.resolve() and len(catalog.load_points("abs")) == 2
    assert catalog.register_dataset("mine/points.csv", "rel").csv == csv.resolve()
    (root / "alias.csv").symlink_to(csv)  # a symlink that stays inside is fine
    assert catalog.register_dataset(root / "alias.csv", "alias").csv == csv.resolve()


def test_workbench_data_paths_adds_folders(root, tmp_path, monkeypatch, outside):
    a = write(tmp_path / "a" / "one.csv", "lat,lon\n1,2\n")
    b = write(tmp_path / "b" / "deep" / "two.csv", "lat,lon\n1,2\n")
    monkeypatch.setenv(catalog.PATHS_ENV, f" {tmp_path / 'a'}{os.pathsep}{os.pathsep}{tmp_path / 'b'}{os.pathsep}")
    assert catalog.allowed_folders() == [root.resolve(), (tmp_path / "a").resolve(),
                                         (tmp_path / "b").resolve()]
    assert catalog.register_dataset(a).name == "one"
    assert catalog.register_dataset(b).name == "two"
    with pytest.raises(InputError) as err:
        catalog.register_dataset(outside)
    assert_private(str(err.value))
    assert str(tmp_path / "a") in str(err.value)  # the message lists the configured folders

    # once the folder is no longer configured, its dataset is listed but not read
    monkeypatch.setenv(catalog.PATHS_ENV, str(tmp_path / "b"))
    assert "one" in [d.name for d in catalog.list_datasets()]
    with pytest.raises(InputError, match="registered dataset 'one' points at .*outside the folders"):
        catalog.load_points("one")


@pytest.mark.parametrize("value, problem", [
    ("relative/folder", "is not an absolute path"),
    ("{tmp}/missing", "is not an existing folder"),
    ("{tmp}/file.txt", "is a file, not a folder"),
    ("/", "is the filesystem root"),
    ("{tmp}/ok" + os.pathsep + "{tmp}/missing", "is not an existing folder"),
])
def test_a_bad_workbench_data_paths_is_one_line(root, tmp_path, monkeypatch, value, problem):
    (tmp_path / "ok").mkdir()
    write(tmp_path / "file.txt", "x")
    monkeypatch.setenv(catalog.PATHS_ENV, value.format(tmp=tmp_path))
    with pytest.raises(ConfigError) as err:
        catalog.allowed_folders()
    message = str(err.value)
    assert message.startswith(f"environment variable {catalog.PATHS_ENV}=") and problem in message
    assert "\n" not in message and "unset it" in message
    with pytest.raises(ConfigError):
        catalog.register_dataset(write(root / "x.csv", "lat,lon\n1,2\n"))


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_bad_workbench_data_is_one_line(tmp_path, monkeypatch, kind):
    target = tmp_path / "nowhere" if kind == "missing" else write(tmp_path / "data.txt", "x")
    monkeypatch.setenv(catalog.DATA_ENV, str(target))
    for call in (catalog.data_root, catalog.list_datasets, lambda: catalog.get_dataset("cities")):
        with pytest.raises(ConfigError) as err:
            call()
        message = str(err.value)
        assert message.startswith(f"environment variable {catalog.DATA_ENV}={str(target)!r}")
        assert ("is not an existing folder" if kind == "missing" else "is a file") in message
        assert "\n" not in message and "unset" in message


def test_a_registry_entry_outside_is_never_read(root, outside):
    """A datasets.json written by an older version (or by hand) that points at a private
    file: listed, but loading it says why and quotes nothing."""
    write(root / catalog.REGISTRY_FILE, json.dumps({"old": {"path": str(outside)},
                                                    "sys": {"path": "/etc/passwd"}}))
    assert [d.name for d in catalog.list_datasets()] == ["old", "sys"]
    for name in ("old", "sys"):
        with pytest.raises(InputError) as err:
            catalog.load_points(name)
        assert_private(str(err.value), "root:x:0:0")
        assert f"registered dataset {name!r} points at" in str(err.value)


def test_a_demo_manifest_cannot_point_outside(root, outside):
    write(root / "evil" / "manifest.json", json.dumps({"files": ["../../private/secret.csv"]}))
    (info,) = catalog.list_datasets()
    with pytest.raises(InputError) as err:
        catalog.load_points(info)
    assert_private(str(err.value))


def test_upload_is_saved_under_a_safe_name_and_registered(root):
    body = b"lat,lon,split\n48.85,2.35,train\n35.68,139.69,val\n"
    info = catalog.register_upload("../../..\\evil dir/../my points.csv", body)
    assert info.name == "my-points" and info.source == "user"
    assert info.csv == (root / catalog.UPLOADS / "my-points.csv").resolve()
    assert info.csv.read_bytes() == body
    assert sorted(p.name for p in (root / catalog.UPLOADS).iterdir()) == ["my-points.csv"]
    points = catalog.load_points("my-points")
    assert points["split"].tolist() == ["train", "val"]
    assert [d.name for d in catalog.list_datasets()] == ["my-points"]  # not also a demo folder

    # the same name again replaces the file; a chosen name wins over the file's
    catalog.register_upload("my points.csv", b"lat,lon\n1,2\n")
    assert len(catalog.load_points("my-points")) == 1
    assert catalog.register_upload("x.csv", body, name="chosen").csv.name == "chosen.csv"
    assert catalog.upload_name("....csv") == "upload" and catalog.upload_name("a/.env") == "env"


def test_a_bad_upload_writes_nothing(demo_root):
    with pytest.raises(InputError, match=r"the uploaded file 'pts\.csv', line 3 \(data row 2\): "
                                         r"lat = 95 is outside"):
        catalog.register_upload("pts.csv", b"lat,lon\n1,2\n95,0\n")
    with pytest.raises(InputError, match="the uploaded file 'e.csv' is empty"):
        catalog.register_upload("e.csv", b"")
    with pytest.raises(InputError, match="taken by the dataset in"):
        catalog.register_upload("patches.csv", b"lat,lon\n1,2\n")
    with pytest.raises(InputError, match="is not allowed"):
        catalog.register_upload("x.csv", b"lat,lon\n1,2\n", name="../x")
    assert not (demo_root / catalog.UPLOADS).exists()
    assert not (demo_root / catalog.REGISTRY_FILE).exists()
