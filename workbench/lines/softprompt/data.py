"""Cities, their held-out split by S2 cell, and the (features, target sequence) datasets.

``build_data`` gathers everything one run needs, cached so that epochs are cheap: the city
table (``data/cities/cities.csv``), frozen location features of every city
(``encode_cached``: GeoCLIP [N, 512]) and the target sequences of their prompts
(``load_targets``: [N, L, D] float16).

Held-out cities are whole S2 cells (``s2_split``): a city and its neighbours in the same cell
are never on both sides, so validation measures generalisation to unseen regions rather
than interpolation between a city and the next town.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from workbench.errors import ConfigError, NotFoundError
from workbench.geo.splits import held_out_cells
from workbench.paths import repo_path
from workbench.runs.progress import set_phase
from workbench.lines.softprompt.models import location_encoder_kwargs
from workbench.lines.softprompt.targets import Targets, load_targets, render_prompts

CITY_COLUMNS = ("name", "country", "country_code", "continent", "lat", "lon", "population")


resolve = repo_path  # relative paths are relative to the repository root


def load_cities(path: str | Path, max_cities: int = 0, min_population: int = 0) -> pd.DataFrame:
    """The city table, largest first: the first ``max_cities`` (0 = all) with at least
    ``min_population`` people. Columns include CITY_COLUMNS; index 0..N-1."""
    path = resolve(path)
    if not path.is_file():
        raise NotFoundError(f"city table not found at {path}; build it with: python -m workbench data build-demo --only cities")
    frame = pd.read_csv(path, keep_default_na=False, na_values={"lat": [""], "lon": [""], "population": [""]})
    missing = [c for c in CITY_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path} lacks the column(s) {missing}; expected at least {list(CITY_COLUMNS)}")
    frame = frame.sort_values("population", ascending=False, kind="stable")
    frame = frame[frame["population"] >= min_population]
    if max_cities:
        frame = frame.head(max_cities)
    return frame.reset_index(drop=True)


def s2_split(lat: Any, lon: Any, level: int = 5, val_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean mask [N]: True for held-out cities, whole S2 cells of ``level``
    (``workbench.geo.splits.held_out_cells``)."""
    return held_out_cells(lat, lon, level, val_fraction, seed)


class CityTargetDataset(Dataset):
    """Rows ``rows`` of the full arrays: features [N, F], states [N, L, D], mask [N, L].

    ``__getitems__`` gathers a whole batch with one index per tensor (the DataLoader calls it
    when present), so a batch costs a few tensor ops instead of B Python calls.
    """

    def __init__(self, features: torch.Tensor, states: torch.Tensor, mask: torch.Tensor, rows: np.ndarray):
        self.features, self.states, self.mask = features, states, mask
        self.rows = torch.as_tensor(rows, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        rows = self.rows[torch.as_tensor(indices, dtype=torch.long)]
        return {"features": self.features[rows], "targets": self.states[rows].float(),
                "mask": self.mask[rows], "row": rows}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}


@dataclass
class SoftPromptData:
    """Everything a run reads, for all N cities; ``val`` is the held-out mask [N]."""

    cities: pd.DataFrame
    prompts: list[str]
    features: torch.Tensor  # (N, F) float32
    targets: Targets  # states (N, L, D) float16, mask (N, L)
    val: np.ndarray  # (N,) bool

    @property
    def train_rows(self) -> np.ndarray:
        return np.flatnonzero(~self.val)

    @property
    def val_rows(self) -> np.ndarray:
        return np.flatnonzero(self.val)

    def dataset(self, rows: np.ndarray) -> CityTargetDataset:
        return CityTargetDataset(self.features, self.targets.states, self.targets.mask, rows)


def build_data(cfg: Any, progress: Callable[[str], None] | None = print) -> SoftPromptData:
    """Cities, split, features and targets for a ``SoftPromptConfig`` (sections data, targets, features)."""
    from workbench.encoders.location import encode_cached

    d, t = cfg.data, cfg.targets
    cities = load_cities(d.cities_csv, d.max_cities, d.min_population)
    if len(cities) < 2 * cfg.model.n_entries and cfg.model.arch == "softprompt" and cfg.model.dict_init == "targets":
        raise ConfigError(f"{len(cities)} cities are too few to initialise K={cfg.model.n_entries} dictionary entries "
                          "from training targets; raise data.max_cities or lower model.n_entries")
    val = s2_split(cities["lat"].to_numpy(), cities["lon"].to_numpy(), d.split_level, d.val_fraction, d.split_seed)
    cities["split"] = np.where(val, "val", "train")
    prompts = render_prompts(cities, t.template)
    latlon = cities[["lat", "lon"]].to_numpy(np.float64)
    set_phase("setup", f"encoding {len(cities):,} locations with {cfg.features.location_encoder}",
                       total=len(cities))
    features = torch.from_numpy(encode_cached(cfg.features.location_encoder, latlon,
                                              **location_encoder_kwargs(cfg.features.location_encoder)))
    set_phase("setup", f"encoding {len(prompts):,} target prompts with {t.encoder}", total=len(prompts))
    targets = load_targets(prompts, t.encoder, t.max_tokens, t.encoder_path or None,
                           resolve(t.cache_dir), progress=progress)
    cities["n_tokens"] = targets.lengths.numpy()
    return SoftPromptData(cities, prompts, features, targets, val)
