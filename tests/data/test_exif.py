"""EXIF GPS: write with gps_exif, read back with exif_gps / read_exif_gps (S/W references),
and missing GPS told apart from present-but-invalid GPS."""
import io
import re

import piexif
import pytest
from PIL import Image

from workbench.data.exif import exif_gps, gps_exif, read_exif_gps
from workbench.errors import InputError


def jpeg_bytes(exif: bytes | None = None, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 100, 50)).save(buffer, fmt, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


@pytest.mark.parametrize("lat, lon", [
    (39.9999, 116.2728),  # N, E
    (-34.6037, -58.3816),  # S, W
    (51.4787, -0.2956),  # N, W
    (-41.0, 174.0),  # S, E
    (0.0, 0.0), (90.0, -180.0), (-89.999999, 179.999999),
])
def test_round_trip(lat, lon, tmp_path):
    data = jpeg_bytes(gps_exif(lat, lon, description="test"))
    assert read_exif_gps(data) == pytest.approx((lat, lon), abs=1e-7)  # 1e-4 arc-seconds
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    assert read_exif_gps(path) == pytest.approx((lat, lon), abs=1e-7)
    assert read_exif_gps(str(path)) == pytest.approx((lat, lon), abs=1e-7)
    with open(path, "rb") as f:
        assert read_exif_gps(f) == pytest.approx((lat, lon), abs=1e-7)


def test_references_carry_the_sign():
    exif = piexif.load(gps_exif(-12.5, -45.25))["GPS"]
    assert exif[piexif.GPSIFD.GPSLatitudeRef] == b"S"
    assert exif[piexif.GPSIFD.GPSLongitudeRef] == b"W"
    assert exif[piexif.GPSIFD.GPSLatitude] == ((12, 1), (30, 1), (0, 10000))
    assert exif[piexif.GPSIFD.GPSLongitude] == ((45, 1), (15, 1), (0, 10000))


def test_png_with_exif_chunk():
    assert read_exif_gps(jpeg_bytes(gps_exif(-10.5, 20.25), fmt="PNG")) == (-10.5, 20.25)


def gps_ifd(lat=((10, 1), (0, 1), (0, 1)), lon=((10, 1), (0, 1), (0, 1)), lat_ref=b"N", lon_ref=b"E") -> bytes:
    gps = {}
    for tag, value in ((piexif.GPSIFD.GPSLatitude, lat), (piexif.GPSIFD.GPSLongitude, lon),
                       (piexif.GPSIFD.GPSLatitudeRef, lat_ref), (piexif.GPSIFD.GPSLongitudeRef, lon_ref)):
        if value is not None:
            gps[tag] = value
    return piexif.dump({"GPS": gps})


def test_missing_gps_is_missing():
    for exif in (None, piexif.dump({"0th": {piexif.ImageIFD.Artist: b"me"}}),
                 piexif.dump({"GPS": {piexif.GPSIFD.GPSVersionID: (2, 3, 0, 0)}})):  # no fix
        gps = exif_gps(jpeg_bytes(exif))
        assert gps.status == "missing" and gps.latlon is None and gps.message() == "no GPS in EXIF"
        assert read_exif_gps(jpeg_bytes(exif)) is None


@pytest.mark.parametrize("exif, reason", [pytest.param(*case, id=str(i)) for i, case in enumerate([
    (gps_ifd(lat=((95, 1), (0, 1), (0, 1))), r"latitude 95 is outside \[-90, 90\]"),
    (gps_ifd(lon=((181, 1), (30, 1), (0, 1))), r"longitude 181.5 is outside \[-180, 180\]"),
    (gps_ifd(lat=((10, 0), (0, 1), (0, 1))), r"latitude has a zero denominator \(10/0\)"),
    (gps_ifd(lon=((10, 1), (0, 0), (0, 1))), r"longitude has a zero denominator"),
    (gps_ifd(lat=((10, 1), (75, 1), (0, 1))), r"minutes / seconds .* not below 60"),
    (gps_ifd(lat=((1, 1), (2, 1), (3, 1), (4, 1))), r"latitude has 4 values"),
    (gps_ifd(lat_ref=None), r"latitude has no N/S reference"),
    (gps_ifd(lon_ref=b"Q"), r"longitude reference is 'Q', expected E or W"),
    (gps_ifd(lon=None), r"a latitude but no longitude"),
])])
def test_present_but_invalid_gps_is_invalid_with_a_reason(exif, reason):
    data = jpeg_bytes(exif)
    gps = exif_gps(data)
    assert gps.status == "invalid" and gps.latlon is None
    assert re.search(reason, gps.reason), gps.reason
    assert "\n" not in gps.reason and gps.message().startswith("EXIF GPS is invalid: ")
    with pytest.raises(InputError, match="^EXIF GPS is invalid: .*" + reason):
        read_exif_gps(data)


def test_valid_gps_is_ok():
    gps = exif_gps(jpeg_bytes(gps_exif(-33.5, 151.25)))
    assert gps.status == "ok" and gps.latlon == (-33.5, 151.25) and gps.message() == ""


def test_not_an_image_is_an_input_error_naming_the_file():
    with pytest.raises(InputError, match=r"could not read 'notes\.txt': not an image"):
        read_exif_gps(b"this is not a JPEG", name="notes.txt")
    with pytest.raises(InputError, match=r"could not read the uploaded file: not an image") as info:
        exif_gps(io.BytesIO(b"this is not a JPEG"))
    assert "BytesIO" not in str(info.value)
    with pytest.raises(InputError, match="latitude|lat"):
        gps_exif(91.0, 0.0)
