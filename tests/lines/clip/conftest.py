"""A tiny Flickr30k-layout folder (generated images and captions) for the CLIP tests."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


def make_flickr(folder, n_images: int = 48, size: int = 24, bad_row: bool = True):
    """Images of one colour with a noisy square; five captions naming the colour and shape."""
    rng = np.random.default_rng(0)
    images = folder / "flickr30k_images"
    images.mkdir(parents=True)
    lines = ["image_name| comment_number| comment"]
    names = list(COLOURS)
    for i in range(n_images):
        colour = names[i % len(names)]
        big = i % 2 == 0
        a = np.full((size, size, 3), COLOURS[colour], np.uint8)
        a = np.clip(a + rng.integers(-20, 20, a.shape), 0, 255).astype(np.uint8)
        lo, hi = (4, size - 4) if big else (size // 2 - 3, size // 2 + 3)
        a[lo:hi, lo:hi] = 255
        mode = "L" if i == 1 else ("RGBA" if i == 2 else "RGB")
        Image.fromarray(a).convert(mode).save(images / f"{i:04d}.png")
        for k in range(5):
            lines.append(f"{i:04d}.png| {k}| a {colour} picture with a {'big' if big else 'small'} white square {k}")
    if bad_row:
        lines.append("0000.png| 5|")  # the real file has a row like this
    (folder / "results.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def flickr(tmp_path_factory):
    return make_flickr(tmp_path_factory.mktemp("flickr") / "flickr30k")
