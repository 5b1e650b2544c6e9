"""S2 cells: ids, tokens, hierarchy and geometry against s2sphere (the reference)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import s2sphere
import torch

from workbench.errors import InputError
from workbench.geo import (
    cell_center_latlon,
    cell_children,
    cell_id_to_token,
    cell_level,
    cell_parent,
    cell_polygons,
    cell_range,
    s2_cell_ids,
    token_to_cell_id,
)

LEVELS = [0, 1, 5, 10, 13, 20, 30]
CORNER_LAT = math.degrees(math.atan(1 / math.sqrt(2)))  # 35.26...: |x| = |y| = |z|


def _special_points() -> tuple[np.ndarray, np.ndarray]:
    """Poles, the antimeridian, cube face edges and corners, and a coarse grid."""
    pts: list[tuple[float, float]] = []
    for lon in np.linspace(-180, 180, 73):  # poles at many longitudes
        pts += [(90.0, lon), (-90.0, lon)]
    for lat in np.linspace(-90, 90, 181):  # antimeridian, both signs, and the meridian
        pts += [(lat, 180.0), (lat, -180.0), (lat, 0.0)]
    for lon in (45.0, -45.0, 135.0, -135.0):  # |x| = |y| edges between equatorial faces
        pts += [(lat, lon) for lat in np.linspace(-89.5, 89.5, 359)]
    for lon in np.linspace(-180, 180, 721):  # |x| = |z| and |y| = |z| edges to polar faces
        lon_r = math.radians(lon)
        for comp in (abs(math.cos(lon_r)), abs(math.sin(lon_r))):
            lat = math.degrees(math.atan(comp))
            pts += [(lat, lon), (-lat, lon)]
    for sign in (1.0, -1.0):  # cube corners, exactly and one ulp either side
        for lon in (45.0, -45.0, 135.0, -135.0):
            for lat in (sign * CORNER_LAT, np.nextafter(sign * CORNER_LAT, 90), np.nextafter(sign * CORNER_LAT, -90)):
                pts += [(lat, lon), (lat, np.nextafter(lon, 180)), (lat, np.nextafter(lon, -180))]
    grid_lat, grid_lon = np.meshgrid(np.arange(-90, 90.1, 2.5), np.arange(-180, 180.1, 2.5))
    pts += list(zip(grid_lat.ravel(), grid_lon.ravel()))
    arr = np.array(pts, dtype=np.float64)
    return arr[:, 0], arr[:, 1]


@pytest.fixture(scope="module")
def points_and_reference():
    """100k uniform points + ~14k special ones, and s2sphere's ids at every test level."""
    rng = np.random.default_rng(2024)
    n = 100_000
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lon = rng.uniform(-180, 180, n)
    s_lat, s_lon = _special_points()
    lat, lon = np.concatenate([lat, s_lat]), np.concatenate([lon, s_lon])
    leaves = [s2sphere.CellId.from_lat_lng(s2sphere.LatLng.from_degrees(a, b))
              for a, b in zip(lat.tolist(), lon.tolist())]
    ref = {lv: np.array([c.parent(lv).id() for c in leaves], dtype=np.uint64) for lv in LEVELS}
    return lat, lon, ref, len(s_lat)


@pytest.mark.parametrize("level", LEVELS)
def test_ids_equal_s2sphere(points_and_reference, level):
    lat, lon, ref, n_special = points_and_reference
    ours = s2_cell_ids(lat, lon, level)
    assert ours.dtype == np.uint64
    mismatch = np.flatnonzero(ours != ref[level])
    assert mismatch.size == 0, (
        f"{mismatch.size} mismatches, first at lat={lat[mismatch[0]]!r} lon={lon[mismatch[0]]!r}: "
        f"{ours[mismatch[0]]} vs {ref[level][mismatch[0]]}"
    )
    assert n_special > 10_000 and lat.size > 110_000


def test_special_points_cover_every_face(points_and_reference):
    lat, lon, ref, n_special = points_and_reference
    faces = s2_cell_ids(lat[-n_special:], lon[-n_special:], 0) >> np.uint64(61)
    assert set(faces.tolist()) == {0, 1, 2, 3, 4, 5}


def test_shapes_and_input_kinds():
    lat = np.array([[10.0, 20.0], [-30.0, 40.0]])
    lon = np.array([[100.0, -120.0], [5.0, 179.0]])
    ids = s2_cell_ids(lat, lon, 12)
    assert ids.shape == (2, 2)
    np.testing.assert_array_equal(s2_cell_ids(lat.ravel().tolist(), lon.ravel().tolist(), 12), ids.ravel())
    np.testing.assert_array_equal(s2_cell_ids(torch.tensor(lat), torch.tensor(lon), 12), ids)
    scalar = s2_cell_ids(48.8566, 2.3522, 30)
    assert scalar.shape == () and int(scalar) == s2sphere.CellId.from_lat_lng(
        s2sphere.LatLng.from_degrees(48.8566, 2.3522)).id()
    assert s2_cell_ids(np.zeros(0), np.zeros(0), 5).shape == (0,)


def test_bad_input_is_named():
    with pytest.raises(InputError, match=r"row 2: lat = 91.0"):
        s2_cell_ids([0.0, 1.0, 91.0], [0.0, 0.0, 0.0], 10)
    with pytest.raises(InputError, match="level must be in 0..30"):
        s2_cell_ids([0.0], [0.0], 31)
    with pytest.raises(InputError, match="integer"):
        s2_cell_ids([0.0], [0.0], 2.5)


@pytest.fixture(scope="module")
def random_cells():
    rng = np.random.default_rng(7)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 2000)))
    lon = rng.uniform(-180, 180, 2000)
    return lat, lon


@pytest.mark.parametrize("level", [0, 3, 13, 30])
def test_tokens_match_s2sphere_and_round_trip(random_cells, level):
    ids = s2_cell_ids(*random_cells, level)
    tokens = cell_id_to_token(ids)
    assert tokens.tolist() == [s2sphere.CellId(int(i)).to_token() for i in ids]
    np.testing.assert_array_equal(token_to_cell_id(tokens), ids)
    np.testing.assert_array_equal(token_to_cell_id(np.char.upper(tokens)), ids)
    np.testing.assert_array_equal(token_to_cell_id(tokens.tolist()), ids)  # plain list


def test_token_scalars_and_errors():
    cell = s2sphere.CellId.from_lat_lng(s2sphere.LatLng.from_degrees(48.8566, 2.3522)).parent(10)
    assert cell_id_to_token(np.uint64(cell.id())) == cell.to_token()
    assert token_to_cell_id(cell.to_token()) == cell.id()
    assert cell_id_to_token(0) == "X" and token_to_cell_id("X") == 0
    with pytest.raises(InputError, match=r"row 1: 'zz'"):
        token_to_cell_id(["47a1", "zz"])
    with pytest.raises(InputError, match="row 0"):
        token_to_cell_id(["0123456789abcdef0"])  # 17 characters
    with pytest.raises(InputError, match="row 0"):
        token_to_cell_id([""])


def test_levels_match_s2sphere_and_invalid_ids_are_named(random_cells):
    for level in (0, 7, 30):
        ids = s2_cell_ids(*random_cells, level)
        assert (cell_level(ids) == level).all()
    mixed = [s2_cell_ids(10.0, 20.0, lv) for lv in range(31)]
    assert cell_level(mixed).tolist() == [s2sphere.CellId(int(i)).level() for i in mixed]
    with pytest.raises(InputError, match="row 1"):
        cell_level([int(mixed[3]), 2])  # lowest set bit at an odd position
    with pytest.raises(InputError, match="row 0"):
        cell_level([0])
    with pytest.raises(InputError, match="row 0"):
        cell_level([7 << 61 | 1])  # face 7 does not exist


def test_parents_and_children_nest(random_cells):
    lat, lon = random_cells
    leaves = s2_cell_ids(lat, lon, 30)
    for level in (0, 4, 11, 29):
        np.testing.assert_array_equal(cell_parent(leaves, level), s2_cell_ids(lat, lon, level))
    ids = s2_cell_ids(lat[:300], lon[:300], 9)
    children = cell_children(ids)
    assert children.shape == (300, 4)
    expected = [[c.id() for c in s2sphere.CellId(int(i)).children()] for i in ids]
    np.testing.assert_array_equal(children, np.array(expected, dtype=np.uint64))
    assert (cell_level(children) == 10).all()
    np.testing.assert_array_equal(cell_parent(children, 9), np.repeat(ids[:, None], 4, axis=1))
    # The four children tile the parent's leaf range with no gap and no overlap.
    lo, hi = cell_range(ids)
    c_lo, c_hi = cell_range(children)
    np.testing.assert_array_equal(c_lo[:, 0], lo)
    np.testing.assert_array_equal(c_hi[:, 3], hi)
    np.testing.assert_array_equal(c_lo[:, 1:], c_hi[:, :-1] + np.uint64(2))
    # Every leaf is inside its level-9 ancestor's range.
    assert ((leaves[:300] >= lo) & (leaves[:300] <= hi)).all()
    # A cell is its own parent at its level; finer "parents" and leaf children are errors.
    np.testing.assert_array_equal(cell_parent(ids, 9), ids)
    with pytest.raises(InputError, match="finer than"):
        cell_parent(ids, 10)
    with pytest.raises(InputError, match="leaf"):
        cell_children(leaves[:2])


@pytest.mark.parametrize("level", [0, 2, 9, 17, 30])
def test_centres_inside_cells_and_match_s2sphere(random_cells, level):
    ids = s2_cell_ids(*random_cells, level)
    c_lat, c_lon = cell_center_latlon(ids)
    np.testing.assert_array_equal(s2_cell_ids(c_lat, c_lon, level), ids)
    ref = [s2sphere.CellId(int(i)).to_lat_lng() for i in ids[:500]]
    np.testing.assert_allclose(c_lat[:500], [p.lat().degrees for p in ref], rtol=0, atol=1e-12)
    np.testing.assert_allclose(c_lon[:500], [p.lng().degrees for p in ref], rtol=0, atol=1e-12)


@pytest.mark.parametrize("level", [0, 3, 10, 20])
def test_polygons_match_s2sphere_vertices(random_cells, level):
    ids = np.unique(s2_cell_ids(*random_cells, level))[:500]
    poly = cell_polygons(ids)
    assert poly.shape == (len(ids), 4, 2)
    ref = np.array([[(lambda p: (p.lat().degrees, p.lng().degrees))(
        s2sphere.LatLng.from_point(s2sphere.Cell(s2sphere.CellId(int(i))).get_vertex(k)))
        for k in range(4)] for i in ids])
    diff = np.abs(poly - ref)
    diff[..., 1] = np.minimum(diff[..., 1], 360 - diff[..., 1])  # lon +180 == -180
    assert diff.max() < 1e-11
    # A point just inside each corner (towards the centre) belongs to the cell.
    c_lat, c_lon = cell_center_latlon(ids)
    v = _xyz(poly[..., 0], poly[..., 1])
    c = _xyz(c_lat, c_lon)[:, None, :]
    inner = v + 1e-6 * (c - v)
    i_lat = np.degrees(np.arcsin(inner[..., 2] / np.linalg.norm(inner, axis=-1)))
    i_lon = np.degrees(np.arctan2(inner[..., 1], inner[..., 0]))
    np.testing.assert_array_equal(s2_cell_ids(i_lat, i_lon, level), np.repeat(ids[:, None], 4, 1))


def _xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)
