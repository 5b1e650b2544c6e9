"""geo-captions: files and shapes, leak-free splits, captions true to the tile, facts at known
places, determinism and unit-norm text embeddings. One tiny build (40 tiles of 32 px encoded
at 64 px) serves the whole module."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from workbench.contrastive.encoded import TUNING, available_splits, load_encoded
from workbench.data.demo import DEMO_DATASETS, build_demo
from workbench.data.demo_captions import (
    CAPTIONS_PER_IMAGE,
    COVER,
    IMAGE_COLUMNS,
    tile_facts,
)
from workbench.data.demo_patches import load_rasters

TINY = dict(caption_images=40, caption_tile_px=32, caption_encode_px=64, seed=0)
SPLITS = ("all", "train", "val", "test", TUNING)


def build(root):
    lines = []
    report = build_demo(root, only=["geo-captions"], progress=lines.append, **TINY)
    return root / "geo-captions", report["geo-captions"], lines


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(tmp_path_factory.mktemp("captions"))


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    return build(tmp_path_factory.mktemp("captions-again"))


@pytest.fixture(scope="module")
def rasters():
    return load_rasters()


def test_registered_and_manifest(built):
    folder, report, lines = built
    assert "geo-captions" in DEMO_DATASETS.list()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["dataset"] == "geo-captions" and report["status"] == "built"
    assert manifest["params"] == {"seed": 0, "n_images": 40, "tile_px": 32, "encode_px": 64}
    assert manifest["counts"]["images"] == 40 and manifest["counts"]["pairs"] == 200
    assert manifest["encoders"]["image"]["name"] == "efficientnet-lite0"
    assert manifest["encoders"]["text"]["dim"] == 384
    assert "timings" not in manifest  # logged instead: builds stay byte-identical
    assert any("seconds per step" in line and "encode_captions" in line for line in lines)
    assert all((folder / f).exists() for f in manifest["files"])
    assert any("encoding 200 captions" in line for line in lines)


def test_images_and_table(built):
    folder, _, _ = built
    table = pd.read_csv(folder / "images.csv", keep_default_na=False, dtype={"group": str})
    assert list(table.columns) == IMAGE_COLUMNS and len(table) == 40
    assert table["image_id"].tolist() == list(range(40))
    assert table["path"].iloc[7] == "images/00007.jpg"
    with Image.open(folder / table["path"].iloc[7]) as image:
        assert image.size == (32, 32) and image.mode == "RGB"
    assert len(list((folder / "images").glob("*.jpg"))) == 40
    assert table["country"].str.fullmatch(r"[A-Z]{2}").all()
    assert (table["country_name"] != "").all() and (table["group"] != "").all()


def test_every_split_loads_with_the_documented_shapes(built):
    folder, _, _ = built
    assert set(available_splits(folder)) == set(SPLITS)
    for split in SPLITS:
        pairs = load_encoded(folder, split)
        assert pairs.image.shape[1] == 1280 and pairs.text.shape[1] == 384
        assert len(pairs.text) == len(pairs.captions) == len(pairs.text_image)
        if split != TUNING:  # the tuning subset samples pairs, the others keep all five
            assert len(pairs.text) == CAPTIONS_PER_IMAGE * pairs.n_images
    everything = load_encoded(folder, "all")
    assert everything.n_images == 40 and len(everything.text) == 200
    assert torch.load(folder / "all_text_embeddings.pt").dtype == torch.float16
    assert {"image_id", "lat", "lon", "place", "country_name", "continent", "coast", "terrain",
            "landcover", "path", "group"} <= set(everything.images.columns)


def test_splits_share_no_image_and_no_group(built):
    folder, _, _ = built
    parts = {s: load_encoded(folder, s) for s in ("train", "val", "test")}
    ids = [set(p.image_ids.tolist()) for p in parts.values()]
    groups = [set(p.images["group"]) for p in parts.values()]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not ids[i] & ids[j] and not groups[i] & groups[j]
    assert set().union(*ids) == set(range(40))
    assert set(load_encoded(folder, TUNING).image_ids.tolist()) <= ids[0]


def test_five_distinct_captions_that_name_the_place_and_state_true_facts(built):
    folder, _, _ = built
    pairs = load_encoded(folder, "all")
    table = pairs.images.set_index("image_id")
    captions = pd.Series(pairs.captions).groupby(pairs.text_image_ids).agg(list)
    assert len(captions) == 40
    for image_id, texts in captions.items():
        row = table.loc[image_id]
        assert len(texts) == len(set(texts)) == CAPTIONS_PER_IMAGE, texts
        assert all(row["country_name"] in t or row["city"] in t for t in texts), texts
        text = " ".join(texts).lower()
        other_covers = [COVER[c] for c in COVER if c != row["landcover"] and c != "water"]
        assert not any(phrase in text for phrase in other_covers), (row["landcover"], texts)
        if row["landcover"] != "water":
            assert COVER[row["landcover"]] in text
            wrong = {"flat": ("hill", "mountain"), "hilly": ("mountain", "flat"),
                     "mountainous": ("hill", "flat")}[row["terrain"]]
            assert not any(word in text for word in wrong), (row["terrain"], texts)


@pytest.mark.parametrize("place, lat, lon, expected", [
    ("Libyan Sahara", 26.0, 17.0, dict(landcover="desert", terrain="flat", coast="inland")),
    ("Central Alps", 46.5, 10.0, dict(terrain="mountainous", coast="inland")),
    ("Everest", 28.0, 86.9, dict(terrain="mountainous", elevation="highland")),
    ("mid-Pacific", 0.0, -150.0, dict(coast="open water", landcover="water")),
    ("Greenland ice sheet", 72.0, -40.0, dict(landcover="ice and snow", elevation="ice cap")),
    ("Amazon at Manaus", -3.1, -60.0, dict(landcover="forest", terrain="flat", elevation="lowland")),
    ("Hawaii's Big Island", 19.6, -155.5, dict(coast="island")),
])
def test_facts_at_known_places(rasters, place, lat, lon, expected):
    facts = tile_facts(np.array([lat]), np.array([lon]), 64, rasters).iloc[0]
    assert {k: facts[k] for k in expected} == expected, (place, facts.to_dict())


def test_table_facts_are_the_tile_facts(built):
    folder, _, _ = built
    table = pd.read_csv(folder / "images.csv", keep_default_na=False, dtype={"group": str})
    facts = tile_facts(table["lat"].to_numpy(), table["lon"].to_numpy(), 32)
    assert (facts[["coast", "terrain", "elevation", "landcover"]] ==
            table[["coast", "terrain", "elevation", "landcover"]]).all().all()


def test_same_seed_same_captions_and_embeddings(built, rebuilt):
    (a, _, _), (b, _, _) = built, rebuilt
    first, second = load_encoded(a, "all"), load_encoded(b, "all")
    assert first.captions == second.captions
    assert torch.equal(first.image, second.image) and torch.equal(first.text, second.text)
    assert json.loads((a / "split.json").read_text())["counts"] == \
        json.loads((b / "split.json").read_text())["counts"]


def test_text_embeddings_are_unit_norm(built):
    folder, _, _ = built
    text = load_encoded(folder, "all").text
    torch.testing.assert_close(text.norm(dim=1), torch.ones(len(text)), atol=2e-3, rtol=0)


def test_sentence_embeddings_pool_the_encoders_states():
    from workbench.encoders.text import create_text_encoder, sentence_embeddings

    encoder = create_text_encoder("minilm")
    texts = ["forest near Manaus, Brazil", "a satellite view of flat desert near Sabha, Libya, Africa",
             "ice"]
    states, mask = encoder.encode(texts, max_tokens=64)  # [3, 64, 384], [3, 64]
    pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    expected = torch.nn.functional.normalize(pooled, dim=-1)
    torch.testing.assert_close(sentence_embeddings(encoder, texts), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(sentence_embeddings(encoder, texts, batch_size=1), expected,
                               atol=1e-5, rtol=0)
