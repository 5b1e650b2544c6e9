"""Nearest GeoNames place, offline and on the sphere (workbench.geo.places)."""
import numpy as np

from workbench.geo.places import nearest_places


def test_known_places():
    lat = np.array([48.8566, -33.9249, 35.6762, 64.1466])
    lon = np.array([2.3522, 18.4241, 139.6503, -21.9426])
    table = nearest_places(lat, lon)
    assert list(table.columns) == ["place", "city", "admin1", "country", "place_km"]
    assert table["country"].tolist() == ["FR", "ZA", "JP", "IS"]
    assert (table["place_km"] < 15).all()


def test_the_search_is_on_the_sphere_across_the_antimeridian():
    # just east of the antimeridian in Fiji: the nearest place is Fijian, wherever its longitude sign
    table = nearest_places(np.array([-16.8]), np.array([179.9]))
    assert table["country"].iloc[0] == "FJ" and table["place_km"].iloc[0] < 150


def test_vectorised_over_many_points():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-60, 70, 5000), rng.uniform(-180, 180, 5000)
    table = nearest_places(lat, lon)
    assert len(table) == 5000 and table["place"].str.len().min() > 0 and (table["place_km"] >= 0).all()
