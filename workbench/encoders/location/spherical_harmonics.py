"""SatCLIP-style location encoder: real spherical harmonics -> SIREN (Klemmer et al. 2023).

    lat/lon [B, 2] --Y_l^m, l < L--> [B, L^2] --SIREN (sine layers)--> [B, D]

Spherical harmonics are the natural Fourier basis on the sphere: no seam at the antimeridian,
no distortion at the poles, and L sets the finest resolvable scale (about 20000 km / L).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from workbench.encoders.location.base import LOCATION_ENCODERS, LocationEncoder, seeded
from workbench.errors import ConfigError


def associated_legendre(cos_theta: torch.Tensor, sin_theta: torch.Tensor,
                        num_degrees: int) -> list[torch.Tensor]:
    """Orthonormalised associated Legendre functions, without the Condon-Shortley phase.

    cos_theta, sin_theta: [B] (theta = colatitude; sin_theta >= 0 given separately so that it
    is exact at the poles instead of sqrt(1 - cos^2)). Returns a list over degree l < L of
    [B, l + 1] tensors, column m = P~_l^m with

        P~_l^m = sqrt((2l+1)/(4 pi) (l-m)!/(l+m)!) P_l^m,

    so that P~_l^m(cos theta) * e^{i m phi} is orthonormal on the unit sphere. Standard stable
    three-term recurrence (e.g. Holmes & Featherstone 2002), vectorised over m:

        P~_0^0 = 1 / sqrt(4 pi)
        P~_l^l = sqrt((2l+1) / (2l)) sin(theta) P~_{l-1}^{l-1}
        P~_l^m = a_lm (cos(theta) P~_{l-1}^m - b_lm P~_{l-2}^m),  m < l
        a_lm = sqrt((4l^2 - 1) / (l^2 - m^2)),  b_lm = sqrt(((l-1)^2 - m^2) / (4(l-1)^2 - 1))

    (with P~_{l-2}^{l-1} = 0, so the m = l-1 case is P~_l^{l-1} = sqrt(2l+1) cos P~_{l-1}^{l-1}).
    No division by sin(theta) anywhere, so it is finite (and differentiable) at the poles.
    """
    x = cos_theta.unsqueeze(1)  # (B, 1)
    p_prev2 = None
    p_prev = torch.full_like(x, 1.0 / math.sqrt(4 * math.pi))  # l = 0: (B, 1)
    out = [p_prev]
    for l in range(1, num_degrees):
        m = torch.arange(l, dtype=x.dtype, device=x.device)  # 0 .. l-1
        a = torch.sqrt((4 * l * l - 1) / (l * l - m * m))
        b = torch.sqrt(((l - 1) ** 2 - m * m) / max(4 * (l - 1) ** 2 - 1, 1))  # 0 at l = 1
        below = p_prev2 if p_prev2 is not None else x.new_zeros(x.shape[0], 0)
        below = torch.cat([below, x.new_zeros(x.shape[0], l - below.shape[1])], dim=1)  # (B, l)
        lower = a * (x * p_prev - b * below)  # m = 0 .. l-1
        diagonal = math.sqrt((2 * l + 1) / (2 * l)) * sin_theta.unsqueeze(1) * p_prev[:, -1:]
        p_prev2, p_prev = p_prev, torch.cat([lower, diagonal], dim=1)  # (B, l + 1)
        out.append(p_prev)
    return out


def real_spherical_harmonics(latlon: torch.Tensor, num_degrees: int) -> torch.Tensor:
    """Real orthonormal spherical harmonics Y_lm for l < L, m = -l..l.

    latlon: [B, 2] degrees. Returns [B, L^2], column l^2 + l + m holds

        Y_lm = sqrt(2) P~_l^|m|(cos theta) sin(|m| phi)   m < 0
             =         P~_l^0 (cos theta)                m = 0
             = sqrt(2) P~_l^m  (cos theta) cos(m phi)    m > 0

    with theta = 90 deg - lat (colatitude) and phi = lon. These equal the usual real
    combinations of scipy's complex Y_l^m (Condon-Shortley phase cancels).
    """
    lat = torch.deg2rad(latlon[:, 0])
    phi = torch.deg2rad(latlon[:, 1])
    legendre = associated_legendre(torch.sin(lat), torch.cos(lat), num_degrees)  # cos/sin(colat)
    m = torch.arange(1, num_degrees, dtype=latlon.dtype, device=latlon.device)
    cos_m = math.sqrt(2) * torch.cos(m * phi.unsqueeze(1))  # (B, L-1): m = 1 .. L-1
    sin_m = math.sqrt(2) * torch.sin(m * phi.unsqueeze(1))
    columns = []
    for l, p in enumerate(legendre):  # p: (B, l + 1)
        negative = p[:, 1:].flip(1) * sin_m[:, :l].flip(1)  # m = -l .. -1
        positive = p[:, 1:] * cos_m[:, :l]  # m = 1 .. l
        columns += [negative, p[:, :1], positive]
    return torch.cat(columns, dim=1)  # (B, L^2)


class SirenLayer(nn.Module):
    """y = sin(w0 (W x + b)) with SIREN initialisation (Sitzmann et al. 2020).

    First layer: W ~ U(-1/n, 1/n); later layers: W ~ U(-sqrt(6/n)/w0, sqrt(6/n)/w0), n = fan-in,
    which keeps pre-activations distributed so that every layer sees the full sine period.
    ``activation=False`` gives the linear output layer (same initialisation).
    """

    def __init__(self, in_dim: int, out_dim: int, w0: float = 1.0, is_first: bool = False,
                 activation: bool = True):
        super().__init__()
        self.w0 = w0
        self.activation = activation
        self.linear = nn.Linear(in_dim, out_dim)
        bound = 1.0 / in_dim if is_first else math.sqrt(6.0 / in_dim) / w0
        nn.init.uniform_(self.linear.weight, -bound, bound)
        nn.init.uniform_(self.linear.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return torch.sin(self.w0 * y) if self.activation else y


class SphericalHarmonicsSiren(LocationEncoder):
    """SatCLIP location encoder: [B, 2] degrees -> [B, L^2] harmonics -> SIREN -> [B, out_dim].

    ``num_degrees`` L is SatCLIP's ``legendre_polys`` (10 or 40 in the paper); the SIREN has
    ``n_hidden`` sine layers of ``hidden_dim`` units (first with ``w0_initial``) and a linear
    output layer.
    """

    def __init__(self, num_degrees: int = 10, hidden_dim: int = 256, n_hidden: int = 2,
                 out_dim: int = 256, w0: float = 1.0, w0_initial: float = 30.0):
        super().__init__()
        self.config = dict(num_degrees=num_degrees, hidden_dim=hidden_dim, n_hidden=n_hidden,
                           out_dim=out_dim, w0=w0, w0_initial=w0_initial)
        self.num_degrees = num_degrees
        self.out_dim = out_dim
        layers: list[nn.Module] = []
        width = num_degrees**2
        for i in range(n_hidden):
            layers.append(SirenLayer(width, hidden_dim, w0_initial if i == 0 else w0,
                                     is_first=i == 0))
            width = hidden_dim
        layers.append(SirenLayer(width, out_dim, w0, is_first=n_hidden == 0, activation=False))
        self.siren = nn.Sequential(*layers)

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        self.check_latlon(latlon)
        return self.siren(real_spherical_harmonics(latlon, self.num_degrees))  # (B, D)


@LOCATION_ENCODERS.register("sh_siren")
def sh_siren(num_degrees: int = 10, hidden_dim: int = 256, n_hidden: int = 2,
             out_dim: int = 256, w0: float = 1.0, w0_initial: float = 30.0,
             seed: int | None = None) -> SphericalHarmonicsSiren:
    """Spherical harmonics (L = ``num_degrees``, L^2 features) + SIREN, random init, trainable."""
    if num_degrees < 1:
        raise ConfigError(f"num_degrees must be >= 1 (SatCLIP uses 10 or 40), got {num_degrees}")
    with seeded(seed):
        return SphericalHarmonicsSiren(num_degrees, hidden_dim, n_hidden, out_dim, w0,
                                       w0_initial)
