"""How numbers read in the app, the same on every page.

- counts: exact, with thousands separators ("34,006"), never rounded;
- fractions in [0, 1] (accuracy, probability, progress): percent with one decimal ("60.1%");
- distances: km, thousands separators, no decimals past 10 km ("1,234 km", "3.4 km");
- coordinates: 4 decimals with the hemisphere ("48.1370° N, 11.5750° E");
- a missing value is an em dash, never "None" or "nan".
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

MISSING = "—"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def fmt_count(n: Any) -> str:
    return MISSING if _missing(n) else f"{int(round(float(n))):,}"


def fmt_pct(fraction: Any, digits: int = 1) -> str:
    """0.6013 -> '60.1%'."""
    return MISSING if _missing(fraction) else f"{100 * float(fraction):.{digits}f}%"


def fmt_km(km: Any) -> str:
    if _missing(km):
        return MISSING
    km = float(km)
    return f"{km:,.0f} km" if abs(km) >= 10 else f"{km:.1f} km"


def fmt_num(value: Any, digits: int = 3) -> str:
    """A plain metric (loss, cosine, GeoGuessr points): fixed decimals, thousands separators."""
    return MISSING if _missing(value) else f"{float(value):,.{digits}f}"


def fmt_latlon(lat: Any, lon: Any, digits: int = 4) -> str:
    if _missing(lat) or _missing(lon):
        return MISSING
    lat, lon = float(lat), float(lon)
    return (f"{abs(lat):.{digits}f}° {'N' if lat >= 0 else 'S'}, "
            f"{abs(lon):.{digits}f}° {'E' if lon >= 0 else 'W'}")


def fmt_frame(frame: Any, formats: Mapping[str, Callable[[Any], str]]) -> Any:
    """A copy of a pandas DataFrame for ``st.dataframe``: each column named in ``formats``
    mapped through its formatter (e.g. ``{"acc": fmt_pct, "n": fmt_count}``); in every other
    column a None / NaN cell becomes MISSING, so no table shows "None" or "nan". For the
    small tables a page shows (tens of rows), not for data."""
    out = frame.copy()
    for col in out.columns:
        fn = formats.get(col)
        out[col] = [fn(v) if fn else (MISSING if _blank(v) else v) for v in out[col]]
    return out


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
