"""Spherical harmonics recurrence against scipy, including at and next to the poles."""
import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y

from workbench.encoders.location.spherical_harmonics import real_spherical_harmonics

POINTS = np.array([  # (lat, lon) degrees: poles, near-poles, antimeridian, ordinary points
    [90.0, 0.0], [-90.0, 123.0], [89.99999, 10.0], [-89.9999, -60.0], [0.0, 180.0],
    [0.0, -180.0], [45.0, -170.0], [-30.0, 33.0], [10.0, 0.0], [66.5, 100.0],
])


def scipy_real_sh(lat: np.ndarray, lon: np.ndarray, num_degrees: int) -> np.ndarray:
    """Real orthonormal harmonics [N, L^2] from scipy's complex ones (column l^2 + l + m)."""
    theta, phi = np.radians(90.0 - lat), np.radians(lon)
    columns = []
    for l in range(num_degrees):
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), theta, phi)  # includes the Condon-Shortley phase
            sign = (-1) ** abs(m)
            columns.append(y.real if m == 0 else
                           np.sqrt(2) * sign * (y.imag if m < 0 else y.real))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("num_degrees", [1, 2, 6, 12])
def test_matches_scipy_in_float64(num_degrees):
    ours = real_spherical_harmonics(torch.tensor(POINTS), num_degrees).numpy()
    expected = scipy_real_sh(POINTS[:, 0], POINTS[:, 1], num_degrees)
    assert ours.shape == (len(POINTS), num_degrees**2)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_high_degree_is_stable_at_the_poles():
    # Naive formulas (factorials, division by sin(theta)) overflow or give NaN here.
    ours = real_spherical_harmonics(torch.tensor(POINTS), 40).numpy()
    expected = scipy_real_sh(POINTS[:, 0], POINTS[:, 1], 40)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-10)
    # At a pole only the m = 0 terms survive: Y_l0 = sqrt((2l+1) / 4pi).
    l = np.arange(40)
    np.testing.assert_allclose(ours[0, l**2 + l], np.sqrt((2 * l + 1) / (4 * np.pi)), rtol=1e-12)
    m_nonzero = np.ones(1600, bool)
    m_nonzero[l**2 + l] = False
    np.testing.assert_allclose(ours[0, m_nonzero], 0.0, atol=1e-12)


@pytest.mark.parametrize("num_degrees", [10, 20, 40])
def test_matches_scipy_at_random_points(num_degrees):
    # uniform on the sphere (seeded), plus a band near each pole where sin(theta) -> 0
    rng = np.random.default_rng(num_degrees)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 400)))
    lat[:40] = np.sign(rng.uniform(-1, 1, 40)) * rng.uniform(89.0, 90.0, 40)
    lon = rng.uniform(-180, 180, 400)
    ours = real_spherical_harmonics(torch.tensor(np.stack([lat, lon], 1)), num_degrees).numpy()
    np.testing.assert_allclose(ours, scipy_real_sh(lat, lon, num_degrees), rtol=0, atol=1e-10)


def test_float32_is_finite_with_finite_gradients_at_the_poles():
    latlon = torch.tensor(POINTS, dtype=torch.float32, requires_grad=True)
    y = real_spherical_harmonics(latlon, 20)
    expected = scipy_real_sh(POINTS[:, 0], POINTS[:, 1], 20)
    np.testing.assert_allclose(y.detach().numpy(), expected, atol=2e-4)
    y.sum().backward()
    assert torch.isfinite(latlon.grad).all()


def test_orthonormal_on_the_sphere():
    # Gauss-Legendre in cos(theta) x uniform in phi integrates degree < 2L products exactly.
    L = 6
    x, w = np.polynomial.legendre.leggauss(L + 1)
    lon = np.linspace(-180, 180, 2 * L + 1, endpoint=False)
    lat = np.degrees(np.arcsin(x))
    grid_lat, grid_lon = np.meshgrid(lat, lon, indexing="ij")
    weights = (np.repeat(w, len(lon)) * 2 * np.pi / len(lon))
    y = real_spherical_harmonics(
        torch.tensor(np.column_stack([grid_lat.ravel(), grid_lon.ravel()])), L).numpy()
    np.testing.assert_allclose(y.T @ (weights[:, None] * y), np.eye(L * L), atol=1e-12)
