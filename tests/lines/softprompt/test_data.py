"""City table, the S2-cell held-out split and the batched dataset."""
import numpy as np
import pytest
import torch

from workbench.errors import NotFoundError
from workbench.geo import s2_cell_ids
from workbench.lines.softprompt.data import CityTargetDataset, load_cities, s2_split


def points(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-60, 70, n), rng.uniform(-180, 180, n)


@pytest.mark.parametrize("level", [3, 5])
def test_s2_split_keeps_cells_whole(level):
    lat, lon = points()
    val = s2_split(lat, lon, level=level, val_fraction=0.2, seed=1)
    cells = s2_cell_ids(lat, lon, level)
    assert not set(cells[val]) & set(cells[~val])  # no cell on both sides: no neighbour leakage
    assert abs(val.mean() - 0.2) < 0.03
    assert np.array_equal(val, s2_split(lat, lon, level=level, val_fraction=0.2, seed=1))
    assert not np.array_equal(val, s2_split(lat, lon, level=level, val_fraction=0.2, seed=2))


def test_missing_city_table_says_how_to_build_it(tmp_path):
    with pytest.raises(NotFoundError, match="python -m workbench data build-demo"):
        load_cities(tmp_path / "cities.csv")


def test_load_cities_keeps_the_largest(tmp_path):
    (tmp_path / "c.csv").write_text("name,country,country_code,continent,lat,lon,population\n"
                                    "A,Namibia,NA,Africa,-22.5,17.1,100\nB,Italy,IT,Europe,41.9,12.5,300\n"
                                    "C,Peru,PE,South America,-12.0,-77.0,200\n")
    cities = load_cities(tmp_path / "c.csv", max_cities=2)
    assert cities["name"].tolist() == ["B", "C"]
    assert load_cities(tmp_path / "c.csv")["country_code"].tolist()[-1] == "NA"  # Namibia is not NaN


def test_dataset_batches_equal_single_items():
    feats, states = torch.randn(10, 4), torch.randn(10, 3, 2).half()
    mask = torch.ones(10, 3, dtype=torch.bool)
    ds = CityTargetDataset(feats, states, mask, np.array([7, 2, 5]))
    batch = ds.__getitems__([2, 0])
    assert batch["row"].tolist() == [5, 7]
    assert batch["targets"].dtype == torch.float32
    torch.testing.assert_close(batch["features"][1], ds[0]["features"])
    torch.testing.assert_close(batch["targets"][0], states[5].float())
