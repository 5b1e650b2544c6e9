"""Fixtures of the soft-prompt tests: a small random bundle folder (a model and a city index)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.config import to_dict, write_yaml
from workbench.config import applicable
from workbench.experiments import build_config
from workbench.lines.softprompt.config import SoftPromptModelConfig
from workbench.lines.softprompt.models import build_sequence_model
from workbench.lines.softprompt.bundle import save_bundle

CITY_ROWS = [("Lyon", "France", "FR", 45.75, 4.85), ("Osaka", "Japan", "JP", 34.69, 135.5),
             ("Lima", "Peru", "PE", -12.04, -77.03), ("Perth", "Australia", "AU", -31.95, 115.86),
             ("Accra", "Ghana", "GH", 5.56, -0.2), ("Quito", "Ecuador", "EC", -0.23, -78.52)]


def small_config(arch: str = "softprompt", **overrides):
    """A tiny config of ``arch``: each architecture's own size options made small."""
    model = applicable(SoftPromptModelConfig, {"arch": arch, "n_entries": 6, "hidden": 16, "d_model": 16,
                                               "heads": 2, "layers": 1})
    flat = {**{f"model.{k}": v for k, v in model.items()}, "targets.max_tokens": 5, **overrides}
    return build_config({"kind": "softprompt"}, [f"{k}={v}" for k, v in flat.items()])


def write_bundle_folder(folder, arch: str = "softprompt", seed: int = 0):
    """A bundle folder like checkpoints/softprompt-demo/ with a random model and 6 cities."""
    torch.manual_seed(seed)
    cfg = small_config(arch)
    model = build_sequence_model(cfg).eval()
    save_bundle(model, to_dict(cfg), folder / "model.pt")
    write_yaml(cfg, folder / "config.yaml")
    n = len(CITY_ROWS)
    pooled = torch.nn.functional.normalize(torch.randn(n, model.token_dim), dim=-1)
    lengths = torch.tensor([5, 3, 4, 2, 5, 1])
    torch.save({"pooled": pooled.half(), "lengths": lengths, "encoder": "minilm"}, folder / "index.pt")
    cities = pd.DataFrame(CITY_ROWS, columns=["name", "country", "country_code", "lat", "lon"])
    cities["continent"], cities["population"] = "x", np.arange(n) * 1000
    cities["prompt"] = "a photo taken in " + cities["name"] + ", " + cities["country"]
    cities["n_tokens"] = lengths.numpy()
    cities.to_csv(folder / "cities.csv", index=False)
    return cfg, model


@pytest.fixture
def bundle_folder(tmp_path):
    folder = tmp_path / "checkpoints" / "tiny"
    folder.mkdir(parents=True)
    write_bundle_folder(folder)
    return folder
