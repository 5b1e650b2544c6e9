"""Location encoders: (lat, lon) degrees [B, 2] -> features [B, D].

Registered in ``LOCATION_ENCODERS`` (``create_location_encoder(name, **kw)``):

| name | what | out_dim | trainable |
| --- | --- | --- | --- |
| ``geoclip`` | pretrained GeoCLIP (weights in the ``geoclip`` package) | 512 | frozen by default |
| ``rff`` | the same architecture (Equal Earth + multi-sigma RFF), random init | 512 | yes |
| ``sh_siren`` | SatCLIP: real spherical harmonics (L^2) + SIREN | 256 | yes |
| ``direct`` | raw / wrapped / xyz coordinates, optional Linear | 2-4 or out_dim | if out_dim |
"""
from workbench.encoders.location import direct, geoclip, rff, spherical_harmonics  # noqa: F401  (registers)
from workbench.encoders.location.base import (
    LOCATION_ENCODERS,
    LocationEncoder,
    create_location_encoder,
)
from workbench.encoders.location.cache import encode, encode_cached, encoder_fingerprint

__all__ = [
    "LOCATION_ENCODERS",
    "LocationEncoder",
    "create_location_encoder",
    "encode",
    "encode_cached",
    "encoder_fingerprint",
]
