"""The location-encoder interface and its registry.

A location encoder is an ``nn.Module`` with an ``out_dim`` attribute whose ``forward`` maps
coordinates in degrees, ``latlon`` [B, 2] (column 0 = lat, column 1 = lon), to features
[B, out_dim]. Builders registered in ``LOCATION_ENCODERS`` create them; a builder (never
``__init__``) loads weights.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from workbench.errors import InputError
from workbench.registry import Registry

LOCATION_ENCODERS: Registry[LocationEncoder] = Registry("location encoder")


class LocationEncoder(nn.Module):
    """Base class: ``forward(latlon [B, 2] degrees) -> [B, out_dim]``.

    ``config`` holds the constructor arguments; together with the weights it identifies the
    encoder (see ``workbench.encoders.cache``).
    """

    out_dim: int
    config: dict[str, Any]

    @staticmethod
    def check_latlon(latlon: torch.Tensor) -> torch.Tensor:
        """Raise InputError unless ``latlon`` is a floating tensor of shape [B, 2]."""
        if not isinstance(latlon, torch.Tensor):
            raise InputError(
                f"location encoders take a torch tensor [B, 2] of (lat, lon) degrees, "
                f"got {type(latlon).__name__}; use workbench.encoders.encode() for numpy arrays"
            )
        if latlon.ndim != 2 or latlon.shape[1] != 2:
            raise InputError(
                f"expected (lat, lon) degrees of shape [B, 2], got {tuple(latlon.shape)}"
            )
        if not latlon.is_floating_point():
            raise InputError(f"expected a float tensor of degrees, got dtype {latlon.dtype}")
        return latlon


def create_location_encoder(name: str, **kwargs: Any) -> LocationEncoder:
    """Build the location encoder registered as ``name`` (see ``LOCATION_ENCODERS.list()``)."""
    return LOCATION_ENCODERS.create(name, **kwargs)


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Draw random initialisations from ``seed`` without disturbing the global RNG stream
    (``None``: use the global RNG as it is)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
