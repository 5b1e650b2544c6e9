"""What the Location embeddings page asks of a SatCLIP model (``explore``), against naive
references: rankings against a brute-force argsort of cosine scores, distances against
``haversine_km``, the batched PCA of ``pca_grid`` against an SVD of the whole feature
matrix, and the probe tables against hand-made rows. Expectations come from the loaded
demo arrays, so a retrained demo bundle passes too."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from workbench.errors import InputError
from workbench.geo.distances import haversine_km
from workbench.lines.satclip import explore
from workbench.lines.satclip.config import PROBE_ENCODERS
from workbench.lines.satclip.probes import default_encoders
from workbench.runs.sources import Source

POINTS = [(35.7, 139.7), (-15.0, -60.0), (0.0, 0.0)]  # Tokyo, the Amazon, the Gulf of Guinea
BAD_POINTS = [(95.0, 0.0), (-90.5, 0.0), (0.0, 181.0), (float("nan"), 0.0), (0.0, float("inf"))]
BASELINE_DIMS = {"raw_latlon": 2, "geoclip": 512, "rff": 512, "sh10": 100, "sh40": 1600, "sh40_siren": 256}


@pytest.fixture(scope="module")
def demo() -> explore.LoadedSatClip:
    return explore.load_satclip(explore.DEMO)


@pytest.fixture(scope="module")
def two(demo) -> list[explore.LoadedSatClip]:
    """The demo and a copy under another label whose baseline rows differ (to see which are kept)."""
    probes = [r if r["encoder"] == "satclip" else {**r, "mean": r["mean"] - 0.5} for r in demo.probes]
    other = dataclasses.replace(demo, source=Source("other", "checkpoint", demo.source.path),
                                metrics={**demo.metrics, "probes": probes})
    return [demo, other]


def _location_embedding(ls: explore.LoadedSatClip, lat: float, lon: float) -> np.ndarray:
    """The model's location embedding of one point, straight from the model: (d,)."""
    with torch.no_grad():
        return ls.model.encode_location(torch.tensor([[lat, lon]], dtype=torch.float32))[0].numpy()


def _tile_latlon(ls: explore.LoadedSatClip) -> tuple[np.ndarray, np.ndarray]:
    return ls.tiles["lat"].to_numpy(np.float64), ls.tiles["lon"].to_numpy(np.float64)


# -- a clicked point ---------------------------------------------------------------------------


@pytest.mark.parametrize("lat, lon", POINTS)
def test_nearest_tiles_is_the_brute_force_cosine_ranking(demo, lat, lon):
    k = 7
    scores = demo.image @ _location_embedding(demo, lat, lon)  # (N,)
    want = np.argsort(-scores, kind="stable")[:k]
    got = explore.nearest_tiles(demo, lat, lon, k)
    assert got["tile_row"].tolist() == want.tolist()
    assert got["rank"].tolist() == list(range(1, k + 1))
    np.testing.assert_allclose(got["score"], scores[want], atol=1e-5)
    assert np.all(np.diff(got["score"]) <= 0)
    # each row is the metadata of its tile, with its distance from the clicked point
    tiles = demo.tiles.iloc[want].reset_index(drop=True)
    assert got["place"].tolist() == tiles["place"].tolist()
    np.testing.assert_array_equal(got["lat"], tiles["lat"])
    np.testing.assert_allclose(got["distance_km"], haversine_km(lat, lon, tiles["lat"].to_numpy(np.float64),
                                                                tiles["lon"].to_numpy(np.float64)), rtol=1e-9)


def test_nearest_locations_ranks_the_location_embeddings(demo):
    lat, lon = POINTS[0]
    scores = demo.location @ _location_embedding(demo, lat, lon)
    got = explore.nearest_locations(demo, lat, lon, 5)
    assert got["tile_row"].tolist() == np.argsort(-scores, kind="stable")[:5].tolist()
    np.testing.assert_allclose(got["score"], np.sort(scores)[::-1][:5], atol=1e-5)


def test_k_is_clipped_to_the_number_of_tiles(demo):
    n = len(demo.tiles)
    every = explore.nearest_tiles(demo, *POINTS[1], k=n + 50)
    assert len(every) == n and every["rank"].tolist() == list(range(1, n + 1))
    assert sorted(every["tile_row"]) == list(range(n))  # each tile once
    assert np.all(np.diff(every["score"]) <= 0)
    assert len(explore.nearest_tiles(demo, *POINTS[1], k=0)) == 1  # at least the best one


def test_a_held_out_tile_is_its_own_nearest_location(demo):
    # the tile whose location embedding is farthest from every other tile's: a clear winner
    sims = demo.location @ demo.location.T
    np.fill_diagonal(sims, -np.inf)
    i = int(np.argmin(sims.max(axis=1)))
    lat, lon = demo.tiles.loc[i, "lat"], demo.tiles.loc[i, "lon"]
    got = explore.nearest_locations(demo, lat, lon, 3)
    assert got.loc[0, "tile_row"] == i
    # its stored location embedding was computed at exactly this point
    assert got.loc[0, "score"] == pytest.approx(1.0, abs=1e-4)
    assert got.loc[0, "distance_km"] == pytest.approx(0.0, abs=1e-6)
    assert got.loc[1, "score"] < got.loc[0, "score"]


@pytest.mark.parametrize("lat, lon", BAD_POINTS)
@pytest.mark.parametrize("fn", [explore.nearest_tiles, explore.nearest_locations, explore.closest_tile_km])
def test_bad_points_raise_input_error(demo, fn, lat, lon):
    with pytest.raises(InputError, match="lat in"):
        fn(demo, lat, lon)


@pytest.mark.parametrize("lat, lon", POINTS)
def test_closest_tile_km_is_the_minimum_haversine(demo, lat, lon):
    tile_lat, tile_lon = _tile_latlon(demo)
    want = float(np.min(haversine_km(lat, lon, tile_lat, tile_lon)))
    assert explore.closest_tile_km(demo, lat, lon) == pytest.approx(want, rel=1e-12)
    every = explore.nearest_tiles(demo, lat, lon, k=len(demo.tiles))
    assert explore.closest_tile_km(demo, lat, lon) == pytest.approx(every["distance_km"].min(), rel=1e-12)


def test_closest_tile_km_is_zero_on_a_tile(demo):
    tile_lat, tile_lon = _tile_latlon(demo)
    assert explore.closest_tile_km(demo, tile_lat[3], tile_lon[3]) == pytest.approx(0.0, abs=1e-6)


# -- the lat/lon grid and its principal components ----------------------------------------------


@pytest.mark.parametrize("step, max_lat, n_lat, n_lon", [(2.0, 85.0, 85, 180), (0.25, 85.0, 680, 1440),
                                                         (10.0, 85.0, 17, 36), (3.0, 60.0, 40, 120)])
def test_grid_points_are_evenly_spaced_cell_centres(step, max_lat, n_lat, n_lon):
    lat, lon = explore.grid_points(step, max_lat)
    assert lat.shape == (n_lat,) and lon.shape == (n_lon,)
    dlat, dlon = 2 * max_lat / n_lat, 360 / n_lon
    np.testing.assert_allclose(np.diff(lat), -dlat)  # north first
    np.testing.assert_allclose(np.diff(lon), dlon)
    # the cells tile [-max_lat, max_lat] x [-180, 180] exactly: centres half a cell inside
    assert lat[0] + dlat / 2 == pytest.approx(max_lat) and lat[-1] - dlat / 2 == pytest.approx(-max_lat)
    assert lon[0] - dlon / 2 == pytest.approx(-180) and lon[-1] + dlon / 2 == pytest.approx(180)
    assert np.all(np.abs(lat) < max_lat) and np.all(np.abs(lon) < 180)


@pytest.mark.parametrize("step", [0.2, 10.5, 0.0, -2.0, float("nan")])
def test_grid_points_rejects_a_bad_step(step):
    with pytest.raises(InputError, match="grid step"):
        explore.grid_points(step)


_Q = np.linalg.qr(np.random.default_rng(0).standard_normal((16, 4)))[0]  # (16, 4) orthonormal columns


def smooth_encoder(latlon: np.ndarray) -> np.ndarray:
    """latlon [N, 2] -> [N, 16]: four smooth functions of the point, mixed by an orthonormal
    matrix. On a product lat/lon grid the four are uncorrelated and their variances differ, so
    the first principal component is sin(lat) (one colour per row) and the components are unique."""
    phi, lam = np.radians(latlon[:, 0]), np.radians(latlon[:, 1])
    basis = np.stack([3 * np.sin(phi), 2 * np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam),
                      0.3 * np.cos(phi) * np.sin(2 * lam)], axis=1)  # (N, 4)
    return (basis @ _Q.T).astype(np.float32)


def _same_up_to_sign(a: np.ndarray, b: np.ndarray) -> bool:
    """Every channel of two uint8 pictures [H, W, 3] equal within 1, or one is the other's negative."""
    a, b = a.astype(np.int64), b.astype(np.int64)
    return all(np.abs(a[..., c] - b[..., c]).max() <= 1 or np.abs(a[..., c] - (255 - b[..., c])).max() <= 1
               for c in range(3))


def _reference_pca(encoder, step: float) -> tuple[np.ndarray, np.ndarray]:
    """The naive version: SVD of the whole centred feature matrix -> (rgb [H, W, 3], explained [3])."""
    lat, lon = explore.grid_points(step)
    points = np.stack(np.meshgrid(lat, lon, indexing="ij"), axis=-1).reshape(-1, 2)
    x = np.asarray(encoder(points), np.float64)
    x -= x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    scores = x @ vt[:3].T
    lo, hi = np.percentile(scores, 1, axis=0), np.percentile(scores, 99, axis=0)
    unit = np.clip((scores - lo) / (hi - lo), 0, 1)
    rgb = (unit.reshape(len(lat), len(lon), 3) * 255).round().astype(np.uint8)
    return rgb, (s**2 / (s**2).sum())[:3]


def test_pca_grid_matches_an_svd_of_the_whole_grid():
    step = 2.0  # 85 x 180 points: several PCA_BATCH chunks
    assert len(explore.grid_points(step)[0]) * len(explore.grid_points(step)[1]) > 2 * explore.PCA_BATCH
    got = explore.pca_grid(smooth_encoder, step)
    ref_rgb, ref_explained = _reference_pca(smooth_encoder, step)
    assert got["dims"] == 16
    assert got["rgb"].dtype == np.uint8 and got["rgb"].shape == (85, 180, 3)
    np.testing.assert_array_equal(got["lat"], explore.grid_points(step)[0])
    np.testing.assert_array_equal(got["lon"], explore.grid_points(step)[1])
    np.testing.assert_allclose(got["explained"], ref_explained, atol=1e-6)
    assert np.all(np.diff(got["explained"]) <= 0) and 0.99 < sum(got["explained"]) <= 1 + 1e-12
    assert sum(got["explained"]) < 1 - 1e-4  # the fourth function is left out
    assert _same_up_to_sign(got["rgb"], ref_rgb)


def test_the_first_component_of_a_latitude_dominated_encoder_colours_rows():
    red = explore.pca_grid(smooth_encoder, 5.0)["rgb"][..., 0].astype(np.int64)  # (H, W)
    assert np.ptp(red, axis=1).max() <= 1  # one colour per row: sin(lat) does not vary with lon
    rows = red[:, 0]
    assert np.all(np.diff(rows) >= 0) or np.all(np.diff(rows) <= 0)  # monotonic north -> south
    assert {rows.min(), rows.max()} == {0, 255}  # stretched over the full range


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_pca_grid_ignores_a_constant_scale_of_the_features(scale):
    base = explore.pca_grid(smooth_encoder, 5.0)
    scaled = explore.pca_grid(lambda p: scale * smooth_encoder(p), 5.0)
    np.testing.assert_allclose(scaled["explained"], base["explained"], atol=1e-9)
    assert _same_up_to_sign(scaled["rgb"], base["rgb"])


def test_a_two_dim_encoder_leaves_blue_mid_grey():
    got = explore.pca_grid(explore.encoder_for("baseline:raw_latlon", []), 5.0)
    rgb = got["rgb"].astype(np.int64)
    assert got["dims"] == 2
    assert np.unique(rgb[..., 2]).tolist() in ([127], [128])
    assert got["explained"][2] == 0.0 and sum(got["explained"][:2]) == pytest.approx(1.0)
    # lon (radians, range 2 pi) varies more than lat (range < pi): red follows lon, green lat
    assert np.ptp(rgb[..., 0], axis=0).max() <= 1 and np.ptp(rgb[..., 1], axis=1).max() <= 1
    assert np.ptp(rgb[0, :, 0]) == 255 and np.ptp(rgb[:, 0, 1]) == 255


# -- encoders on offer ----------------------------------------------------------------------------


def test_encoder_choices_lists_every_model_then_the_baselines(two):
    choices = explore.encoder_choices(two)
    keys = list(choices.values())
    assert keys[:2] == ["model:0", "model:1"]
    assert sorted(keys[2:]) == sorted(f"baseline:{name}" for name in PROBE_ENCODERS)
    assert list(choices)[:2] == ["checkpoint: satclip-demo (trained)", "other (trained)"]


def test_encoder_for_resolves_every_key(two):
    points = np.array(POINTS[:2])
    for key in explore.encoder_choices(two).values():
        features = np.asarray(explore.encoder_for(key, two)(points))
        kind, _, name = key.partition(":")
        assert np.isfinite(features).all(), key
        if kind == "model":
            np.testing.assert_array_equal(features, two[int(name)].encode(points))
        else:
            assert features.shape == (2, BASELINE_DIMS[name]), key
            np.testing.assert_array_equal(features, default_encoders([name])[name](points))
    raw = explore.encoder_for("baseline:raw_latlon", two)(points)
    np.testing.assert_allclose(raw, np.radians(points), rtol=1e-6)


@pytest.mark.parametrize("key", ["", "raw_latlon", "nope:raw_latlon", "baselines:sh10"])
def test_encoder_for_rejects_an_unknown_kind(key):
    with pytest.raises(InputError):
        explore.encoder_for(key, [])


@pytest.mark.parametrize("key", ["model:2", "model:", "model:x", "baseline:nope"])
def test_encoder_for_rejects_a_bad_name_with_input_error(two, key):
    with pytest.raises(InputError):
        explore.encoder_for(key, two)


# -- probe tables ----------------------------------------------------------------------------------


def test_probe_rows_rename_each_model_and_keep_each_baseline_once(two):
    demo, other = two
    rows = explore.probe_rows(two)
    satclip = [r for r in demo.probes if r["encoder"] == "satclip"]
    baselines = [r for r in demo.probes if r["encoder"] != "satclip"]
    assert satclip and baselines
    assert len(rows) == 2 * len(satclip) + len(baselines)
    assert "satclip" not in {r["encoder"] for r in rows}
    for model in two:
        mine = [r for r in rows if r["encoder"] == model.source.label]
        assert [{**r, "encoder": "satclip"} for r in mine] == satclip
    kept = [r for r in rows if r["encoder"] not in {demo.source.label, other.source.label}]
    keys = [(r["encoder"], r["target"], r.get("probe")) for r in kept]
    assert len(keys) == len(set(keys))
    assert kept == baselines  # from the first model, not the second's shifted copies
    assert explore.probe_rows([]) == []


def test_probe_comparison_puts_models_and_baselines_side_by_side(two):
    demo, other = two
    table = explore.probe_comparison(two)
    targets = list(dict.fromkeys(r["target"] for r in demo.probes))
    assert list(table.columns) == ["encoder", "probe", *targets]
    encoders = {demo.source.label, other.source.label} | {r["encoder"] for r in demo.probes} - {"satclip"}
    assert set(table["encoder"]) == encoders
    probes = {r["probe"] for r in demo.probes}
    assert len(table) == len(encoders) * len(probes)  # one row per (encoder, probe)
    row = next(r for r in demo.probes if r["encoder"] == "satclip")
    cell = table.loc[(table["encoder"] == "other") & (table["probe"] == row["probe"]), row["target"]]
    assert cell.tolist() == [f"{row['mean']:.3f} ± {row['std']:.3f}"]
    assert explore.probe_comparison([]).empty


def _row(encoder, target, mean, metric="r2", probe="linear"):
    return {"encoder": encoder, "target": target, "probe": probe, "metric": metric, "mean": mean, "std": 0.01}


def test_probe_verdicts_on_hand_made_rows():
    rows = [
        _row("satclip", "relief", 0.5), _row("raw_latlon", "relief", 0.3), _row("geoclip", "relief", 0.7),
        _row("satclip", "coast_km", 0.2), _row("raw_latlon", "coast_km", 0.4),
        _row("satclip", "coast_km", 0.6, probe="mlp"), _row("raw_latlon", "coast_km", 0.6, probe="mlp"),
        _row("satclip", "greenness", 0.9),  # no baseline: no verdict
        _row("satclip", "land", 0.9, "accuracy"), _row("raw_latlon", "land", 0.5, "accuracy"),
    ]
    got = explore.probe_verdicts(rows).set_index(["target", "probe"])
    assert sorted(got.index) == [("coast_km", "linear"), ("coast_km", "mlp"), ("relief", "linear")]
    assert got.loc[("relief", "linear"), "beats"] and got.loc[("relief", "linear"), "best"] == "geoclip"
    assert got.loc[("relief", "linear"), "best_r2"] == pytest.approx(0.7)
    assert got.loc[("relief", "linear"), "satclip"] == pytest.approx(0.5)
    assert got.loc[("relief", "linear"), "raw_latlon"] == pytest.approx(0.3)
    assert not got.loc[("coast_km", "linear"), "beats"] and got.loc[("coast_km", "linear"), "best"] == "raw_latlon"
    assert not got.loc[("coast_km", "mlp"), "beats"]  # a tie does not beat the baseline
    assert explore.probe_verdicts([]).empty
