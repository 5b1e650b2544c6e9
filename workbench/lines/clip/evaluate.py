"""Held-out evaluation of a CLIP model: I2T / T2I retrieval (several captions per image),
chance levels beside it, zero-shot classification of held-out tiles from prompt templates,
and the artifacts the pages read (embeddings + the top captions of every image).

    images uint8 [N, 3, S, S] --image tower--> [N, D]   (unit vectors)
    tokens long [M, L]        --text tower---> [M, D]   caption_image [M] -> row of its image
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from workbench.contrastive.retrieval import recall_mean, retrieval_metrics, top_k, zero_shot_accuracy

EMBED_BATCH = 256
KS = (1, 5, 10)
# prompt templates of the zero-shot classifiers (averaged per class, as CLIP's ensembles)
TEMPLATES = ("a satellite image of {}", "a map tile of land in {}", "a view from above of {}", "{}")
ZERO_SHOT = {"continent": "continent", "country": "country_name"}  # task -> column of the image table
MIN_CLASS_IMAGES = 3  # zero-shot countries: classes with at least this many held-out images


@torch.no_grad()
def embed_images(model, images: torch.Tensor, batch: int = EMBED_BATCH) -> torch.Tensor:
    """[N, D] unit image embeddings of uint8 images (normalised the model's way, no augmentation)."""
    from workbench.lines.clip.data import to_float

    device = next(model.parameters()).device
    out = [model.encode_image(to_float(images[i:i + batch]).to(device)).float().cpu()
           for i in range(0, len(images), batch)]
    return torch.cat(out) if out else torch.zeros(0, model.cfg.model.output_dim)


@torch.no_grad()
def embed_texts(model, tokens: torch.Tensor, batch: int = EMBED_BATCH) -> torch.Tensor:
    """[M, D] unit text embeddings of token rows [M, L]."""
    device = next(model.parameters()).device
    out = [model.encode_text(tokens[i:i + batch].to(device)).float().cpu() for i in range(0, len(tokens), batch)]
    return torch.cat(out) if out else torch.zeros(0, model.cfg.model.output_dim)


def chance(n_images: int, caption_image: torch.Tensor, ks=KS) -> dict[str, float]:
    """R@K of a random ranking: T2I k / N; I2T (the best-ranked of an image's c captions among
    M) 1 - C(M - c, k) / C(M, k), averaged over images."""
    m = len(caption_image)
    per_image = torch.bincount(caption_image, minlength=n_images).double()  # (N,) captions each
    out = {}
    for k in ks:
        # prod_{j<k} (M - c - j) / (M - j): the chance that none of the c captions is in the top k
        j = torch.arange(min(k, m), dtype=torch.float64)
        miss = ((m - per_image[:, None] - j).clamp_min(0) / (m - j)).prod(dim=1)
        out[f"i2t_r{k}"] = float((1 - miss).mean())
        out[f"t2i_r{k}"] = min(1.0, k / max(n_images, 1))
    out["r_mean"] = recall_mean(out, ks)
    return out


def retrieval(image: torch.Tensor, text: torch.Tensor, caption_image: torch.Tensor) -> dict[str, float]:
    m = retrieval_metrics(image, text, caption_image, KS)
    return {**m, "r_mean": recall_mean(m, KS)}


def zero_shot(model, tokenizer, image: torch.Tensor, table: pd.DataFrame) -> dict:
    """Zero-shot accuracy of the held-out images by continent and by country: each class is the
    mean of its TEMPLATES prompts' embeddings. Classes: the values present in the held-out
    images (countries with >= MIN_CLASS_IMAGES images; the others' images are left out)."""
    out = {}
    for task, column in ZERO_SHOT.items():
        if column not in table:
            continue
        values = table[column].astype(str).to_numpy()
        names, counts = np.unique(values[values != ""], return_counts=True)
        names = names[counts >= (MIN_CLASS_IMAGES if task == "country" else 1)]
        keep = np.isin(values, names)
        if len(names) < 2 or not keep.any():
            continue
        prompts = [t.format(name) for name in names for t in TEMPLATES]
        classes = embed_texts(model, tokenizer.encode(prompts)).reshape(len(names), len(TEMPLATES), -1)
        labels = torch.as_tensor(np.searchsorted(names, values[keep]))
        acc = zero_shot_accuracy(image[torch.as_tensor(keep)], classes, labels, ks=(1, 5))
        majority = float(np.max(np.unique(values[keep], return_counts=True)[1]) / keep.sum())
        out[task] = {**acc, "classes": int(len(names)), "images": int(keep.sum()),
                     "chance_top1": 1 / len(names), "majority_top1": majority}
    return out


def embeddings_meta(images: pd.DataFrame, captions: pd.DataFrame, split: str) -> pd.DataFrame:
    """The metadata rows of the paired embeddings set: the images, then the captions (each with
    its image's place). images: image_id (0..N-1 of the split), rel_path and what the layout
    knows (lat, lon, country, country_name, continent, place); captions: image_id, caption."""
    info = pd.DataFrame({"image_id": images["image_id"].to_numpy()})
    for name, default in (("lat", np.nan), ("lon", np.nan), ("country", ""), ("country_name", ""),
                          ("continent", ""), ("place", ""), ("rel_path", "")):
        info[name] = images[name].to_numpy() if name in images else default
    info = info.rename(columns={"rel_path": "path"})
    img = info.assign(id=[f"image:{i}" for i in info["image_id"]], modality="image", row=np.arange(len(info)),
                      caption="", split=split)
    txt = info.set_index("image_id").reindex(captions["image_id"].to_numpy()).reset_index()
    txt = txt.assign(id=[f"text:{i}" for i in range(len(captions))], modality="text", row=np.arange(len(captions)),
                     caption=captions["caption"].astype(str).to_numpy(), split=split)
    return pd.concat([img, txt[img.columns]], ignore_index=True)


def top_captions(image: torch.Tensor, text: torch.Tensor, captions: pd.DataFrame, image_ids: np.ndarray,
                 k: int = 5) -> pd.DataFrame:
    """The k best captions of every image: image_id, rank, score, caption, correct."""
    scores, index = top_k(image, text, k)  # (N, k)
    idx = index.numpy()
    own = captions["image_id"].to_numpy()[idx]  # (N, k)
    return pd.DataFrame({"image_id": np.repeat(image_ids, idx.shape[1]), "rank": np.tile(np.arange(1, idx.shape[1] + 1), len(idx)),
                         "score": scores.numpy().ravel(), "caption": captions["caption"].to_numpy()[idx.ravel()],
                         "correct": (own == image_ids[:, None]).ravel()})


def write_artifacts(model, images_u8: torch.Tensor, tokens: torch.Tensor, images: pd.DataFrame,
                    captions: pd.DataFrame, folder: Path, split: str, k: int = 5) -> dict:
    """embeddings/ (paired.npy + paired.parquet: images and captions) and top_captions.parquet of a split."""
    from workbench.contrastive.artifacts import write_embeddings

    image, text = embed_images(model, images_u8), embed_texts(model, tokens)
    write_embeddings(folder / "embeddings", {"image": image.numpy(), "text": text.numpy()},
                     embeddings_meta(images, captions, split))
    gallery = top_captions(image, text, captions, images["image_id"].to_numpy(), k)
    gallery.to_parquet(folder / "top_captions.parquet", index=False)
    return {"images": int(len(image)), "captions": int(len(text)), "top_k": k}
