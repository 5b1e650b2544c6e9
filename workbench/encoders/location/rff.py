"""Random-Fourier-feature location encoder (the GeoCLIP architecture), built from scratch.

    lat/lon [B, 2] --Equal Earth--> (x, y) [B, 2]
        --> for each sigma: RFF [B, 2F] -> MLP (ReLU) [B, H] -> head [B, D]
        --> sum over sigmas [B, D]

Each branch sees the same projected point through Fourier features of a different spatial
frequency (sigma 2^0, 2^4, 2^8 in GeoCLIP: continent, region, city scales); summing the
branches lets the network mix scales. The Fourier matrices are random but fixed (buffers,
not parameters), as in Tancik et al. 2020 and GeoCLIP.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from workbench.encoders.location.base import LOCATION_ENCODERS, LocationEncoder, seeded
from workbench.errors import ConfigError

# Equal Earth polynomial coefficients (Šavrič, Patterson & Jenny 2018).
A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
# GeoCLIP's scale factor: (x, y) * SF / 180 maps the projected world to x in [-1, 1].
SF = 66.50336


def equal_earth_projection(latlon: torch.Tensor) -> torch.Tensor:
    """Equal Earth projection as GeoCLIP computes it.

    latlon: [B, 2] degrees (lat, lon). Returns [B, 2] = (x, y) with x in [-1, 1] and
    y in about [-0.49, 0.49]. An equal-area projection, so RFF frequencies mean the same
    ground distance at every latitude (unlike raw lat/lon, which over-weights the poles).
    The operations (and float32 constants) follow ``geoclip`` step by step so that the
    pretrained weights see bit-identical inputs.
    """
    lat = torch.deg2rad(latlon[:, 0])
    lon = torch.deg2rad(latlon[:, 1])
    sqrt3 = torch.sqrt(torch.tensor(3.0, device=latlon.device))
    theta = torch.asin((sqrt3 / 2) * torch.sin(lat))  # parametric latitude
    denominator = 3 * (9 * A4 * theta**8 + 7 * A3 * theta**6 + 3 * A2 * theta**2 + A1)
    x = (2 * sqrt3 * lon * torch.cos(theta)) / denominator
    y = A4 * theta**9 + A3 * theta**7 + A2 * theta**3 + A1 * theta
    return (torch.stack((x, y), dim=1) * SF) / 180


class FourierFeatures(nn.Module):
    """gamma(v) = [cos(2 pi v B^T), sin(2 pi v B^T)] with B ~ N(0, sigma^2), fixed.

    v: [B, 2] -> [B, 2 * n_frequencies].
    """

    def __init__(self, sigma: float, n_frequencies: int = 256, in_dim: int = 2):
        super().__init__()
        self.sigma = float(sigma)
        self.register_buffer("b", torch.randn(n_frequencies, in_dim) * sigma)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        vp = 2 * math.pi * v @ self.b.T  # (B, F); same operation order as geoclip's rff
        return torch.cat((torch.cos(vp), torch.sin(vp)), dim=-1)  # (B, 2F)


class RFFBranch(nn.Module):
    """One scale: Fourier features -> ``n_hidden`` ReLU layers of width ``hidden_dim`` -> head.

    [B, 2] -> [B, out_dim]
    """

    def __init__(self, sigma: float, n_frequencies: int, hidden_dim: int, n_hidden: int,
                 out_dim: int):
        super().__init__()
        self.rff = FourierFeatures(sigma, n_frequencies)
        layers: list[nn.Module] = []
        width = 2 * n_frequencies
        for _ in range(n_hidden):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
            width = hidden_dim
        self.mlp = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_dim)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.head(self.mlp(self.rff(xy)))


class RFFLocationEncoder(LocationEncoder):
    """Multi-scale RFF encoder: [B, 2] degrees -> [B, out_dim] (sum of one branch per sigma).

    ``projection``: "equal_earth" (GeoCLIP) or "none" (raw (lat/90, lon/180) — an ablation).
    """

    def __init__(
        self,
        sigmas: Sequence[float] = (2**0, 2**4, 2**8),
        n_frequencies: int = 256,
        hidden_dim: int = 1024,
        n_hidden: int = 3,
        out_dim: int = 512,
        projection: str = "equal_earth",
    ):
        super().__init__()
        if projection not in ("equal_earth", "none"):
            raise ConfigError(
                f"unknown projection {projection!r}. Available: ['equal_earth', 'none']"
            )
        self.config = dict(sigmas=[float(s) for s in sigmas], n_frequencies=n_frequencies,
                           hidden_dim=hidden_dim, n_hidden=n_hidden, out_dim=out_dim,
                           projection=projection)
        self.out_dim = out_dim
        self.projection = projection
        self.branches = nn.ModuleList(
            RFFBranch(s, n_frequencies, hidden_dim, n_hidden, out_dim) for s in sigmas
        )

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        self.check_latlon(latlon)
        if self.projection == "equal_earth":
            xy = equal_earth_projection(latlon)  # (B, 2)
        else:
            xy = latlon / latlon.new_tensor([90.0, 180.0])
        features = self.branches[0](xy)  # (B, D)
        for branch in self.branches[1:]:
            features = features + branch(xy)
        return features


@LOCATION_ENCODERS.register("rff")
def rff(
    sigmas: Sequence[float] = (2**0, 2**4, 2**8),
    n_frequencies: int = 256,
    hidden_dim: int = 1024,
    n_hidden: int = 3,
    out_dim: int = 512,
    projection: str = "equal_earth",
    seed: int | None = None,
) -> RFFLocationEncoder:
    """GeoCLIP's architecture with random initialisation, trainable (Fourier matrices fixed).

    ``seed`` fixes both the Fourier matrices and the MLP initialisation.
    """
    if not sigmas:
        raise ConfigError("rff needs at least one sigma, e.g. sigmas=[1, 16, 256]")
    with seeded(seed):
        return RFFLocationEncoder(sigmas, n_frequencies, hidden_dim, n_hidden, out_dim,
                                  projection)
