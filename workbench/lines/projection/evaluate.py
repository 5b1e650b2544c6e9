"""Retrieval evaluation of projection heads, their baselines, and the artifacts pages read.

Every number is ``workbench.contrastive.retrieval_metrics`` on one split (distinct images x
all their captions; I2T counts an image's best caption). Baselines beside the trained
heads:

- ``untrained``: the same heads at their seeded initialisation;
- ``raw``: the frozen embeddings compared directly (only when both have the same width);
- ``random_projection``: both sides through seeded Gaussian maps to the head's width (what
  the frozen features give without any learning when the widths differ);
- ``ridge``: a closed-form linear map image -> text space fitted on the training pairs
  (least squares, one solve): the simple learned baseline the heads should beat.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from workbench.contrastive.artifacts import write_embeddings
from workbench.contrastive.encoded import EncodedPairs
from workbench.contrastive.retrieval import recall_mean, retrieval_metrics, top_k

KS = (1, 5, 10)
EMBED_BATCH = 4096
META_COLUMNS = ("lat", "lon", "country", "country_name", "continent", "place", "path")


@torch.no_grad()
def embed(model, pairs: EncodedPairs, batch: int = EMBED_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N_img, D], texts [M, D]) through the heads in eval mode, on the model's device."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    run = lambda fn, x: torch.cat([fn(x[i:i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])
    out = run(model.encode_image, pairs.image), run(model.encode_text, pairs.text)
    model.train(was_training)
    return out


def metrics_of(image: torch.Tensor, text: torch.Tensor, pairs: EncodedPairs, chunk_size: int = 0) -> dict:
    m = retrieval_metrics(image, text, pairs.text_image, ks=KS, chunk_size=chunk_size or None)
    return {**m, "r_mean": recall_mean(m, KS)}


def evaluate_model(model, pairs: EncodedPairs, chunk_size: int = 0) -> dict:
    return metrics_of(*embed(model, pairs), pairs, chunk_size)


def random_projection(pairs: EncodedPairs, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Both modalities through seeded Gaussian maps to ``dim`` (then normalised)."""
    g = torch.Generator().manual_seed(seed)
    w_img = torch.randn(pairs.image.shape[1], dim, generator=g)
    w_txt = torch.randn(pairs.text.shape[1], dim, generator=g)
    return F.normalize(pairs.image @ w_img, dim=-1), F.normalize(pairs.text @ w_txt, dim=-1)


def fit_ridge(train: EncodedPairs, lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(W [D_img, D_txt], image mean [D_img]): least squares from the training pairs' centred
    image features to their (normalised) text features, with an L2 penalty ``lam``."""
    x = train.pairs_image().double()
    mean = x.mean(0)
    x = x - mean
    y = F.normalize(train.text.double(), dim=-1)
    w = torch.linalg.solve(x.T @ x + lam * len(x) * 1e-3 * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)
    return w.float(), mean.float()


def baselines(train: EncodedPairs, pairs: EncodedPairs, dim: int, seed: int, chunk_size: int = 0) -> dict:
    out = {}
    if pairs.image.shape[1] == pairs.text.shape[1]:
        out["raw"] = metrics_of(F.normalize(pairs.image, dim=-1), F.normalize(pairs.text, dim=-1), pairs, chunk_size)
    out["random_projection"] = metrics_of(*random_projection(pairs, dim, seed), pairs, chunk_size)
    w, mean = fit_ridge(train)
    out["ridge"] = metrics_of(F.normalize((pairs.image - mean) @ w, dim=-1), F.normalize(pairs.text, dim=-1),
                              pairs, chunk_size)
    return out


# -- artifacts ----------------------------------------------------------------------------------


def _image_meta(pairs: EncodedPairs) -> pd.DataFrame:
    n = pairs.n_images
    table = pairs.images if pairs.images is not None else pd.DataFrame(index=range(n))
    meta = pd.DataFrame({"image_id": pairs.image_ids})
    for column in META_COLUMNS:
        meta[column] = table[column].to_numpy() if column in table else (np.nan if column in ("lat", "lon") else "")
    return meta


def embeddings_meta(pairs: EncodedPairs, split: str) -> pd.DataFrame:
    """One row per image then per text (see ``workbench.contrastive.artifacts``)."""
    images = _image_meta(pairs)
    captions = pairs.captions or [""] * len(pairs.text)
    image_rows = images.assign(id=[f"image:{i}" for i in pairs.image_ids], modality="image",
                               row=np.arange(pairs.n_images), caption="")
    owner = pairs.text_image.numpy()
    text_rows = images.iloc[owner].reset_index(drop=True).assign(
        id=[f"text:{i}" for i in range(len(owner))], modality="text", row=np.arange(len(owner)), caption=captions)
    meta = pd.concat([image_rows, text_rows], ignore_index=True)
    meta["split"] = split
    meta["country"] = meta["country"].astype(str)
    meta["continent"] = meta["continent"].astype(str)
    first = ["id", "modality", "row", "image_id", "caption", "lat", "lon", "country", "continent", "split"]
    return meta[first + [c for c in meta.columns if c not in first]]


def top_captions(image: torch.Tensor, text: torch.Tensor, pairs: EncodedPairs, k: int) -> pd.DataFrame:
    """The top-``k`` captions of every image: image_row, image_id, rank (1 = best), text_row,
    caption, score, correct (the caption describes this image)."""
    scores, index = top_k(image, text, k)
    n, k = index.shape
    rows = np.repeat(np.arange(n), k)
    texts = index.reshape(-1).numpy()
    captions = np.asarray(pairs.captions, dtype=object)[texts] if pairs.captions else np.full(len(texts), "")
    return pd.DataFrame({"image_row": rows, "image_id": pairs.image_ids[rows], "rank": np.tile(np.arange(1, k + 1), n),
                         "text_row": texts, "caption": captions, "score": scores.reshape(-1).numpy(),
                         "correct": pairs.text_image.numpy()[texts] == rows})


def write_artifacts(model, pairs: EncodedPairs, folder: Path, top: int = 5, split: str = "test") -> dict:
    """``embeddings/`` (paired.npy + paired.parquet: images and captions) and ``top_captions.parquet`` of
    ``pairs`` under ``folder``; returns their paths."""
    image, text = embed(model, pairs)
    emb = write_embeddings(Path(folder) / "embeddings", {"image": image.numpy(), "text": text.numpy()},
                           embeddings_meta(pairs, split))
    gallery = Path(folder) / "top_captions.parquet"
    top_captions(image, text, pairs, top).to_parquet(gallery, index=False)
    return {"embeddings": str(emb), "top_captions": str(gallery)}
