"""`python -m workbench tune` end to end on the toy kind: a study of real trial runs, its
best config written as a full run config (without the per-trial overrides) and launched;
--worker refuses a study that does not exist; a bad spec is one line."""
import json
import subprocess
import sys

import yaml

from tests.tuning.conftest import write_toy_spec
from workbench.paths import REPO_ROOT


def tune(*args, runs):
    return subprocess.run([sys.executable, "-m", "workbench", "tune", *args, "--runs", str(runs)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)


def test_tune_then_best_then_launch(tmp_path):
    spec = write_toy_spec(tmp_path, "cli", 2, {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
                          sampler={"type": "random", "seed": 1})
    runs = tmp_path / "runs"
    done = tune(str(spec), runs=runs)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["states"] == {"COMPLETE": 2} and out["best_run"]
    best = tune("best", str(spec), "--launch", runs=runs)
    assert best.returncode == 0, best.stderr
    result = json.loads(best.stdout)
    cfg = yaml.safe_load(open(result["best_config"]))
    assert cfg["train"]["lr"] == out["best_params"]["train.lr"]
    assert cfg["train"]["max_epochs"] == 3 and cfg["name"] == "cli-best"  # the full run, not the trial's 1 epoch
    assert result["run"]
    missing = tune(str(spec).replace("spec", "spec"), "--worker", "--storage", f"journal:{tmp_path / 'none.journal'}",
                   runs=runs)
    assert missing.returncode == 2 and "no study 'cli'" in missing.stderr


def test_a_bad_spec_is_one_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nbase: projection-demo\nobjective: {metric: val/r_mean}\nspace: {train.lrr: {type: float, low: 0.1, high: 1}}\n")
    bad = tune(str(spec), runs=tmp_path / "runs")
    assert bad.returncode == 2 and "unknown key 'train.lrr'" in bad.stderr and "Traceback" not in bad.stderr
