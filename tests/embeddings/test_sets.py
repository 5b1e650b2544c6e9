"""The embeddings artifact: writer / reader round trip, checks with one-line messages, the
contrastive paired layout read as one set, listing and finding sets of bundles and runs."""
import numpy as np
import pandas as pd
import pytest

from workbench.contrastive.artifacts import write_embeddings
from workbench.embeddings.sets import SetRef, find_set, list_sets, read_set, set_names, write_set
from workbench.errors import InputError, NotFoundError


def meta(n, **extra):
    return pd.DataFrame({"id": [f"p{i}" for i in range(n)], "modality": "location", "group": [str(i // 2) for i in range(n)],
                         "split": "test", "lat": np.linspace(-60, 60, n), "lon": np.linspace(-170, 170, n), **extra})


def test_round_trip_keeps_vectors_and_rows(tmp_path):
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    write_set(tmp_path, "test", x, meta(7, country=list("ABCDEFG")))
    assert set_names(tmp_path) == ["test"]
    got = read_set(SetRef("here", "test", tmp_path))
    np.testing.assert_array_equal(got.vectors, x)
    assert got.meta["country"].tolist() == list("ABCDEFG") and len(got) == 7


@pytest.mark.parametrize("bad, message", [
    (lambda m: m.drop(columns="group"), r"lacks the columns \['group'\]"),
    (lambda m: m.iloc[:5], "has 5 rows for 7 vectors"),
    (lambda m: m.assign(id="same"), "'same' repeats"),
])
def test_bad_metadata_is_refused_with_a_message(tmp_path, bad, message):
    with pytest.raises(InputError, match=message):
        write_set(tmp_path, "test", np.zeros((7, 3)), bad(meta(7)))
    assert set_names(tmp_path) == []  # nothing half-written


def test_non_finite_vectors_and_bad_names_are_refused(tmp_path):
    x = np.ones((7, 3))
    x[2, 1] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        write_set(tmp_path, "test", x, meta(7))
    with pytest.raises(InputError, match="bad embedding set name"):
        write_set(tmp_path, "../up", np.ones((7, 3)), meta(7))


def test_the_paired_layout_is_one_set_with_groups(tmp_path):
    image = np.eye(3, 4, dtype=np.float32)
    text = np.arange(24, dtype=np.float32).reshape(6, 4)
    rows = pd.DataFrame({"id": [f"image:{i}" for i in range(3)] + [f"text:{i}" for i in range(6)],
                         "modality": ["image"] * 3 + ["text"] * 6, "row": [0, 1, 2, 0, 1, 2, 3, 4, 5],
                         "image_id": [10, 11, 12, 10, 10, 11, 11, 12, 12], "caption": "", "lat": 0.0, "lon": 0.0,
                         "country": "", "continent": "", "split": "test"})
    write_embeddings(tmp_path, {"image": image, "text": text}, rows.sample(frac=1, random_state=0))  # any order
    assert set_names(tmp_path) == ["paired"]
    got = read_set(SetRef("here", "paired", tmp_path))
    assert len(got) == 9
    for vec, (_, row) in zip(got.vectors, got.meta.iterrows()):  # each vector is its row's
        np.testing.assert_array_equal(vec, (image if row["modality"] == "image" else text)[row["row"]])
    assert got.meta.loc[got.meta["id"] == "text:3", "group"].item() == "11"


def test_the_earlier_paired_layout_is_still_read(tmp_path):
    from workbench.contrastive.artifacts import read_embeddings

    image, location = np.eye(3, 4, dtype=np.float32), np.full((3, 4), 2.0, np.float32)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "location.npy", location)
    rows = pd.DataFrame({"id": ["image:0", "image:1", "image:2", "location:0", "location:1", "location:2"],
                         "modality": ["image"] * 3 + ["location"] * 3, "row": [0, 1, 2, 0, 1, 2],
                         "image_id": [0, 1, 2, 0, 1, 2], "caption": "", "lat": 1.0, "lon": 2.0, "country": "",
                         "continent": "", "split": "val"})
    rows.to_parquet(tmp_path / "meta.parquet")
    assert set_names(tmp_path) == ["paired"]
    emb = read_embeddings(tmp_path)
    np.testing.assert_array_equal(emb.vectors["location"], location)
    got = read_set(SetRef("old", "paired", tmp_path))
    assert len(got) == 6 and got.meta["group"].tolist() == ["0", "1", "2", "0", "1", "2"]


def test_every_bundle_and_run_is_listed_and_found(tmp_path):
    ckpts, runs = tmp_path / "checkpoints", tmp_path / "runs"
    write_set(ckpts / "b-demo" / "embeddings", "test", np.ones((7, 3)), meta(7))
    write_set(ckpts / "a" / "embeddings", "val", np.ones((7, 3)), meta(7))
    refs = list_sets(runs, ckpts)
    assert [(r.source, r.name) for r in refs] == [("checkpoint: b-demo", "test"), ("checkpoint: a", "val")]
    assert find_set("b-demo", None, runs, ckpts).name == "test"
    assert find_set(str(ckpts / "a"), "val").folder == ckpts / "a" / "embeddings"
    with pytest.raises(NotFoundError, match="no embedding set 'nope'"):
        find_set("a", "nope", runs, ckpts)
    with pytest.raises(NotFoundError, match=r"Sources with embeddings: \['a', 'b-demo'\]"):
        find_set("missing", None, runs, ckpts)


def test_the_fingerprint_follows_the_bytes(tmp_path):
    write_set(tmp_path, "test", np.ones((7, 3)), meta(7))
    ref = SetRef("here", "test", tmp_path)
    before = ref.fingerprint()
    assert ref.fingerprint() == before
    write_set(tmp_path, "test", np.full((7, 3), 2.0), meta(7))
    assert ref.fingerprint() != before
