"""The sample images: the committed tiles are the demo bundle's own held-out test tiles
(its predictions on them equal the bundle's predictions.parquet), photos are described."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workbench.errors import InputError, NotFoundError
from workbench.geo import haversine_km
from workbench.lines.geolocator.predict import DEMO_CHECKPOINT, load_predictor
from workbench.lines.geolocator.samples import sample_photos, sample_tiles, spread_sample, write_sample_tiles


def test_committed_tiles_are_the_bundles_test_tiles_with_true_positions():
    tiles = sample_tiles()
    assert len(tiles) == 8 and all(t.kind == "tile" and t.path.stat().st_size < 8_000 for t in tiles)
    table = pd.read_csv(tiles[0].path.parent / "tiles.csv")
    assert (table["split"] == "test").all()
    # predictions.parquet holds the bundle's test-split predictions (metrics.json "test")
    preds = pd.read_parquet(DEMO_CHECKPOINT / "predictions.parquet")
    preds["source"] = preds["path"].str.replace("data/geo-patches/", "", regex=False)
    rows = table.merge(preds, on="source", validate="one_to_one")
    assert len(rows) == 8
    np.testing.assert_allclose(rows[["lat", "lon"]].to_numpy(), rows[["true_lat", "true_lon"]].to_numpy(), atol=1e-4)
    predictor = load_predictor(DEMO_CHECKPOINT)
    for tile, row in zip(tiles, rows.itertuples()):
        assert (tile.lat, tile.lon) == (row.lat, row.lon)
        pred = predictor.predict(tile.path, top_k=5)
        assert pred.cells == list(row.topk_cells)  # the same bytes -> the same prediction as in evaluation
        np.testing.assert_allclose(pred.probs, row.topk_probs, atol=1e-5)


def test_photos_are_listed_with_their_descriptions():
    photos = sample_photos()
    assert [p.name for p in photos] == sorted(p.name for p in photos) and len(photos) == 4
    palace = next(p for p in photos if p.name == "summer_palace_beijing.jpg")
    assert palace.kind == "photo" and "Summer Palace" in palace.label and palace.lat is None


def test_missing_tiles_folder_is_empty(tmp_path):
    assert sample_tiles(tmp_path) == []


def _naive_farthest(xyz: np.ndarray, first: int, n: int) -> list[int]:
    picked = [first]
    while len(picked) < n:
        best = max(range(len(xyz)), key=lambda i: min(np.linalg.norm(xyz[i] - xyz[j]) for j in picked))
        picked.append(best)
    return picked


def test_spread_sample_is_farthest_point_sampling():
    from workbench.geo import latlon_to_xyz

    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-60, 70, 300), rng.uniform(-180, 180, 300)
    idx = spread_sample(lat, lon, 6, seed=4)
    assert idx.tolist() == _naive_farthest(latlon_to_xyz(lat, lon), int(idx[0]), 6)
    d = haversine_km(lat[idx][:, None], lon[idx][:, None], lat[idx][None], lon[idx][None])
    assert d[~np.eye(6, dtype=bool)].min() > 3000  # spread over the globe
    assert sorted(spread_sample(lat[:3], lon[:3], 10).tolist()) == [0, 1, 2]  # n > N: every point once


def test_write_sample_tiles(tmp_path):
    (tmp_path / "images").mkdir()
    rows = []
    for i, (lat, lon, split) in enumerate([(10, 10, "test"), (-30, 150, "test"), (50, -100, "train"),
                                           (11, 11, "test"), (60, 20, "test")]):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "images" / f"{i}.jpg")
        rows.append({"path": f"images/{i}.jpg", "lat": lat, "lon": lon, "split": split,
                     "place": f"p{i}", "country": "XX"})
    csv = tmp_path / "patches.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    out = tmp_path / "tiles"
    table = write_sample_tiles(csv, out, n=3)
    assert len(table) == 3 and set(table["split"]) == {"test"} and "images/2.jpg" not in set(table["source"])
    assert not {"images/0.jpg", "images/3.jpg"} <= set(table["source"])  # 1 degree apart: not both
    for row in table.itertuples():
        assert (out / row.file).read_bytes() == (tmp_path / row.source).read_bytes()
    assert [t.name for t in sample_tiles(out)] == table["file"].tolist()
    with pytest.raises(InputError, match="no rows in split 'holdout'"):
        write_sample_tiles(csv, out, split="holdout")
    with pytest.raises(NotFoundError, match="build-demo"):
        write_sample_tiles(tmp_path / "none.csv", out)
