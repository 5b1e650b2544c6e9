"""Captioned images for the CLIP line: three layouts, image-level splits, decoding once into a
uint8 tensor, and the random resized crop / flip applied to a whole batch at once.

| layout | files |
| --- | --- |
| ``geo-captions`` | the demo: ``images.csv`` + ``images/*.jpg`` + ``{train,val,test}_metadata.json`` (its split) |
| ``flickr30k`` | ``flickr30k_images/*.jpg`` + ``results.csv`` (``image_name| comment_number| comment``) |
| ``coco`` | a captions JSON (``images``: id, file_name; ``annotations``: image_id, caption) + its image folder |

``CaptionedImages.images`` has one row per image (``image_id`` = row, absolute ``path``,
``split``, and the metadata a layout has); ``captions`` one row per caption (``image_id``,
``caption``).
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from workbench.errors import InputError, NotFoundError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SPLITS = ("train", "val", "test")
MAX_BAD_ROWS = 0.01  # flickr30k: a few malformed rows are skipped, more is an error


@dataclass
class CaptionedImages:
    images: pd.DataFrame
    captions: pd.DataFrame
    source: dict = field(default_factory=dict)

    def split(self, name: str) -> "CaptionedImages":
        """The images of one split, renumbered 0..n-1 (``source_image_id`` keeps the old id)."""
        images = self.images[self.images["split"] == name].reset_index(drop=True)
        old = images["image_id"].to_numpy()
        images = images.assign(source_image_id=old, image_id=np.arange(len(images)))
        new_id = pd.Series(np.arange(len(old)), index=old)
        captions = self.captions[self.captions["image_id"].isin(old)].reset_index(drop=True)
        captions = captions.assign(image_id=new_id.reindex(captions["image_id"].to_numpy()).to_numpy())
        return CaptionedImages(images, captions, {**self.source, "split": name})


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise NotFoundError(f"{what} not found: {path}")
    return path


def _assemble(names: list[str], images_dir: Path, captions: pd.DataFrame, source: dict) -> CaptionedImages:
    """Images (in order of first appearance) with their captions; missing files are one error."""
    present = set(os.listdir(images_dir))
    missing = [n for n in names if n not in present]
    if missing:
        raise InputError(f"{len(missing)} image file(s) named by the captions are missing from {images_dir} "
                         f"(first: {missing[0]})")
    images = pd.DataFrame({"image_id": np.arange(len(names)), "file": names,
                           "path": [str(images_dir / n) for n in names], "split": ""})
    index = pd.Series(np.arange(len(names)), index=names)
    captions = pd.DataFrame({"image_id": index.reindex(captions["file"].to_numpy()).to_numpy(),
                             "caption": captions["caption"].astype(str).str.strip().to_numpy()})
    return CaptionedImages(images, captions, source)


def read_flickr30k(folder, captions_file=None, images_dir=None) -> CaptionedImages:
    """The Kaggle Flickr30k copy: ``results.csv`` with ``image_name| comment_number| comment``."""
    folder = Path(folder)
    captions_file = _need(Path(captions_file) if captions_file else folder / "results.csv", "Flickr30k captions file")
    images_dir = _need(Path(images_dir) if images_dir else folder / "flickr30k_images", "Flickr30k image folder")
    try:
        frame = pd.read_csv(captions_file, sep="|", dtype=str, skipinitialspace=True, on_bad_lines="skip",
                            engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {captions_file}: {str(exc).strip().splitlines()[0]}") from None
    frame.columns = [c.strip() for c in frame.columns]
    if not {"image_name", "comment"} <= set(frame.columns):
        raise InputError(f"{captions_file} needs the columns image_name| comment_number| comment; "
                         f"found {list(frame.columns)}")
    with open(captions_file, encoding="utf-8", errors="replace") as f:
        total = sum(1 for line in f if line.strip()) - 1  # rows in the file, header excluded
    frame["image_name"] = frame["image_name"].str.strip()
    frame["comment"] = frame["comment"].str.strip()
    good = frame["image_name"].notna() & frame["comment"].notna() & (frame["comment"] != "")
    bad = total - int(good.sum())
    if total <= 0 or bad > MAX_BAD_ROWS * total:
        raise InputError(f"{captions_file}: {bad} of {total} rows are malformed (no image name or comment); "
                         "expected 'image_name| comment_number| comment'")
    frame = frame[good]
    names = list(dict.fromkeys(frame["image_name"]))
    return _assemble(names, images_dir, frame.rename(columns={"image_name": "file", "comment": "caption"}),
                     {"format": "flickr30k", "dir": str(folder), "skipped_rows": bad})


def read_coco(captions_json, images_dir) -> CaptionedImages:
    """A COCO captions JSON: ``images`` [{id, file_name}], ``annotations`` [{image_id, caption}].
    Images without a caption are dropped (counted in ``source``)."""
    captions_json, images_dir = Path(captions_json), Path(images_dir)
    _need(captions_json, "COCO captions JSON")
    _need(images_dir, "COCO image folder")
    try:
        data = json.loads(captions_json.read_text(encoding="utf-8"))
        files = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
        ann = pd.DataFrame([(int(a["image_id"]), str(a["caption"])) for a in data["annotations"]],
                           columns=["coco_id", "caption"])
    except json.JSONDecodeError as exc:
        raise InputError(f"{captions_json} is not valid JSON: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{captions_json} is not a COCO captions file (images: id, file_name; annotations: "
                         f"image_id, caption): {type(exc).__name__} {exc}") from None
    unknown = ~ann["coco_id"].isin(list(files))
    if unknown.any():
        raise InputError(f"{captions_json}: {int(unknown.sum())} caption(s) name an image id that 'images' "
                         f"does not list (first: {int(ann['coco_id'][unknown].iloc[0])})")
    ann["file"] = ann["coco_id"].map(files)
    names = list(dict.fromkeys(ann["file"]))
    return _assemble(names, images_dir, ann, {"format": "coco", "dir": str(captions_json.parent),
                                              "uncaptioned_images": len(files) - len(names)})


def read_geo_captions(folder) -> CaptionedImages:
    """The demo tiles and captions with their own split (train / val / test metadata files)."""
    folder = Path(folder)
    table = pd.read_csv(_need(folder / "images.csv", "geo-captions image table (python -m workbench data "
                                                     "build-demo --only geo-captions)"))
    table = table.sort_values("image_id").reset_index(drop=True)
    split = pd.Series("", index=table["image_id"].to_numpy(), dtype=object)
    captions = []
    for name in SPLITS:
        meta = json.loads(_need(folder / f"{name}_metadata.json", f"geo-captions {name} split").read_text())
        split[[int(im["image_id"]) for im in meta["images"]]] = name
        captions.append(pd.DataFrame({"source_id": meta["image_ids"], "caption": meta["captions"]}))
    caps = pd.concat(captions, ignore_index=True)
    row = pd.Series(np.arange(len(table)), index=table["image_id"].to_numpy())
    images = table.assign(path=[str(folder / p) for p in table["path"]], split=split.reindex(table["image_id"]).to_numpy(),
                          geo_id=table["image_id"], image_id=np.arange(len(table)))
    caps = pd.DataFrame({"image_id": row.reindex(caps["source_id"].to_numpy()).to_numpy(), "caption": caps["caption"]})
    return CaptionedImages(images, caps, {"format": "geo-captions", "dir": str(folder)})


def split_images(n_images: int, val_fraction: float, test_fraction: float, seed: int, groups=None) -> np.ndarray:
    """[N] "train" / "val" / "test": whole images (all their captions on one side) or, with
    ``groups`` [N], whole groups; deterministic for a seed."""
    keys = np.arange(n_images) if groups is None else pd.factorize(np.asarray(groups))[0]
    n_keys = int(keys.max()) + 1 if len(keys) else 0
    order = np.random.default_rng(seed).permutation(n_keys)
    rank = np.empty(n_keys, np.int64)
    rank[order] = np.arange(n_keys)
    position = (rank[keys] + 0.5) / max(n_keys, 1)  # (N,) in (0, 1)
    return np.where(position < test_fraction, "test", np.where(position < test_fraction + val_fraction, "val", "train"))


def load_captioned(d) -> CaptionedImages:
    """The configured layout (data config ``d``), split, cut to ``max_images``."""
    from workbench.paths import repo_path

    folder = repo_path(d.dir)
    if d.format == "geo-captions":
        data = read_geo_captions(folder)
    else:
        if d.format == "flickr30k":
            data = read_flickr30k(folder, d.captions_file and repo_path(d.captions_file),
                                  d.images_dir and repo_path(d.images_dir))
        else:
            data = read_coco(repo_path(d.captions_file) if d.captions_file else
                             folder / "annotations" / "captions_train2017.json",
                             repo_path(d.images_dir) if d.images_dir else folder / "train2017")
        data.images["split"] = split_images(len(data.images), d.val_fraction, d.test_fraction, d.split_seed)
    if d.max_images:
        keep = data.images["image_id"] < d.max_images
        data = CaptionedImages(data.images[keep].reset_index(drop=True),
                               data.captions[data.captions["image_id"] < d.max_images].reset_index(drop=True),
                               data.source)
    uncaptioned = ~data.images["image_id"].isin(data.captions["image_id"])
    if uncaptioned.any():  # images without a caption cannot be trained or evaluated on
        data.source["uncaptioned_images"] = int(uncaptioned.sum())
    return data


# -- images ----------------------------------------------------------------------------------


def _decode(path: str, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
            w, h = im.size
            left, top = (w - size) // 2, (h - size) // 2
            return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"cannot decode image {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def decode_images(paths, size: int, threads: int = 2) -> torch.Tensor:
    """uint8 [N, 3, size, size]: RGB, shorter side resized to ``size``, centre crop."""
    paths = [str(p) for p in paths]
    out = np.empty((len(paths), size, size, 3), np.uint8)
    with ThreadPoolExecutor(max(1, threads)) as pool:  # PIL releases the GIL while decoding
        for i, array in enumerate(pool.map(lambda p: _decode(p, size), paths)):
            out[i] = array
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, S, S] -> float32 normalised with CLIP's mean / std."""
    mean = torch.tensor(CLIP_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def augment(images: torch.Tensor, generator: torch.Generator | None, crop_scale: float, flip: bool) -> torch.Tensor:
    """Random resized crop (area in [crop_scale, 1], aspect in [3/4, 4/3]) back to the same
    size and an optional horizontal flip, for the whole batch in one ``grid_sample``; uint8
    [B, 3, S, S] -> normalised float32. Draws come from ``generator`` (None: the global one)."""
    b = len(images)
    x = to_float(images)
    if b == 0:
        return x
    rand = torch.rand(b, 4, generator=generator).to(x.device)  # area, log-aspect, centre x, centre y
    area = crop_scale + (1 - crop_scale) * rand[:, 0]
    log_r = np.log(3 / 4) + (np.log(4 / 3) - np.log(3 / 4)) * rand[:, 1]
    ratio = log_r.exp()
    sx = (area * ratio).sqrt().clamp(max=1.0)  # crop width / image width
    sy = (area / ratio).sqrt().clamp(max=1.0)
    cx = (1 - sx) * (2 * rand[:, 2] - 1)  # crop centre within [-1 + sx, 1 - sx]
    cy = (1 - sy) * (2 * rand[:, 3] - 1)
    if flip:
        sign = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0).to(x.device)
    else:
        sign = torch.ones(b, device=x.device)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = sx * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = sy, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, S, S, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class PairBatches(Dataset):
    """(image, caption) pairs of one split, gathered by index a batch at a time."""

    def __init__(self, images: torch.Tensor, tokens: torch.Tensor, caption_image_ids: torch.Tensor):
        self.images = images  # (N_img, 3, S, S) uint8
        self.tokens = tokens  # (N_cap, L) long
        self.caption_image = torch.as_tensor(caption_image_ids, dtype=torch.long)  # (N_cap,)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitems__(self, indices) -> dict:
        idx = torch.as_tensor(indices, dtype=torch.long)
        image_ids = self.caption_image[idx]
        return {"image": self.images[image_ids], "tokens": self.tokens[idx], "image_ids": image_ids}

    def __getitem__(self, i: int) -> dict:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


def collate(batch):
    """The dict of ``PairBatches.__getitems__`` as it is."""
    return batch
