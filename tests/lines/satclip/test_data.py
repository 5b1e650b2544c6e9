"""The SatCLIP line's data: S2-100K GeoTIFFs, demo geo-patches bands, batch gathering,
vectorised augmentations and the frozen-feature cache."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from workbench.errors import InputError, NotFoundError
from workbench.lines.satclip import data as sd
from workbench.paths import REPO_ROOT


def write_tiny_s2_100k(folder: Path, n: int, bands: int = 13, size: int = 32, seed: int = 0,
                       layout: str = "chw") -> np.ndarray:
    """Real GeoTIFFs + index.csv (fn,lon,lat); returns the DN [n, bands, size, size]."""
    return sd.make_s2_100k_sample(folder, n, bands=bands, size=size, seed=seed, layout=layout)


# -- S2-100K -------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["chw", "hwc"])
def test_s2_round_trip_both_axis_orders(tmp_path, layout):
    dn = write_tiny_s2_100k(tmp_path, 5, bands=13, size=32, layout=layout)
    index = sd.load_s2_index(tmp_path)
    assert list(index.columns) == ["path", "lat", "lon"] and len(index) == 5
    raw = pd.read_csv(tmp_path / "index.csv")
    np.testing.assert_allclose(index[["lat", "lon"]].to_numpy(), raw[["lat", "lon"]].to_numpy())
    full = sd.read_patches(index["path"].tolist(), 32)
    assert full.dtype == np.float32 and full.shape == (5, 13, 32, 32)
    np.testing.assert_array_equal(full, dn.astype(np.float32) / 10_000)
    crop = sd.read_patches(index["path"].tolist(), 16)  # center crop: pixels 8..23
    np.testing.assert_array_equal(crop, dn[:, :, 8:24, 8:24].astype(np.float32) / 10_000)


def test_s2_resize_and_b10(tmp_path):
    dn = write_tiny_s2_100k(tmp_path, 3, bands=12, size=32)
    paths = sd.load_s2_index(tmp_path)["path"].tolist()
    small = sd.read_patches(paths, 8, resize=True)
    assert small.shape == (3, 12, 8, 8)
    # antialiased 4x downsampling of uniform noise: close to the 4x4 block means
    blocks = dn.astype(np.float64).reshape(3, 12, 8, 4, 8, 4).mean(axis=(3, 5)) / 10_000
    assert np.abs(small - blocks).mean() < 0.05
    b13 = sd.read_patches(paths, 32, insert_b10=True)
    assert b13.shape == (3, 13, 32, 32) and not b13[:, 10].any()
    np.testing.assert_array_equal(b13[:, 11:], dn[:, 10:].astype(np.float32) / 10_000)
    assert sd.s2_band_names(12)[10] == "B11" and sd.s2_band_names(13)[10] == "B10"
    with pytest.raises(InputError, match="resize=True"):
        sd.read_patches(paths, 64)


@pytest.mark.parametrize("names", [("fn", "lon", "lat"), ("file", "lat", "lon"),
                                   ("path", "lon", "lat"), ("FN", "LAT", "LON")])
def test_s2_index_column_variants(tmp_path, names):
    """(file, first, second): the index written with those headers in that order."""
    write_tiny_s2_100k(tmp_path, 3, size=8)
    raw = pd.read_csv(tmp_path / "index.csv")
    file_col, *coords = names
    renamed = raw.rename(columns={"fn": file_col, **{c.lower(): c for c in coords}})
    renamed[[file_col, *coords]].to_csv(tmp_path / "index.csv", index=False)
    index = sd.load_s2_index(tmp_path)
    np.testing.assert_allclose(index["lat"], raw["lat"])
    np.testing.assert_allclose(index["lon"], raw["lon"])
    assert all(Path(p).is_file() for p in index["path"])


def test_s2_files_beside_the_index(tmp_path):
    """Without an images/ folder, file names resolve against the index's folder."""
    write_tiny_s2_100k(tmp_path / "s", 2, size=8)
    for f in (tmp_path / "s" / "images").iterdir():
        f.rename(tmp_path / "s" / f.name)
    (tmp_path / "s" / "images").rmdir()
    assert sd.load_s2_index(tmp_path / "s")["path"].map(lambda p: Path(p).is_file()).all()


def test_s2_errors(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        sd.load_s2_index(tmp_path / "nowhere")
    with pytest.raises(NotFoundError, match="no index.csv"):
        sd.load_s2_index(tmp_path)
    write_tiny_s2_100k(tmp_path, 4, size=8)
    raw = pd.read_csv(tmp_path / "index.csv")

    raw.drop(columns="lat").to_csv(tmp_path / "index.csv", index=False)
    with pytest.raises(InputError, match=r"lacks column\(s\) \['lat'\]"):
        sd.load_s2_index(tmp_path)

    bad = raw.copy()
    bad.loc[2, "lat"] = 123.0
    bad.to_csv(tmp_path / "index.csv", index=False)
    with pytest.raises(InputError, match=r"1 row\(s\) with lat outside \[-90, 90\].*first row 2 "
                                         r"\(00002.tif: lat=123.0\).*swapped"):
        sd.load_s2_index(tmp_path)

    raw.to_csv(tmp_path / "index.csv", index=False)
    (tmp_path / "images" / "00001.tif").unlink()
    (tmp_path / "images" / "00003.tif").unlink()
    with pytest.raises(NotFoundError, match=r"2 of 4 files .* missing, first .*00001.tif"):
        sd.load_s2_index(tmp_path)

    good, corrupt = tmp_path / "images" / "00000.tif", tmp_path / "images" / "00001.tif"
    whole = good.read_bytes()
    for broken in (whole[: len(whole) // 2], whole[:100], b"II*\x00 this is not a tiff"):
        corrupt.write_bytes(broken)  # truncated data, truncated IFD, bad first-page offset
        with pytest.raises(InputError, match=r"cannot read GeoTIFF .*00001.tif.*index.csv"):
            sd.read_patches([good, corrupt], 8)


def test_error_messages_are_one_line(tmp_path):
    write_tiny_s2_100k(tmp_path, 2, size=8)
    (tmp_path / "images" / "00000.tif").write_bytes(b"garbage")
    with pytest.raises(InputError) as info:
        sd.read_patches([tmp_path / "images" / "00000.tif"], 8)
    assert "\n" not in str(info.value)


# -- geo-patches ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def geo_patches_dir(tmp_path_factory) -> Path:
    built = REPO_ROOT / "data" / "geo-patches"
    if (built / "patches.csv").is_file() and (built / "bands.npy").is_file():
        return built
    from workbench.data.demo import build_demo

    root = tmp_path_factory.mktemp("demo")
    build_demo(root, only=["geo-patches"], n_patches=20, patch_size=16)
    return root / "geo-patches"


def test_geo_patch_bands(geo_patches_dir):
    from workbench.data.demo_patches import load_geo_patches

    patches = load_geo_patches(geo_patches_dir)
    rows = np.arange(min(12, len(patches.frame)))
    x = sd.load_geo_patch_bands(geo_patches_dir, rows)
    s = patches.bands.shape[-1]
    assert x.shape == (len(rows), 10, s, s) and x.dtype == np.float32
    assert len(sd.geo_patch_band_names()) == 10 and 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_allclose(x[:, :3], patches.rgb(rows) / 255, atol=1e-6)
    np.testing.assert_allclose(x[:, 3:9], patches.bands[rows, :6] / 255, atol=1e-6)
    mask = patches.bands[rows, 6]
    np.testing.assert_array_equal(x[:, 9], np.select([mask == 1, mask == 2], [1.0, 0.5], 0.0))
    onehot = sd.load_geo_patch_bands(geo_patches_dir, rows, land_mask="onehot", dtype=np.float16)
    assert onehot.shape[1] == 12 == len(sd.geo_patch_band_names("onehot")) and onehot.dtype == np.float16
    np.testing.assert_array_equal(onehot[:, 9:].sum(1), 1)
    np.testing.assert_array_equal(onehot[:, 9:].argmax(1), mask)


# -- batches -------------------------------------------------------------------------------
def test_tile_and_feature_batches():
    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (10, 4, 8, 8), dtype=torch.uint8, generator=g)
    latlon = torch.rand(10, 2, generator=g) * 90
    ds = sd.TileBatches(raw, latlon, ids=np.arange(100, 110), band_names=list("abcd"))
    assert ds.n_bands == 4 and len(ds) == 10
    batch = ds.__getitems__([3, 7, 3])
    assert batch["image"].shape == (3, 4, 8, 8) and batch["image"].dtype == torch.float32
    torch.testing.assert_close(batch["image"], raw[[3, 7, 3]].float() / 255)
    assert batch["latlon"].dtype == torch.float32 and batch["latlon"].shape == (3, 2)
    assert batch["row"].tolist() == [103, 107, 103]
    half = sd.TileBatches(raw.half() / 255, latlon)
    torch.testing.assert_close(half.__getitems__([3])["image"], batch["image"][:1], atol=1e-3, rtol=0)
    assert ds[7]["image"].shape == (4, 8, 8)

    feats = sd.FeatureBatches(torch.randn(10, 6).half(), latlon)
    fb = feats.__getitems__([0, 9])
    assert fb["features"].shape == (2, 6) and fb["features"].dtype == torch.float32
    assert fb["row"].tolist() == [0, 9]
    with pytest.raises(InputError, match=r"latlon has shape \(9, 2\)"):
        sd.TileBatches(raw, latlon[:9])

    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=sd.collate_batch)
    first = next(iter(loader))
    assert first["image"].shape == (4, 4, 8, 8) and first["row"].tolist() == [100, 101, 102, 103]


# -- augmentations -------------------------------------------------------------------------
def _batch(b=16, c=3, s=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, s, s, generator=g), torch.rand(b, 2, generator=g) * 100 - 50


def test_augment_shapes_and_determinism():
    images, latlon = _batch()
    a = sd.augment_batch(images, latlon, torch.Generator().manual_seed(1), crop=8)
    b = sd.augment_batch(images, latlon, torch.Generator().manual_seed(1), crop=8)
    c = sd.augment_batch(images, latlon, torch.Generator().manual_seed(2), crop=8)
    assert a[0].shape == (16, 3, 8, 8) and a[1].shape == (16, 2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert sd.center_crop(images, 8).shape == (16, 3, 8, 8)
    torch.testing.assert_close(sd.center_crop(images, 8), images[..., 2:10, 2:10])


def test_crop_and_flips_match_torch_flip():
    images, latlon = _batch(b=64)
    draw = sd.draw_augment(64, 12, torch.Generator().manual_seed(3), crop=7, blur_p=0.0, jitter_deg=0.0)
    assert 0 <= draw.top.min() and draw.top.max() <= 5 and 0 <= draw.left.min() and draw.left.max() <= 5
    assert draw.hflip.any() and (~draw.hflip).any() and draw.vflip.any() and (~draw.vflip).any()
    out, moved = sd.apply_augment(images, latlon, draw)
    torch.testing.assert_close(moved, latlon)
    for i in range(64):  # the reference, sample by sample
        t, l = int(draw.top[i]), int(draw.left[i])
        ref = images[i, :, t:t + 7, l:l + 7]
        if draw.hflip[i]:
            ref = torch.flip(ref, dims=[-1])
        if draw.vflip[i]:
            ref = torch.flip(ref, dims=[-2])
        assert torch.equal(out[i], ref), i
    no_flip = sd.draw_augment(64, 12, torch.Generator().manual_seed(3), crop=7, flips=False)
    assert not no_flip.hflip.any() and not no_flip.vflip.any()


def test_blur_only_on_chosen_samples():
    images, latlon = _batch(b=32)
    draw = sd.draw_augment(32, 12, torch.Generator().manual_seed(4), crop=12, flips=False, blur_p=0.5)
    assert draw.blur.any() and (~draw.blur).any() and (draw.top == 0).all()
    out, _ = sd.apply_augment(images, latlon, draw)
    assert torch.equal(out[~draw.blur], images[~draw.blur])
    blurred = out[draw.blur]
    assert not torch.isclose(blurred, images[draw.blur]).all()
    torch.testing.assert_close(blurred, sd.gaussian_blur(images[draw.blur]))
    assert blurred.std() < images[draw.blur].std()  # smoothing lowers the variance of noise
    # a constant image stays constant (kernel sums to 1, reflect padding)
    flat = sd.gaussian_blur(torch.full((1, 2, 6, 6), 0.3))
    torch.testing.assert_close(flat, torch.full((1, 2, 6, 6), 0.3))


def test_jitter_bounded_and_wrapped():
    latlon = torch.tensor([[89.999, 179.999], [-89.999, -179.999], [0.0, 0.0]]).repeat(200, 1)
    images = torch.zeros(len(latlon), 1, 4, 4)
    g = torch.Generator().manual_seed(5)
    _, moved = sd.augment_batch(images, latlon, g, blur_p=0.0, jitter_deg=0.01)
    lat, lon = moved[:, 0], moved[:, 1]
    assert lat.min() >= -90 and lat.max() <= 90 and lon.min() >= -180 and lon.max() < 180
    assert (lat == 90).any() and (lat == -90).any()  # clipped, not wrapped
    wrapped = lon[0::3] < 0  # 179.999 + positive jitter wraps to about -180
    assert wrapped.any() and (~wrapped).any()
    delta_lon = torch.remainder(lon - latlon[:, 1] + 180, 360) - 180
    assert delta_lon.abs().max() <= 0.01 + 1e-4
    centre = moved[2::3]
    assert centre.abs().max() <= 0.01 + 1e-6
    assert (centre < 0).any() and (centre > 0).any()  # symmetric, unlike SatCLIP's rand * 0.01


def test_augment_throughput_is_reported(capsys):
    """Gather + augment at bench shape; the figure is printed, not asserted."""
    n, b = 1024, 256
    g = torch.Generator().manual_seed(0)
    ds = sd.TileBatches(torch.rand(n, 13, 64, 64, generator=g).half(), torch.rand(n, 2, generator=g) * 90)
    order = torch.randperm(n, generator=g)
    sd.augment_batch(ds.__getitems__(order[:b].tolist())["image"], torch.zeros(b, 2), g, crop=56)
    start, steps = time.perf_counter(), 4
    for k in range(steps):
        batch = ds.__getitems__(order[k * b:(k + 1) * b].tolist())
        images, _ = sd.augment_batch(batch["image"], batch["latlon"], g, crop=56, blur_p=0.5)
    rate = steps * b / (time.perf_counter() - start)
    assert images.shape == (b, 13, 56, 56)
    with capsys.disabled():
        print(f"\n[satclip data] getitems + augment_batch, B=256, 13x64->56: {rate:,.0f} samples/s")


# -- feature cache -------------------------------------------------------------------------
class CountingBackbone(nn.Module):
    def __init__(self, in_chans: int, dim: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, dim, 3)
        self.calls = 0

    def forward(self, x):  # (B, C, S, S) -> feature map (B, D, S-2, S-2)
        self.calls += 1
        assert not self.training and not torch.is_grad_enabled()
        return self.conv(x)


def test_feature_cache_hit_skips_backbone(tmp_path):
    images, _ = _batch(b=10, c=3, s=8)
    backbone = CountingBackbone(3).train()
    key = {"backbone": "counting", "weights": "random", "in_chans": 3, "size": 8,
           "data": sd.tensor_fingerprint(images)}
    first = sd.cached_features(backbone, images, tmp_path, key, batch_size=4)
    assert backbone.calls == 3 and first.shape == (10, 5) and backbone.training
    with torch.no_grad():
        torch.testing.assert_close(first, backbone.conv(images).mean((2, 3)))
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1 and files[0] == sd.feature_cache_path(tmp_path, {**key, "images_shape": [10, 3, 8, 8]})
    again = sd.cached_features(backbone, images, tmp_path, key, batch_size=4)
    assert backbone.calls == 3 and torch.equal(again, first)
    other = sd.cached_features(backbone, images, tmp_path, {**key, "weights": "other"})
    assert backbone.calls == 4 and torch.equal(other, first) and len(list(tmp_path.glob("*.pt"))) == 2
    files[0].write_bytes(b"torn")  # an unreadable cache file is recomputed, not an error
    sd.cached_features(backbone, images, tmp_path, key, batch_size=10)
    assert backbone.calls == 5
    assert not list(tmp_path.glob(".*.tmp"))


def test_feature_cache_from_tile_batches(tmp_path):
    raw = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    tiles = sd.TileBatches(raw, torch.zeros(6, 2))
    backbone = CountingBackbone(3)
    got = sd.cached_features(backbone, tiles, tmp_path, {"backbone": "c"}, batch_size=4)
    with torch.no_grad():
        torch.testing.assert_close(got, backbone.conv(raw.float() / 255).mean((2, 3)))
    assert sd.tensor_fingerprint(raw) != sd.tensor_fingerprint(raw.float())
