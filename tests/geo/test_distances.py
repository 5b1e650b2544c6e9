"""Distances (haversine, WGS84 geodesic) and coordinate validation, numpy and torch."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from geopy.distance import geodesic as geopy_geodesic

from workbench.errors import InputError
from workbench.geo import EARTH_RADIUS_KM, geodesic_km, haversine_km, validate_latlon

PARIS = (48.8566, 2.3522)
LONDON = (51.5074, -0.1278)


def _angle_between(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Central angle from unit vectors (atan2 of |cross| and dot): a formula independent
    of the haversine one."""
    def xyz(lat, lon):
        la, lo = math.radians(lat), math.radians(lon)
        return (math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la))

    a, b = xyz(lat1, lon1), xyz(lat2, lon2)
    cross = (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])
    return math.atan2(math.sqrt(sum(c * c for c in cross)), sum(x * y for x, y in zip(a, b)))


def test_haversine_paris_london():
    d = float(haversine_km(*PARIS, *LONDON))
    # Independent formula on the same sphere (R = 6371.0088 km) ...
    assert d == pytest.approx(EARTH_RADIUS_KM * _angle_between(*PARIS, *LONDON), abs=1e-6)
    # ... and the widely published spherical figure, 343.5 km (343.556 km with R = 6371 km;
    # the mean radius 6371.0088 km used here adds 0.5 m).
    assert d == pytest.approx(343.5565, abs=1e-4)
    assert float(haversine_km(*PARIS, *LONDON, radius_km=6371.0)) == pytest.approx(343.5561, abs=1e-4)


def test_haversine_known_arcs_and_symmetry():
    quarter = math.pi / 2 * EARTH_RADIUS_KM  # 10007.557 km: equator to pole
    assert float(haversine_km(0, 0, 90, 0)) == pytest.approx(quarter, rel=1e-12)
    assert float(haversine_km(0, 0, 0, 180)) == pytest.approx(2 * quarter, rel=1e-12)
    assert float(haversine_km(10, 180, 10, -180)) == pytest.approx(0, abs=1e-9)  # same point
    assert float(haversine_km(90, 0, 90, 123)) == pytest.approx(0, abs=1e-9)  # the pole
    rng = np.random.default_rng(0)
    a = rng.uniform(-90, 90, (4, 500))
    a[1], a[3] = a[1] * 2, a[3] * 2  # lon in [-180, 180]
    np.testing.assert_allclose(haversine_km(*a), haversine_km(a[2], a[3], a[0], a[1]), rtol=1e-12)
    ref = [EARTH_RADIUS_KM * _angle_between(*row) for row in a.T]
    np.testing.assert_allclose(haversine_km(*a), ref, rtol=1e-10, atol=1e-7)


def test_haversine_broadcasts_pairwise():
    lat1, lon1 = np.array([0.0, 10.0, 20.0]), np.array([0.0, 5.0, -5.0])
    lat2, lon2 = np.array([1.0, -1.0]), np.array([3.0, 170.0])
    d = haversine_km(lat1[:, None], lon1[:, None], lat2[None, :], lon2[None, :])
    assert d.shape == (3, 2)
    assert d[2, 1] == pytest.approx(float(haversine_km(20.0, -5.0, -1.0, 170.0)), rel=1e-15)


def test_torch_and_numpy_agree_and_torch_is_differentiable():
    rng = np.random.default_rng(1)
    a = np.stack([rng.uniform(-80, 80, 200), rng.uniform(-180, 180, 200),
                  rng.uniform(-80, 80, 200), rng.uniform(-180, 180, 200)])
    d_np = haversine_km(*a)
    t = [torch.tensor(x, requires_grad=True) for x in a]
    d_t = haversine_km(*t)
    assert isinstance(d_t, torch.Tensor) and d_t.dtype == torch.float64
    np.testing.assert_allclose(d_t.detach().numpy(), d_np, rtol=1e-12)
    d_t.sum().backward()
    assert all(torch.isfinite(x.grad).all() for x in t)
    # Gradients equal finite differences (float64 gradcheck), including mixed inputs.
    small = tuple(torch.tensor(x[:6], requires_grad=True) for x in a)
    assert torch.autograd.gradcheck(lambda *z: haversine_km(*z), small)
    # float32 tensors stay float32; numpy operands are moved onto the tensor's kind.
    d32 = haversine_km(torch.tensor([PARIS[0]]), torch.tensor([PARIS[1]]), *LONDON)
    assert d32.dtype == torch.float32 and float(d32) == pytest.approx(343.556, abs=0.01)


def test_torch_gradient_is_finite_at_zero_and_antipode():
    lat = torch.tensor([10.0, 0.0], dtype=torch.float64, requires_grad=True)
    d = haversine_km(lat, torch.tensor([20.0, 0.0]), torch.tensor([10.0, 0.0]), torch.tensor([20.0, 180.0]))
    assert d[0].item() == 0.0 and d[1].item() == pytest.approx(math.pi * EARTH_RADIUS_KM)
    d.sum().backward()
    assert torch.isfinite(lat.grad).all()


def test_geodesic_published_values():
    dms = lambda d, m, s: d + m / 60 + s / 3600  # noqa: E731
    # Vincenty's worked example (Geoscience Australia): Flinders Peak -> Buninyong,
    # 54 972.271 m on the GRS80 / WGS84 ellipsoid.
    d = geodesic_km(-dms(37, 57, 3.72030), dms(144, 25, 29.52440), -dms(37, 39, 10.15610), dms(143, 55, 35.38390))
    assert float(d) == pytest.approx(54.972271, abs=1e-6)
    # WGS84 meridian quadrant (equator to pole): 10 001.965 729 km.
    assert float(geodesic_km(0, 0, 90, 0)) == pytest.approx(10001.965729, abs=1e-6)
    # Paris -> London: 343.923 km geodesic (geographiclib), vs 343.556 km on the sphere.
    assert float(geodesic_km(*PARIS, *LONDON)) == pytest.approx(geopy_geodesic(PARIS, LONDON).km, abs=1e-6)
    assert float(geodesic_km(*PARIS, *LONDON)) == pytest.approx(343.923, abs=1e-3)


def test_geodesic_matches_geopy_including_near_antipodes():
    rng = np.random.default_rng(3)
    n = 300
    lat1 = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lon1 = rng.uniform(-180, 180, n)
    lat2 = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lon2 = rng.uniform(-180, 180, n)
    # 40 nearly antipodal pairs (where Vincenty's iteration can fail), 5 identical, 5
    # along the equator, one pole to pole.
    lat2[:40] = np.clip(-lat1[:40] + rng.normal(0, 0.2, 40), -90, 90)
    lon2[:40] = (lon1[:40] + 180 + rng.normal(0, 0.2, 40) + 180) % 360 - 180
    lat2[40:45], lon2[40:45] = lat1[40:45], lon1[40:45]
    lat1[45:50] = lat2[45:50] = 0.0
    lat1[50], lat2[50] = 90.0, -90.0
    ours = geodesic_km(lat1, lon1, lat2, lon2)
    ref = [geopy_geodesic((a, b), (c, d)).km for a, b, c, d in zip(lat1, lon1, lat2, lon2)]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)  # 1 mm
    t = geodesic_km(torch.tensor(lat1), torch.tensor(lon1), lat2, lon2)
    assert isinstance(t, torch.Tensor) and np.allclose(t.numpy(), ours)


def test_geodesic_and_haversine_differ_by_under_half_a_percent():
    rng = np.random.default_rng(4)
    a = np.stack([rng.uniform(-89, 89, 1000), rng.uniform(-180, 180, 1000),
                  rng.uniform(-89, 89, 1000), rng.uniform(-180, 180, 1000)])
    ratio = geodesic_km(*a) / haversine_km(*a)
    assert np.all(np.abs(ratio - 1) < 0.006)


def test_validate_latlon_accepts_the_closed_ranges():
    lat, lon = [-90.0, 90.0, 0.0], [-180.0, 180.0, 0.0]
    assert validate_latlon(lat, lon) == (lat, lon)
    t = torch.tensor([1.0, 2.0])
    assert validate_latlon(t, t)[0] is t


@pytest.mark.parametrize(
    "lat, lon, pattern",
    [
        ([0.0, 10.0, 90.5, 95.0], [0, 0, 0, 0], r"row 2: lat = 90.5 is outside \[-90, 90\] \(2 bad"),
        ([0.0, float("nan")], [0.0, 0.0], r"row 1: lat = nan is NaN"),
        ([0.0, 0.0, 0.0], [10.0, -180.5, 0.0], r"row 1: lon = -180.5 is outside \[-180, 180\]"),
        ([0.0, 0.0], [0.0, float("nan")], r"row 1: lon = nan is NaN"),
        ([0.0, 100.0, 0.0], [0.0, 0.0, 200.0], r"row 1: lat = 100.0"),  # first bad row wins
        ([0.0, 0.0, 0.0], [0.0, 0.0, float("inf")], r"row 2: lon = inf"),
    ],
)
def test_validate_latlon_names_the_first_bad_row(lat, lon, pattern):
    with pytest.raises(InputError, match=pattern):
        validate_latlon(np.array(lat), np.array(lon))


def test_validate_latlon_other_errors():
    with pytest.raises(InputError, match="same shape"):
        validate_latlon([1.0, 2.0], [1.0])
    with pytest.raises(InputError, match="expected numbers"):
        validate_latlon(["north"], [1.0])
    with pytest.raises(InputError, match=r"row 1: lat = 91.0"):
        validate_latlon(torch.tensor([0.0, 91.0]), torch.tensor([0.0, 0.0]))
    with pytest.raises(InputError, match=r"index \(1, 0\)"):
        validate_latlon(np.array([[0.0, 0.0], [-91.0, 0.0]]), np.zeros((2, 2)))
