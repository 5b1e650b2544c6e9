"""The paired embeddings artifact: points of one or more modalities (image, text, location)
in one space, with metadata; the contrastive lines' view of the core embedding set format.

On disk it is one core embedding set (``workbench.embeddings.sets``) named ``paired`` in
``artifacts/embeddings/`` (a bundle's ``embeddings/``):

| file | content |
| --- | --- |
| ``paired.npy`` | float32 [N, D]: every point of every modality, in the rows of ``paired.parquet`` |
| ``paired.parquet`` | one row per point: ``id`` (unique, e.g. ``image:17``), ``modality``, ``row`` (its index among that modality's points), ``group`` (the image id: an image and its captions share it), ``image_id``, ``caption``, ``lat``, ``lon``, ``country``, ``continent``, ``split``, and any further label columns |

In memory (``Embeddings``) the points are split by modality: ``vectors["image"]`` [N_image, D]
in ``row`` order. Folders of the earlier layout (``<modality>.npy`` + ``meta.parquet``) are
still read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import InputError, NotFoundError
from workbench.io import atomic_path

SET_NAME = "paired"
PAIRED_FILE = f"{SET_NAME}.parquet"  # what the pages look for ("embeddings/paired.parquet")
LEGACY_META = "meta.parquet"
REQUIRED_COLUMNS = ("id", "modality", "row", "image_id", "caption", "lat", "lon", "country", "continent", "split")


@dataclass
class Embeddings:
    vectors: dict[str, np.ndarray]  # modality -> [N_m, D] float32
    meta: pd.DataFrame  # one row per point (see the module doc)

    def matrix(self) -> np.ndarray:
        """[sum N_m, D]: every point in the row order of ``meta``."""
        return np.concatenate([self.vectors[m][self.meta.loc[self.meta["modality"] == m, "row"].to_numpy()]
                               for m in self.meta["modality"].unique()])


def write_embeddings(folder: str | Path, vectors: dict[str, np.ndarray], meta: pd.DataFrame) -> Path:
    """Write the ``paired`` set (atomic files) after checking that vectors and rows agree:
    every modality's rows 0..N-1 appear once, ids are unique, columns present."""
    from workbench.embeddings.sets import write_set

    folder = Path(folder)
    missing = [c for c in REQUIRED_COLUMNS if c not in meta.columns]
    if missing:
        raise InputError(f"embeddings metadata lacks the columns {missing}")
    dims = {m: np.asarray(v).shape for m, v in vectors.items()}
    if len({s[1] for s in dims.values()}) != 1 or any(len(s) != 2 for s in dims.values()):
        raise InputError(f"every modality needs [N, D] vectors with one D; got {dims}")
    for modality, shape in dims.items():
        rows = np.sort(meta.loc[meta["modality"] == modality, "row"].to_numpy())
        if not np.array_equal(rows, np.arange(shape[0])):
            raise InputError(f"meta rows of modality '{modality}' must be 0..{shape[0] - 1} once each")
    if set(meta["modality"]) - set(vectors):
        raise InputError(f"meta names modalities without vectors: {sorted(set(meta['modality']) - set(vectors))}")
    meta = meta.reset_index(drop=True)
    if "group" not in meta:
        meta = meta.assign(group=meta["image_id"].astype(str))
    matrix = np.empty((len(meta), next(iter(dims.values()))[1]), np.float32)
    for modality, array in vectors.items():
        at = np.flatnonzero(meta["modality"].to_numpy() == modality)
        matrix[at] = np.asarray(array, dtype=np.float32)[meta["row"].to_numpy()[at]]
    write_set(folder, SET_NAME, matrix, meta)
    for stale in [folder / LEGACY_META, *(folder / f"{m}.npy" for m in vectors)]:  # an earlier layout's files
        stale.unlink(missing_ok=True)
    return folder


def read_embeddings(folder: str | Path) -> Embeddings:
    folder = Path(folder)
    if (folder / PAIRED_FILE).is_file():
        meta = pd.read_parquet(folder / PAIRED_FILE)
        matrix = np.load(folder / f"{SET_NAME}.npy")
        if len(matrix) != len(meta):
            raise InputError(f"{folder}: {len(meta)} rows in {PAIRED_FILE} for {len(matrix)} vectors")
        vectors = {}
        for modality in meta["modality"].unique():
            at = np.flatnonzero(meta["modality"].to_numpy() == modality)
            out = np.empty((len(at), matrix.shape[1]), np.float32)
            out[meta["row"].to_numpy()[at]] = matrix[at]
            vectors[modality] = out
        return Embeddings(vectors, meta)
    if not (folder / LEGACY_META).is_file():
        raise NotFoundError(f"no {PAIRED_FILE} in {folder}: not an embeddings artifact folder")
    meta = pd.read_parquet(folder / LEGACY_META)
    vectors = {}
    for modality in meta["modality"].unique():
        path = folder / f"{modality}.npy"
        if not path.is_file():
            raise NotFoundError(f"{path} is missing: {LEGACY_META} lists modality '{modality}'")
        vectors[modality] = np.load(path)
    return Embeddings(vectors, meta)
