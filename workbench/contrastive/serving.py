"""Image-text models served to the Retrieval page through one interface, whichever line
trained them (projection heads on frozen encoders, CLIP from scratch, ...).

A line offers its models by having a ``retrieval`` part (``workbench/lines/<name>/retrieval.py``)
with ``list_sources(runs_root=None) -> list[Source]`` and ``load(source) -> model``, where a
loaded model has:

| attribute | what |
| --- | --- |
| ``source``, ``metrics`` | the Source and its metrics.json |
| ``embeddings`` | the test split's ``Embeddings`` (``image`` and ``text`` in one space) |
| ``images`` / ``texts`` | their meta rows (``row`` order), ``image_id`` linking a caption to its image |
| ``tile_path(relative)`` | an image's file, or None |
| ``text_encoder_name`` | a frozen text encoder the page must load to embed a typed caption, or None |
| ``embeds_queries`` | whether a typed caption can be embedded at all |
| ``encode_query(text, encoder)`` | [D] the caption in the shared space (``encoder``: the loaded frozen one, or None) |
| ``caption()`` | one line saying what the model is |
| ``metric_rows()`` | rows ``{"model", "heads", <TABLE_KEYS>}`` of the R@K table (percent), trained model first |

``ServedModel`` gives ``images``, ``texts`` and ``tile_path`` to a loaded model that has
``embeddings`` and a ``data_root()``. The functions below work on any such model.
"""
from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import torch

from workbench.contrastive.retrieval import top_k
from workbench.errors import InputError

TABLE_KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "i2t_median_rank", "t2i_median_rank")


class ServedModel:
    """The meta-row views and tile lookup every served model shares (a mixin for the lines'
    loaded-model dataclasses, which give ``embeddings`` and ``data_root``)."""

    embeddings: object  # workbench.contrastive.artifacts.Embeddings

    def data_root(self) -> Path:
        """The folder the image paths in the meta rows are relative to."""
        raise NotImplementedError

    @functools.cached_property
    def images(self) -> pd.DataFrame:
        meta = self.embeddings.meta
        return meta[meta["modality"] == "image"].sort_values("row").reset_index(drop=True)

    @functools.cached_property
    def texts(self) -> pd.DataFrame:
        meta = self.embeddings.meta
        return meta[meta["modality"] == "text"].sort_values("row").reset_index(drop=True)

    def tile_path(self, relative: str) -> Path | None:
        """An image's file (in the data folder the model was trained on), if present."""
        if not relative:
            return None
        path = self.data_root() / relative
        return path if path.is_file() else None


def read_served(spec, kind: str, runs_root=None):
    """What every line's loader reads: (source, checkpoint dict, metrics, test embeddings,
    caption gallery) of a bundle or run of ``kind``; NotFoundError when it has no model or
    no test embeddings yet."""
    import json

    from workbench.contrastive.artifacts import read_embeddings
    from workbench.errors import NotFoundError
    from workbench.runs.sources import Source, resolve_source
    from workbench.train.bundle import load_bundle

    source = spec if isinstance(spec, Source) else resolve_source(spec, kind, runs_root)
    ckpt_file = source.checkpoint if source.path.is_dir() else source.path
    if ckpt_file is None:
        raise NotFoundError(f"{source.label} has no model yet (a run saves one at its first validation)")
    ckpt = load_bundle(ckpt_file, kind=kind)
    folder = source.artifacts if source.path.is_dir() else source.path.parent
    if not (folder / "embeddings").is_dir():
        raise NotFoundError(f"{source.label} has no test embeddings yet: a run writes them when it finishes "
                            f"(looked in {folder})")
    metrics_file = folder / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    gallery_file = folder / "top_captions.parquet"
    gallery = pd.read_parquet(gallery_file) if gallery_file.is_file() else pd.DataFrame()
    return source, ckpt, metrics, read_embeddings(folder / "embeddings"), gallery


def providers() -> dict[str, ModuleType]:
    """line name -> its ``retrieval`` module, for every line that serves image-text models."""
    from workbench import lines

    return {m.__name__.split(".")[-2]: m for m in lines.load_parts("retrieval")}


def list_sources(runs_root=None) -> list[tuple[str, object]]:
    """(line, Source) of every servable model: each line's bundles and finished runs."""
    return [(line, s) for line, module in providers().items() for s in module.list_sources(runs_root)]


def check_query(text: str | None) -> str:
    """The stripped query; InputError for an empty or an overlong one."""
    text = (text or "").strip()
    if not text:
        raise InputError("type a caption to search for, e.g. 'snowy mountains in Asia'")
    if len(text) > 500:
        raise InputError(f"the query has {len(text)} characters; keep it under 500")
    return text


def images_for_query(model, query: torch.Tensor, top: int = 8) -> pd.DataFrame:
    """The ``top`` test images nearest to a query embedding [D]: rank, score and the image's meta."""
    image = torch.from_numpy(model.embeddings.vectors["image"])
    scores, index = top_k(query[None].float(), image, top)
    table = model.images.iloc[index[0].numpy()].reset_index(drop=True)
    table.insert(0, "score", scores[0].numpy())
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def captions_for_image(model, image_row: int, top: int = 5) -> pd.DataFrame:
    """The ``top`` test captions nearest to test image ``image_row``; ``correct`` marks the
    captions written for that image."""
    n = len(model.embeddings.vectors["image"])
    if not 0 <= image_row < n:
        raise InputError(f"image row must be in [0, {n - 1}], got {image_row}")
    image = torch.from_numpy(model.embeddings.vectors["image"][image_row:image_row + 1])
    scores, index = top_k(image, torch.from_numpy(model.embeddings.vectors["text"]), top)
    texts = model.texts.iloc[index[0].numpy()]
    own = int(model.images["image_id"].iloc[image_row])
    return pd.DataFrame({"rank": np.arange(1, len(texts) + 1), "score": scores[0].numpy(),
                         "caption": texts["caption"].to_numpy(), "correct": texts["image_id"].to_numpy() == own})


def table_row(model_label: str, what: str, values: dict) -> dict:
    """One row of the R@K table: recalls in percent, ranks as they are."""
    return {"model": model_label, "heads": what,
            **{k: (values[k] * 100 if "_r" in k and "rank" not in k else values[k]) if k in values else None
               for k in TABLE_KEYS}}


def metrics_table(models: list) -> pd.DataFrame:
    """Test R@K (percent) and median ranks of every model, each with its own comparisons."""
    return pd.DataFrame([row for m in models for row in m.metric_rows()])
