"""Class labels over an adaptive S2 partition: flat or hierarchical, optionally smoothed.

The partition (``workbench.geo.build_partition``) is built on the training split only; its
K cells are the classes. Three label modes share one fine target distribution
``q [B, K]`` (one-hot, or PIGEON's haversine smoothing ``q_i ~ exp(-(d_i - d_min) / tau)``
with d_i the distance from the true location to cell i's centroid):

| mode | head outputs | loss | cell probabilities |
| --- | --- | --- | --- |
| ``flat`` | K logits | cross-entropy with q | softmax |
| ``multilabel`` | one logit per group of every level (parents and children) | BCE with the group targets ``q @ G_l`` | softmax over cells of sum_l log sigmoid(logit of the cell's group at l) |
| ``per_level`` | one softmax block per level | sum over levels of cross-entropy with ``q @ G_l`` | softmax over cells of sum_l log softmax_l(group of the cell) |

G_l is the [K, n_l] membership matrix of level l (``Partition.hierarchy``); the finest
level is the identity, so per_level with one level equals flat.

``LabelSpace`` is an ``nn.Module`` whose buffers hold the partition (cell ids, counts,
centroids, hierarchy), so a checkpoint of a model that contains it is self-contained:
``partition_from_labels`` rebuilds the ``Partition`` from a state dict alone.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import ConfigError, InputError
from workbench.geo import (
    Partition,
    build_partition,
    cell_center_latlon,
    cell_id_to_token,
    cell_level,
    haversine_km,
)
from workbench.geo.partition import nearest_centroid
from workbench.lines.geolocator.config import LABEL_MODES



def build_labels_partition(lat: np.ndarray, lon: np.ndarray, cfg) -> Partition:
    """The class partition from the TRAINING coordinates [N] degrees and a labels config."""
    if cfg.partition_file:
        return Partition.load(cfg.partition_file)
    partition = build_partition(lat, lon, t_min=cfg.t_min, t_max=cfg.t_max,
                                min_level=cfg.min_level, max_level=cfg.max_level)
    if len(partition) == 0:
        raise ConfigError(f"no S2 cell holds labels.t_min={cfg.t_min} training images "
                          f"({len(lat)} images in total); lower labels.t_min")
    return partition


def assign_labels(partition: Partition, lat: np.ndarray, lon: np.ndarray,
                  outside: str = "nearest") -> np.ndarray:
    """Class index per point, int64 [N]. Points outside every kept cell get the nearest
    cell (``outside="nearest"``) or -1 (``"drop"``)."""
    labels = partition.assign(lat, lon)
    out = labels < 0
    if outside == "nearest" and out.any():
        labels[out] = nearest_centroid(partition, lat[out], lon[out])
    return labels


class LabelSpace(nn.Module):
    """Targets, loss and cell probabilities for one label mode over a partition.

    Buffers: ``cell_ids`` int64 [K] (S2 ids bit-cast from uint64), ``counts`` [K] training
    images per cell, ``centroid_latlon`` float64 [K, 2] (the predicted location of each
    class), ``groups`` int64 [K, L] (group index of each cell at each level, coarse -> fine)
    and ``levels`` int64 [L].
    """

    def __init__(self, partition: Partition, mode: str = "flat", smoothing_km: float = 0.0):
        super().__init__()
        if mode not in LABEL_MODES:
            raise ConfigError(f"labels.mode {mode!r} is not valid. Choose one of {list(LABEL_MODES)}")
        if smoothing_km < 0:
            raise ConfigError(f"labels.smoothing_km must be >= 0, got {smoothing_km}")
        self.mode, self.smoothing_km = mode, float(smoothing_km)
        ids = partition.ids.view(np.int64)
        hierarchy = partition.hierarchy()  # [K, L] columns l<level>, coarse -> fine
        self.register_buffer("cell_ids", torch.from_numpy(ids.copy()))
        self.register_buffer("counts", torch.as_tensor(partition.cells["count"].to_numpy(np.int64).copy()))
        lat, lon = partition.centroids()
        self.register_buffer("centroid_latlon", torch.from_numpy(np.stack([lat, lon], 1)))
        self.register_buffer("groups", torch.as_tensor(hierarchy.to_numpy(np.int64).copy()))
        self.register_buffer("levels", torch.as_tensor([int(c[1:]) for c in hierarchy.columns]))
        self.meta = {"t_min": partition.t_min, "t_max": partition.t_max,
                     "min_level": partition.min_level, "max_level": partition.max_level,
                     "n_points": partition.n_points}

    @property
    def n_cells(self) -> int:
        return int(self.cell_ids.shape[0])

    @property
    def level_sizes(self) -> list[int]:
        """Groups per level [L], coarse -> fine (the finest equals n_cells)."""
        return [int(v) for v in (self.groups.max(0).values + 1).tolist()]

    @property
    def n_outputs(self) -> int:
        """Logits the head must produce for this mode."""
        return self.n_cells if self.mode == "flat" else sum(self.level_sizes)

    # -- targets and loss -----------------------------------------------------------------
    def fine_targets(self, labels: torch.Tensor, latlon: torch.Tensor) -> torch.Tensor:
        """q [B, K]: one-hot of ``labels`` [B], or the haversine-smoothed distribution of the
        true locations ``latlon`` [B, 2] degrees (PIGEON) when smoothing_km > 0."""
        if self.smoothing_km <= 0:
            return F.one_hot(labels, self.n_cells).to(torch.float32)
        c = self.centroid_latlon
        d = haversine_km(latlon[:, :1].double(), latlon[:, 1:].double(), c[None, :, 0], c[None, :, 1])
        # exp(-(d - d_min) / tau), normalised: a softmax of -d / tau (d_min cancels)
        return torch.softmax(-d / self.smoothing_km, dim=1).to(torch.float32)

    def level_targets(self, q: torch.Tensor) -> list[torch.Tensor]:
        """[B, n_l] per level: the mass of q inside each group (q @ G_l), coarse -> fine."""
        out = []
        for l, size in enumerate(self.level_sizes):
            t = q.new_zeros(q.shape[0], size)
            out.append(t.index_add_(1, self.groups[:, l], q))
        return out

    def split_logits(self, logits: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(logits, self.level_sizes, dim=1))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, latlon: torch.Tensor) -> torch.Tensor:
        """Mean loss over the batch; logits [B, n_outputs], labels [B], latlon [B, 2] degrees."""
        if logits.shape[0] == 0:  # every image of the batch failed to load
            return logits.sum() * 0.0
        q = self.fine_targets(labels, latlon)
        if self.mode == "flat":
            return F.cross_entropy(logits, q)
        targets = self.level_targets(q)
        blocks = self.split_logits(logits)
        if self.mode == "multilabel":
            return torch.stack([F.binary_cross_entropy_with_logits(b, t, reduction="sum")
                                for b, t in zip(blocks, targets)]).sum() / logits.shape[0]
        return torch.stack([F.cross_entropy(b, t) for b, t in zip(blocks, targets)]).sum()

    # -- prediction -----------------------------------------------------------------------
    def cell_log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """log P(cell) [B, K] from head logits [B, n_outputs]; rows sum to 1 in prob space."""
        if self.mode == "flat":
            return torch.log_softmax(logits, dim=1)
        blocks = self.split_logits(logits)
        per_level = F.logsigmoid if self.mode == "multilabel" else (lambda b: torch.log_softmax(b, 1))
        score = sum(per_level(b)[:, self.groups[:, l]] for l, b in enumerate(blocks))  # [B, K]
        return torch.log_softmax(score, dim=1)

    def predicted_classes(self, logits: torch.Tensor) -> torch.Tensor:
        return self.cell_log_probs(logits).argmax(1)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, cells={self.n_cells}, levels={self.levels.tolist()}, " \
               f"smoothing_km={self.smoothing_km}"


def partition_from_labels(state: dict[str, torch.Tensor], prefix: str = "labels.",
                          meta: dict | None = None) -> Partition:
    """Rebuild the ``Partition`` stored in a LabelSpace's buffers (e.g. a checkpoint's state
    dict): cells, counts and centroids exactly, parent tokens recomputed from the ids."""
    try:
        ids = state[f"{prefix}cell_ids"].cpu().numpy().astype(np.int64).view(np.uint64)
        counts = state[f"{prefix}counts"].cpu().numpy().astype(np.int64)
        latlon = state[f"{prefix}centroid_latlon"].cpu().numpy().astype(np.float64)
    except KeyError as exc:
        raise InputError(f"the checkpoint holds no partition (missing {exc}); is it a geolocator model?") from None
    meta = meta or {}
    cells = pd.DataFrame({"token": cell_id_to_token(ids), "cell_id": ids, "level": cell_level(ids),
                          "count": counts, "lat": latlon[:, 0], "lon": latlon[:, 1]})
    cells["center_lat"], cells["center_lon"] = cell_center_latlon(ids)
    partition = Partition(cells, t_min=int(meta.get("t_min", 1)), t_max=int(meta.get("t_max", 1)),
                          min_level=int(meta.get("min_level", int(cells["level"].min()))),
                          max_level=int(meta.get("max_level", int(cells["level"].max()))),
                          n_points=int(meta.get("n_points", int(counts.sum()))))
    for level in partition.levels[:-1]:
        cells[f"parent_l{level}"] = partition.ancestor_tokens(level)
    return partition
