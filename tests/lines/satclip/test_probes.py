"""Probe targets against known places, area-uniform sampling, the probe bench and its CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.cli import main
from workbench.errors import InputError
from workbench.geo.distances import haversine_km
from workbench.lines.satclip import probe_targets as pt
from workbench.lines.satclip import probes

PLACES = {  # name: (lat, lon)
    "sahara": (23.0, 13.0),  # Libyan desert
    "pacific": (30.0, -150.0),  # ~1200 km NE of Hawaii
    "paris": (48.86, 2.35),
    "everest": (28.0, 86.9),
    "netherlands": (52.3, 5.5),
    "atacama": (-25.4, -69.5),  # 1 degree of longitude (~100 km) east of Chile's N-S coast
    "amazon": (-3.5, -62.0),
}


@pytest.fixture(scope="module")
def places() -> pd.DataFrame:
    lat, lon = np.array(list(PLACES.values())).T
    return pt.probe_targets(lat, lon).set_axis(list(PLACES))


def test_targets_agree_with_known_places(places):
    assert list(places.columns[:7]) == list(pt.TARGETS)
    assert places.loc["sahara", "land"] and places.loc["sahara", "greenness"] < -0.05
    assert places.loc["amazon", "greenness"] > 0.15  # rain forest is green, the desert is not
    assert not places.loc["pacific", "land"] and places.loc["pacific", "coast_km"] > 1000
    paris = places.loc["paris"]
    assert (paris["continent"], paris["country"]) == ("Europe", "FR")
    assert paris["place_km"] < 5 and paris["log_population"] > 6  # Paris, not "Paris 04" (27 k)
    assert places.loc["everest", "relief"] > 3 * places.loc["netherlands", "relief"]
    assert places.loc["netherlands", "coast_km"] < 60


def test_coast_km_is_great_circle_distance_to_the_coast(places):
    # Chile's coast runs north-south at ~70.5 W here: the point is ~100 km inland.
    assert 80 < places.loc["atacama", "coast_km"] < 120
    # The nearest coast is the same wherever the antimeridian falls: Fiji from both sides.
    west, east = pt.coast_km(np.array([-17.8, -17.8]), np.array([179.9, -179.9]))
    assert abs(west - east) < 25
    expected = haversine_km(-25.4, -69.5, -25.4, -70.5)
    assert abs(places.loc["atacama", "coast_km"] - expected) < 25


def test_sampling_is_area_uniform_and_seeded():
    points = pt.sample_probe_points(20000, seed=3, where="anywhere")
    assert points.shape == (20000, 2)
    assert abs((np.abs(points[:, 0]) < 30).mean() - 0.5) < 0.02  # sin(30 deg) = 0.5 of the area
    assert np.array_equal(points, pt.sample_probe_points(20000, seed=3, where="anywhere"))
    land = pt.sample_probe_points(500, seed=1, where="land")
    assert land.shape == (500, 2) and pt.is_land(land[:, 0], land[:, 1]).all()
    gallery = pt.sample_probe_points(100, seed=1, where="gallery")
    assert len(np.unique(gallery, axis=0)) == 100


@pytest.fixture(scope="module")
def small_set():
    latlon = pt.sample_probe_points(600, seed=0, where="anywhere")
    return latlon, pt.probe_targets(latlon[:, 0], latlon[:, 1])


def test_run_probes_rows_same_split_and_sanity(small_set):
    latlon, targets = small_set
    rng = np.random.default_rng(0)
    coast = targets["coast_km"].to_numpy()
    encoders = {
        "oracle": lambda ll: np.column_stack([coast + rng.normal(0, 20, len(ll)), rng.normal(size=(len(ll), 3))]),
        "noise": lambda ll: rng.normal(size=(len(ll), 8)),
        "raw_latlon": probes.default_encoders(["raw_latlon"])["raw_latlon"],
    }
    rows = probes.run_probes(encoders, latlon, targets[["land", "coast_km", "continent"]], seeds=(0, 1))
    assert len(rows) == 3 * 3 * 2
    assert set(rows[0]) == {"encoder", "target", "probe", "metric", "mean", "std", "n_train", "n_test"}
    by = {(r["encoder"], r["target"], r["probe"]): r for r in rows}
    for target in ("land", "coast_km", "continent"):  # one split for every encoder
        assert len({(r["n_train"], r["n_test"]) for r in rows if r["target"] == target}) == 1
    assert by[("oracle", "continent", "linear")]["n_test"] < by[("oracle", "land", "linear")]["n_test"]
    assert by[("oracle", "coast_km", "linear")]["metric"] == "r2"
    assert by[("oracle", "land", "mlp")]["metric"] == "accuracy"
    assert by[("oracle", "coast_km", "linear")]["mean"] > 0.9
    assert by[("oracle", "coast_km", "mlp")]["mean"] > 0.9
    assert by[("noise", "coast_km", "linear")]["mean"] < 0.05
    table = probes.probe_table(rows)
    assert list(table.columns) == ["encoder", "probe", "land", "coast_km", "continent"]
    assert len(table) == 6 and "±" in table.loc[0, "coast_km"]


def test_ridge_gcv_matches_sklearn():
    from sklearn.linear_model import RidgeCV

    rng = np.random.default_rng(0)
    for n, d in ((200, 30), (40, 120)):  # primal and dual forms
        x = rng.normal(size=(n, d)).astype(np.float32)
        x -= x.mean(0)
        y = x[:, :3].sum(1) + rng.normal(size=n)
        y -= y.mean()
        test = rng.normal(size=(10, d)).astype(np.float32)
        ours = probes.ridge_gcv(x, y[:, None], test)[:, 0]
        ref = RidgeCV(alphas=probes.RIDGE_ALPHAS, fit_intercept=False).fit(x, y).predict(test)
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("body, message", [
    (None, "not found"),
    ("lat,value\n1,2\n", "needs columns lat, lon"),
    ("lat,lon,t\n" + "95,0,1\n" * 60, "out of range"),
    ("lat,lon,t\n" + "10,0,nan\n" * 60, "non-finite"),
    ("lat,lon,t\n" + "10,0,1\n" * 20, "at least 50"),
])
def test_csv_target_errors(tmp_path, body, message):
    path = tmp_path / "probe.csv"
    if body is not None:
        path.write_text(body)
    with pytest.raises(InputError, match=message) as info:
        probes.csv_target(path)
    assert "\n" not in str(info.value)


def test_csv_target_kinds(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"lat": rng.uniform(-60, 60, 80), "lon": rng.uniform(-180, 180, 80),
                          "biome": rng.choice(["a", "b"], 80)})
    frame.to_csv(tmp_path / "b.csv", index=False)
    latlon, target = probes.csv_target(tmp_path / "b.csv")
    assert latlon.shape == (80, 2) and list(target.columns) == ["biome"]
    assert probes.target_spec("biome", target["biome"]) == ("classification", "anywhere")
    assert probes.target_spec("t", pd.Series([1.5, 2.0])) == ("regression", "anywhere")


def test_cli_probe_end_to_end(capsys, tmp_path):
    out = tmp_path / "probe.json"
    code = main(["satclip", "probe", "--points", "300", "--seeds", "2", "--encoders", "raw_latlon,sh10",
                 "--out", str(out)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads(out.read_text())
    assert {r["encoder"] for r in result["rows"]} == {"raw_latlon", "sh10"}
    assert len(result["rows"]) == 2 * 7 * 2 and len(result["table"]) == 4


@pytest.mark.parametrize("argv", [["--seeds", "0"], ["--points", "ten"], ["--encoders", "satclip9"],
                                  ["--where", "ocean"]])
def test_cli_bad_arguments_exit_2_with_one_line(capsys, argv):
    assert main(["satclip", "probe", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
