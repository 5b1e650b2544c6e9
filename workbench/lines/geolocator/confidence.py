"""How much to trust one geolocation: peakedness of P(cell) and distance from the training data.

Two independent signals, both cheap and both stated in the page:

- **near-uniform** (``peakedness``): the normalised entropy H(p) / log K is 1 for the
  uniform distribution over the K cells and 0 for a one-hot. exp(H) is the distribution's
  perplexity, the number of equally likely cells it is "spread over", and H / log K =
  log(exp(H)) / log K. A value above ``NEAR_UNIFORM_ENTROPY`` = 0.9 means the probability
  is spread as if over more than K^0.9 cells (36 of the demo's 54): the model is close to
  saying "anywhere". On the demo's held-out test tiles the 95th percentile is 0.80.
- **out of distribution** (``FeatureReference``): the mean cosine distance from the image's
  backbone features to its ``KNN_K`` nearest neighbours among a sample of the model's
  training images. The threshold is the ``OOD_QUANTILE`` = 99 % quantile of the same
  distance over held-out (validation) images of the training data set, so an in-distribution
  image is flagged about 1 % of the time; the photos in assets/photos lie above it for the
  demo model. It needs the training CSV on disk; without it the signal is unavailable
  (never guessed).

A prediction is **low confidence** when either signal fires.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.errors import InputError, NotFoundError

NEAR_UNIFORM_ENTROPY = 0.9  # normalised entropy above this = near uniform
OOD_QUANTILE = 0.99  # held-out distance quantile used as the OOD threshold
KNN_K = 5
TOP_MASS_K = 5


def peakedness(probs: np.ndarray, top_k: int = TOP_MASS_K) -> dict[str, np.ndarray]:
    """How peaked each distribution is. probs: [..., K] rows summing to 1 (K >= 2).

    Returns arrays of shape [...]: ``top1`` (largest probability), ``top_mass`` (sum of the
    ``top_k`` largest), ``entropy`` (nats), ``entropy_norm`` (entropy / log K, 0 = one-hot,
    1 = uniform), ``effective_cells`` (exp(entropy), 1 .. K), ``top1_vs_uniform``
    (top1 * K: 1 for uniform, K for one-hot).
    """
    p = np.asarray(probs, np.float64)
    if p.ndim < 1 or p.shape[-1] < 2:
        raise InputError(f"probs must have shape [..., K] with K >= 2 cells; got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise InputError("probs must be finite and non-negative")
    k = p.shape[-1]
    p = p / p.sum(-1, keepdims=True)
    # 0 log 0 = 0: where p is 0 the product is 0 whatever log returns
    entropy = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(-1)
    top = -np.sort(-p, axis=-1)[..., : min(top_k, k)]
    return {
        "top1": top[..., 0],
        "top_mass": top.sum(-1),
        "entropy": entropy,
        "entropy_norm": np.clip(entropy / np.log(k), 0.0, 1.0),
        "effective_cells": np.exp(entropy),
        "top1_vs_uniform": top[..., 0] * k,
    }


def is_near_uniform(probs: np.ndarray, threshold: float = NEAR_UNIFORM_ENTROPY) -> np.ndarray:
    """[...] bool: normalised entropy of probs [..., K] above ``threshold``."""
    return peakedness(probs)["entropy_norm"] > threshold


def knn_cosine_distance(queries: np.ndarray, reference: np.ndarray, k: int = KNN_K,
                        exclude_self: bool = False) -> np.ndarray:
    """Mean cosine distance (1 - cos) from each query to its k nearest reference rows.

    queries [B, D], reference [N, D] (any norms; rows are normalised here) -> [B] in [0, 2].
    exclude_self: queries are the reference itself (B == N); skip each row's own match.
    """
    q = _unit(queries)
    r = _unit(reference)
    if q.shape[1] != r.shape[1]:
        raise InputError(f"feature sizes differ: queries {q.shape}, reference {r.shape}")
    sim = q @ r.T  # [B, N]
    if exclude_self:
        np.fill_diagonal(sim, -np.inf)
    k = max(1, min(k, r.shape[0] - int(exclude_self)))
    nearest = -np.partition(-sim, k - 1, axis=1)[:, :k]  # [B, k] the k largest, any order
    return 1.0 - nearest.mean(1)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, np.float64))
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class FeatureReference:
    """Backbone features of a sample of training images and the OOD threshold.

    features: [N, D] training-image features; heldout: [M] distances of held-out images
    to them (sorted); threshold: their ``quantile``; source: what was sampled, for the UI.
    """

    features: np.ndarray
    heldout: np.ndarray
    threshold: float
    quantile: float
    k: int
    source: str

    @classmethod
    def fit(cls, train_features: np.ndarray, heldout_features: np.ndarray, k: int = KNN_K,
            quantile: float = OOD_QUANTILE, source: str = "") -> "FeatureReference":
        if not 0 < quantile < 1:
            raise InputError(f"quantile must be in (0, 1); got {quantile}")
        train = _unit(train_features).astype(np.float32)
        heldout = np.sort(knn_cosine_distance(heldout_features, train, k))
        return cls(train, heldout, float(np.quantile(heldout, quantile)), quantile, k, source)

    def distance(self, features: np.ndarray) -> np.ndarray:
        """[B] kNN cosine distance of features [B, D] (or [D]) to the training sample."""
        return knn_cosine_distance(features, self.features, self.k)

    def heldout_rank(self, distance: np.ndarray) -> np.ndarray:
        """Fraction of held-out images closer to the training data than each distance."""
        return np.searchsorted(self.heldout, np.asarray(distance, np.float64), side="right") / len(self.heldout)

    def is_ood(self, features: np.ndarray) -> np.ndarray:
        return self.distance(features) > self.threshold


def build_feature_reference(predictor, csv: str | Path | None = None, n_train: int = 256,
                            n_heldout: int = 128, seed: int = 0, batch_size: int = 64,
                            k: int = KNN_K, quantile: float = OOD_QUANTILE) -> FeatureReference:
    """A ``FeatureReference`` for a ``GeoPredictor`` from its own training CSV.

    Samples n_train rows of the model's train split and n_heldout of its validation split
    (``data.val_split``; else ``test``; else other train rows, said in ``source``), reads
    them the way ``predict`` does and embeds them in batches. About 20 ms an image at
    64 px on one CPU core. Raises NotFoundError when the CSV or the images are missing.
    """
    from workbench.lines.geolocator.data import read_table
    from workbench.paths import REPO_ROOT

    d = predictor.cfg.data
    path = Path(csv or d.csv)
    if not path.is_absolute() and not path.is_file():
        path = REPO_ROOT / path
    frame = read_table(path, d.image_root or None)
    if "split" not in frame.columns:
        raise NotFoundError(f"{path} has no split column, so its training images are unknown")
    rng = np.random.default_rng(seed)
    train = frame[frame["split"] == d.train_split]
    if train.empty:
        raise NotFoundError(f"{path} has no rows in the training split {d.train_split!r}")
    train_idx = rng.permutation(len(train))
    held_name = next((s for s in (d.val_split, "val", "test") if s and (frame["split"] == s).any()), None)
    if held_name is not None:
        held = frame[frame["split"] == held_name].sample(frac=1.0, random_state=seed)[:n_heldout]
        train = train.iloc[train_idx[:n_train]]
        what = f"{held_name} split"
    else:  # no held-out split: disjoint training rows (the threshold is then optimistic)
        held = train.iloc[train_idx[n_train:n_train + n_heldout]]
        train = train.iloc[train_idx[:n_train]]
        what = "other training images"
    if len(held) < 10:
        raise NotFoundError(f"{path}: only {len(held)} held-out images to calibrate the OOD threshold")
    feats = predictor.embed_files(list(train["path"]) + list(held["path"]), batch_size=batch_size)
    source = (f"{len(train)} training images vs {len(held)} held-out images ({what}) of "
              f"{path.parent.name}/{path.name}")
    return FeatureReference.fit(feats[: len(train)], feats[len(train):], k, quantile, source)
