"""The embeddings artifact: points of one or more modalities in one space, with metadata.

A folder ``artifacts/embeddings/`` holds

| file | content |
| --- | --- |
| ``<modality>.npy`` | float32 [N_modality, D]: e.g. ``image.npy``, ``text.npy`` (one shared D) |
| ``meta.parquet`` | one row per point, modalities in the order of their files: ``id`` (unique string, e.g. ``image:17``), ``modality``, ``row`` (into that modality's .npy), ``image_id``, ``caption``, ``lat``, ``lon``, ``country``, ``continent``, ``split``, and any further label columns |

This is what the Embeddings page projects (PCA / UMAP / t-SNE) and colours by a column.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import InputError, NotFoundError
from workbench.io import atomic_path

META_FILE = "meta.parquet"
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
    """Write ``<modality>.npy`` and ``meta.parquet`` (atomic files) after checking that
    they agree: every modality's rows 0..N-1 appear once, ids are unique, columns present."""
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
    if meta["id"].duplicated().any():
        raise InputError("embeddings ids must be unique")
    folder.mkdir(parents=True, exist_ok=True)
    for modality, array in vectors.items():
        with atomic_path(folder / f"{modality}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(array, dtype=np.float32))
    with atomic_path(folder / META_FILE) as tmp:
        meta.reset_index(drop=True).to_parquet(tmp, index=False)
    return folder


def read_embeddings(folder: str | Path) -> Embeddings:
    folder = Path(folder)
    if not (folder / META_FILE).is_file():
        raise NotFoundError(f"no {META_FILE} in {folder}: not an embeddings artifact folder")
    meta = pd.read_parquet(folder / META_FILE)
    vectors = {}
    for modality in meta["modality"].unique():
        path = folder / f"{modality}.npy"
        if not path.is_file():
            raise NotFoundError(f"{path} is missing: {META_FILE} lists modality '{modality}'")
        vectors[modality] = np.load(path)
    return Embeddings(vectors, meta)
