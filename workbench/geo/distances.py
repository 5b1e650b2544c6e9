"""Great-circle and ellipsoidal distances, vectorised for numpy arrays and torch tensors.

Conventions (ARCHITECTURE.md): coordinates in degrees named lat / lon; distances in km;
``haversine_km`` on a sphere of radius 6371.0088 km (the IUGG mean Earth radius) is the
project's distance. ``geodesic_km`` (WGS84 ellipsoid) exists to compare with papers that
report geodesic errors (e.g. GeoCLIP evaluates with ``geopy.distance.geodesic``); the two
differ by up to ~0.5 %.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.geo.validate import is_tensor, to_numpy

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius R1 = (2a + b) / 3 of WGS84

# WGS84 ellipsoid.
WGS84_A_KM = 6378.137
WGS84_F = 1 / 298.257223563
WGS84_B_KM = WGS84_A_KM * (1 - WGS84_F)


def _same_kind(*arrays: Any) -> tuple[Any, list[Any]]:
    """Return (xp, arrays) with xp = numpy or torch and every array of that kind.

    If any input is a tensor, the others become tensors on its device with its floating
    dtype (so float32 tensors stay float32 and gradients flow); otherwise everything
    becomes float64 numpy.
    """
    ref = next((a for a in arrays if is_tensor(a)), None)
    if ref is None:
        return np, [to_numpy(a) for a in arrays]
    import torch

    dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
    out = [
        a.to(dtype) if is_tensor(a) else torch.as_tensor(to_numpy(a), dtype=dtype, device=ref.device)
        for a in arrays
    ]
    return torch, out


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any, radius_km: float = EARTH_RADIUS_KM) -> Any:
    """Great-circle distance on a sphere, elementwise with broadcasting.

    lat1, lon1, lat2, lon2: degrees, broadcastable shapes (e.g. [N] vs [N], or [N, 1] vs
    [1, M] for all pairs). Returns km with the broadcast shape: a numpy float64 array, or a
    tensor if any input is a tensor. The torch path is differentiable everywhere; at d == 0
    and at antipodes (where the distance is not differentiable) the gradient is 0 rather
    than NaN. Ranges are not checked here (it runs inside training steps): call
    ``validate_latlon`` where data enters.
    """
    xp, (lat1, lon1, lat2, lon2) = _same_kind(lat1, lon1, lat2, lon2)
    rad = math.pi / 180.0
    phi1, phi2 = lat1 * rad, lat2 * rad
    half_dphi = (phi2 - phi1) * 0.5
    half_dlmb = (lon2 - lon1) * (0.5 * rad)
    a = xp.sin(half_dphi) ** 2 + xp.cos(phi1) * xp.cos(phi2) * xp.sin(half_dlmb) ** 2
    if xp is np:
        a = np.clip(a, 0.0, 1.0)
        # atan2 form: well conditioned near 0 and near antipodes (asin(sqrt(a)) is not near 1).
        return (2.0 * radius_km) * np.arctan2(np.sqrt(a), np.sqrt(1.0 - a))
    torch = xp
    a = a.clamp(0.0, 1.0)
    # sqrt has an infinite derivative at 0 (and sqrt(1 - a) at 1): evaluate on safe values
    # and select, so backward sees finite numbers (the "double where" trick).
    zero, full = a <= 0.0, a >= 1.0
    a_safe = torch.where(zero | full, torch.full_like(a, 0.5), a)
    c = 2.0 * torch.atan2(torch.sqrt(a_safe), torch.sqrt(1.0 - a_safe))
    c = torch.where(zero, torch.zeros_like(c), torch.where(full, torch.full_like(c, math.pi), c))
    return radius_km * c


def latlon_to_xyz(lat: Any, lon: Any) -> Any:
    """Unit vectors [..., 3] (x towards lat 0 lon 0, z towards the north pole) from degrees."""
    xp, (lat, lon) = _same_kind(lat, lon)
    phi, lmb = lat * (math.pi / 180.0), lon * (math.pi / 180.0)
    cos_phi = xp.cos(phi)
    return xp.stack([cos_phi * xp.cos(lmb), cos_phi * xp.sin(lmb), xp.sin(phi)], -1)


def xyz_to_latlon(xyz: Any) -> tuple[Any, Any]:
    """(lat, lon) in degrees from vectors [..., 3] (any non-zero length)."""
    xp = np if not is_tensor(xyz) else __import__("torch")
    if xp is np:
        xyz = to_numpy(xyz)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    lat = xp.arctan2(z, xp.sqrt(x * x + y * y)) * (180.0 / math.pi)
    lon = xp.arctan2(y, x) * (180.0 / math.pi)
    return lat, lon


def geodesic_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any, max_iter: int = 200) -> Any:
    """Shortest distance on the WGS84 ellipsoid (Vincenty's inverse formula, vectorised).

    Inputs in degrees, broadcastable; returns km (numpy float64, or a tensor on the first
    tensor input's device when given tensors; computed in float64 numpy, so no gradient).
    Vincenty agrees with Karney's algorithm (geographiclib / geopy) to well under 1 mm
    where it converges. It fails to converge only for nearly antipodal pairs (within
    ~0.5 degrees of the antipode); those rows, rare in practice, are computed with
    geographiclib's ``Geodesic.WGS84.Inverse`` (installed with geopy).
    """
    tensor_ref = next((a for a in (lat1, lon1, lat2, lon2) if is_tensor(a)), None)
    arrays = np.broadcast_arrays(*(to_numpy(a) for a in (lat1, lon1, lat2, lon2)))
    shape = arrays[0].shape
    la1, lo1, la2, lo2 = (np.ravel(a) for a in arrays)
    dist = _vincenty_km(la1, lo1, la2, lo2, max_iter).reshape(shape)
    if tensor_ref is not None:
        import torch

        dtype = tensor_ref.dtype if tensor_ref.is_floating_point() else torch.get_default_dtype()
        return torch.as_tensor(dist, dtype=dtype, device=tensor_ref.device)
    return dist


def _vincenty_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray,
                 max_iter: int) -> np.ndarray:
    """Vincenty (1975) inverse problem on flat float64 arrays [N] (degrees) -> km [N]."""
    a, b, f = WGS84_A_KM, WGS84_B_KM, WGS84_F
    rad = math.pi / 180.0
    # Longitude difference wrapped to [-pi, pi] so that lon = -180 and 180 coincide.
    big_l = np.remainder((lon2 - lon1) * rad + math.pi, 2 * math.pi) - math.pi
    u1 = np.arctan((1 - f) * np.tan(lat1 * rad))  # reduced latitudes
    u2 = np.arctan((1 - f) * np.tan(lat2 * rad))
    sin_u1, cos_u1, sin_u2, cos_u2 = np.sin(u1), np.cos(u1), np.sin(u2), np.cos(u2)

    n = big_l.shape[0]
    lmb = big_l.copy()
    sin_sigma, cos_sigma, sigma = np.zeros(n), np.ones(n), np.zeros(n)
    cos2_alpha, cos_2sm = np.ones(n), np.zeros(n)
    active = np.arange(n)  # rows still iterating; converged rows drop out
    for _ in range(max_iter):
        if active.size == 0:
            break
        su1, cu1, su2, cu2 = sin_u1[active], cos_u1[active], sin_u2[active], cos_u2[active]
        lm = lmb[active]
        sin_l, cos_l = np.sin(lm), np.cos(lm)
        s_sig = np.hypot(cu2 * sin_l, cu1 * su2 - su1 * cu2 * cos_l)
        c_sig = su1 * su2 + cu1 * cu2 * cos_l
        sig = np.arctan2(s_sig, c_sig)
        with np.errstate(invalid="ignore", divide="ignore"):
            # s_sig == 0: coincident points (distance 0, alpha irrelevant).
            sin_alpha = np.where(s_sig == 0, 0.0, cu1 * cu2 * sin_l / s_sig)
            c2a = 1.0 - sin_alpha**2
            # c2a == 0: both points on the equator; cos(2 sigma_m) is taken as 0.
            c2sm = np.where(c2a == 0, 0.0, c_sig - 2.0 * su1 * su2 / c2a)
        c = f / 16.0 * c2a * (4.0 + f * (4.0 - 3.0 * c2a))
        lm_new = big_l[active] + (1.0 - c) * f * sin_alpha * (
            sig + c * s_sig * (c2sm + c * c_sig * (-1.0 + 2.0 * c2sm**2))
        )
        lmb[active] = lm_new
        sin_sigma[active], cos_sigma[active], sigma[active] = s_sig, c_sig, sig
        cos2_alpha[active], cos_2sm[active] = c2a, c2sm
        active = active[np.abs(lm_new - lm) > 1e-12]

    u_sq = cos2_alpha * (a * a - b * b) / (b * b)
    big_a = 1 + u_sq / 16384 * (4096 + u_sq * (-768 + u_sq * (320 - 175 * u_sq)))
    big_b = u_sq / 1024 * (256 + u_sq * (-128 + u_sq * (74 - 47 * u_sq)))
    d_sigma = big_b * sin_sigma * (
        cos_2sm + big_b / 4 * (
            cos_sigma * (-1 + 2 * cos_2sm**2)
            - big_b / 6 * cos_2sm * (-3 + 4 * sin_sigma**2) * (-3 + 4 * cos_2sm**2)
        )
    )
    dist = b * big_a * (sigma - d_sigma)
    if active.size:
        dist[active] = _karney_km(lat1[active], lon1[active], lat2[active], lon2[active])
    return dist


def _karney_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Karney's geodesic via geographiclib for the few nearly antipodal rows."""
    from geographiclib.geodesic import Geodesic  # a geopy dependency; only needed here

    g = Geodesic.WGS84
    return np.array(
        [g.Inverse(*map(float, row))["s12"] / 1000.0 for row in zip(lat1, lon1, lat2, lon2)]
    )
