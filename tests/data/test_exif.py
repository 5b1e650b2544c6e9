"""EXIF GPS: write with gps_exif, read back with read_exif_gps, including S/W references."""
import io

import piexif
import pytest
from PIL import Image

from workbench.data.exif import gps_exif, read_exif_gps
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


def test_missing_or_malformed_gps_gives_none():
    assert read_exif_gps(jpeg_bytes()) is None  # no EXIF at all
    no_gps = piexif.dump({"0th": {piexif.ImageIFD.Artist: b"me"}})
    assert read_exif_gps(jpeg_bytes(no_gps)) is None
    only_lat = piexif.dump({"GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N",
                                    piexif.GPSIFD.GPSLatitude: ((10, 1), (0, 1), (0, 1))}})
    assert read_exif_gps(jpeg_bytes(only_lat)) is None
    zero_denominator = piexif.dump({"GPS": {
        piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((10, 0), (0, 1), (0, 1)),
        piexif.GPSIFD.GPSLongitudeRef: b"E", piexif.GPSIFD.GPSLongitude: ((10, 1), (0, 1), (0, 1)),
    }})
    assert read_exif_gps(jpeg_bytes(zero_denominator)) is None
    out_of_range = piexif.dump({"GPS": {
        piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((95, 1), (0, 1), (0, 1)),
        piexif.GPSIFD.GPSLongitudeRef: b"E", piexif.GPSIFD.GPSLongitude: ((10, 1), (0, 1), (0, 1)),
    }})
    assert read_exif_gps(jpeg_bytes(out_of_range)) is None


def test_not_an_image_is_an_input_error():
    with pytest.raises(InputError, match="could not read .* as an image"):
        read_exif_gps(b"this is not a JPEG")
    with pytest.raises(InputError, match="latitude|lat"):
        gps_exif(91.0, 0.0)
