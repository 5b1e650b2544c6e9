"""Adaptive S2 partitions: against a naive reference, invariants, files, oracle scores."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
import s2sphere

from workbench.errors import ConfigError, InputError, NotFoundError
from workbench.geo import (
    Partition,
    build_partition,
    cell_id_to_token,
    cell_parent,
    cell_range,
    error_summary,
    haversine_km,
    oracle_table,
    s2_cell_ids,
)

T_MIN, T_MAX, MIN_LEVEL, MAX_LEVEL = 5, 60, 2, 14


def _synthetic_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Photo-like coordinates: 70 % in 25 'cities' of various spreads, 25 % uniform on the
    sphere, 5 % (one spot) at identical coordinates; lat, lon [n] degrees."""
    rng = np.random.default_rng(seed)
    n_city, n_dup = int(0.7 * n), int(0.05 * n)
    n_uniform = n - n_city - n_dup
    c_lat = rng.uniform(-60, 70, 25)
    c_lon = rng.uniform(-180, 180, 25)
    which = rng.integers(0, 25, n_city)
    spread = 10 ** rng.uniform(-2, 0.5, 25)[which]  # 0.01 .. 3 degrees
    lat = np.clip(c_lat[which] + rng.normal(0, 1, n_city) * spread, -90, 90)
    lon = (c_lon[which] + rng.normal(0, 1, n_city) * spread + 180) % 360 - 180
    u_lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n_uniform)))
    u_lon = rng.uniform(-180, 180, n_uniform)
    d_lat, d_lon = np.full(n_dup, 41.8902), np.full(n_dup, 12.4922)
    return np.concatenate([lat, u_lat, d_lat]), np.concatenate([lon, u_lon, d_lon])


def _naive_partition(lat, lon, t_min, t_max, min_level, max_level) -> dict[str, int]:
    """GeoEstimation-style loop with s2sphere and dicts: token -> count of kept cells."""
    leaves = [s2sphere.CellId.from_lat_lng(s2sphere.LatLng.from_degrees(a, b))
              for a, b in zip(lat.tolist(), lon.tolist())]
    active, kept = list(range(len(leaves))), {}
    for level in range(min_level, max_level + 1):
        groups: dict[str, list[int]] = defaultdict(list)
        for i in active:
            groups[leaves[i].parent(level).to_token()].append(i)
        active = []
        for token, members in groups.items():
            if len(members) > t_max and level < max_level:
                active += members
            elif len(members) >= t_min:
                kept[token] = len(members)
    return kept


@pytest.fixture(scope="module")
def data():
    lat, lon = _synthetic_points(4000, seed=11)
    return lat, lon, build_partition(lat, lon, T_MIN, T_MAX, MIN_LEVEL, MAX_LEVEL)


def test_matches_naive_reference(data):
    lat, lon, part = data
    ref = _naive_partition(lat, lon, T_MIN, T_MAX, MIN_LEVEL, MAX_LEVEL)
    ours = dict(zip(part.cells["token"], part.cells["count"]))
    assert ours == ref
    assert 50 < len(part) < 400


def test_counts_within_bounds_and_add_up(data):
    lat, lon, part = data
    cells = part.cells
    assert (cells["count"] >= T_MIN).all()
    over = cells["count"] > T_MAX
    assert over.any() and (cells.loc[over, "level"] == MAX_LEVEL).all()  # the duplicated spot
    assert cells["level"].between(MIN_LEVEL, MAX_LEVEL).all()
    labels = part.assign(lat, lon)
    assert cells["count"].sum() == (labels >= 0).sum()
    np.testing.assert_array_equal(np.bincount(labels[labels >= 0], minlength=len(part)), cells["count"])
    assert part.n_points == lat.size and (labels < 0).any()  # sparse points were dropped


def test_cells_are_disjoint_and_sorted(data):
    _, _, part = data
    lo, hi = cell_range(part.ids)
    assert np.all(part.ids[1:] > part.ids[:-1])
    assert np.all(lo[1:] > hi[:-1])  # no cell contains another or overlaps it


def test_assign_agrees_with_cell_membership(data):
    lat, lon, part = data
    labels = part.assign(lat, lon)
    inside = labels >= 0
    levels = part.cells["level"].to_numpy()[labels[inside]]
    # Each assigned point's id at its cell's level is that cell's id.
    for lv in np.unique(levels):
        sel = levels == lv
        np.testing.assert_array_equal(
            s2_cell_ids(lat[inside][sel], lon[inside][sel], int(lv)), part.ids[labels[inside][sel]])
    # No dropped point lies in any kept cell, at any level the partition uses.
    kept = set(part.ids.tolist())
    for lv in part.levels:
        assert not kept & set(s2_cell_ids(lat[~inside], lon[~inside], lv).tolist())
    # assign() is pointwise: the same points in another batch get the same classes.
    some = np.r_[np.flatnonzero(inside)[:3], np.flatnonzero(~inside)[:3]]
    assert part.assign(lat[some], lon[some]).tolist() == labels[some].tolist()
    assert labels[some].tolist()[3:] == [-1, -1, -1]


def test_max_level_caps_splitting():
    lat, lon = np.full(500, -33.8568), np.full(500, 151.2153)  # one spot, 500 photos
    part = build_partition(lat, lon, t_min=10, t_max=100, min_level=3, max_level=9)
    assert len(part) == 1 and part.cells["level"].iloc[0] == 9 and part.cells["count"].iloc[0] == 500
    assert part.cells["lat"].iloc[0] == pytest.approx(-33.8568, abs=1e-9)


def test_centroids_are_spherical_means(data):
    lat, lon, part = data
    labels = part.assign(lat, lon)
    la, lo = np.radians(lat), np.radians(lon)
    xyz = pd.DataFrame({"x": np.cos(la) * np.cos(lo), "y": np.cos(la) * np.sin(lo), "z": np.sin(la),
                        "k": labels})
    mean = xyz[xyz.k >= 0].groupby("k")[["x", "y", "z"]].mean()
    exp_lat = np.degrees(np.arctan2(mean.z, np.hypot(mean.x, mean.y)))
    exp_lon = np.degrees(np.arctan2(mean.y, mean.x))
    np.testing.assert_allclose(part.cells["lat"], exp_lat, atol=1e-9)
    np.testing.assert_allclose(part.cells["lon"], exp_lon, atol=1e-9)


def test_centroid_across_the_antimeridian():
    lat = np.array([10.0, 10.0, -10.0, -10.0])
    lon = np.array([179.0, -179.0, 179.0, -179.0])
    part = build_partition(lat, lon, t_min=1, t_max=10, min_level=0, max_level=0)
    assert len(part) == 1
    assert part.cells["lat"].iloc[0] == pytest.approx(0.0, abs=1e-9)
    assert abs(part.cells["lon"].iloc[0]) == pytest.approx(180.0, abs=1e-9)  # not 0 (naive mean)


def test_hierarchy_columns_nest(data):
    _, _, part = data
    cells, levels = part.cells, part.levels
    for lv in levels[:-1]:
        # Cells finer than lv carry their ancestor's token, the others their own.
        finer = cells["level"] > lv
        np.testing.assert_array_equal(
            cells.loc[finer, f"parent_l{lv}"].to_numpy(dtype=str),
            cell_id_to_token(cell_parent(part.ids[finer.to_numpy()], lv)))
        np.testing.assert_array_equal(cells.loc[~finer, f"parent_l{lv}"].to_numpy(dtype=str),
                                      cells.loc[~finer, "token"].to_numpy(dtype=str))
    h = part.hierarchy()
    assert list(h.columns) == [f"l{lv}" for lv in levels]
    np.testing.assert_array_equal(h[f"l{levels[-1]}"], np.arange(len(part)))  # finest = classes
    for coarse, fine in zip(h.columns[:-1], h.columns[1:]):
        # Each fine group lies in exactly one coarse group, and coarse groups are fewer.
        assert (h.groupby(fine)[coarse].nunique() == 1).all()
        assert h[coarse].nunique() <= h[fine].nunique()


def test_nest_in_a_coarser_partition(data):
    lat, lon, fine = data
    coarse = build_partition(lat, lon, T_MIN, 4 * T_MAX, MIN_LEVEL, MAX_LEVEL)
    assert len(coarse) < len(fine)
    parent = fine.nest_in(coarse)
    assert (parent >= 0).all()  # same t_min: every fine cell lies in a kept coarse cell
    f_lo, f_hi = cell_range(fine.ids)
    c_lo, c_hi = cell_range(coarse.ids[parent])
    assert np.all((c_lo <= f_lo) & (f_hi <= c_hi))
    labels = fine.assign(lat, lon)
    ok = labels >= 0
    np.testing.assert_array_equal(coarse.assign(lat[ok], lon[ok]), parent[labels[ok]])
    assert (coarse.nest_in(fine) == -1).any()  # the reverse does not nest


def test_save_load_round_trip(data, tmp_path):
    _, _, part = data
    path = part.save(tmp_path / "sub" / "partition.csv")
    assert path.read_text().startswith("# workbench S2 partition t_min=5 t_max=60 min_level=2 max_level=14 n_points=4000\n")
    loaded = Partition.load(path)
    assert (loaded.t_min, loaded.t_max, loaded.min_level, loaded.max_level, loaded.n_points) == (5, 60, 2, 14, 4000)
    assert list(loaded.cells.columns) == list(part.cells.columns)
    np.testing.assert_array_equal(loaded.ids, part.ids)
    for col in ("level", "count"):
        np.testing.assert_array_equal(loaded.cells[col], part.cells[col])
    for col in ("lat", "lon", "center_lat", "center_lon"):
        np.testing.assert_allclose(loaded.cells[col], part.cells[col], atol=1e-9)
    parents = [c for c in part.cells.columns if c.startswith("parent_l")]
    assert parents and (loaded.cells[parents].to_numpy(dtype=str) == part.cells[parents].to_numpy(dtype=str)).all()
    pts = (np.array([41.8902, 0.0]), np.array([12.4922, 0.0]))
    np.testing.assert_array_equal(loaded.assign(*pts), part.assign(*pts))
    np.testing.assert_array_equal(loaded.polygons(), part.polygons())


def test_load_errors(tmp_path):
    with pytest.raises(NotFoundError, match="not found"):
        Partition.load(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("token,level\n01,2\n")
    with pytest.raises(InputError, match="not a partition file"):
        Partition.load(bad)


def test_oracle_table_against_brute_force(data):
    lat, lon, part = data
    rng = np.random.default_rng(5)
    # Held-out points: some near the data, some anywhere (many outside every kept cell).
    q_lat = np.concatenate([lat[:300] + rng.normal(0, 0.01, 300), np.degrees(np.arcsin(rng.uniform(-1, 1, 200)))])
    q_lon = np.concatenate([lon[:300], rng.uniform(-180, 180, 200)])
    q_lat = np.clip(q_lat, -90, 90)
    table = oracle_table(part, q_lat, q_lon)
    c_lat, c_lon = part.centroids()
    labels = part.assign(q_lat, q_lon)
    d_all = haversine_km(q_lat[:, None], q_lon[:, None], c_lat[None, :], c_lon[None, :])  # [N, K]
    pred = np.where(labels >= 0, labels, d_all.argmin(axis=1))  # own cell, else nearest centroid
    d = d_all[np.arange(len(q_lat)), pred]
    expected = error_summary(d)
    for key, value in expected.items():
        assert table[key] == pytest.approx(value, rel=1e-9), key
    assert table["n_outside"] == int((labels < 0).sum()) > 0
    assert table["frac_outside"] == pytest.approx((labels < 0).mean())
    assert table["n_cells"] == len(part)
    assert table["inside"]["n"] == int((labels >= 0).sum())
    assert table["inside"]["acc@2500km"] == 1.0


def test_empty_partition_and_parameter_errors():
    lat, lon = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    empty = build_partition(lat, lon, t_min=5, t_max=10)
    assert len(empty) == 0 and (empty.assign(lat, lon) == -1).all()
    with pytest.raises(InputError, match="no cells"):
        oracle_table(empty, lat, lon)
    with pytest.raises(ConfigError, match="t_min <= t_max"):
        build_partition(lat, lon, t_min=20, t_max=10)
    with pytest.raises(ConfigError, match="max_level"):
        build_partition(lat, lon, min_level=5, max_level=31)
    with pytest.raises(ConfigError, match="integer"):
        build_partition(lat, lon, t_min=2.5)
    with pytest.raises(InputError, match="row 1: lon = 200.0"):
        build_partition(lat, np.array([0.0, 200.0]))
    with pytest.raises(InputError, match="at least one"):
        build_partition(np.zeros(0), np.zeros(0))
