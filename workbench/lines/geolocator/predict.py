"""Geolocate photos with a trained geolocator: checkpoint in, top-k cells and a place out.

``load_predictor(source)`` accepts a checkpoint file (``model.pt``, ``best.pt``), a folder
holding one (``checkpoints/geolocator-demo``, a run folder) or a run id; the checkpoint alone
defines the model (its config and the partition are stored inside). ``predict(image)``
returns a ``Prediction``: the top-k cells with probabilities (which sum to <= 1), the
whole distribution over every cell and how peaked it is, the image's backbone features
(for an out-of-distribution check, ``workbench.lines.geolocator.confidence``), the predicted
point, the nearest GeoNames place (offline reverse geocoding) and the latency.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image

from workbench.errors import InputError, NotFoundError, WorkbenchError
from workbench.geo import Partition, cell_polygons
from workbench.lines.geolocator.config import GeolocatorConfig
from workbench.lines.geolocator.data import ImageTransform, in_chans_of, load_image, normalization, to_tensor
from workbench.lines.geolocator.evaluate import predicted_location
from workbench.lines.geolocator.labels import LabelSpace, partition_from_labels
from workbench.lines.geolocator.models import GeoClassifier, build_classifier
from workbench.paths import CHECKPOINTS

DEMO_CHECKPOINT = CHECKPOINTS / "geolocator-demo"
CHECKPOINT_NAMES = ("model.pt", "best.pt", "last.pt")


@dataclass
class Prediction:
    """Where a photo was taken, as far as the model can tell.

    cells / tokens / probs: the top-k classes (index, S2 token, probability), best first;
    cell_lat / cell_lon: their centroids (degrees); cell_places: the place nearest to each
    centroid; polygons: [k, 4, 2] (lat, lon) outlines;
    lat / lon: the predicted point; place / country: nearest GeoNames place to it and its
    distance place_km; latency_ms: image decode to prediction.
    all_probs: [K] P(cell) for every cell, in class order (sums to 1);
    features: [D] the backbone's pooled features of the image.
    """

    cells: list[int]
    tokens: list[str]
    probs: list[float]
    cell_lat: list[float]
    cell_lon: list[float]
    cell_places: list[str]
    lat: float
    lon: float
    place: str
    country: str
    place_km: float
    latency_ms: float
    polygons: list = field(repr=False, default_factory=list)
    all_probs: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.float32))
    features: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.float32))

    def peakedness(self) -> dict[str, float]:
        """top1, top_mass (top 5), entropy_norm (0 one-hot .. 1 uniform), effective_cells."""
        from workbench.lines.geolocator.confidence import peakedness

        return {k: float(v) for k, v in peakedness(self.all_probs).items()}

    def to_json(self) -> dict[str, Any]:
        """The CLI's JSON (no polygons, features or full distribution; its peakedness)."""
        out = asdict(self)
        for key in ("polygons", "all_probs", "features"):
            out.pop(key)
        out["confidence"] = {k: round(v, 6) for k, v in self.peakedness().items()
                             if k in ("top1", "top_mass", "entropy_norm", "effective_cells")}
        out["cells"] = [{"cell": c, "token": t, "prob": round(p, 6), "lat": round(a, 5), "lon": round(o, 5),
                         "place": n}
                        for c, t, p, a, o, n in zip(self.cells, self.tokens, self.probs, self.cell_lat,
                                                    self.cell_lon, self.cell_places)]
        for key in ("tokens", "probs", "cell_lat", "cell_lon", "cell_places"):
            out.pop(key)
        out["lat"], out["lon"] = round(self.lat, 5), round(self.lon, 5)
        out["latency_ms"] = round(self.latency_ms, 1)
        return out


def reverse_geocode(lat: np.ndarray, lon: np.ndarray):
    """Nearest GeoNames place (population > 1000) per point: frame with place, country, place_km."""
    from workbench.geo.places import nearest_places

    return nearest_places(np.atleast_1d(np.asarray(lat, np.float64)), np.atleast_1d(np.asarray(lon, np.float64)))


class GeoPredictor:
    """A loaded geolocator in eval mode with its preprocessing; thread-compatible for reads."""

    def __init__(self, model: GeoClassifier, cfg: GeolocatorConfig, partition: Partition,
                 transform: ImageTransform, source: str):
        self.model, self.cfg, self.partition = model.eval(), cfg, partition
        self.transform, self.source = transform, source
        self.centroids = model.labels.centroid_latlon.cpu().numpy()  # [K, 2]
        self.tokens = partition.cells["token"].to_numpy()
        self._polygons: np.ndarray | None = None
        self._cell_places: list[str] | None = None

    @property
    def n_cells(self) -> int:
        return len(self.partition)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def polygons(self) -> np.ndarray:
        """[K, 4, 2] outlines of every cell (cached)."""
        if self._polygons is None:
            self._polygons = self.partition.polygons()
        return self._polygons

    def warm_up(self) -> "GeoPredictor":
        """One prediction on a blank image: loads the place table and lets torch allocate,
        so that the first real request's latency is a warm one."""
        self.predict(Image.new("RGB", (self.cfg.data.image_size,) * 2), top_k=1)
        return self

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL RGB -> [1, C, S, S] network input."""
        if in_chans_of(self.cfg.data) != 3:
            raise InputError(f"this model takes {in_chans_of(self.cfg.data)} input channels (RGB + "
                             "extra bands); a photo only has RGB. Pick an RGB model")
        return self.transform(to_tensor(image))[None].to(self.device)

    @torch.no_grad()
    def cell_probs(self, x: torch.Tensor) -> torch.Tensor:
        """P(cell) [B, K] for network inputs [B, C, S, S]."""
        return self.model.cell_probs(x)

    @torch.no_grad()
    def features_and_probs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled backbone features [B, D], P(cell) [B, K]) for inputs [B, C, S, S]: one
        backbone pass for both."""
        feats = self.model.features(x)
        return feats, self.model.cell_probs(feats)

    def cell_places(self) -> list[str]:
        """[K] nearest GeoNames place to every cell's centroid (cached)."""
        if self._cell_places is None:
            places = reverse_geocode(self.centroids[:, 0], self.centroids[:, 1])
            self._cell_places = places["place"].astype(str).tolist()
        return self._cell_places

    def embed_files(self, paths: list[str], batch_size: int = 64) -> np.ndarray:
        """[N, D] backbone features of N image files, read as ``predict`` reads them."""
        out = []
        for start in range(0, len(paths), batch_size):  # batches bound the memory
            x = torch.cat([self.preprocess(self.load(p)) for p in paths[start:start + batch_size]])
            out.append(self.features_and_probs(x)[0].float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.num_features), np.float32)

    def load(self, source: str | Path | bytes | BinaryIO | Image.Image, name: str | None = None) -> Image.Image:
        """Faithful 8-bit RGB of any source (every PIL mode, EXIF orientation; PIL images too)."""
        size = max(self.cfg.data.image_size, self.cfg.data.resize)
        return load_image(source, target_size=size, name=name)

    def predict(self, source: str | Path | bytes | BinaryIO | Image.Image, top_k: int = 5,
                location: str | None = None, name: str | None = None) -> Prediction:
        """Top-k cells, predicted point and place for one image (path, bytes, file or PIL).

        location: "top1" or "weighted" (default: the model's eval.location).
        Raises InputError (one line) for a non-image, corrupt or truncated file.
        """
        if not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be a positive integer, got {top_k!r}")
        start = time.perf_counter()
        x = self.preprocess(self.load(source, name))
        feats, all_probs = self.features_and_probs(x)
        probs = all_probs[0]
        k = min(top_k, self.n_cells)
        top_prob, top_idx = probs.topk(k)
        idx, p = top_idx.cpu().numpy(), top_prob.cpu().double().numpy()
        mode = location or self.cfg.eval.location
        lat, lon = predicted_location(idx[None], p[None], self.centroids, mode, self.cfg.eval.weighted_k)
        # one lookup for the predicted point and every top cell's centroid
        places = reverse_geocode(np.r_[lat, self.centroids[idx, 0]], np.r_[lon, self.centroids[idx, 1]])
        place = places.iloc[0]
        latency = (time.perf_counter() - start) * 1000.0
        return Prediction(
            cells=idx.tolist(), tokens=self.tokens[idx].tolist(), probs=p.tolist(),
            cell_lat=self.centroids[idx, 0].tolist(), cell_lon=self.centroids[idx, 1].tolist(),
            cell_places=places["place"].iloc[1:].astype(str).tolist(),
            lat=float(lat[0]), lon=float(lon[0]), place=str(place["place"]), country=str(place["country"]),
            place_km=float(place["place_km"]), latency_ms=latency,
            polygons=cell_polygons(self.partition.ids[idx]).tolist(),
            all_probs=probs.cpu().double().numpy(), features=feats[0].float().cpu().numpy())


def resolve_checkpoint(source: str | Path | None, runs_root: str | Path | None = None) -> Path:
    """The checkpoint file behind a file path, a folder (bundle or run) or a run id."""
    if source is None or str(source) == "":
        source = DEMO_CHECKPOINT
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        for folder in (path, path / "checkpoints"):
            for name in CHECKPOINT_NAMES:
                if (folder / name).is_file():
                    return folder / name
        raise NotFoundError(f"no checkpoint ({', '.join(CHECKPOINT_NAMES)}) in {path}; train longer "
                            "or pass a .pt file")
    if "/" not in str(source) and not path.suffix:  # looks like a run id
        from workbench.runs import RunStore

        try:
            run = RunStore(runs_root).get(str(source))
        except WorkbenchError:
            run = None
        if run is not None:
            return resolve_checkpoint(run.path)
    raise NotFoundError(f"checkpoint not found: {source} (give a .pt file, a checkpoint folder, a run "
                        "folder or a run id)")


def load_geolocator(source: str | Path | None = None, device: str | torch.device = "cpu",
                    runs_root: str | Path | None = None) -> tuple[GeoClassifier, GeolocatorConfig, Partition]:
    """(model in eval mode, config, partition) from a checkpoint; no data or hub needed."""
    model, cfg, partition, _ = _load(source, device, runs_root)
    return model, cfg, partition


def _load(source, device, runs_root):
    from dataclasses import replace

    from workbench.experiments import build_config
    from workbench.train.checkpoint import load_checkpoint

    path = resolve_checkpoint(source, runs_root)
    payload = load_checkpoint(path, map_location="cpu")
    cfg_dict = payload.get("config") or {}
    if cfg_dict.get("kind") != "geolocator" or "model" not in payload:
        raise InputError(f"{path} is not a geolocator checkpoint (kind: {cfg_dict.get('kind')!r})")
    cfg = build_config(cfg_dict)
    state = payload["model"]
    partition = partition_from_labels(state, meta=vars(cfg.labels))
    labels = LabelSpace(partition, cfg.labels.mode, cfg.labels.smoothing_km)
    offline_backbone = payload.get("backbone_weights") == "offline"
    # weights=none: the checkpoint supplies every parameter, nothing is read from a package,
    # a file or the hub; a slim bundle (export.slim_state) names its frozen backbone instead,
    # which comes from the offline package
    model, backbone = build_classifier(cfg.model if offline_backbone else replace(cfg.model, weights="none"),
                                       labels, in_chans_of(cfg.data))
    try:
        result = model.load_state_dict(state, strict=not offline_backbone)
    except RuntimeError as exc:
        raise WorkbenchError(f"{path} does not match its config: {str(exc).splitlines()[0]}") from None
    if offline_backbone and (result.unexpected_keys or any(not k.startswith("backbone.") for k in result.missing_keys)):
        raise WorkbenchError(f"{path} does not match its config: missing {result.missing_keys[:3]}, "
                             f"unexpected {result.unexpected_keys[:3]}")
    model.source = str(path)
    return model.to(device).eval(), cfg, partition, backbone


def load_predictor(source: str | Path | None = None, device: str | torch.device = "cpu",
                   runs_root: str | Path | None = None) -> GeoPredictor:
    """A ``GeoPredictor`` for a checkpoint file / folder / run id (default: the demo)."""
    model, cfg, partition, backbone = _load(source, device, runs_root)
    d = cfg.data
    mean, std = normalization(d.normalize, backbone.mean, backbone.std, in_chans_of(d))
    transform = ImageTransform(d.image_size, mean, std, crop=d.crop, resize=d.resize, train=False)
    return GeoPredictor(model, cfg, partition, transform, model.source)
