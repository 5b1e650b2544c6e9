"""Encoders: location (``workbench.encoders.location``); image and text encoders sit beside it."""
from workbench.encoders.location import (
    LOCATION_ENCODERS,
    LocationEncoder,
    create_location_encoder,
    encode,
    encode_cached,
)

__all__ = [
    "LOCATION_ENCODERS",
    "LocationEncoder",
    "create_location_encoder",
    "encode",
    "encode_cached",
]
