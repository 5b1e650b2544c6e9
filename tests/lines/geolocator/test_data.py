"""Image folder + CSV loading, unreadable images, transforms and multi-band inputs."""
import io
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from workbench.errors import ConfigError, InputError
from workbench.lines.geolocator.data import (
    ImageTransform,
    ensure_splits,
    load_image,
    read_table,
)


def jpeg(size=(40, 20), colour=(10, 200, 30), exif=None, fmt="JPEG") -> bytes:
    buffer = io.BytesIO()
    kwargs = {"exif": exif} if exif is not None else {}
    Image.new("RGB", size, colour).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


# -- load_image ---------------------------------------------------------------------------


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: a 40 x 20 landscape file shows as 20 x 40 portrait
    image = load_image(jpeg((40, 20), exif=exif))
    assert image.size == (20, 40) and image.mode == "RGB"
    assert load_image(jpeg((40, 20))).size == (40, 20)


def test_large_jpeg_is_decoded_at_reduced_scale():
    data = jpeg((4000, 3000))
    image = load_image(data, target_size=64)
    # draft mode picks the largest 1/8 reduction that stays >= 64 px: 500 x 375
    assert image.size == (500, 375)
    assert load_image(data).size == (4000, 3000)


def test_oversized_non_jpeg_is_refused_with_a_message():
    data = jpeg((300, 200), fmt="PNG")
    with pytest.raises(InputError, match=r"too large \(300 x 200 pixels"):
        load_image(data, name="big.png", max_pixels=10_000)


@pytest.mark.parametrize("data, pattern", [
    (b"this is not an image", r"could not read 'notes\.txt': not an image \(PNG, JPEG, TIFF"),
    (b"", r"could not read 'notes\.txt': the file is empty"),
    (jpeg((64, 64))[:300], r"could not read 'notes\.txt': the file is truncated"),
])
def test_unreadable_uploads_give_one_line(data, pattern):
    for source in (data, io.BytesIO(data)):  # an upload's bytes or its file object
        with pytest.raises(InputError, match=pattern) as info:
            load_image(source, name="notes.txt")
        assert "\n" not in str(info.value) and "BytesIO" not in str(info.value)


def test_png_and_webp_load_as_rgb():
    for fmt in ("PNG", "WEBP"):
        buffer = io.BytesIO()
        Image.new("RGBA", (8, 6), (1, 2, 3, 128)).save(buffer, fmt)
        image = load_image(buffer.getvalue())
        assert image.mode == "RGB" and image.size == (8, 6)


def test_16bit_png_alpha_and_float_tiff_decode_faithfully(tmp_path):
    """The modes PIL's convert("RGB") gets wrong: 16-bit clipped to white, alpha dropped
    (transparent black showed black), float truncated to 0 / 1."""
    path = tmp_path / "depth.png"
    Image.fromarray(np.array([[0, 1028, 32896, 65535]], np.uint16)).save(path)
    assert np.asarray(load_image(path))[0, :, 0].tolist() == [0, 4, 128, 255]
    buffer = io.BytesIO()
    Image.new("RGBA", (2, 2), (0, 0, 0, 0)).save(buffer, "PNG")
    assert np.asarray(load_image(buffer.getvalue())).min() == 255  # on white
    buffer = io.BytesIO()
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F").save(buffer, "TIFF")
    assert np.asarray(load_image(buffer.getvalue(), name="f.tif"))[0, :, 0].tolist() == [0, 128, 255]


def test_dataset_reads_16bit_images_like_uploads(tmp_path):
    """The training data path decodes with the same rules as the predict path."""
    from workbench.lines.geolocator.data import GeoImageDataset

    path = tmp_path / "a.png"
    Image.fromarray(np.full((8, 8), 32896, np.uint16)).save(path)
    frame = pd.DataFrame({"path": [str(path)], "lat": [1.0], "lon": [2.0], "row": [0]})
    transform = ImageTransform(8, (0.0,) * 3, (1.0,) * 3, crop="none")
    x = GeoImageDataset(frame, np.zeros(1, np.int64), transform).raw(0)
    assert torch.allclose(x, torch.full_like(x, 128 / 255))


# -- the CSV --------------------------------------------------------------------------------


def test_read_table_resolves_paths_and_validates(tmp_path):
    csv = tmp_path / "d.csv"
    pd.DataFrame({"path": ["a.jpg", "b.jpg"], "lat": [1.0, 2.0], "lon": [3.0, 4.0]}).to_csv(csv, index=False)
    table = read_table(csv)
    assert table["path"].tolist() == [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]
    assert "split" not in table.columns
    assert read_table(csv, image_root="/imgs")["path"].iloc[0] == "/imgs/a.jpg"

    pd.DataFrame({"file": ["a.jpg"], "lat": [1.0], "lon": [3.0]}).to_csv(csv, index=False)
    with pytest.raises(InputError, match=r"lacks column\(s\) \['path'\]"):
        read_table(csv)
    pd.DataFrame({"path": ["a.jpg", "b.jpg"], "lat": [1.0, 95.0], "lon": [3.0, 4.0]}).to_csv(csv, index=False)
    with pytest.raises(InputError, match=r"row 1: lat = 95.0 is outside"):
        read_table(csv)
    pd.DataFrame({"path": ["a.jpg"], "lat": ["north"], "lon": [3.0]}).to_csv(csv, index=False)
    with pytest.raises(InputError, match="NaN"):
        read_table(csv)


def test_splits_by_cell_when_the_csv_has_none():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"lat": rng.uniform(-60, 60, 500), "lon": rng.uniform(-180, 180, 500)})
    out = ensure_splits(frame, 0.2, seed=0)
    assert set(out["split"]) == {"train", "val"}
    assert 0.1 < (out["split"] == "val").mean() < 0.3
    with pytest.raises(ConfigError):
        ensure_splits(frame, 1.5, seed=0)


# -- transforms -----------------------------------------------------------------------------


def test_transform_center_crop_and_normalisation():
    x = torch.rand(3, 40, 60)
    t = ImageTransform(32, (0.5,) * 3, (0.5,) * 3, crop="center")
    y = t(x)
    assert y.shape == (3, 32, 32)
    assert y.min() >= -1.0 - 1e-5 and y.max() <= 1.0 + 1e-5
    flat = ImageTransform(16, (0.0,) * 3, (1.0,) * 3, crop="none")(torch.full((3, 10, 50), 0.25))
    assert flat.shape == (3, 16, 16) and torch.allclose(flat, torch.full_like(flat, 0.25))


def test_jitter_changes_rgb_only_and_random_crop_is_seeded():
    x = torch.rand(5, 48, 48)
    t = ImageTransform(32, (0.0,) * 5, (1.0,) * 5, crop="random", color_jitter=(0.5, 0.5, 0.5, 0.1),
                       train=True)
    assert t.random
    torch.manual_seed(0)
    a = t(x)
    torch.manual_seed(0)
    b = t(x)
    assert torch.equal(a, b) and a.shape == (5, 32, 32)
    plain = ImageTransform(32, (0.0,) * 5, (1.0,) * 5, crop="random", train=True)
    torch.manual_seed(0)
    c = plain(x)
    assert torch.allclose(a[3:], c[3:])  # extra bands untouched by the colour jitter
    assert not torch.allclose(a[:3], c[:3])
    assert not ImageTransform(32, (0.0,) * 5, (1.0,) * 5, crop="random", color_jitter=(0.5, 0, 0, 0)).random


# -- datasets through the experiment --------------------------------------------------------


def test_corrupt_and_missing_images_are_counted_and_skipped(tiny_csv, tmp_path, runs_dir):
    from tests.lines.geolocator.conftest import tiny_config
    from workbench.experiments import create_experiment
    from workbench.runs import RunStore
    from workbench.train.trainer import Trainer

    root = tmp_path / "data"
    shutil.copytree(tiny_csv.parent, root)
    frame = pd.read_csv(root / "data.csv")
    (root / frame["path"][0]).unlink()  # missing
    (root / frame["path"][1]).write_text("not an image")  # corrupt
    good = (root / frame["path"][2]).read_bytes()
    (root / frame["path"][2]).write_bytes(good[: len(good) // 2])  # truncated: header fine, pixels cut
    cfg = tiny_config(root / "data.csv", "train.max_epochs=1")
    exp = create_experiment(cfg)
    prepared = exp.prepare()
    assert (prepared.report.n_missing, prepared.report.n_corrupt) == (1, 1)
    assert len(prepared.train) == 6 * 6 - 2
    run = RunStore().create(cfg)
    result = Trainer(exp, run, progress_bar=False).fit()
    assert result["state"] == "done"
    report = __import__("json").loads((run.artifacts_dir / "data_report.json").read_text())
    assert report["n_missing"] == 1 and report["n_corrupt"] == 1 and report["n_failed_at_load"] == 1
    assert report["n_skipped"] == 3 and any("file not found" in e for e in report["examples"])


def test_multiband_input_builds_a_wider_stem(tiny_csv, tmp_path):
    from tests.lines.geolocator.conftest import tiny_config
    from workbench.experiments import create_experiment

    n = len(pd.read_csv(tiny_csv))
    root = tmp_path / "mb"
    shutil.copytree(tiny_csv.parent, root)
    bands = np.random.default_rng(0).integers(0, 255, (n, 4, 16, 16), dtype=np.uint8)
    np.save(root / "bands.npy", bands)
    cfg = tiny_config(root / "data.csv", "data.bands_file=bands.npy", "data.band_indices=[1,3]")
    exp = create_experiment(cfg)
    train, _ = exp.build_datasets()
    sample = train[0]
    assert sample["image"].shape == (5, 32, 32)
    model = exp.build_model()
    assert model.backbone.conv_stem.weight.shape[1] == 5
    logits = model(torch.stack([train[i]["image"] for i in range(4)]))
    assert logits.shape == (4, model.labels.n_outputs) and torch.isfinite(logits).all()
    bad = tiny_config(root / "data.csv", "data.bands_file=bands.npy", "data.band_indices=[7]")
    with pytest.raises(ConfigError, match=r"band_indices \[7\] out of range"):
        create_experiment(bad).build_datasets()
