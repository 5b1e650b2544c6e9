"""The embeddings artifact: named sets of points in one space, with one metadata row each.

A run writes them under ``artifacts/embeddings/``, a bundle under ``embeddings/``:

| file | content |
| --- | --- |
| ``<name>.npy`` | float32 [N, D] (or float16, to halve a bundle: read back as float32) |
| ``<name>.parquet`` | N rows, in the order of the .npy: ``id`` (unique), ``modality`` ("image", "text", "location", ...), ``group`` (links paired points, e.g. an image and its captions; may repeat), ``split``, ``lat`` / ``lon`` (NaN where unknown) and any label columns (country, continent, cell, caption, path, ...) |

The contrastive lines write theirs as the set ``paired`` (``workbench.contrastive.artifacts``:
images and captions, or tiles and locations, ``group`` = the image id); folders of their
earlier layout (``image.npy`` + ``text.npy`` + ``meta.parquet``) are read as that set too.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import InputError, NotFoundError
from workbench.io import atomic_path
from workbench.paths import CHECKPOINTS

REQUIRED = ("id", "modality", "group", "split", "lat", "lon")
PAIRED = "paired"  # the name of the contrastive layout's set
LEGACY_META = "meta.parquet"


@dataclass(frozen=True)
class SetRef:
    """Where one embedding set lives (nothing loaded)."""

    source: str  # the source's label: "checkpoint: clip-demo", "run: clip-2026..."
    name: str  # "test", "paired", ...
    folder: Path  # the embeddings folder

    @property
    def key(self) -> str:
        return f"{self.source} / {self.name}"

    @property
    def files(self) -> list[Path]:
        if self.name == PAIRED and not (self.folder / f"{PAIRED}.npy").is_file():
            meta = pd.read_parquet(self.folder / LEGACY_META, columns=["modality"])
            return [self.folder / LEGACY_META] + [self.folder / f"{m}.npy" for m in meta["modality"].unique()]
        return [self.folder / f"{self.name}.npy", self.folder / f"{self.name}.parquet"]

    def fingerprint(self) -> str:
        """A hash of the set's bytes (the files' contents, read in 1 MiB blocks)."""
        h = hashlib.blake2b(digest_size=16)
        for file in self.files:
            h.update(file.name.encode())
            with open(file, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
        return h.hexdigest()


@dataclass
class EmbeddingSet:
    ref: SetRef
    vectors: np.ndarray  # float32 [N, D]
    meta: pd.DataFrame  # N rows

    def __len__(self) -> int:
        return len(self.vectors)


def check_meta(meta: pd.DataFrame, n: int) -> None:
    missing = [c for c in REQUIRED if c not in meta.columns]
    if missing:
        raise InputError(f"embeddings metadata lacks the columns {missing} (needs {list(REQUIRED)})")
    if len(meta) != n:
        raise InputError(f"embeddings metadata has {len(meta)} rows for {n} vectors")
    if meta["id"].duplicated().any():
        first = meta["id"][meta["id"].duplicated()].iloc[0]
        raise InputError(f"embeddings ids must be unique; '{first}' repeats")


def write_set(folder: str | Path, name: str, vectors: np.ndarray, meta: pd.DataFrame,
              dtype: str = "float32") -> Path:
    """``<name>.npy`` + ``<name>.parquet`` in ``folder`` (atomic files), after checking them.
    ``dtype`` float16 halves the file (bundles); readers get float32 either way."""
    if dtype not in ("float32", "float16"):
        raise InputError(f"embedding sets are stored as float32 or float16, not {dtype}")
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"bad embedding set name {name!r}")
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.number):
        raise InputError(f"embedding set '{name}' needs numeric [N, D] vectors; got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise InputError(f"embedding set '{name}' has non-finite values")
    check_meta(meta, len(vectors))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / f"{name}.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(vectors, dtype=dtype))
    with atomic_path(folder / f"{name}.parquet") as tmp:
        meta.reset_index(drop=True).to_parquet(tmp, index=False)
    return folder / f"{name}.npy"


def set_names(folder: str | Path) -> list[str]:
    """The sets in an embeddings folder: every ``<name>.npy`` with its ``<name>.parquet``, and
    ``paired`` for the contrastive layout."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = sorted(p.stem for p in folder.glob("*.npy") if (folder / f"{p.stem}.parquet").is_file())
    if (folder / LEGACY_META).is_file() and PAIRED not in names:
        names.append(PAIRED)
    return names


def _read_paired(folder: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """The earlier paired layout (``<modality>.npy`` + ``meta.parquet``) as one set, in the
    rows of its metadata (``group`` = the image id)."""
    meta = pd.read_parquet(folder / LEGACY_META).reset_index(drop=True)
    vectors = None
    for modality in meta["modality"].unique():
        path = folder / f"{modality}.npy"
        if not path.is_file():
            raise NotFoundError(f"{path} is missing: {LEGACY_META} lists modality '{modality}'")
        part = np.load(path)
        if vectors is None:
            vectors = np.empty((len(meta), part.shape[1]), np.float32)
        at = np.flatnonzero(meta["modality"].to_numpy() == modality)
        vectors[at] = part[meta["row"].to_numpy()[at]]
    if "group" not in meta:
        meta["group"] = meta["image_id"].astype(str) if "image_id" in meta else meta["id"]
    return vectors, meta


def read_set(ref: SetRef, mmap: bool = True) -> EmbeddingSet:
    folder = Path(ref.folder)
    if ref.name == PAIRED and not (folder / f"{PAIRED}.npy").is_file():
        vectors, meta = _read_paired(folder)
    else:
        npy, parquet = folder / f"{ref.name}.npy", folder / f"{ref.name}.parquet"
        for f in (npy, parquet):
            if not f.is_file():
                raise NotFoundError(f"{f} not found: embedding set '{ref.name}' of {ref.source} is incomplete")
        try:
            vectors = np.load(npy, mmap_mode="r" if mmap else None)
        except ValueError as exc:
            raise InputError(f"{npy} is not a .npy array ({exc})") from None
        meta = pd.read_parquet(parquet)
        if vectors.dtype != np.float32:
            vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise InputError(f"embedding set '{ref.name}' of {ref.source}: vectors must be [N, D], got {vectors.shape}")
    check_meta(meta, len(vectors))
    return EmbeddingSet(ref, vectors, meta)


def _folders(runs_root=None, checkpoints_root=CHECKPOINTS) -> list[tuple[str, Path]]:
    """(label, embeddings folder) of every bundle (demos first) and every run (newest first)."""
    from workbench.runs import RunStore

    out = []
    root = Path(checkpoints_root)
    if root.is_dir():
        for p in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: (not p.name.endswith("-demo"), p.name)):
            out.append((f"checkpoint: {p.name}", p / "embeddings"))
    try:
        runs = RunStore(runs_root).list()
    except Exception:  # an unreadable runs folder must not hide the shipped bundles
        runs = []
    out += [(f"run: {r.id}", r.path / "artifacts" / "embeddings") for r in runs]
    return out


def list_sets(runs_root=None, checkpoints_root=CHECKPOINTS) -> list[SetRef]:
    """Every embedding set of every bundle and run (file names only: nothing is loaded)."""
    return [SetRef(label, name, folder) for label, folder in _folders(runs_root, checkpoints_root)
            for name in set_names(folder)]


def find_set(source: str, name: str | None = None, runs_root=None, checkpoints_root=CHECKPOINTS) -> SetRef:
    """A set by its source (a label such as ``checkpoint: clip-demo``, a bundle or run name,
    or an embeddings folder path) and name (default: the only / first set there)."""
    path = Path(source)
    if path.is_dir():
        folder = path if set_names(path) else next((f for f in (path / "embeddings", path / "artifacts" / "embeddings")
                                                   if set_names(f)), path)
        candidates = [SetRef(str(path), n, folder) for n in set_names(folder)]
    else:
        candidates = [r for r in list_sets(runs_root, checkpoints_root)
                      if source in (r.source, r.source.split(": ", 1)[-1])]
    if not candidates:
        labels = sorted({r.source.split(": ", 1)[-1] for r in list_sets(runs_root, checkpoints_root)})
        raise NotFoundError(f"no embedding sets in '{source}'. Sources with embeddings: {labels}")
    if name is None:
        return candidates[0]
    for r in candidates:
        if r.name == name:
            return r
    raise NotFoundError(f"{candidates[0].source} has no embedding set '{name}'. Sets: {[r.name for r in candidates]}")
