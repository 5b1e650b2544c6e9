"""The point datasets the workbench can browse, and loading them with validation.

A point dataset is a CSV file with one row per sample:

- ``lat``, ``lon``: degrees (also accepted, in any case: latitude / longitude / lng / long);
- ``split`` (optional): train / val / test (validation, valid, training, testing are
  normalised); rows without a split column get ``"all"``, empty cells ``"unassigned"``;
- ``path`` (optional): an image file relative to the CSV (image-folder + CSV layout);
- any other column is a label kept as loaded (country, place, population, ...).

Where datasets come from (``list_datasets``):

| source | where | name |
| --- | --- | --- |
| ``demo`` | ``<root>/<name>/`` with a ``manifest.json`` listing a CSV (``build_demo``), or a folder holding ``<name>.csv`` | folder name |
| ``user`` | a CSV registered by path (``register_dataset``) or uploaded (``register_upload``, saved as ``<root>/uploads/<name>.csv``), kept in ``<root>/datasets.json`` | chosen name |
| ``subset`` | ``<csv stem>.overfit-<k>.csv`` next to a dataset's CSV (``workbench.data.subsets``) | ``<name>/overfit-<k>`` |

``<root>`` is ``$WORKBENCH_DATA`` or the repository's ``data/``.

What the workbench may read (the server's other files stay private): only CSVs inside the
*allowed folders*, the data root and the folders listed in ``$WORKBENCH_DATA_PATHS``
(``os.pathsep``-separated absolute paths). Paths are checked after resolving symlinks and
``..``, before the file is opened, when a CSV is registered and again whenever a catalogued
dataset is loaded, so no error message can quote a line of a file outside them. (A path
passed straight to ``load_points`` by a Python caller is read as given.)

Errors are
``NotFoundError`` (a file or name that does not exist) and ``InputError`` (a malformed CSV,
missing lat / lon columns, a non-numeric or out-of-range coordinate), each one line naming
the file and the line / column at fault.
"""
from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import ConfigError, InputError, NotFoundError
from workbench.io import write_bytes, write_text
from workbench.paths import REPO_ROOT

DATA_ENV = "WORKBENCH_DATA"
PATHS_ENV = "WORKBENCH_DATA_PATHS"  # more folders whose CSVs may be registered by path
UPLOADS = "uploads"  # <root>/uploads/<name>.csv: CSVs uploaded on the Data page
DEFAULT_ROOT = REPO_ROOT / "data"
REGISTRY_FILE = "datasets.json"
MANIFEST = "manifest.json"
BUILD_HINT = "python -m workbench data build-demo"

LAT_NAMES = ("lat", "latitude")
LON_NAMES = ("lon", "lng", "long", "longitude")
SPLIT_ALIASES = {"training": "train", "validation": "val", "valid": "val", "testing": "test"}
NO_SPLIT = "all"  # the split of every row of a CSV without a split column
UNASSIGNED = "unassigned"  # an empty cell of a split column
EVAL_SPLITS = ("val", "test")  # held-out splits, in order of preference for the oracle

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SUBSET = re.compile(r"\.overfit-(\d+)\.csv$")
_SUBSET_NAME = re.compile(r"\.overfit-\d+$")  # a dataset name that would read as a subset


@dataclass(frozen=True)
class DatasetInfo:
    """One browsable dataset: its name, its CSV file and where it comes from."""

    name: str  # "gallery", "gallery/overfit-1", a user's name
    csv: Path
    source: str  # "demo", "user", "subset" or "file" (a path given directly)
    description: str = ""

    @property
    def folder(self) -> Path:
        """The folder of the CSV: image paths are relative to it; subsets land in it."""
        return self.csv.parent

    def signature(self) -> tuple[str, int, int]:
        """(path, mtime_ns, size) of the CSV: a cache key that changes when the file does.

        Raises NotFoundError if the CSV is missing."""
        try:
            stat = self.csv.stat()
        except OSError:
            raise _missing(self) from None
        return str(self.csv), stat.st_mtime_ns, stat.st_size


@dataclass(frozen=True)
class SplitPlan:
    """Which rows build a partition (``fit``) and which evaluate it (``eval``): [N] bool."""

    fit: np.ndarray
    eval: np.ndarray
    fit_name: str  # "train", or "all" when the dataset has no training split
    eval_name: str  # "val", "test", or fit_name when nothing is held out

    @property
    def held_out(self) -> bool:
        return self.eval_name in EVAL_SPLITS


def data_root(root: str | Path | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$WORKBENCH_DATA``, else ``<repo>/data``.

    ConfigError (one line) if ``$WORKBENCH_DATA`` names a missing folder or a file.
    ``<repo>/data`` may be missing: the demo data is not built yet."""
    if root is not None:
        return Path(root)
    raw = os.environ.get(DATA_ENV, "").strip()
    if not raw:
        return DEFAULT_ROOT
    path = Path(raw).expanduser()
    if not path.is_dir():
        problem = "is a file, not a folder" if path.exists() else "is not an existing folder"
        raise ConfigError(f"environment variable {DATA_ENV}={raw!r} {problem}: point it at your "
                          f"data folder (create an empty one with `mkdir -p {raw}`), or unset "
                          f"it to use {DEFAULT_ROOT}")
    return path


def extra_data_paths() -> list[Path]:
    """The folders in ``$WORKBENCH_DATA_PATHS`` (absolute, existing, symlinks resolved).

    ConfigError (one line, naming the bad entry) for a relative path, a missing folder, a
    file, or the filesystem root (which would open every file on the server)."""
    raw = os.environ.get(PATHS_ENV, "")
    folders = []
    for entry in (e.strip() for e in raw.split(os.pathsep)):
        if not entry:
            continue  # "a:" or "a::b" are fine
        path = Path(entry).expanduser()
        if not path.is_absolute():
            problem = "is not an absolute path"
        elif not path.is_dir():
            problem = "is a file, not a folder" if path.exists() else "is not an existing folder"
        elif path.resolve() == Path(path.resolve().anchor):
            problem = "is the filesystem root, which would open every file on the server"
        else:
            folders.append(path.resolve())
            continue
        raise ConfigError(f"environment variable {PATHS_ENV}={raw!r} is invalid: {entry!r} "
                          f"{problem}; expected absolute folder paths separated by "
                          f"{os.pathsep!r} (e.g. export {PATHS_ENV}=/srv/geo{os.pathsep}/mnt/more), "
                          f"or unset it")
    return folders


def allowed_folders(root: str | Path | None = None) -> list[Path]:
    """The folders whose CSVs the workbench may read: the data root, then every folder in
    ``$WORKBENCH_DATA_PATHS``; absolute, symlinks resolved, without duplicates."""
    return list(dict.fromkeys([data_root(root).resolve(), *extra_data_paths()]))


def allowed_path(path: str | Path, root: str | Path | None = None, what: str = "") -> Path:
    """``path`` with ``~``, symlinks and ``..`` resolved, if it lies inside an allowed
    folder (``allowed_folders``); a relative path is taken relative to the data root.

    InputError otherwise, naming the allowed folders and how to add one; the file is never
    opened, so the message cannot quote it. ``what`` starts the message (default: "cannot
    read <path>").
    """
    given = Path(path).expanduser()
    if not given.is_absolute():
        given = data_root(root) / given
    resolved = given.resolve()
    folders = allowed_folders(root)
    if any(resolved.is_relative_to(folder) for folder in folders):
        return resolved
    shown = ", ".join(str(f) for f in folders)
    raise InputError(f"{what or f'cannot read {path}'}: it is outside the folders the workbench "
                     f"may read ({shown}); upload the CSV on the Data page, copy it into "
                     f"{folders[0]}, or add its folder to {PATHS_ENV} (export "
                     f"{PATHS_ENV}=/path/to/folder, then restart the app)")


def list_datasets(root: str | Path | None = None) -> list[DatasetInfo]:
    """Every dataset under the data root and every registered CSV, each followed by its
    overfit subsets. Registered CSVs are listed even when their file has gone (loading them
    then raises NotFoundError saying so)."""
    root = data_root(root)
    found = [*_folder_datasets(root), *_registered(root).values()]
    out: list[DatasetInfo] = []
    for info in found:
        out.append(info)
        out.extend(_subsets_of(info))
    return out


def get_dataset(name: str, root: str | Path | None = None) -> DatasetInfo:
    """The dataset called ``name``; NotFoundError lists the available names."""
    datasets = list_datasets(root)
    for info in datasets:
        if info.name == name:
            return info
    available = [d.name for d in datasets]
    hint = f"Available: {available}" if available else \
        f"no dataset in {data_root(root)}; run `{BUILD_HINT}` or register a CSV"
    raise NotFoundError(f"dataset {name!r} not found. {hint}")


def resolve(dataset: DatasetInfo | str | Path, root: str | Path | None = None) -> DatasetInfo:
    """A DatasetInfo from an info, a dataset name, or a path to a CSV file (a Path, or a
    string ending in .csv)."""
    if isinstance(dataset, DatasetInfo):
        return dataset
    if isinstance(dataset, Path) or str(dataset).lower().endswith(".csv"):
        path = Path(dataset)
        return DatasetInfo(path.stem, path, "file")
    return get_dataset(str(dataset), root)


def register_dataset(path: str | Path, name: str | None = None,
                     root: str | Path | None = None, description: str = "") -> DatasetInfo:
    """Make a CSV of points browsable under ``name`` (default: the file's stem).

    ``path`` must lie in an allowed folder (``allowed_path``: the data root or
    ``$WORKBENCH_DATA_PATHS``; relative paths are relative to the data root) and end in
    .csv; this is checked before the file is opened. The file is then loaded once to
    validate it (InputError / NotFoundError if it cannot be used). The registration is kept
    in ``<root>/datasets.json`` with the resolved path. Registering an existing user name
    again replaces it; demo names cannot be taken.
    """
    path = allowed_path(path, root, what=f"cannot register {path}")
    if path.suffix.lower() != ".csv":
        raise InputError(f"cannot register {path}: only .csv files can be datasets; give the "
                         f"path of a CSV with lat, lon columns")
    name = _check_name(name.strip() if name else _safe_name(path.stem), root)
    if not path.is_file():
        raise NotFoundError(f"cannot register {path}: no such file; give the path of an "
                            f"existing CSV with lat, lon columns")
    info = DatasetInfo(name, path, "user", description)
    load_points(info, root)  # validate before remembering it
    return _remember(info, root)


def upload_name(filename: str) -> str:
    """A dataset name from an uploaded file's name: its last path component (``/`` or
    ``\\``), without .csv, every character outside [A-Za-z0-9._-] replaced by '-'
    (``"../../my data.csv"`` -> ``"my-data"``; ``"upload"`` if nothing is left)."""
    base = _base_name(filename)
    return _safe_name(base[:-4] if base.lower().endswith(".csv") else base) or "upload"


def _base_name(filename: str) -> str:
    """The last component of a file name sent by a browser (either separator)."""
    return re.split(r"[\\/]", str(filename))[-1]


def register_upload(filename: str, data: bytes, name: str | None = None,
                    root: str | Path | None = None, description: str = "") -> DatasetInfo:
    """Save an uploaded CSV as ``<root>/uploads/<name>.csv`` and register it as ``name``
    (default: ``upload_name(filename)``).

    Nothing the user sent becomes a path unchecked: the file is saved under the validated
    dataset name, never under ``filename``. The content is validated before anything is
    written (InputError naming the uploaded file and the line at fault). Uploading under an
    existing user name replaces that dataset and its file.
    """
    root = data_root(root)
    name = _check_name(name.strip() if name else upload_name(filename), root)
    label = f"the uploaded file {_base_name(filename)!r}"
    points_from_table(_parse_csv(io.BytesIO(bytes(data)), label), label)
    folder = root / UPLOADS
    path = folder / f"{name}.csv"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes(path, bytes(data))  # renames over the entry itself: a planted symlink is not followed
    except OSError as exc:
        raise InputError(f"cannot save the upload as {path}: {exc.strerror or exc}; check that "
                         f"the data folder {root} is writable") from None
    return _remember(DatasetInfo(name, path.resolve(), "user", description), root)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", text).lstrip("._-")[:64]


def _check_name(name: str, root: str | Path | None) -> str:
    """``name`` if it can name a user dataset: InputError if malformed, if it would read as
    an overfit subset, or if a dataset folder of the data root already has it."""
    if not _NAME.match(name) or _SUBSET_NAME.search(name):
        raise InputError(f"dataset name {name!r} is not allowed: use 1-64 letters, digits, "
                         f"'.', '_' or '-', starting with a letter or digit (and not ending "
                         f"in .overfit-<k>, which names subsets)")
    root = data_root(root)
    if any(d.name == name for d in _folder_datasets(root)):
        raise InputError(f"dataset name {name!r} is taken by the dataset in {root / name}; "
                         f"choose another name")
    return name


def _remember(info: DatasetInfo, root: str | Path | None) -> DatasetInfo:
    root = data_root(root)
    entries = _read_registry(root)
    entries[info.name] = {"path": str(info.csv), "description": info.description}
    _write_registry(root, entries)
    return info


def unregister_dataset(name: str, root: str | Path | None = None) -> None:
    """Forget a registered CSV (the file itself is left alone)."""
    root = data_root(root)
    entries = _read_registry(root)
    if name not in entries:
        raise NotFoundError(f"no registered dataset {name!r}. Registered: {sorted(entries)}")
    del entries[name]
    _write_registry(root, entries)


def load_points(dataset: DatasetInfo | str | Path, root: str | Path | None = None) -> pd.DataFrame:
    """The samples of a dataset as a DataFrame [N rows].

    Columns: lat, lon (float64 degrees, validated), split (str, see the module docstring),
    then the CSV's other columns as pandas reads them (path, labels, ...). The index is
    0..N-1 in file order. Raises NotFoundError for a missing file and InputError for a
    malformed CSV, missing columns or bad coordinates (naming the file and line), or for a
    catalogued dataset (demo, user, subset) whose file lies outside the allowed folders.
    """
    info = resolve(dataset, root)
    if info.source != "file":  # found by the catalog: only ever read inside allowed folders
        allowed_path(info.csv, root, what=_outside_what(info))
    if not info.csv.is_file():
        raise _missing(info)  # says whether to rebuild the demo data or re-register
    return points_from_table(read_table(info.csv), info.csv)


def read_table(csv: Path, text: bool = False) -> pd.DataFrame:
    """The rows of a CSV, header excluded; blank lines dropped. The index of each row is
    its line number in the file minus 2 (the header is line 1), so errors can name lines.

    text=True keeps every value as the exact text of the file (for rewriting rows as they
    were, e.g. subsets); otherwise pandas infers column types.
    """
    csv = Path(csv)
    if not csv.is_file():
        raise _missing(DatasetInfo(csv.stem, csv, "file"))
    return _parse_csv(csv, csv, text)


def _parse_csv(source: Path | io.BytesIO, label: str | Path, text: bool = False) -> pd.DataFrame:
    """read_table's parsing of a file or an upload's bytes; ``label`` names it in errors."""
    # Only empty cells are missing: "NA" is Namibia's country code, not a missing value.
    kwargs = dict(dtype=str, keep_default_na=False) if text else \
        dict(keep_default_na=False, na_values=[""])
    try:
        frame = pd.read_csv(source, skip_blank_lines=False, **kwargs)
    except pd.errors.EmptyDataError:
        raise InputError(f"{label} is empty: a dataset CSV needs a header line with lat and "
                         f"lon columns, then one row per sample") from None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1].replace("Error tokenizing data. C error: ", "")
        raise InputError(f"{label} is not a well-formed CSV ({detail}); every row needs as "
                         f"many comma-separated fields as the header") from None
    except OSError as exc:
        raise InputError(f"cannot read {label}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{label} is not UTF-8 text (byte {exc.start}); save it as a UTF-8 "
                         f"CSV") from None
    blank = frame.isna().all(axis=1) if not text else (frame == "").all(axis=1)
    return frame[~blank.to_numpy()]


def points_from_table(frame: pd.DataFrame, csv: Path | str) -> pd.DataFrame:
    """Validate a table from ``read_table`` and return the points (see ``load_points``);
    ``csv`` names the file in errors."""
    if frame.empty:
        raise InputError(f"{csv} has no rows: add one row per sample below the header")
    lat_col = _find_column(frame.columns, LAT_NAMES, "latitude", csv)
    lon_col = _find_column(frame.columns, LON_NAMES, "longitude", csv)
    lat = _coordinates(frame[lat_col], lat_col, 90.0, csv)
    lon = _coordinates(frame[lon_col], lon_col, 180.0, csv)
    split_col = _find_column(frame.columns, ("split",), "split", csv, required=False)
    split = _splits(frame[split_col]) if split_col else np.full(len(frame), NO_SPLIT, object)
    rest = frame.drop(columns=[c for c in (lat_col, lon_col, split_col) if c])
    points = pd.DataFrame({"lat": lat, "lon": lon, "split": split})
    for col in rest.columns:
        points[col] = rest[col].to_numpy()
    return points


def split_counts(points: pd.DataFrame) -> pd.DataFrame:
    """Samples per split: columns split, count; train / val / test first, then the rest."""
    counts = points["split"].value_counts()
    order = [s for s in ("train", *EVAL_SPLITS) if s in counts.index]
    order += sorted(s for s in counts.index if s not in order)
    return pd.DataFrame({"split": order, "count": counts[order].to_numpy(np.int64)})


def fit_eval_split(points: pd.DataFrame) -> SplitPlan:
    """Rows to build a partition on and rows to evaluate it on.

    fit: the train split if there is one, else every row outside the held-out split (every
    row if that leaves nothing). eval: val if present, else test, else the fit rows
    themselves (no held-out data: the oracle then measures how well the cells fit their
    own points).
    """
    split = points["split"].to_numpy()
    present = set(pd.unique(split))
    held = next((s for s in EVAL_SPLITS if s in present), None)
    if "train" in present:
        fit, fit_name = split == "train", "train"
    else:
        fit = split != held if held else np.ones(len(split), bool)
        fit_name = f"all but {held}" if held else "all"
        if not fit.any():
            fit, fit_name = np.ones(len(split), bool), "all"
    evaluate = split == held if held else fit
    return SplitPlan(fit=fit, eval=evaluate, fit_name=fit_name, eval_name=held or fit_name)


def partition_path(info: DatasetInfo, t_min: int, t_max: int, min_level: int,
                   max_level: int) -> Path:
    """Where a partition of this dataset is saved: next to its CSV, named by its parameters
    (e.g. ``gallery.partition-t50-1000-l2-20.csv``)."""
    stem = info.csv.name[: -len(info.csv.suffix)] if info.csv.suffix else info.csv.name
    return info.folder / f"{stem}.partition-t{t_min}-{t_max}-l{min_level}-{max_level}.csv"


# -- discovery -------------------------------------------------------------------------------

def _folder_datasets(root: Path) -> list[DatasetInfo]:
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                         and p.name != UPLOADS):  # uploads are user datasets (datasets.json)
        csv, description = _manifest_csv(folder)
        if csv is None and (folder / f"{folder.name}.csv").is_file():
            csv = folder / f"{folder.name}.csv"
        if csv is not None:
            out.append(DatasetInfo(folder.name, csv, "demo", description))
    return out


def _manifest_csv(folder: Path) -> tuple[Path | None, str]:
    """The first CSV a demo manifest lists, and a one-line description from it."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None, ""
    csvs = [f for f in manifest.get("files", []) if str(f).lower().endswith(".csv")]
    if not csvs:
        return None, ""
    counts = ", ".join(f"{k}: {v}" for k, v in (manifest.get("counts") or {}).items())
    return folder / csvs[0], "; ".join(filter(None, [manifest.get("source", ""), counts]))


def _subsets_of(info: DatasetInfo) -> list[DatasetInfo]:
    if info.source == "subset" or not info.folder.is_dir():
        return []
    stem = info.csv.name[: -len(info.csv.suffix)] if info.csv.suffix else info.csv.name
    subsets = []
    for path in info.folder.glob(f"{glob_escape(stem)}.overfit-*.csv"):
        match = _SUBSET.search(path.name)
        if match and path.name == f"{stem}.overfit-{match.group(1)}.csv":
            subsets.append((int(match.group(1)), path))
    return [DatasetInfo(f"{info.name}/overfit-{k}", path, "subset",
                        f"{k} sample(s) per partition cell of {info.name}")
            for k, path in sorted(subsets)]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _registered(root: Path) -> dict[str, DatasetInfo]:
    return {name: DatasetInfo(name, Path(entry["path"]), "user", entry.get("description", ""))
            for name, entry in _read_registry(root).items()}


def _read_registry(root: Path) -> dict[str, dict]:
    path = root / REGISTRY_FILE
    try:
        entries = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); fix or delete it (it only lists "
                         f"registered CSV paths)") from None
    if not isinstance(entries, dict) or not all(
            isinstance(e, dict) and "path" in e for e in entries.values()):
        raise InputError(f"{path} should map dataset names to {{\"path\": ...}}; fix or "
                         f"delete it")
    return entries


def _write_registry(root: Path, entries: dict[str, dict]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    path = root / REGISTRY_FILE
    write_text(path, json.dumps(entries, indent=2, sort_keys=True) + "\n")


# -- validation ------------------------------------------------------------------------------

def _outside_what(info: DatasetInfo) -> str:
    if info.source == "user":
        return (f"registered dataset {info.name!r} points at {info.csv}, so it cannot be read "
                f"(register it again from an allowed folder, or add its folder)")
    return f"dataset {info.name!r} ({info.csv}) cannot be read"


def _missing(info: DatasetInfo) -> NotFoundError:
    if info.source == "user":
        what = (f"registered dataset {info.name!r}: file not found: {info.csv}; restore the "
                f"file or register it again from its new path")
    else:
        what = (f"dataset file not found: {info.csv}; build the demo datasets with "
                f"`{BUILD_HINT}` or pass the path of an existing CSV")
    return NotFoundError(what)


def _find_column(columns: pd.Index, names: tuple[str, ...], what: str, csv: Path,
                 required: bool = True) -> str | None:
    """The first column whose lower-cased, stripped name is in ``names`` (in their order)."""
    lookup = {}
    for col in columns:
        lookup.setdefault(str(col).strip().lower(), col)
    for name in names:
        if name in lookup:
            return lookup[name]
    if not required:
        return None
    shown = [str(c) for c in columns][:12]
    raise InputError(f"{csv} has no {what} column: expected one named {' / '.join(names)}; "
                     f"found columns {shown}")


def _where(frame_index: int, position: int) -> str:
    """'line 5 (data row 4)': the file line (the header is line 1; see ``read_table``) and
    the 1-based row number among the data rows."""
    return f"line {frame_index + 2} (data row {position + 1})"


def _coordinates(column: pd.Series, name: str, limit: float, csv: Path) -> np.ndarray:
    """float64 [N] degrees in [-limit, limit]; InputError names the first bad line."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    bad = ~(np.abs(values) <= limit)  # NaN fails the comparison, so it is caught too
    if not bad.any():
        return values
    first = int(np.argmax(bad))
    raw = column.iloc[first]
    text = "" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw).strip()
    if text == "":
        problem = f"{name} is empty"
    elif np.isnan(values[first]):
        problem = f"{name} = {text!r} is not a number"
    else:
        problem = f"{name} = {values[first]:g} is outside [{-limit:g}, {limit:g}] degrees"
    hint = "; check for swapped lat/lon columns" if not np.isnan(values[first]) else ""
    raise InputError(f"{csv}, {_where(int(column.index[first]), first)}: {problem} "
                     f"({int(bad.sum())} bad row(s) in total{hint})")


def _splits(column: pd.Series) -> np.ndarray:
    text = column.fillna("").astype(str).str.strip().str.lower()
    text = text.replace(SPLIT_ALIASES).replace("", UNASSIGNED)
    return text.to_numpy(object)
