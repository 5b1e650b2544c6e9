"""``python -m workbench softprompt``: the weights command on the committed demo checkpoint,
one-line errors for bad coordinates, parameter counts."""
import json
import subprocess
import sys

import pytest

from workbench.cli import main
from workbench.lines.softprompt.explorer import DEMO_CHECKPOINT


def weights(capsys, lat, lon, *extra):
    assert main(["softprompt", "weights", "--checkpoint", str(DEMO_CHECKPOINT), "--lat", lat, "--lon", lon, *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("lat, lon", [("64.1466", "-21.9426"), ("-54.8019", "-68.3030"), ("0", "180"), ("-90", "-180")])
def test_weights_are_k_numbers_summing_to_one(capsys, lat, lon):
    r = weights(capsys, lat, lon, "--top", "3", "--cities", "4")
    w = r["weights"]
    assert r["k"] == len(w) == 64 and r["sum"] == pytest.approx(1.0, abs=1e-5) and min(w) >= 0
    assert [t["entry"] for t in r["top_entries"]] == r["order"][:3]
    assert [t["weight"] for t in r["top_entries"]] == sorted(w, reverse=True)[:3]
    assert all(len(t["meaning"]) == 3 for t in r["top_entries"])
    assert len(r["nearest_cities"]) == 4 and r["latency_ms"] > 0


def test_demo_is_the_default_checkpoint(capsys):
    assert main(["softprompt", "weights", "--lat", "10", "--lon", "10"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "checkpoint: softprompt-demo"


@pytest.mark.parametrize("lat, lon, message", [
    ("91", "0", "lat = 91.0 is outside [-90, 90]"),
    ("0", "-200", "lon = -200.0 is outside [-180, 180]"),
    ("north", "3", "lat must be a number in degrees, got 'north'"),
    ("nan", "3", "lat = nan is NaN"),
])
def test_bad_coordinates_give_one_line(capsys, lat, lon, message):
    code = main(["softprompt", "weights", "--checkpoint", str(DEMO_CHECKPOINT), "--lat", lat, "--lon", lon])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and message in err


def test_bad_coordinates_from_the_shell():
    out = subprocess.run([sys.executable, "-m", "workbench", "softprompt", "weights", "--lat", "95", "--lon", "0"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: invalid coordinate")


def test_missing_checkpoint_is_one_line(capsys, tmp_path):
    assert main(["softprompt", "weights", "--checkpoint", str(tmp_path / "none"), "--lat", "1", "--lon", "1"]) == 2
    assert "no softprompt checkpoint at" in capsys.readouterr().err


def test_params_counts_every_architecture_honestly(capsys):
    assert main(["softprompt", "params", "model.n_entries=64", "targets.max_tokens=77", "targets.encoder=clip_text"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dims"] == {"features": 512, "seq_len": 77, "token_dim": 768}
    sp = out["models"]["softprompt"]
    assert sp["dictionary"] == 64 * 77 * 768 and sp["trainable"] == sp["dictionary"] + sp["trainable_without_dictionary"]
    assert sp["frozen_location_encoder"] == 9_447_936  # GeoCLIP's location encoder, frozen
    assert set(out["models"]) == {"softprompt", "lightweight_transformer", "direct"}
