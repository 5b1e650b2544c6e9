"""The CLIP line's data: the Flickr30k, COCO and geo-captions layouts, image-level splits,
decoding and the batch augmentation."""
import json

import numpy as np
import pytest
import torch

from workbench.errors import InputError, NotFoundError
from workbench.lines.clip import data as cd
from workbench.paths import repo_path


def test_flickr30k_layout_reads_and_skips_one_bad_row(flickr):
    d = cd.read_flickr30k(flickr)
    assert len(d.images) == 48 and len(d.captions) == 240
    assert d.source["skipped_rows"] == 1
    assert (d.captions.groupby("image_id").size() == 5).all()
    assert d.captions["caption"].str.startswith("a ").all()


def test_flickr30k_errors_name_the_file(flickr, tmp_path):
    with pytest.raises(NotFoundError, match="results.csv"):
        cd.read_flickr30k(tmp_path)
    bad = tmp_path / "bad"
    (bad / "flickr30k_images").mkdir(parents=True)
    (bad / "results.csv").write_text("image_name| comment_number| comment\nmissing.jpg| 0| a cat\n")
    with pytest.raises(InputError, match="1 image file.*missing.jpg"):
        cd.read_flickr30k(bad)
    (bad / "results.csv").write_text("image_name| comment_number| comment\n" + "x.jpg| 0|\n" * 5)
    with pytest.raises(InputError, match="5 of 5 rows are malformed"):
        cd.read_flickr30k(bad)


def test_coco_layout_and_its_errors(flickr, tmp_path):
    files = sorted(p.name for p in (flickr / "flickr30k_images").iterdir())[:3]
    spec = {"images": [{"id": i, "file_name": f} for i, f in enumerate(files)] + [{"id": 99, "file_name": files[0]}],
            "annotations": [{"image_id": i % 3, "caption": f"caption {i}"} for i in range(7)]}
    (tmp_path / "c.json").write_text(json.dumps(spec))
    d = cd.read_coco(tmp_path / "c.json", flickr / "flickr30k_images")
    assert len(d.images) == 3 and len(d.captions) == 7 and d.source["uncaptioned_images"] == 1
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        cd.read_coco(tmp_path / "broken.json", flickr / "flickr30k_images")
    (tmp_path / "keys.json").write_text(json.dumps({"images": []}))
    with pytest.raises(InputError, match="not a COCO captions file"):
        cd.read_coco(tmp_path / "keys.json", flickr / "flickr30k_images")


def test_geo_captions_keeps_its_split():
    folder = repo_path("data/geo-captions")
    if not (folder / "images.csv").is_file():
        pytest.skip("demo data not built (make demo)")
    d = cd.read_geo_captions(folder)
    assert len(d.images) == 4000 and len(d.captions) == 20000
    assert d.images["split"].value_counts().to_dict() == {"train": 3144, "val": 431, "test": 425}
    test = d.split("test")
    assert len(test.images) == 425 and len(test.captions) == 2125
    assert test.images["image_id"].tolist() == list(range(425))
    assert set(test.captions["image_id"]) == set(range(425))


def test_split_images_is_image_or_group_level_and_seeded():
    a = cd.split_images(1000, 0.1, 0.2, seed=0)
    assert abs((a == "test").mean() - 0.2) < 0.01 and abs((a == "val").mean() - 0.1) < 0.01
    assert (cd.split_images(1000, 0.1, 0.2, seed=0) == a).all() and not (cd.split_images(1000, 0.1, 0.2, 1) == a).all()
    groups = np.arange(1000) // 10
    g = cd.split_images(1000, 0.1, 0.2, seed=0, groups=groups)
    assert all(len(set(g[groups == k])) == 1 for k in range(100))


def test_decode_converts_modes_and_names_a_corrupt_file(flickr, tmp_path):
    paths = sorted((flickr / "flickr30k_images").iterdir())[:3]  # RGB, L, RGBA
    x = cd.decode_images(paths, 16)
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.uint8
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.jpg"):
        cd.decode_images([tmp_path / "bad.jpg"], 16)


def test_augment_is_seeded_and_the_identity_at_full_scale():
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    same = cd.augment(images, torch.Generator().manual_seed(0), crop_scale=1.0, flip=False)
    # area 1 and aspect near 1 is close to the identity; exactly so where the draw gives aspect 1
    a = cd.augment(images, torch.Generator().manual_seed(3), 0.5, True)
    b = cd.augment(images, torch.Generator().manual_seed(3), 0.5, True)
    assert torch.equal(a, b) and a.shape == (6, 3, 16, 16) and a.dtype == torch.float32
    assert not torch.equal(a, cd.augment(images, torch.Generator().manual_seed(4), 0.5, True))
    assert (same - cd.to_float(images)).abs().mean() < (a - cd.to_float(images)).abs().mean()


def test_pair_batches_gather_images_of_their_captions():
    images = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 3, 2, 2).contiguous()
    tokens = torch.arange(10).view(10, 1)
    ds = cd.PairBatches(images, tokens, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 3, 3]))
    batch = ds.__getitems__([9, 0, 4])
    assert batch["tokens"].view(-1).tolist() == [9, 0, 4]
    assert batch["image_ids"].tolist() == [3, 0, 2] and batch["image"][:, 0, 0, 0].tolist() == [3, 0, 2]
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=cd.collate)
    assert [len(b["tokens"]) for b in loader] == [4, 4, 2]
