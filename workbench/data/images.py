"""Decode any image a user can upload into faithful 8-bit RGB: ``decode_image``.

Every place that reads a user's image (the Geolocate page, ``predict``, the geolocator's
data sets) goes through ``decode_image`` so that a photo looks the same everywhere.

Pillow's ``convert("RGB")`` is wrong for several modes, so each family has a rule:

| mode | rule |
| --- | --- |
| 1, L, P, RGB, CMYK, YCbCr, RGBX | Pillow's conversion (exact for these) |
| LA, La, PA, RGBA, RGBa, P / L / RGB with a transparency key | alpha composited on **white**: a transparent logo or scan shows as on paper, the way browsers and viewers show it on a light page; black would turn dark ink on a transparent background invisible |
| I;16, I;16L, I;16B, I;16N (16-bit grey) | ``round(v / 257)``: the type's range 0..65535 onto 0..255 (Pillow clips at 255, so almost every 16-bit image came out white) |
| I (32-bit signed int) | by the values' range: within 0..255 as is, within 0..65535 as 16-bit (``/ 257``), anything else (negative or wider) min-max stretched; the declared range of int32 would map every real image to black |
| F (32-bit float) | values within [0, 1] (the usual float image convention) times 255; anything else min-max stretched; NaN / inf become 0 |

EXIF orientation (all 8 values) is applied; an animated image (GIF, WebP, APNG) gives its
first frame. JPEGs much larger than the caller needs are decoded at 1/2, 1/4 or 1/8 scale
(libjpeg's draft mode); other formats above ``max_pixels`` are refused with a message.
Every failure is an ``InputError`` whose one line names the file (the upload's name or the
path), never an internal object.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from workbench.errors import InputError

SUPPORTED_FORMATS = "PNG, JPEG, TIFF, WebP, BMP, GIF"
UPLOAD_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "webp", "bmp", "gif"]  # file uploader extensions
MAX_DECODED_PIXELS = 64_000_000  # non-JPEG images beyond this are refused (~190 MB as RGB)
BACKGROUND = 255  # alpha is composited on white (see the module docstring)

ImageSource = Union[str, Path, bytes, bytearray, BinaryIO, Image.Image]

_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_UINT16_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                Image.DecompressionBombError)


def decode_image(source: ImageSource, name: str | None = None, target_size: int | None = None,
                 max_pixels: int = MAX_DECODED_PIXELS) -> Image.Image:
    """An image as 8-bit RGB (mode "RGB"), EXIF orientation applied, first frame only.

    source: a path, the file's bytes (an upload), a binary file object or a PIL image.
    name: what to call the file in messages (default: the path, or the file object's
    ``name``). target_size: the smallest side the caller needs (JPEG draft decoding).
    Raises InputError (one line naming the file) for a missing, empty, non-image, corrupt,
    truncated or oversized file.
    """
    label = _label(source, name)
    if isinstance(source, Image.Image):
        return _decode_opened(source, label, target_size, max_pixels)
    stream = _open_stream(source, label)
    try:
        with Image.open(stream) as image:
            return _decode_opened(image, label, target_size, max_pixels)
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"could not read {label}: it is too large to decode safely; downscale it") from None
    except UnidentifiedImageError:
        raise InputError(f"could not read {label}: not an image ({SUPPORTED_FORMATS} are supported)") from None
    except _READ_ERRORS as exc:
        raise InputError(f"could not read {label}: {_reason(exc)}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from a decoded image of any mode, by the rules in the module docstring."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image.copy()  # never the opened file's own image, which its context closes
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)  # [H, W, 4]
        alpha = rgba[..., 3:] / 255.0
        rgb = rgba[..., :3] * alpha + BACKGROUND * (1.0 - alpha)
        return _from_array(rgb)
    if mode in _UINT16_MODES:
        return _from_array(_as_array(image) / 257.0)
    if mode == "I":
        return _from_array(_scale_int(_as_array(image)))
    if mode == "F":
        return _from_array(_scale_float(_as_array(image)))
    return image.convert("RGB")


def _decode_opened(image: Image.Image, label: str, target_size: int | None,
                   max_pixels: int) -> Image.Image:
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # animated: the first frame
    if image.format == "JPEG" and target_size:
        # draft keeps the decoded size >= the requested one; orientation swaps w / h, so ask
        # for a square of the smaller side
        image.draft("RGB", (target_size, target_size))
    elif image.width * image.height > max_pixels:
        raise InputError(f"could not read {label}: it is too large ({image.width} x {image.height} "
                         f"pixels, limit {max_pixels // 1_000_000} megapixels for "
                         f"{image.format or 'this format'}); downscale it or save it as JPEG")
    image.load()  # the full decode, so that corrupt data fails here
    try:
        image = ImageOps.exif_transpose(image)
    except (SyntaxError, ValueError, TypeError, KeyError):
        pass  # unreadable EXIF: the pixels are fine, keep them as stored
    try:
        return to_rgb(image)
    except ValueError as exc:  # a colour mode Pillow cannot convert (e.g. LAB)
        raise InputError(f"could not read {label}: unsupported colour mode {image.mode} ({_reason(exc)}); "
                         "save it as an RGB PNG or JPEG") from None


def _as_array(image: Image.Image) -> np.ndarray:
    """[H, W] float64 pixel values of a single-band image, byte order resolved."""
    return np.asarray(image).astype(np.float64)


def _scale_int(values: np.ndarray) -> np.ndarray:
    """32-bit integers -> 0..255 by their range (8-bit, 16-bit or min-max)."""
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if lo >= 0 and hi <= 255:
        return values
    if lo >= 0 and hi <= 65535:
        return values / 257.0
    return _stretch(values, lo, hi)


def _scale_float(values: np.ndarray) -> np.ndarray:
    """Floats -> 0..255: [0, 1] times 255, otherwise min-max over the finite values."""
    finite = np.isfinite(values)
    values = np.where(finite, values, 0.0)
    if not finite.any():
        return values
    lo, hi = float(values[finite].min()), float(values[finite].max())
    if lo >= 0 and hi <= 1:
        return values * 255.0
    return np.where(finite, _stretch(values, lo, hi), 0.0)


def _stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)


def _from_array(values: np.ndarray) -> Image.Image:
    """RGB image from [H, W] grey or [H, W, 3] values in 0..255 (rounded, clipped)."""
    pixels = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return Image.fromarray(pixels, "RGB")


def _label(source: ImageSource, name: str | None) -> str:
    """'holiday.jpg': the name for messages, quoted."""
    if name is None:
        if isinstance(source, (str, Path)):
            name = str(source)
        elif isinstance(getattr(source, "name", None), str):  # open files, Streamlit uploads
            name = source.name
        elif isinstance(source, Image.Image):
            name = getattr(source, "filename", "") or "the image"
        else:
            name = "the uploaded file"
    return repr(str(name)) if name not in ("the image", "the uploaded file") else name


def _open_stream(source: ImageSource, label: str) -> BinaryIO | Path:
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise InputError(f"could not read {label}: the file is empty; upload a {SUPPORTED_FORMATS} image")
        return io.BytesIO(bytes(source))
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"could not read {label}: file not found")
        if path.stat().st_size == 0:
            raise InputError(f"could not read {label}: the file is empty")
        return path
    if not hasattr(source, "read"):
        raise InputError(f"could not read {label}: expected a path, bytes, a file or a PIL image, "
                         f"got {type(source).__name__}")
    data = source.read()
    if not data:
        raise InputError(f"could not read {label}: the file is empty; upload a {SUPPORTED_FORMATS} image")
    return io.BytesIO(data)


def _reason(exc: BaseException) -> str:
    """One line on why decoding failed."""
    text = str(exc).strip().splitlines()
    reason = text[0][:160] if text else type(exc).__name__
    if "truncat" in reason.lower():
        return "the file is truncated (an incomplete download or copy?)"
    if isinstance(exc, (SyntaxError, EOFError)) or "broken" in reason.lower() or "corrupt" in reason.lower():
        return f"the image data is corrupt ({reason})"
    return f"the image data could not be decoded ({reason})"
