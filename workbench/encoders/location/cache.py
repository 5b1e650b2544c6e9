"""Encode coordinates with a location encoder, and cache frozen encoders' outputs on disk.

A fixed dataset (the 100K gallery, a training set) through a frozen encoder gives the same
features every time, so ``encode_cached`` stores them as ``<cache_dir>/<name>-<key>.npy``,
where ``key`` hashes the encoder's name, its config and weights, and the exact coordinates.
Change any of the three and the key changes; nothing is ever stale.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.encoders.location.base import LocationEncoder, create_location_encoder
from workbench.errors import InputError
from workbench.geo import validate_latlon
from workbench.io import atomic_path
from workbench.paths import REPO_ROOT
from workbench.runs import progress

DEFAULT_CACHE_DIR = REPO_ROOT / "data" / "cache" / "location_encoders"


def as_latlon_array(latlon: Any) -> np.ndarray:
    """Validate coordinates and return them as a C-contiguous float64 array [N, 2] degrees."""
    try:
        array = np.ascontiguousarray(latlon, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"expected (lat, lon) degrees as numbers, shape [N, 2] ({exc})") from None
    if array.ndim != 2 or array.shape[1] != 2:
        raise InputError(f"expected (lat, lon) degrees of shape [N, 2], got {array.shape}")
    validate_latlon(array[:, 0], array[:, 1])
    return array


@torch.no_grad()
def encode(encoder: LocationEncoder, latlon: Any, batch_size: int = 8192) -> np.ndarray:
    """Features of ``latlon`` [N, 2] degrees as float32 numpy [N, encoder.out_dim].

    Runs in batches on the encoder's device, without gradients.
    """
    array = as_latlon_array(latlon)
    device = next(iter(encoder.parameters()), torch.empty(0)).device
    out = np.empty((len(array), encoder.out_dim), dtype=np.float32)
    for start in range(0, len(array), batch_size):
        chunk = torch.as_tensor(array[start:start + batch_size], dtype=torch.float32,
                                device=device)
        out[start:start + len(chunk)] = encoder(chunk).float().cpu().numpy()
        progress.advance(start + len(chunk), len(array))  # a job's phase counters; else no-op
    return out


def encoder_fingerprint(encoder: LocationEncoder) -> str:
    """sha256 of the encoder's class, config and every tensor in its state dict."""
    h = hashlib.sha256(type(encoder).__qualname__.encode())
    h.update(json.dumps(getattr(encoder, "config", {}), sort_keys=True, default=str).encode())
    for name, tensor in encoder.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_key(name: str, encoder: LocationEncoder, latlon: np.ndarray) -> str:
    """Key for (encoder name, config + weights, coordinates [N, 2] float64)."""
    h = hashlib.sha256(name.encode())
    h.update(encoder_fingerprint(encoder).encode())
    h.update(str(latlon.shape).encode())
    h.update(latlon.tobytes())
    return h.hexdigest()[:24]


def encode_cached(
    encoder: str | LocationEncoder,
    latlon: Any,
    cache_dir: str | Path | None = None,
    batch_size: int = 8192,
    **builder_kwargs: Any,
) -> np.ndarray:
    """``encode`` with an on-disk cache: float32 [N, D] features of ``latlon`` [N, 2] degrees.

    ``encoder``: a registered name (built with ``builder_kwargs``) or a built encoder.
    ``cache_dir`` defaults to ``data/cache/location_encoders``. A hit loads the .npy and runs
    nothing; a miss encodes and writes the file atomically (temp file + rename).
    """
    if isinstance(encoder, str):
        name, model = encoder, create_location_encoder(encoder, **builder_kwargs)
    else:
        name, model = type(encoder).__name__, encoder
    array = as_latlon_array(latlon)
    directory = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    path = directory / f"{name}-{cache_key(name, model, array)}.npy"
    if path.is_file():
        return np.load(path)
    features = encode(model, array, batch_size=batch_size)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, features)
    return features
