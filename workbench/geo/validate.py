"""Input checks for coordinates and distances, plus numpy / torch plumbing.

Every geo function accepts numpy arrays (or anything ``np.asarray`` takes) and torch
tensors. ``torch`` is never imported here: an object can only be a tensor if the caller
already imported torch, so ``import workbench.geo`` stays fast.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from workbench.errors import InputError


def is_tensor(x: Any) -> bool:
    """True if ``x`` is a ``torch.Tensor`` (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """A numpy view / copy of ``x`` (tensors are detached and moved to the CPU).

    Raises InputError if ``x`` is not numeric (e.g. a column of strings).
    """
    if is_tensor(x):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InputError(f"expected numbers, got {_preview(x)} ({exc})") from None


def _preview(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _row(index: tuple[int, ...] | int) -> str:
    """'row 12' for 1-D data, 'index (3, 4)' for N-D data."""
    if isinstance(index, tuple):
        return f"row {index[0]}" if len(index) == 1 else f"index {index}"
    return f"row {index}"


def validate_latlon(lat: Any, lon: Any) -> tuple[Any, Any]:
    """Check coordinates in degrees; return them unchanged.

    lat, lon: arrays / tensors / scalars of the same shape, e.g. [N] degrees.
    Valid: lat in [-90, 90], lon in [-180, 180] (both ends included), no NaN.
    Raises InputError naming the first offending row, its value, the number of bad rows
    and the valid range.
    """
    lat_np, lon_np = to_numpy(lat), to_numpy(lon)
    if lat_np.shape != lon_np.shape:
        raise InputError(
            f"lat and lon must have the same shape, got {lat_np.shape} and {lon_np.shape}"
        )
    # Written as "not inside" so that NaN (which fails every comparison) is caught too.
    bad_lat = ~((lat_np >= -90.0) & (lat_np <= 90.0))
    bad_lon = ~((lon_np >= -180.0) & (lon_np <= 180.0))
    bad = bad_lat | bad_lon
    if bad.any():
        flat = int(np.flatnonzero(bad.ravel())[0])
        index = np.unravel_index(flat, bad.shape) if bad.ndim else ()
        if bad_lat[index]:
            name, value, valid = "lat", float(lat_np[index]), "[-90, 90]"
        else:
            name, value, valid = "lon", float(lon_np[index]), "[-180, 180]"
        problem = "is NaN" if np.isnan(value) else f"is outside {valid}"
        where = _row(tuple(int(i) for i in index)) if bad.ndim else "the value"
        raise InputError(
            f"invalid coordinate at {where}: {name} = {value!r} {problem} "
            f"({int(bad.sum())} bad row(s) in total; lat must be in [-90, 90] and lon in "
            f"[-180, 180] degrees; check for swapped lat/lon columns or missing values)"
        )
    return lat, lon


def validate_distances(d_km: Any) -> np.ndarray:
    """Check distances in km (finite, >= 0) and return them as a float64 numpy array."""
    d = to_numpy(d_km)
    bad = ~(d >= 0.0) | ~np.isfinite(d)
    if bad.any():
        flat = int(np.flatnonzero(bad.ravel())[0])
        index = tuple(int(i) for i in np.unravel_index(flat, bad.shape)) if bad.ndim else ()
        value = float(d[index])
        where = _row(index) if bad.ndim else "the value"
        raise InputError(
            f"invalid distance at {where}: {value!r} km (distances must be finite and >= 0; "
            f"{int(bad.sum())} bad value(s) in total)"
        )
    return d
