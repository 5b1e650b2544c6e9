"""The pre-encoded pair format: reading with clear errors, and the image-level split."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.contrastive.artifacts import read_embeddings, write_embeddings
from workbench.contrastive.encoded import (EncodedPairs, SplitSpec, available_splits, encoded_paths, load_encoded,
                                           save_encoded, split_encoded)
from workbench.errors import ConfigError, InputError, NotFoundError


def make_pairs(n_images=60, per_image=5, d_img=6, d_txt=4, groups=None, seed=0) -> EncodedPairs:
    g = torch.Generator().manual_seed(seed)
    ids = np.arange(1000, 1000 + n_images)
    images = pd.DataFrame({"image_id": ids, "lat": np.linspace(-60, 60, n_images), "lon": 0.0,
                           "country": "FR", "continent": "Europe"})
    if groups is not None:
        images["group"] = groups
    return EncodedPairs(image=torch.randn(n_images, d_img, generator=g), text=torch.randn(n_images * per_image, d_txt, generator=g),
                        text_image=torch.arange(n_images).repeat_interleave(per_image), image_ids=ids,
                        captions=[f"caption {i}" for i in range(n_images * per_image)], images=images,
                        extra={"encoders": {"image": "a", "text": "b"}})


def test_round_trip_keeps_each_image_once(tmp_path):
    pairs = make_pairs()
    save_encoded(tmp_path, "all", pairs)
    assert torch.load(encoded_paths(tmp_path, "all")["image"], weights_only=True).shape == (300, 6)  # one row per pair
    back = load_encoded(tmp_path, "all")
    assert back.n_images == 60 and torch.equal(back.image, pairs.image) and torch.equal(back.text, pairs.text)
    assert torch.equal(back.text_image, pairs.text_image) and back.captions == pairs.captions
    assert back.images["lat"].tolist() == pairs.images["lat"].tolist()
    assert back.extra == {"encoders": {"image": "a", "text": "b"}}
    assert available_splits(tmp_path) == ["all"]


def test_missing_files_and_missing_splits_say_what_to_run(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        load_encoded(tmp_path / "nope", "train")
    save_encoded(tmp_path, "all", make_pairs())
    with pytest.raises(NotFoundError, match="projection split"):
        load_encoded(tmp_path, "train")
    encoded_paths(tmp_path, "all")["text"].unlink()
    with pytest.raises(NotFoundError, match="all_text_embeddings.pt"):
        load_encoded(tmp_path, "all")


def test_length_mismatch_and_bad_metadata(tmp_path):
    paths = save_encoded(tmp_path, "all", make_pairs())
    torch.save(torch.randn(299, 4), paths["text"])
    with pytest.raises(InputError, match="300 rows but all_text_embeddings.pt has 299"):
        load_encoded(tmp_path, "all")
    torch.save(torch.randn(300, 4), paths["text"])
    meta = json.loads(paths["metadata"].read_text())
    paths["metadata"].write_text(json.dumps({"captions": meta["captions"]}))
    with pytest.raises(InputError, match="no 'image_ids'"):
        load_encoded(tmp_path, "all")
    paths["metadata"].write_text(json.dumps({"image_ids": meta["image_ids"][:-1]}))
    with pytest.raises(InputError, match="299 entries but the embeddings have 300"):
        load_encoded(tmp_path, "all")
    paths["metadata"].write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_encoded(tmp_path, "all")
    paths["text"].write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable torch tensor"):
        load_encoded(tmp_path, "all")


def test_an_image_id_with_two_different_embeddings_is_rejected(tmp_path):
    paths = save_encoded(tmp_path, "all", make_pairs())
    image = torch.load(paths["image"], weights_only=True)
    image[3] += 1  # row 3 belongs to image 1000 like rows 0..4
    torch.save(image, paths["image"])
    with pytest.raises(InputError, match="share image id 1000"):
        load_encoded(tmp_path, "all")


def test_split_is_image_level_with_a_tuning_subset_and_is_reused(tmp_path):
    save_encoded(tmp_path, "all", make_pairs(n_images=200))
    record = split_encoded(tmp_path, SplitSpec(seed=3))
    assert record["status"] == "written"
    parts = {s: load_encoded(tmp_path, s) for s in ("train", "val", "test", "train_tuning")}
    ids = {s: set(p.image_ids.tolist()) for s, p in parts.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert len(ids["train"] | ids["val"] | ids["test"]) == 200
    assert all(len(p.text) == 5 * p.n_images for s, p in parts.items() if s != "train_tuning")
    assert ids["train_tuning"] <= ids["train"]
    assert len(parts["train_tuning"].text) == round(0.25 * len(parts["train"].text))
    assert 15 <= parts["test"].n_images <= 25 and 15 <= parts["val"].n_images <= 25
    # captions follow their images
    train = parts["train"]
    assert train.captions[0] == f"caption {(int(train.image_ids[0]) - 1000) * 5}"
    assert split_encoded(tmp_path, SplitSpec(seed=3))["status"] == "reused"
    with pytest.raises(ConfigError, match="--force"):
        split_encoded(tmp_path, SplitSpec(seed=4))
    assert split_encoded(tmp_path, SplitSpec(seed=4), force=True)["status"] == "written"


def test_split_keeps_groups_together(tmp_path):
    groups = [f"cell{i // 10}" for i in range(200)]  # 20 groups of 10 images
    save_encoded(tmp_path, "all", make_pairs(n_images=200, groups=groups))
    split_encoded(tmp_path, SplitSpec())
    seen = {}
    for split in ("train", "val", "test"):
        for group in load_encoded(tmp_path, split).images["group"]:
            assert seen.setdefault(group, split) == split
    assert len(set(seen.values())) == 3


def test_split_arguments_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="val_fraction"):
        split_encoded(tmp_path, SplitSpec(val_fraction=0))
    with pytest.raises(ConfigError, match="nothing left"):
        split_encoded(tmp_path, SplitSpec(val_fraction=0.5, test_fraction=0.5))
    with pytest.raises(NotFoundError):
        split_encoded(tmp_path, SplitSpec())


def test_embeddings_artifact_round_trip_and_checks(tmp_path):
    meta = pd.DataFrame({"id": ["image:1", "image:2", "text:0"], "modality": ["image", "image", "text"],
                         "row": [0, 1, 0], "image_id": [1, 2, 1], "caption": ["", "", "a"], "lat": [1.0, 2, 1],
                         "lon": [0.0, 0, 0], "country": ["FR"] * 3, "continent": ["Europe"] * 3, "split": ["test"] * 3})
    vectors = {"image": np.ones((2, 3)), "text": np.zeros((1, 3))}
    write_embeddings(tmp_path, vectors, meta)
    back = read_embeddings(tmp_path)
    assert back.vectors["image"].dtype == np.float32 and back.matrix().shape == (3, 3)
    with pytest.raises(InputError, match="rows of modality 'image'"):
        write_embeddings(tmp_path, {"image": np.ones((3, 3)), "text": np.zeros((1, 3))}, meta)
    with pytest.raises(InputError, match="lacks the columns"):
        write_embeddings(tmp_path, vectors, meta.drop(columns=["split"]))
