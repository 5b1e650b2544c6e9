"""GPS position in a photo's EXIF: read it (``read_exif_gps``) and write it (``gps_exif``).

EXIF stores latitude and longitude as unsigned degree / minute / second rationals plus a
reference letter (N/S, E/W) that carries the sign. A photo without a GPS IFD has no position
(``missing``, common and not an error); one whose position is out of range or malformed is
``invalid``, reported with the reason rather than passed off as missing.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from PIL import ExifTags, Image, UnidentifiedImageError

from workbench.errors import InputError

_GPS = ExifTags.GPS
# Seconds are stored as n / 10000: 1e-4 arc-seconds is about 3 mm, far below GPS accuracy.
_SECONDS_DENOMINATOR = 10_000


@dataclass(frozen=True)
class ExifGps:
    """The GPS position in a photo's EXIF, or why there is none.

    status: "ok" (lat, lon in degrees), "missing" (no GPS IFD, or one without a position,
    as cameras without a fix write) or "invalid" (a position is there but unusable: out of
    range, zero denominators, malformed rationals, a missing or unknown N/S, E/W reference);
    reason: one line saying why it is missing or invalid.
    """

    status: str
    lat: float | None = None
    lon: float | None = None
    reason: str = ""

    @property
    def latlon(self) -> tuple[float, float] | None:
        return (self.lat, self.lon) if self.status == "ok" else None

    def message(self) -> str:
        """What to tell the user: "" when usable, else "EXIF GPS is invalid: ..." / "no GPS in EXIF"."""
        if self.status == "invalid":
            return f"EXIF GPS is invalid: {self.reason}"
        return "no GPS in EXIF" if self.status == "missing" else ""


def exif_gps(source: str | Path | bytes | BinaryIO, name: str | None = None) -> ExifGps:
    """The EXIF GPS position of an image (``ExifGps``: ok / missing / invalid with a reason).

    ``source``: a path, the file's bytes (e.g. an upload) or a binary file object; ``name``:
    what to call it in messages. S latitudes and W longitudes come back negative. Raises
    InputError (naming the file) if the data is not an image Pillow can open.
    """
    from workbench.data.images import SUPPORTED_FORMATS, _label

    label = _label(source, name)
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with Image.open(stream) as image:
            gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise InputError(f"could not read {label}: not an image ({SUPPORTED_FORMATS} are "
                         "supported)") from None
    has_lat, has_lon = _GPS.GPSLatitude in gps, _GPS.GPSLongitude in gps
    if not gps or not (has_lat or has_lon):
        return ExifGps("missing", reason="no GPS position in the EXIF")
    if not (has_lat and has_lon):
        present, absent = ("latitude", "longitude") if has_lat else ("longitude", "latitude")
        return ExifGps("invalid", reason=f"it has a {present} but no {absent}")
    try:
        lat = _signed_degrees(gps[_GPS.GPSLatitude], gps.get(_GPS.GPSLatitudeRef), "N", "S", "latitude")
        lon = _signed_degrees(gps[_GPS.GPSLongitude], gps.get(_GPS.GPSLongitudeRef), "E", "W", "longitude")
    except _InvalidGps as exc:
        return ExifGps("invalid", reason=str(exc))
    if not -90 <= lat <= 90:
        return ExifGps("invalid", reason=f"latitude {lat:g} is outside [-90, 90]")
    if not -180 <= lon <= 180:
        return ExifGps("invalid", reason=f"longitude {lon:g} is outside [-180, 180]")
    return ExifGps("ok", lat, lon)


def read_exif_gps(source: str | Path | bytes | BinaryIO, name: str | None = None) -> tuple[float, float] | None:
    """(lat, lon) in degrees from the EXIF GPS tags of an image, or None if it has none.

    Raises InputError "EXIF GPS is invalid: <reason>" when a position is present but
    unusable (see ``exif_gps``), and InputError if the data is not an image.
    """
    gps = exif_gps(source, name)
    if gps.status == "invalid":
        raise InputError(gps.message())
    return gps.latlon


class _InvalidGps(ValueError):
    pass


def _signed_degrees(dms: Any, ref: Any, positive: str, negative: str, what: str) -> float:
    """Degrees from EXIF (deg, min, sec) rationals and a reference letter; raises _InvalidGps."""
    parts = dms if isinstance(dms, (tuple, list)) else (dms,)  # some writers store one value
    if not 1 <= len(parts) <= 3:
        raise _InvalidGps(f"the {what} has {len(parts)} values, expected degrees, minutes, seconds")
    values = [_rational(p, what) for p in parts]
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise _InvalidGps(f"the {what} has a negative or non-finite value {values}")
    if any(v >= 60 for v in values[1:]):
        raise _InvalidGps(f"the {what}'s minutes / seconds {values[1:]} are not below 60")
    degrees = sum(v / 60**i for i, v in enumerate(values))
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "ignore")
    ref = ref.strip("\x00 ").upper() if isinstance(ref, str) else ""
    if not ref:
        raise _InvalidGps(f"the {what} has no {positive}/{negative} reference")
    if ref not in (positive, negative):
        raise _InvalidGps(f"the {what} reference is {ref!r}, expected {positive} or {negative}")
    return -degrees if ref == negative else degrees


def _rational(part: Any, what: str) -> float:
    """One EXIF rational (Pillow's IFDRational, a (num, den) pair or a number) as a float."""
    if isinstance(part, tuple):
        if len(part) != 2:
            raise _InvalidGps(f"the {what} has a malformed rational {part!r}")
        numerator, denominator = part
    else:
        numerator, denominator = getattr(part, "numerator", part), getattr(part, "denominator", 1)
    try:
        numerator, denominator = float(numerator), float(denominator)
    except (TypeError, ValueError):
        raise _InvalidGps(f"the {what} has a malformed rational {part!r}") from None
    if denominator == 0:
        raise _InvalidGps(f"the {what} has a zero denominator ({numerator:g}/0)")
    return numerator / denominator


def _dms_rationals(value: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """|value| degrees as ((deg, 1), (min, 1), (sec * 10000, 10000)), in exact integers."""
    total = round(abs(value) * 3600 * _SECONDS_DENOMINATOR)  # in 1e-4 arc-seconds
    degrees, rest = divmod(total, 3600 * _SECONDS_DENOMINATOR)
    minutes, seconds = divmod(rest, 60 * _SECONDS_DENOMINATOR)
    return (degrees, 1), (minutes, 1), (seconds, _SECONDS_DENOMINATOR)


def gps_exif(lat: float, lon: float, description: str | None = None,
             artist: str | None = None, copyright: str | None = None) -> bytes:
    """EXIF bytes carrying a GPS position (and optional text tags), for ``Image.save(exif=...)``.

    lat, lon in degrees (validated); the sign becomes the N/S, E/W reference.
    """
    import piexif

    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InputError(f"GPS position out of range: lat={lat}, lon={lon} "
                         "(lat must be in [-90, 90], lon in [-180, 180])")
    zeroth = {}
    for tag, text in ((piexif.ImageIFD.ImageDescription, description),
                      (piexif.ImageIFD.Artist, artist), (piexif.ImageIFD.Copyright, copyright)):
        if text:
            zeroth[tag] = text.encode("utf-8")
    gps = {
        piexif.GPSIFD.GPSVersionID: (2, 3, 0, 0),
        piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S",
        piexif.GPSIFD.GPSLatitude: _dms_rationals(lat),
        piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W",
        piexif.GPSIFD.GPSLongitude: _dms_rationals(lon),
        piexif.GPSIFD.GPSMapDatum: b"WGS-84",
    }
    return piexif.dump({"0th": zeroth, "Exif": {}, "GPS": gps, "1st": {}, "thumbnail": None})
