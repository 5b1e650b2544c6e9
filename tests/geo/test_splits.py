"""Held-out splits by whole S2 cells (workbench.geo.splits)."""
import numpy as np
import pandas as pd
import pytest

from workbench.errors import ConfigError
from workbench.geo import s2_cell_ids
from workbench.geo.splits import held_out_cells, split_by_cell
from workbench.paths import REPO_ROOT


def sphere_points(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


def test_split_by_cell_groups_cells_and_balances_points():
    lat, lon = sphere_points(20000, 1)
    split, cells = split_by_cell(lat, lon, level=5, seed=3)
    assert (pd.Series(split).groupby(cells).nunique() == 1).all()
    fractions = pd.Series(split).value_counts(normalize=True)
    assert fractions.to_dict() == pytest.approx({"train": 0.8, "val": 0.1, "test": 0.1}, abs=0.01)
    again, _ = split_by_cell(lat, lon, level=5, seed=3)
    assert np.array_equal(split, again)
    assert not np.array_equal(split, split_by_cell(lat, lon, level=5, seed=4)[0])


def test_split_by_cell_reproduces_the_demo_data_sets_split():
    """data/geo-patches was built (seed 0, level 4) before the split moved into geo/: the
    moved function gives every tile the split the data set records."""
    csv = REPO_ROOT / "data" / "geo-patches" / "patches.csv"
    frame = pd.read_csv(csv, usecols=["lat", "lon", "split"])
    split, _ = split_by_cell(frame["lat"].to_numpy(), frame["lon"].to_numpy(), level=4, seed=0)
    # the CSV stores 5-decimal coordinates; a tile within ~1 m of a cell edge could flip
    assert (split == frame["split"].to_numpy()).mean() > 0.998


def test_split_fractions_are_checked():
    with pytest.raises(ConfigError, match="3 non-negative numbers summing to 1"):
        split_by_cell(np.zeros(3), np.zeros(3), fractions=(0.5, 0.5, 0.5))


@pytest.mark.parametrize("level", [3, 5])
def test_held_out_cells_are_whole_and_near_the_fraction(level):
    lat, lon = sphere_points(5000, 0)
    held = held_out_cells(lat, lon, level=level, fraction=0.2, seed=1)
    cells = s2_cell_ids(lat, lon, level)
    assert not set(cells[held]) & set(cells[~held])
    assert abs(held.mean() - 0.2) < 0.03
    assert np.array_equal(held, held_out_cells(lat, lon, level=level, fraction=0.2, seed=1))
    assert not np.array_equal(held, held_out_cells(lat, lon, level=level, fraction=0.2, seed=2))


def test_held_out_cells_reproduce_the_softprompt_demo_split():
    """The soft-prompt demo bundle's held-out cities (its cities.csv, written before the
    split moved into geo/) are exactly the held-out side of the moved function."""
    from workbench.lines.softprompt.data import load_cities

    cities = load_cities(REPO_ROOT / "data" / "cities" / "cities.csv", max_cities=8000)
    held = held_out_cells(cities["lat"].to_numpy(), cities["lon"].to_numpy(), level=5, fraction=0.2, seed=0)
    shipped = pd.read_csv(REPO_ROOT / "checkpoints" / "softprompt-demo" / "cities.csv")
    assert held.sum() == len(shipped)
    assert sorted(cities.loc[held, "name"]) == sorted(shipped["name"])


def test_held_out_fraction_is_checked():
    with pytest.raises(ConfigError, match=r"data.val_fraction must be in \(0, 1\)"):
        held_out_cells(np.zeros(3), np.zeros(3), fraction=1.0)
