"""``python -m workbench bench satclip --quick``: the CLI finds the line's bench and prints
the pipeline-vs-step figures and every location encoder's throughput as JSON. No assertion
on the 3x target itself: that depends on the machine."""
import contextlib
import io
import json
import math

import numpy as np
import pytest
import torch

from workbench.cli import main
from workbench.encoders.location import LOCATION_ENCODERS
from workbench.lines.satclip import bench
from workbench.lines.satclip import data as sd

RATES = ("loader_samples_per_s", "decode_samples_per_s", "augment_samples_per_s", "step_samples_per_s",
         "frozen_cached_step_samples_per_s")


@pytest.fixture(scope="module")
def result():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["bench", "satclip", "--quick"]) == 0
    return json.loads(out.getvalue())


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_reports_pipeline_and_step_rates_and_their_ratio(result):
    assert result["quick"] is True and result["torch_threads"] >= 1
    for key in RATES:
        assert positive(result[key]), (key, result[key])
    ratio = result["loader_samples_per_s"] / result["step_samples_per_s"]
    assert result["loader_to_step_ratio"] == pytest.approx(ratio, rel=1e-2)
    assert result["target_ratio"] == 3
    assert result["meets_target"] == (result["loader_to_step_ratio"] >= 3)
    assert result["augment"] == {"crop": 56, "flips": True, "blur_p": 0.2, "jitter_deg": 0.05}


def test_every_location_encoder_and_sh_degree_has_a_throughput(result):
    expected = {n for n in LOCATION_ENCODERS.list() if n != "sh_siren"} | {"sh_siren_L10", "sh_siren_L20",
                                                                             "sh_siren_L40"}
    encoders = result["location_encoders"]
    assert set(encoders) == expected
    for name, entry in encoders.items():
        assert positive(entry.get("points_per_s")), (name, entry)
    assert encoders["sh_siren_L40"]["out_dim"] == 256 and encoders["geoclip"]["out_dim"] == 512
    basis = result["spherical_harmonics"]
    assert {k: v["features"] for k, v in basis.items()} == {"L10": 100, "L20": 400, "L40": 1600}
    assert all(positive(v["points_per_s"]) for v in basis.values())


def test_file_loader_decodes_every_tile_once_per_epoch_like_the_preloaded_one(tmp_path):
    dn = sd.make_s2_100k_sample(tmp_path, 10, bands=13, size=16)
    index = sd.load_s2_index(tmp_path)
    latlon = torch.tensor(index[["lat", "lon"]].to_numpy(np.float32))
    files = bench.S2Files(index["path"].tolist(), latlon, 16)
    batches = list(bench.trainer_loader(files, 4, epoch=0))
    assert [len(b["row"]) for b in batches] == [4, 4, 2]
    rows = torch.cat([b["row"] for b in batches])
    assert sorted(rows.tolist()) == list(range(10))
    image = torch.cat([b["image"] for b in batches])  # (10, 13, 16, 16) reflectance
    assert torch.equal(image, torch.from_numpy(dn[rows.numpy()].astype(np.float32) / np.float32(1e4)))
    assert torch.equal(torch.cat([b["latlon"] for b in batches]), latlon[rows])
