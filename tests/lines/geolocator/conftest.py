"""A tiny geolocation dataset (6 cities x 8 JPEGs of 32 px, colour-coded by city) and a
tiny trained checkpoint, shared by the geolocator tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

CITIES = {  # (lat, lon), RGB colour of its images
    "paris": ((48.85, 2.35), (200, 40, 40)),
    "new_york": ((40.71, -74.0), (40, 200, 40)),
    "sydney": ((-33.87, 151.21), (40, 40, 200)),
    "tokyo": ((35.68, 139.69), (200, 200, 40)),
    "sao_paulo": ((-23.55, -46.63), (200, 40, 200)),
    "cairo": ((30.04, 31.24), (40, 200, 200)),
}
PER_CITY = 8  # 6 train + 2 val


def write_tiny_dataset(root: Path, size: int = 32, seed: int = 0) -> Path:
    """images/*.jpg + data.csv (path, lat, lon, split, place); returns the CSV path."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for name, ((lat, lon), colour) in CITIES.items():
        for i in range(PER_CITY):
            pixels = np.clip(np.asarray(colour) + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            path = f"images/{name}_{i}.jpg"
            Image.fromarray(pixels).save(root / path, quality=95)
            rows.append({"path": path, "lat": round(lat + rng.normal(0, 0.3), 5),
                         "lon": round(lon + rng.normal(0, 0.3), 5),
                         "split": "train" if i < 6 else "val", "place": name})
    csv = root / "data.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_geo"))


def tiny_config(csv: Path, *overrides: str, **sections):
    """A geolocator config on the tiny dataset: test_efficientnet (random init), 32 px."""
    from workbench.experiments import build_config

    base = {
        "kind": "geolocator", "name": "tiny", "seed": 0,
        "data": {"csv": str(csv), "image_size": 32},
        "labels": {"t_min": 2, "t_max": 8, "min_level": 2, "max_level": 8},
        "model": {"backbone": "test_efficientnet", "weights": "none", "head": "linear"},
        "train": {"batch_size": 8, "max_epochs": 1, "device": "cpu", "log_every": 1, "lr": 1e-2,
                  "warmup_steps": 0},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return build_config(base, list(overrides))


@pytest.fixture
def tiny_cfg(tiny_csv):
    def make(*overrides: str, **sections):
        return tiny_config(tiny_csv, *overrides, **sections)

    return make


@pytest.fixture(scope="session")
def tiny_bundle(tiny_csv, tmp_path_factory) -> Path:
    """A tiny geolocator trained for 3 epochs and exported as a bundle folder."""
    from workbench.experiments import create_experiment
    from workbench.lines.geolocator.export import export_bundle
    from workbench.runs import RunStore
    from workbench.train.trainer import Trainer

    cfg = tiny_config(tiny_csv, "train.max_epochs=3", "model.head=mlp", "model.hidden=32")
    store = RunStore(tmp_path_factory.mktemp("runs"))
    run = store.create(cfg)
    Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    out = tmp_path_factory.mktemp("bundle") / "tiny-geolocator"
    export_bundle(run.path, out)
    return out
