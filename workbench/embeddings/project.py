"""2-D / 3-D projections of an embedding set, and how faithful they are.

    X float32 [N, D] --(cosine: rows L2-normalised)--> --(D > 50 and not PCA: PCA-50)-->
      PCA (randomised SVD) | UMAP (umap-learn) | t-SNE (openTSNE, FFT-accelerated in 2-D) --> Y [N, dims]

With the cosine metric the rows are normalised first: euclidean distances of unit vectors
order pairs as cosine similarity does, so every method runs on its fast euclidean path.
``quality`` compares neighbourhoods of the original space (after normalisation, before the
PCA-50 step) with the projection's, on a sample: scikit-learn's trustworthiness and the k-NN
preservation rate (the share of each sampled point's k nearest neighbours among all N points
that are also its k nearest in the projection).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from workbench.errors import ConfigError

METHODS = ("pca", "umap", "tsne")
METRICS = ("cosine", "euclidean")
PRE_PCA = 50

Progress = Callable[[str, float], bool | None]  # (phase, fraction done) -> True to stop


class Stopped(Exception):
    """The progress callback asked to stop."""


def check_params(method: str, dims: int, metric: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown projection method '{method}'; one of {list(METHODS)}")
    if dims not in (2, 3):
        raise ConfigError(f"dims must be 2 or 3, got {dims}")
    if metric not in METRICS:
        raise ConfigError(f"unknown metric '{metric}'; one of {list(METRICS)}")


def prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """float32 copy, rows L2-normalised for the cosine metric (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(x)


def pca(x: np.ndarray, dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(Y [N, dims], explained variance ratio [dims]) by randomised SVD of the centred data."""
    from sklearn.decomposition import PCA

    dims = min(dims, x.shape[1], len(x))
    model = PCA(n_components=dims, svd_solver="randomized" if min(x.shape) > 4 * dims else "full",
                random_state=seed)
    y = model.fit_transform(x).astype(np.float32)
    return y, model.explained_variance_ratio_.astype(np.float32)


def project(x: np.ndarray, method: str, dims: int = 2, metric: str = "cosine", seed: int | None = 0,
            progress: Progress | None = None, perplexity: float = 30.0, n_neighbors: int = 15) -> dict:
    """{"coords": float32 [N, dims], "seconds", "pre_pca", ...} of the projection. ``seed``
    None lets UMAP use every core (its results then vary from run to run)."""
    check_params(method, dims, metric)
    if len(x) < 5:
        raise ConfigError(f"need at least 5 points to project, got {len(x)}")
    report = progress or (lambda phase, done: None)
    start = time.perf_counter()
    x = prepare(x, metric)
    info: dict = {"method": method, "dims": dims, "metric": metric, "seed": seed, "n": int(len(x)),
                  "d": int(x.shape[1])}
    if method == "pca":
        y, ratio = pca(x, dims, seed or 0)
        info["explained_variance_ratio"] = [round(float(r), 4) for r in ratio]
    else:
        if x.shape[1] > PRE_PCA:
            if report("pca-50", 0.0):
                raise Stopped
            x, ratio = pca(x, PRE_PCA, seed or 0)
            info["pre_pca"] = {"dims": PRE_PCA, "explained": round(float(ratio.sum()), 4)}
        y = _umap(x, dims, seed, n_neighbors, report) if method == "umap" else _tsne(x, dims, seed, perplexity, report)
        info["perplexity" if method == "tsne" else "n_neighbors"] = perplexity if method == "tsne" else n_neighbors
    info["seconds"] = round(time.perf_counter() - start, 3)
    return {"coords": np.ascontiguousarray(y, dtype=np.float32), **info}


def _umap(x: np.ndarray, dims: int, seed: int | None, n_neighbors: int, report: Progress) -> np.ndarray:
    import warnings

    import umap

    if report("umap: nearest neighbours and layout", 0.05):
        raise Stopped
    n_neighbors = min(n_neighbors, len(x) - 1)
    with warnings.catch_warnings():  # "n_jobs overridden by setting random_state" when seeded
        warnings.simplefilter("ignore", UserWarning)
        model = umap.UMAP(n_components=dims, n_neighbors=n_neighbors, metric="euclidean", random_state=seed,
                          n_jobs=1 if seed is not None else -1, low_memory=True)
        return model.fit_transform(x)


def _tsne(x: np.ndarray, dims: int, seed: int | None, perplexity: float, report: Progress) -> np.ndarray:
    from openTSNE import TSNE

    perplexity = min(perplexity, (len(x) - 1) / 3)
    total = 250 + 500  # early exaggeration + the rest (openTSNE's defaults)
    done = {"iters": 0}

    def callback(iteration, error, embedding):
        done["iters"] += 10
        return bool(report("t-SNE optimisation", min(0.99, 0.1 + 0.9 * done["iters"] / total)))

    if report("t-SNE: affinities", 0.02):
        raise Stopped
    tsne = TSNE(n_components=dims, perplexity=perplexity, metric="euclidean", n_jobs=-1,
                random_state=seed if seed is not None else None, callbacks=callback, callbacks_every_iters=10,
                negative_gradient_method="auto" if dims == 2 else "bh", verbose=False)  # auto: BH below 10k points, FFT above
    y = tsne.fit(x)
    if done["iters"] < total - 10:  # a callback returned True: openTSNE stopped early
        raise Stopped
    return np.asarray(y)


# -- quality -------------------------------------------------------------------------------


def knn_indices(queries: np.ndarray, points: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """[Q, k] indices of each query's k nearest points (euclidean), in chunks; ``exclude``
    [Q] is the query's own index in ``points`` (left out)."""
    import torch

    p = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    p_sq = (p * p).sum(1)
    out = []
    for s in range(0, len(queries), 512):
        q = torch.from_numpy(np.ascontiguousarray(queries[s:s + 512], dtype=np.float32))
        d = p_sq[None, :] - 2 * q @ p.T  # |q|^2 is constant per row
        if exclude is not None:
            d[torch.arange(len(q)), torch.from_numpy(exclude[s:s + 512])] = float("inf")
        out.append(torch.topk(d, k, dim=1, largest=False).indices.numpy())
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def quality(x: np.ndarray, y: np.ndarray, metric: str = "cosine", k: int = 10, sample: int = 2000,
            seed: int = 0) -> dict:
    """Trustworthiness (scikit-learn, on ``sample`` points) and k-NN preservation (``sample``
    query points against all N, in the original space and in the projection)."""
    from sklearn.manifold import trustworthiness

    x = prepare(x, metric)
    n = len(x)
    k = min(k, n - 2)
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    trust = float(trustworthiness(x[idx], y[idx], n_neighbors=min(k, len(idx) // 2 - 1)))
    a = knn_indices(x[idx], x, k, exclude=idx)
    b = knn_indices(y[idx], y, k, exclude=idx)
    shared = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
    return {"trustworthiness": round(trust, 4), "knn_preservation": round(float(shared.mean() / k), 4),
            "k": int(k), "sample": int(len(idx))}
