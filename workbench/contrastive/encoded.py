"""The pre-encoded pair format: frozen image and text embeddings of captioned images.

A folder holds, per split (``train2017``, ``all``, ``train``, ``val``, ``test``,
``train_tuning``, ...), three files, as the projection-heads note writes them:

| file | content |
| --- | --- |
| ``{split}_image_embeddings.pt`` | float tensor [N, D_img]: the image of each pair (an image with 5 captions appears 5 times) |
| ``{split}_text_embeddings.pt`` | float tensor [N, D_txt]: the caption of each pair |
| ``{split}_metadata.json`` | ``{"image_ids": [N ints], "captions": [N str] (optional), "images": [{"image_id", "lat", "lon", "country", "continent", "place", "path", "group", ...}] (optional)}`` |

Rows i of the three are one pair. In memory (``EncodedPairs``) each distinct image is kept
once: ``image`` [N_img, D_img] and ``text_image`` [N] (the image row of each text), which
is what the retrieval metrics and the pair batches index into.

``split_encoded`` makes the image-level split of a source split: train / val / test with no
image (or, when the images carry a ``group``, no group, e.g. an S2 cell) in two splits, plus
``train_tuning``, a random subset of the training pairs for fast hyper-parameter studies.
It writes ``split.json`` beside them and is done once: a second call with the same source
and parameters reuses the files; different parameters need ``force``.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.errors import ConfigError, InputError, NotFoundError
from workbench.io import write_bytes, write_json

SPLIT_FILE = "split.json"
SPLITS = ("train", "val", "test")
TUNING = "train_tuning"
SPLIT_COMMAND = "python -m workbench projection split {dir}"
METADATA_KEYS = ("image_ids", "captions", "images")


def encoded_paths(directory: str | Path, split: str) -> dict[str, Path]:
    directory = Path(directory)
    return {"image": directory / f"{split}_image_embeddings.pt",
            "text": directory / f"{split}_text_embeddings.pt",
            "metadata": directory / f"{split}_metadata.json"}


def available_splits(directory: str | Path) -> list[str]:
    """Splits with all three files in ``directory``."""
    directory = Path(directory)
    names = [p.name[: -len("_metadata.json")] for p in directory.glob("*_metadata.json")]
    return sorted(n for n in names if all(p.is_file() for p in encoded_paths(directory, n).values()))


@dataclass
class EncodedPairs:
    """One split in memory: distinct images once, every caption, and how they pair up."""

    image: torch.Tensor  # [N_img, D_img] float32
    text: torch.Tensor  # [N_txt, D_txt] float32
    text_image: torch.Tensor  # [N_txt] long: row of ``image`` that each text describes
    image_ids: np.ndarray  # [N_img] int64: the dataset's image id of each image row
    captions: list[str] | None = None  # [N_txt]
    images: pd.DataFrame | None = None  # [N_img] rows aligned with ``image`` (image_id first)
    split: str = ""
    extra: dict = field(default_factory=dict)  # further metadata keys (e.g. "encoders"), kept by splits
    stored_dtype: torch.dtype = torch.float32  # the files' dtype (float16 halves the disk), kept by splits

    def __post_init__(self):
        if len(self.text) != len(self.text_image):
            raise InputError(f"{len(self.text)} texts but {len(self.text_image)} image indices")

    @property
    def n_images(self) -> int:
        return len(self.image)

    @property
    def text_image_ids(self) -> np.ndarray:
        """[N_txt] the image id of each text."""
        return self.image_ids[self.text_image.numpy()]

    def pairs_image(self) -> torch.Tensor:
        """[N_txt, D_img]: the image row of every pair (the on-disk layout)."""
        return self.image[self.text_image]

    def subset_images(self, rows: np.ndarray) -> "EncodedPairs":
        """The pairs of the image rows ``rows`` (sorted), re-indexed."""
        rows = np.sort(np.asarray(rows, np.int64))
        new_row = np.full(self.n_images, -1, np.int64)
        new_row[rows] = np.arange(len(rows))
        keep = np.flatnonzero(new_row[self.text_image.numpy()] >= 0)
        return self.subset(rows, keep, new_row)

    def subset_texts(self, texts: np.ndarray) -> "EncodedPairs":
        """The pairs ``texts`` (sorted text rows) and only the images they use."""
        texts = np.sort(np.asarray(texts, np.int64))
        rows = np.unique(self.text_image.numpy()[texts])
        new_row = np.full(self.n_images, -1, np.int64)
        new_row[rows] = np.arange(len(rows))
        return self.subset(rows, texts, new_row)

    def subset(self, rows: np.ndarray, texts: np.ndarray, new_row: np.ndarray) -> "EncodedPairs":
        rows_t, texts_t = torch.as_tensor(rows), torch.as_tensor(texts)
        return EncodedPairs(
            image=self.image[rows_t], text=self.text[texts_t],
            text_image=torch.as_tensor(new_row[self.text_image.numpy()[texts]]),
            image_ids=self.image_ids[rows],
            captions=[self.captions[i] for i in texts] if self.captions is not None else None,
            images=self.images.iloc[rows].reset_index(drop=True) if self.images is not None else None,
            split=self.split, extra=dict(self.extra), stored_dtype=self.stored_dtype)


# -- reading ------------------------------------------------------------------------------


def _load_tensor(path: Path, what: str) -> torch.Tensor:
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which one
        raise InputError(f"{path} is not a readable torch tensor file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); re-create the {what}") from None
    if isinstance(value, dict) and len(value) == 1:  # {"embeddings": tensor} is common
        value = next(iter(value.values()))
    if not isinstance(value, torch.Tensor) or value.ndim != 2 or not value.is_floating_point():
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise InputError(f"{path}: expected a float tensor [N, D] of {what}, got {shape}")
    if not torch.isfinite(value).all():
        raise InputError(f"{path}: the {what} contain NaN or inf")
    return value


def _missing_message(directory: Path, split: str, missing: list[Path]) -> str:
    names = ", ".join(p.name for p in missing)
    present = available_splits(directory) if directory.is_dir() else []
    if split in (*SPLITS, TUNING) and present:
        return (f"{names} not found in {directory} (it holds the split(s) {present}); make the "
                f"image-level split with: {SPLIT_COMMAND.format(dir=directory)}")
    if not directory.is_dir():
        return (f"pre-encoded data folder {directory} does not exist; build the demo with "
                "python -m workbench data build-demo --only geo-captions, or point data.dir at your folder")
    return (f"{names} not found in {directory}; a split needs {split}_image_embeddings.pt, "
            f"{split}_text_embeddings.pt and {split}_metadata.json (present splits: {present or 'none'})")


def read_metadata(path: Path, n: int) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); re-create the metadata") from None
    if not isinstance(meta, dict) or "image_ids" not in meta:
        raise InputError(f"{path} has no 'image_ids' (one image id per text row), which image-level "
                         "splits and COCO-aware I2T recall need; re-encode with image ids in the metadata")
    ids = meta["image_ids"]
    if not isinstance(ids, list) or len(ids) != n:
        raise InputError(f"{path}: 'image_ids' has {len(ids) if isinstance(ids, list) else 'no'} entries "
                         f"but the embeddings have {n} rows; they must be one per pair")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise InputError(f"{path}: 'image_ids' must be integers")
    captions = meta.get("captions")
    if captions is not None and (not isinstance(captions, list) or len(captions) != n):
        raise InputError(f"{path}: 'captions' must be a list of {n} strings (one per pair)")
    return meta


def load_encoded(directory: str | Path, split: str) -> EncodedPairs:
    """Read one split (see the module doc); every problem is one actionable InputError or
    NotFoundError naming the file."""
    directory = Path(directory)
    paths = encoded_paths(directory, split)
    missing = [p for p in paths.values() if not p.is_file()]
    if missing:
        raise NotFoundError(_missing_message(directory, split, missing))
    stored = _load_tensor(paths["image"], "image embeddings")
    image, text = stored.float(), _load_tensor(paths["text"], "text embeddings").float()
    if len(image) != len(text):
        raise InputError(f"{paths['image'].name} has {len(image)} rows but {paths['text'].name} has "
                         f"{len(text)}: the files must hold one row per (image, caption) pair")
    if len(text) == 0:
        raise InputError(f"split '{split}' in {directory} is empty")
    meta = read_metadata(paths["metadata"], len(text))
    ids = np.asarray(meta["image_ids"], np.int64)
    image_ids, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    unique_image = image[torch.as_tensor(first)]
    differ = (image != unique_image[torch.as_tensor(inverse)]).any(dim=1)
    if differ.any():
        row = int(differ.nonzero()[0, 0])
        raise InputError(f"{paths['image'].name}: rows {int(first[inverse[row]])} and {row} share image id "
                         f"{int(ids[row])} but hold different embeddings; image ids must identify images")
    return EncodedPairs(image=unique_image, text=text, text_image=torch.as_tensor(inverse, dtype=torch.long),
                        image_ids=image_ids, captions=meta.get("captions"),
                        images=_image_table(meta.get("images"), image_ids, paths["metadata"]), split=split,
                        extra={k: v for k, v in meta.items() if k not in METADATA_KEYS}, stored_dtype=stored.dtype)


def _image_table(records: Any, image_ids: np.ndarray, path: Path) -> pd.DataFrame | None:
    if records is None:
        return None
    if not isinstance(records, list) or not all(isinstance(r, dict) and "image_id" in r for r in records):
        raise InputError(f"{path}: 'images' must be a list of objects, each with an 'image_id'")
    table = pd.DataFrame(records).drop_duplicates("image_id").set_index("image_id")
    absent = np.setdiff1d(image_ids, table.index.to_numpy())
    if len(absent):
        raise InputError(f"{path}: 'images' lacks {len(absent)} image id(s) used by the pairs, e.g. {int(absent[0])}")
    return table.loc[image_ids].reset_index()


# -- writing ------------------------------------------------------------------------------


def save_encoded(directory: str | Path, split: str, pairs: EncodedPairs, dtype: torch.dtype | None = None,
                 extra: dict | None = None) -> dict[str, Path]:
    """Write ``pairs`` as split ``split`` in the on-disk layout (atomic files), as ``dtype``
    (default: the dtype the pairs were read as)."""
    dtype = dtype or pairs.stored_dtype
    paths = encoded_paths(directory, split)
    Path(directory).mkdir(parents=True, exist_ok=True)
    for key, tensor in (("image", pairs.pairs_image()), ("text", pairs.text)):
        # via a buffer: torch.save names the zip's records after a file's name, and the
        # atomic write's temporary name would make every build's bytes differ
        buffer = io.BytesIO()
        torch.save(tensor.to(dtype).contiguous().clone(), buffer)
        write_bytes(paths[key], buffer.getvalue())
    meta: dict[str, Any] = {"image_ids": pairs.text_image_ids.tolist()}
    if pairs.captions is not None:
        meta["captions"] = list(pairs.captions)
    if pairs.images is not None:
        meta["images"] = pairs.images.to_dict(orient="records")
    write_json(paths["metadata"], {**pairs.extra, **(extra or {}), **meta}, indent=None)
    return paths


# -- the image-level split ------------------------------------------------------------------


@dataclass(frozen=True)
class SplitSpec:
    source: str = "all"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    tuning_fraction: float = 0.25  # of the training pairs
    seed: int = 0
    group: str = "auto"  # "auto": the images' 'group' if present, else the image id; "image": per image

    def check(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ConfigError(f"{name} must be in (0, 1), got {value}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(f"val_fraction + test_fraction must be < 1 (nothing left to train on), got "
                              f"{self.val_fraction} + {self.test_fraction}")
        if not 0 < self.tuning_fraction <= 1:
            raise ConfigError(f"tuning_fraction must be in (0, 1], got {self.tuning_fraction}")
        if self.group not in ("auto", "image"):
            raise ConfigError(f"group must be 'auto' or 'image', got {self.group!r}")


def _fingerprint(paths: dict[str, Path]) -> str:
    """sha256 of the source files' bytes (not their times: a copy is the same source)."""
    h = hashlib.sha256()
    for path in paths.values():
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(2**22), b""):
                h.update(block)
    return h.hexdigest()[:16]


def assign_splits(groups: np.ndarray, spec: SplitSpec) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per image [N_img] from its group [N_img]: groups
    are shuffled by the seed and filled into test, val, then train by image count, so every
    image of a group lands in one split."""
    unique, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(spec.seed).permutation(len(unique))
    middle = (np.cumsum(counts[order]) - counts[order] / 2) / len(groups)
    edges = np.array([spec.test_fraction, spec.test_fraction + spec.val_fraction])
    group_split = np.empty(len(unique), np.int64)
    group_split[order] = np.array([2, 1, 0])[np.searchsorted(edges, middle, side="right")]
    return group_split[inverse]


def split_encoded(directory: str | Path, spec: SplitSpec = SplitSpec(), force: bool = False,
                  say=lambda message: None) -> dict[str, Any]:
    """Write train / val / test / train_tuning from ``spec.source`` (see the module doc) and
    return the split record ({"spec", "counts", "status": "written" | "reused"})."""
    spec.check()
    directory = Path(directory)
    record_path = directory / SPLIT_FILE
    source_paths = encoded_paths(directory, spec.source)
    missing = [p for p in source_paths.values() if not p.is_file()]
    if missing:
        raise NotFoundError(_missing_message(directory, spec.source, missing))
    wanted = {"spec": spec.__dict__, "source_fingerprint": _fingerprint(source_paths)}
    if record_path.is_file() and not force:
        record = json.loads(record_path.read_text())
        outputs_present = all(p.is_file() for s in (*SPLITS, TUNING) for p in encoded_paths(directory, s).values())
        if {k: record.get(k) for k in wanted} == wanted and outputs_present:
            say(f"split: {directory} already split this way ({record['counts']}); reusing it")
            return {**record, "status": "reused"}
        if outputs_present:
            raise ConfigError(f"{directory} was already split with {record.get('spec')} (source "
                              f"fingerprint {record.get('source_fingerprint')}); pass --force to re-split "
                              "(runs trained on the old split are then not comparable)")
    pairs = load_encoded(directory, spec.source)
    groups = pairs.image_ids
    if spec.group == "auto" and pairs.images is not None and "group" in pairs.images:
        groups = pairs.images["group"].astype(str).to_numpy()
    split_of_image = assign_splits(groups, spec)
    counts: dict[str, dict[str, int]] = {}
    for index, name in enumerate(SPLITS):
        part = pairs.subset_images(np.flatnonzero(split_of_image == index))
        if part.n_images == 0:
            raise ConfigError(f"split '{name}' would be empty ({pairs.n_images} images in "
                              f"{len(np.unique(groups))} groups); raise its fraction or use more data")
        save_encoded(directory, name, part)
        counts[name] = {"images": part.n_images, "pairs": len(part.text)}
        if name == "train":
            n_tune = max(1, round(spec.tuning_fraction * len(part.text)))
            texts = np.random.default_rng(spec.seed + 1).choice(len(part.text), n_tune, replace=False)
            tuning = part.subset_texts(texts)
            save_encoded(directory, TUNING, tuning)
            counts[TUNING] = {"images": tuning.n_images, "pairs": len(tuning.text)}
        say(f"split: {name}: {counts[name]}")
    record = {**wanted, "counts": counts,
              "groups": "group" if groups is not pairs.image_ids else "image"}
    write_json(record_path, record)
    return {**record, "status": "written"}
