"""Baseline: the coordinates themselves, optionally followed by one linear layer.

    "raw":  (lat / 90, lon / 180)                          [B, 2]  (seam at +-180 deg)
    "wrap": (sin lat, cos lat, sin lon, cos lon)           [B, 4]  (no seam at +-180 deg)
    "xyz":  unit vector (cos lat cos lon, cos lat sin lon, sin lat)  [B, 3]  (no seam, no poles)
"""
from __future__ import annotations

import torch

from workbench.encoders.location.base import LOCATION_ENCODERS, LocationEncoder, seeded
from workbench.errors import ConfigError

MODES = {"raw": 2, "wrap": 4, "xyz": 3}


def direct_features(latlon: torch.Tensor, mode: str) -> torch.Tensor:
    """latlon [B, 2] degrees -> [B, MODES[mode]] (see the module docstring)."""
    if mode == "raw":
        return latlon / latlon.new_tensor([90.0, 180.0])
    lat, lon = torch.deg2rad(latlon[:, 0]), torch.deg2rad(latlon[:, 1])
    if mode == "wrap":
        return torch.stack([torch.sin(lat), torch.cos(lat), torch.sin(lon), torch.cos(lon)], 1)
    return torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon),
                        torch.sin(lat)], 1)


class DirectLocationEncoder(LocationEncoder):
    """[B, 2] degrees -> coordinate features [B, F] -> optional Linear -> [B, out_dim]."""

    def __init__(self, mode: str = "wrap", out_dim: int | None = None):
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"unknown direct mode {mode!r}. Available: {sorted(MODES)}")
        self.config = dict(mode=mode, out_dim=out_dim)
        self.mode = mode
        self.linear = torch.nn.Linear(MODES[mode], out_dim) if out_dim else None
        self.out_dim = out_dim or MODES[mode]

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        features = direct_features(self.check_latlon(latlon), self.mode)
        return self.linear(features) if self.linear is not None else features


@LOCATION_ENCODERS.register("direct")
def direct(mode: str = "wrap", out_dim: int | None = None,
           seed: int | None = None) -> DirectLocationEncoder:
    """Raw or wrapped coordinates; ``out_dim`` adds a trainable linear layer."""
    with seeded(seed):
        return DirectLocationEncoder(mode, out_dim)
