"""decode_image: every PIL mode a user can upload becomes the expected 8-bit RGB pixels,
round-tripped through the file format users upload it in; failures name the file."""
import io

import numpy as np
import pytest
from PIL import Image

from workbench.data.images import decode_image
from workbench.errors import InputError


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def rgb(data, **kwargs) -> np.ndarray:
    image = decode_image(data, name="test", **kwargs)
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def grey(values) -> np.ndarray:
    """[H, W] expected grey levels -> [H, W, 3]."""
    return np.repeat(np.asarray(values, int)[..., None], 3, axis=2)


# -- modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_grey_is_scaled_by_its_range_not_clipped(fmt):
    values = np.array([[0, 257, 1000, 32768], [40000, 65278, 65535, 128]], np.uint16)
    data = encode(Image.fromarray(values), fmt)
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    # PIL's convert("RGB") would clip: 1000 -> 255, 128 -> 128
    assert np.array_equal(rgb(data), grey(np.rint(values / 257.0)))


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_16bit_byte_orders_in_memory_and_tiff(mode):
    image = Image.new(mode, (3, 1))
    for x, v in enumerate((65535, 514, 0)):
        image.putpixel((x, 0), v)
    expected = grey([[255, 2, 0]])
    assert np.array_equal(rgb(image), expected)
    assert np.array_equal(rgb(encode(image, "TIFF")), expected)


def test_32bit_int_tiff_rule():
    # within 0..255: as is; within 0..65535: as 16-bit; otherwise min-max
    cases = [
        (np.array([[0, 17, 255]], np.int32), [[0, 17, 255]]),
        (np.array([[0, 514, 65535]], np.int32), [[0, 2, 255]]),
        (np.array([[-1000, 0, 1000]], np.int32), [[0, 128, 255]]),
        (np.array([[0, 100_000, 200_000]], np.int32), [[0, 128, 255]]),
    ]
    for values, expected in cases:
        data = encode(Image.fromarray(values, "I"), "TIFF")
        assert Image.open(io.BytesIO(data)).mode == "I"
        assert np.array_equal(rgb(data), grey(expected)), values


def test_float_tiff_rule():
    unit = np.array([[0.0, 0.25, 0.5, 1.0]], np.float32)
    data = encode(Image.fromarray(unit, "F"), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    assert np.array_equal(rgb(data), grey([[0, 64, 128, 255]]))  # x 255, rounded
    wide = np.array([[-2.0, 0.0, 2.0, np.nan]], np.float32)  # outside [0, 1]: min-max; NaN -> 0
    assert np.array_equal(rgb(encode(Image.fromarray(wide, "F"), "TIFF")), grey([[0, 128, 255, 0]]))
    flat = np.full((1, 2), 7.5, np.float32)
    assert np.array_equal(rgb(encode(Image.fromarray(flat, "F"), "TIFF")), grey([[0, 0]]))


def test_rgba_is_composited_on_white():
    pixels = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 255, 128], [10, 20, 30, 51]]], np.uint8)
    out = rgb(encode(Image.fromarray(pixels, "RGBA"), "PNG"))
    a = pixels[..., 3:] / 255.0
    expected = np.rint(pixels[..., :3] * a + 255 * (1 - a)).astype(int)
    assert np.array_equal(out, expected)
    assert out[0, 1].tolist() == [255, 255, 255]  # fully transparent: the background
    assert out[0, 2].tolist() == [127, 127, 255]


def test_grey_alpha_is_composited_on_white():
    image = Image.new("LA", (2, 1))
    image.putpixel((0, 0), (0, 255))
    image.putpixel((1, 0), (0, 0))  # transparent black: white, not black
    assert np.array_equal(rgb(encode(image, "PNG")), grey([[0, 255]]))


def palette_image() -> Image.Image:
    image = Image.new("P", (3, 1))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    for x in range(3):
        image.putpixel((x, 0), x)
    return image


def test_palette_without_and_with_transparency():
    image = palette_image()
    expected = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]])
    assert np.array_equal(rgb(encode(image, "PNG")), expected)
    assert np.array_equal(rgb(encode(image, "GIF")), expected)
    # index 1 transparent (PNG tRNS chunk): shows as the white background
    with_key = rgb(encode(image, "PNG", transparency=1))
    assert with_key.tolist() == [[[255, 0, 0], [255, 255, 255], [0, 0, 255]]]


def test_palette_with_alpha_pa_and_png_per_entry_alpha():
    image = palette_image().convert("PA")
    image.putpixel((2, 0), (2, 0))  # blue, fully transparent
    assert rgb(image).tolist() == [[[255, 0, 0], [0, 255, 0], [255, 255, 255]]]
    # PNG cannot store PA; its equivalent is a palette with an alpha per entry (tRNS)
    data = encode(palette_image(), "PNG", transparency=bytes([255, 128, 0]))
    assert Image.open(io.BytesIO(data)).mode == "P"
    assert rgb(data).tolist() == [[[255, 0, 0], [127, 255, 127], [255, 255, 255]]]


def test_bilevel_and_grey():
    bits = Image.new("1", (2, 1))
    bits.putpixel((1, 0), 1)
    assert np.array_equal(rgb(encode(bits, "PNG")), grey([[0, 255]]))
    assert np.array_equal(rgb(encode(bits, "BMP")), grey([[0, 255]]))
    levels = Image.fromarray(np.array([[0, 1, 128, 255]], np.uint8), "L")
    assert np.array_equal(rgb(encode(levels, "PNG")), grey([[0, 1, 128, 255]]))


def test_rgb_png_is_exact():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 13
    assert np.array_equal(rgb(encode(Image.fromarray(pixels, "RGB"), "PNG")), pixels)


CMYK = [(0, 0, 0, 0), (255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255)]
CMYK_RGB = [[255, 255, 255], [0, 255, 255], [255, 0, 255], [255, 255, 0], [0, 0, 0]]


def cmyk_image(block: int = 1) -> Image.Image:
    pixels = np.repeat(np.repeat(np.array([CMYK], np.uint8), block, 0), block, 1)
    return Image.frombytes("CMYK", (pixels.shape[1], pixels.shape[0]), pixels.tobytes())


def test_cmyk_tiff_exact_and_jpeg_close():
    assert rgb(encode(cmyk_image(), "TIFF")).tolist() == [CMYK_RGB]
    block = 16  # JPEG works on 8 x 8 blocks: sample each colour in the middle of its own block
    out = rgb(encode(cmyk_image(block), "JPEG", quality=95))
    assert Image.open(io.BytesIO(encode(cmyk_image(block), "JPEG"))).mode == "CMYK"
    centres = out[block // 2, block // 2::block]
    assert np.abs(centres - np.array(CMYK_RGB)).max() <= 6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(orientation):
    # a 2 x 3 grid of 16 px blocks with distinct colours, stored as JPEG with the tag
    colours = np.array([[[250, 0, 0], [0, 250, 0], [0, 0, 250]],
                        [[250, 250, 0], [0, 250, 250], [250, 0, 250]]], np.uint8)
    stored = np.repeat(np.repeat(colours, 16, 0), 16, 1)  # [32, 48, 3]
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif)
    # what a viewer shows: the inverse of the orientation's storage transform
    shown = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
             8: lambda a: np.rot90(a, 1)}[orientation](colours)
    out = rgb(data)
    assert out.shape == (shown.shape[0] * 16, shown.shape[1] * 16, 3)
    assert np.abs(out[8::16, 8::16] - shown).max() <= 8


def test_orientation_of_a_16bit_png():
    values = np.array([[0, 65535]], np.uint16)  # black | white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise: black on top
    out = rgb(encode(Image.fromarray(values), "PNG", exif=exif))
    assert out[..., 0].tolist() == [[0], [255]]


def test_animated_gif_gives_the_first_frame():
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = rgb(buffer.getvalue())
    assert out[0, 0].tolist() == [255, 0, 0]


def test_webp_and_bmp():
    pixels = np.full((8, 8, 3), (30, 160, 90), np.uint8)
    assert np.abs(rgb(encode(Image.fromarray(pixels), "WEBP", lossless=True)) - pixels).max() == 0
    assert np.array_equal(rgb(encode(Image.fromarray(pixels), "BMP")), pixels)


def test_pil_image_sources_are_converted_too():
    values = np.array([[0, 65535]], np.uint16)
    assert rgb(Image.fromarray(values))[..., 0].tolist() == [[0, 255]]
    rgba = Image.new("RGBA", (1, 1), (0, 0, 0, 0))
    assert rgb(rgba).tolist() == [[[255, 255, 255]]]


# -- failures name the file -----------------------------------------------------------------


JPEG = encode(Image.new("RGB", (64, 64), (10, 20, 30)), "JPEG")
PNG = encode(Image.fromarray(np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3).astype(np.uint8)), "PNG")
CORRUPT_PNG = PNG[:60] + bytes(b ^ 0xFF for b in PNG[60:200]) + PNG[200:]  # damaged pixel data


@pytest.mark.parametrize("data, reason", [
    (b"this is not an image", r"not an image \(PNG, JPEG, TIFF, WebP, BMP, GIF are supported\)"),
    (b"", r"the file is empty"),
    (JPEG[:300], r"the file is truncated"),
    (CORRUPT_PNG, r"the image data is corrupt"),
])
@pytest.mark.parametrize("wrap", ["bytes", "file", "named file"])
def test_failures_name_the_upload_in_one_line(data, reason, wrap):
    if wrap == "bytes":
        source, kwargs = data, {"name": "holiday.jpg"}
    elif wrap == "file":
        source, kwargs = io.BytesIO(data), {"name": "holiday.jpg"}
    else:  # a Streamlit UploadedFile-like object: a file with a name attribute
        source, kwargs = io.BytesIO(data), {}
        source.name = "holiday.jpg"
    with pytest.raises(InputError, match=r"could not read 'holiday\.jpg': .*" + reason) as info:
        decode_image(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "BytesIO" not in message and " at 0x" not in message


def test_failures_name_the_path(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"could not read '.*empty\.png': the file is empty"):
        decode_image(empty)
    notes = tmp_path / "notes.png"
    notes.write_text("hello")
    with pytest.raises(InputError, match=r"could not read '.*notes\.png': not an image"):
        decode_image(str(notes))
    with open(notes, "rb") as f:  # an open file is named by its path
        with pytest.raises(InputError, match=r"notes\.png': not an image"):
            decode_image(f)
    with pytest.raises(InputError, match=r"could not read '.*missing\.jpg': file not found"):
        decode_image(tmp_path / "missing.jpg")


def test_an_unnamed_upload_is_called_the_uploaded_file():
    with pytest.raises(InputError, match=r"^could not read the uploaded file: not an image"):
        decode_image(io.BytesIO(b"nope"))
