"""Retrieval metrics over embedding sets, in query chunks, never holding the score matrix.

COCO-style data has several captions per image, so the two directions differ:

- image -> text (I2T): a query image's rank is that of the BEST-ranked of its captions;
- text -> image (T2I): a query caption's rank is that of its one image.

Ranks are computed by counting, not sorting: for a query with positive score s at column p,
rank = #{columns c: score_c > s} + #{c < p: score_c == s}, i.e. the 0-based position of p in
a stable descending sort (ties go to the lower index, the same way every time). Scores come
from one matmul per chunk of queries; the positive's score is read from that same chunk, so
a positive is never compared with a differently rounded copy of itself. Memory is
O(chunk x columns); time is one matmul plus a few elementwise passes (no argsort).
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch

from workbench.errors import InputError

CHUNK_BYTES = 128 * 2**20  # the score block of one chunk of queries (a few such blocks live at once)


def _as_features(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2:
        raise InputError(f"{name} must be a 2-d array [N, D], got shape {tuple(x.shape)}")
    return x.float()


def _chunk_rows(n_queries: int, n_columns: int, chunk_size: int | None) -> int:
    if chunk_size:
        return max(1, int(chunk_size))
    return max(1, min(n_queries, CHUNK_BYTES // (4 * max(1, n_columns))))


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _rank_of(scores: torch.Tensor, positive: torch.Tensor, column: torch.Tensor) -> torch.Tensor:
    """[c] 0-based stable ranks: scores [c, M], the positive's score [c] and column [c]."""
    above = scores > positive[:, None]
    tied_before = (scores == positive[:, None]) & (torch.arange(scores.shape[1], device=scores.device) < column[:, None])
    return (above | tied_before).sum(dim=1)


def t2i_ranks(image_features, text_features, text_image_index, chunk_size: int | None = None) -> torch.Tensor:
    """[M] 0-based rank of each text's own image among all N images."""
    img, txt = _as_features(image_features, "image_features"), _as_features(text_features, "text_features")
    target = torch.as_tensor(text_image_index, dtype=torch.long)
    ranks = torch.empty(len(txt), dtype=torch.long)
    rows = torch.arange(len(txt))
    for a, b in _chunks(len(txt), _chunk_rows(len(txt), len(img), chunk_size)):
        scores = (img @ txt[a:b].T).T  # [c, N]: the same operand order as the I2T blocks
        ranks[a:b] = _rank_of(scores, scores[rows[: b - a], target[a:b]], target[a:b])
    return ranks


def i2t_ranks(image_features, text_features, text_image_index, chunk_size: int | None = None) -> torch.Tensor:
    """[N] 0-based rank of each image's best-ranked caption among all M texts; -1 for an
    image without captions (it is no query)."""
    img, txt = _as_features(image_features, "image_features"), _as_features(text_features, "text_features")
    owner = torch.as_tensor(text_image_index, dtype=torch.long)
    order = torch.argsort(owner, stable=True)  # texts grouped by image, ascending text index
    sorted_owner = owner[order]
    ranks = torch.full((len(img),), -1, dtype=torch.long)
    for a, b in _chunks(len(img), _chunk_rows(len(img), len(txt), chunk_size)):
        lo, hi = torch.searchsorted(sorted_owner, torch.tensor([a, b])).tolist()
        texts, local = order[lo:hi], sorted_owner[lo:hi] - a  # the chunk's captions and their row
        scores = img[a:b] @ txt.T  # [c, M]
        pos = scores[local, texts]  # each caption's score, read from this very block
        best = torch.full((b - a,), float("-inf")).scatter_reduce(0, local, pos, "amax")
        # among equally scored best captions the lowest index ranks first
        first = torch.where(pos == best[local], texts, len(txt))
        column = torch.full((b - a,), len(txt), dtype=torch.long).scatter_reduce(0, local, first, "amin")
        has = column < len(txt)
        if has.all():  # the usual case: no copy of the block
            ranks[a:b] = _rank_of(scores, best, column)
        elif has.any():
            ranks[a:b][has] = _rank_of(scores[has], best[has], column[has])
    return ranks


def _summary(prefix: str, ranks: torch.Tensor, ks: Iterable[int]) -> dict[str, float]:
    ranks = ranks[ranks >= 0].double()
    if len(ranks) == 0:
        raise InputError("no queries to rank: every image lacks captions")
    out = {f"{prefix}_r{k}": float((ranks < k).double().mean()) for k in ks}
    out[f"{prefix}_mean_rank"] = float(ranks.mean() + 1)  # 1-based, as papers report
    out[f"{prefix}_median_rank"] = float(ranks.median() + 1) if len(ranks) % 2 else float(
        torch.quantile(ranks, 0.5) + 1)
    return out


def check_pairs(image_features, text_features, text_image_index) -> None:
    img, txt = torch.as_tensor(image_features), torch.as_tensor(text_features)
    index = torch.as_tensor(text_image_index)
    if img.ndim != 2 or txt.ndim != 2 or img.shape[1] != txt.shape[1]:
        raise InputError(f"image_features {tuple(img.shape)} and text_features {tuple(txt.shape)} must be "
                         "[N, D] and [M, D] with the same D")
    if index.shape != (len(txt),):
        raise InputError(f"text_image_index must hold one image row per text ({len(txt)}), got shape "
                         f"{tuple(index.shape)}")
    if len(index) and (int(index.min()) < 0 or int(index.max()) >= len(img)):
        raise InputError(f"text_image_index must be image rows in [0, {len(img) - 1}]")


def retrieval_metrics(image_features, text_features, text_image_index, ks: Iterable[int] = (1, 5, 10),
                      chunk_size: int | None = None) -> dict[str, float]:
    """Recall@k both ways (fractions) and mean / median ranks (1-based).

    image_features [N, D], text_features [M, D] (normalised: scores are dot products),
    text_image_index [M] the image row of each text. Keys: ``i2t_r{k}``, ``t2i_r{k}``,
    ``i2t_mean_rank``, ``i2t_median_rank``, ``t2i_mean_rank``, ``t2i_median_rank``, and the
    counts ``n_images``, ``n_texts``. Images without captions are not I2T queries.
    """
    check_pairs(image_features, text_features, text_image_index)
    ks = tuple(int(k) for k in ks)
    with torch.no_grad():
        i2t = i2t_ranks(image_features, text_features, text_image_index, chunk_size)
        t2i = t2i_ranks(image_features, text_features, text_image_index, chunk_size)
    return {**_summary("i2t", i2t, ks), **_summary("t2i", t2i, ks),
            "n_images": int((i2t >= 0).sum()), "n_texts": int(len(t2i))}


def recall_mean(metrics: dict[str, float], ks: Iterable[int] = (1, 5, 10)) -> float:
    """Mean of the R@k both ways (the "rsum" / 6): one number to select a model by."""
    values = [metrics[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in ks]
    return float(sum(values) / len(values))


def full_matrix_ranks(image_features, text_features, text_image_index) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference (i2t [N], t2i [M]) 0-based ranks from the full score matrix and a stable
    argsort: what the chunked counting must reproduce. Memory O(N x M) (plus int64 indices)."""
    img, txt = _as_features(image_features, "image_features"), _as_features(text_features, "text_features")
    owner = torch.as_tensor(text_image_index, dtype=torch.long)
    scores = img @ txt.T  # [N, M]
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    is_pos = owner[order] == torch.arange(len(img))[:, None]
    i2t = torch.where(is_pos.any(1), is_pos.int().argmax(1), -1)
    order_t = torch.sort(scores.T, dim=1, descending=True, stable=True).indices
    t2i = (order_t == owner[:, None]).int().argmax(1)
    return i2t, t2i


def top_k(queries, keys, k: int, chunk_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Best ``k`` keys per query by dot product: (scores [Q, k], indices [Q, k]), best first,
    ties to the lower index; chunked over queries."""
    q, kk = _as_features(queries, "queries"), _as_features(keys, "keys")
    k = min(int(k), len(kk))
    scores, index = torch.empty(len(q), k), torch.empty(len(q), k, dtype=torch.long)
    for a, b in _chunks(len(q), _chunk_rows(len(q), len(kk), chunk_size)):
        block = q[a:b] @ kk.T
        # a stable descending sort of the top candidates keeps ties in index order
        top = torch.topk(block, k, dim=1, sorted=False).indices.sort(dim=1).values
        values = block.gather(1, top)
        order = torch.sort(values, dim=1, descending=True, stable=True).indices
        scores[a:b], index[a:b] = values.gather(1, order), top.gather(1, order)
    return scores, index


def zero_shot_accuracy(image_features, class_features, labels, ks: Iterable[int] = (1, 5),
                       chunk_size: int | None = None) -> dict[str, float]:
    """Top-k zero-shot classification accuracy (fractions) from prompt embeddings.

    image_features [N, D]; class_features [C, D], or [C, P, D] for P prompts per class
    (averaged, then re-normalised, as CLIP's prompt ensembles); labels [N] class indices.
    Keys ``top{k}``. The true class's rank is counted with the same tie rule as retrieval.
    """
    img = _as_features(image_features, "image_features")
    classes = torch.as_tensor(class_features).float()
    if classes.ndim == 3:
        classes = torch.nn.functional.normalize(classes.mean(dim=1), dim=-1)
    if classes.ndim != 2 or classes.shape[1] != img.shape[1]:
        raise InputError(f"class_features must be [C, D] or [C, P, D] with D = {img.shape[1]}, "
                         f"got {tuple(torch.as_tensor(class_features).shape)}")
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.shape != (len(img),) or (len(labels) and (labels.min() < 0 or labels.max() >= len(classes))):
        raise InputError(f"labels must be [N] class indices in [0, {len(classes) - 1}]")
    ranks = t2i_ranks(classes, img, labels, chunk_size)  # each image's rank of its class
    return {f"top{k}": float((ranks < k).double().mean()) for k in ks}
