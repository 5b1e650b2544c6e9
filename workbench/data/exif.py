"""GPS position in a photo's EXIF: read it (``read_exif_gps``) and write it (``gps_exif``).

EXIF stores latitude and longitude as unsigned degree / minute / second rationals plus a
reference letter (N/S, E/W) that carries the sign; a photo without a GPS IFD, or with a
malformed one, has no usable position (``None``), which is common and not an error.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, BinaryIO

from PIL import ExifTags, Image, UnidentifiedImageError

from workbench.errors import InputError

_GPS = ExifTags.GPS
# Seconds are stored as n / 10000: 1e-4 arc-seconds is about 3 mm, far below GPS accuracy.
_SECONDS_DENOMINATOR = 10_000


def read_exif_gps(source: str | Path | bytes | BinaryIO) -> tuple[float, float] | None:
    """(lat, lon) in degrees from the EXIF GPS tags of an image, or None if it has none.

    ``source``: a path, the file's bytes (e.g. an upload) or a binary file object.
    S latitudes and W longitudes come back negative. Returns None when the GPS IFD is
    missing, incomplete, malformed (zero denominators) or out of range. Raises InputError if
    the data is not an image Pillow can open.
    """
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with Image.open(stream) as image:
            gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        name = source if isinstance(source, (str, Path)) else "the uploaded data"
        raise InputError(f"could not read {name} as an image ({exc}); "
                         "upload a JPEG, PNG or TIFF file") from None
    lat = _signed_degrees(gps.get(_GPS.GPSLatitude), gps.get(_GPS.GPSLatitudeRef), "N", "S")
    lon = _signed_degrees(gps.get(_GPS.GPSLongitude), gps.get(_GPS.GPSLongitudeRef), "E", "W")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def _signed_degrees(dms: Any, ref: Any, positive: str, negative: str) -> float | None:
    """Degrees from EXIF (deg, min, sec) rationals and a reference letter; None if malformed."""
    if dms is None:
        return None
    parts = dms if isinstance(dms, (tuple, list)) else (dms,)  # some writers store one value
    try:
        values = [float(p[0]) / float(p[1]) if isinstance(p, tuple) else float(p) for p in parts]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not 1 <= len(values) <= 3 or not all(math.isfinite(v) and v >= 0 for v in values):
        return None
    degrees = sum(v / 60**i for i, v in enumerate(values))
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "ignore")
    ref = (ref or positive).strip("\x00 ").upper()  # a missing ref means N / E by convention
    if ref not in (positive, negative):
        return None
    return -degrees if ref == negative else degrees


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
