"""Geolocation metrics on arrays of errors in km (numpy arrays or torch tensors).

Accuracy at t km counts ``d <= t`` (a prediction exactly t km away is a hit), as in
im2gps / PlaNet / GeoCLIP. The GeoGuessr score of one guess is 5000 * exp(-d / 1492.7)
(d in km), the approximation used by PIGEON; PIGEON rounds each guess to an integer.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from workbench.errors import InputError
from workbench.geo.validate import is_tensor, validate_distances

DEFAULT_THRESHOLDS_KM: tuple[float, ...] = (1, 25, 200, 750, 2500)  # street .. continent
GEOGUESSR_MAX_SCORE = 5000.0
GEOGUESSR_SCALE_KM = 1492.7


def accuracy_key(threshold_km: float) -> str:
    """'acc@25km' for 25, 'acc@0.5km' for 0.5: the metric name used in every table."""
    return f"acc@{threshold_km:g}km"


def accuracy_at_km(d_km: Any, thresholds: Sequence[float] = DEFAULT_THRESHOLDS_KM) -> dict[str, float]:
    """Fraction of errors within each threshold: {"acc@1km": 0.12, ...} (values in [0, 1]).

    d_km: errors in km, any shape (numpy or torch), finite and >= 0, at least one value.
    A distance equal to a threshold counts as within it (``d <= t``).
    """
    d = _checked_errors(d_km)
    thresholds = _checked_thresholds(thresholds)
    return {accuracy_key(t): float(np.count_nonzero(d <= t)) / d.size for t in thresholds}


def geoguessr_score(d_km: Any, rounded: bool = False) -> Any:
    """GeoGuessr score of each guess, 5000 * exp(-d / 1492.7), in [0, 5000].

    d_km: km, any shape. Returns the same kind and shape (numpy float64 array or tensor;
    the tensor path is differentiable unless ``rounded``). ``rounded=True`` rounds each
    guess to the nearest integer like PIGEON's evaluation. numpy input is validated
    (InputError names a NaN / negative row); tensors are not, to avoid a device sync
    inside training steps.
    """
    if is_tensor(d_km):
        import torch

        d = d_km if d_km.is_floating_point() else d_km.to(torch.get_default_dtype())
        score = GEOGUESSR_MAX_SCORE * torch.exp(-d / GEOGUESSR_SCALE_KM)
        return torch.round(score) if rounded else score
    d = validate_distances(d_km)
    score = GEOGUESSR_MAX_SCORE * np.exp(-d / GEOGUESSR_SCALE_KM)
    return np.round(score) if rounded else score


def mean_geoguessr_score(d_km: Any, rounded: bool = False) -> float:
    """Mean GeoGuessr score over all guesses (the number papers report), in [0, 5000]."""
    d = _checked_errors(d_km)
    return float(np.mean(geoguessr_score(d, rounded=rounded)))


def error_summary(d_km: Any, thresholds: Sequence[float] = DEFAULT_THRESHOLDS_KM,
                  rounded_score: bool = False) -> dict[str, float]:
    """All headline numbers for a set of errors (km) as a JSON-ready dict.

    Keys: "n", "mean_km", "median_km", one "acc@<t>km" per threshold (fractions), and
    "geoguessr" (mean score per guess).
    """
    d = _checked_errors(d_km)
    summary: dict[str, float] = {
        "n": int(d.size),
        "mean_km": float(np.mean(d)),
        "median_km": float(np.median(d)),
    }
    summary.update(accuracy_at_km(d, thresholds))
    summary["geoguessr"] = float(np.mean(geoguessr_score(d, rounded=rounded_score)))
    return summary


def _checked_errors(d_km: Any) -> np.ndarray:
    d = validate_distances(d_km).ravel()
    if d.size == 0:
        raise InputError("no distances given: metrics need at least one prediction")
    return d


def _checked_thresholds(thresholds: Sequence[float]) -> list[float]:
    try:
        values = [float(t) for t in thresholds]
    except (TypeError, ValueError):
        raise InputError(f"thresholds must be numbers in km, got {thresholds!r}") from None
    if not values or any(not (math.isfinite(t) and t >= 0) for t in values):
        raise InputError(f"thresholds must be finite non-negative km values, got {thresholds!r}")
    return values
