"""The command line: help, one-line errors for bad input, the run lifecycle."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from workbench.cli import main
from workbench.runs import RunStore


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "workbench", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ["train", "runs", "eval", "bench", "data"]:
        assert name in out.stdout
    for sub in (["runs", "--help"], ["train", "--help"], ["bench", "--help"], ["data", "--help"], ["eval", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(sub)
        assert exc.value.code == 0


def one_line_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_gives_one_line_errors(capsys, tmp_path, runs_dir):
    (tmp_path / "bad.yaml").write_text("kind: toy\ntrain: {lr: 1\n")
    (tmp_path / "unknown.yaml").write_text("kind: toy\nmodel: {hiddn: 3}\n")
    (tmp_path / "type.yaml").write_text("kind: toy\ntrain: {batch_size: many}\n")
    assert "malformed YAML" in one_line_error(capsys, ["train", str(tmp_path / "bad.yaml")])
    assert "unknown key 'model.hiddn' in model. Valid keys: ['dropout', 'hidden']" in one_line_error(
        capsys, ["train", str(tmp_path / "unknown.yaml")])
    assert "train.batch_size: expected int, got str 'many'" in one_line_error(capsys, ["train", str(tmp_path / "type.yaml")])
    assert "config file not found" in one_line_error(capsys, ["train", str(tmp_path / "none.yaml")])
    assert "must look like key=value" in one_line_error(capsys, ["train", str(tmp_path / "unknown.yaml"), "lr"])
    assert "not found" in one_line_error(capsys, ["runs", "show", "nope"])
    assert "benchmark 'nope' not found. Available:" in one_line_error(capsys, ["bench", "nope"])


def test_unwritable_runs_directory(capsys, tmp_path):
    (tmp_path / "cfg.yaml").write_text("kind: toy\n")
    (tmp_path / "file").write_text("")
    err = one_line_error(capsys, ["train", str(tmp_path / "cfg.yaml"), "--runs", str(tmp_path / "file" / "runs")])
    assert "cannot create the runs directory" in err


def test_train_list_show_eval_delete(capsys, tmp_path, runs_dir):
    (tmp_path / "cfg.yaml").write_text("kind: toy\nname: cli\ntrain: {max_epochs: 2}\n")
    assert main(["train", str(tmp_path / "cfg.yaml"), "train.lr=0.01"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["state"] == "done" and result["step"] == 16
    run_id = result["run"]
    assert main(["runs", "list"]) == 0 and run_id in capsys.readouterr().out
    assert main(["runs", "show", run_id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["train"]["lr"] == 0.01 and shown["status"]["state"] == "done"
    assert main(["eval", run_id]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["val/loss"] == pytest.approx(result["best"], rel=1e-6)
    run = RunStore(runs_dir).get(run_id)
    run.update_status(state="running", pid=2**22 + 7)  # a job whose process is gone
    assert main(["runs", "resume", run_id]) == 0  # found crashed, resumed from last.pt
    assert "queued" in capsys.readouterr().out or run.read_status()["state"] in ("running", "done")
    assert "is running; stop it first" in one_line_error(capsys, ["runs", "delete", run_id])
    assert main(["runs", "stop", run_id]) == 0
    assert main(["runs", "delete", run_id]) == 0 and not run.path.exists()


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detach"])
@pytest.mark.parametrize("override, message", [
    ("train.batch_size=0", "train.batch_size: 0 is out of range; must be an integer >= 1 (samples)"),
    ("train.lr=nan", "train.lr: nan is out of range; must be a finite number >= 0"),
    ("train.max_epochs=-1", "train.max_epochs: -1 is out of range; must be an integer >= 1 (epochs)"),
])
def test_out_of_range_values_fail_at_once_before_any_run(capsys, tmp_path, runs_dir, override, message, detach):
    (tmp_path / "cfg.yaml").write_text("kind: toy\n")
    argv = ["train", str(tmp_path / "cfg.yaml"), override, *(["--detach"] if detach else [])]
    assert one_line_error(capsys, argv) == f"error: {message}"
    assert not runs_dir.exists() or not any(runs_dir.iterdir())  # no run directory was created


def test_out_of_range_in_a_preset_exits_2_with_one_line(tmp_path):
    """The real entry point on a shipped preset: exit status 2, one stderr line, no run."""
    runs = tmp_path / "runs"
    out = subprocess.run([sys.executable, "-m", "workbench", "train", "geolocator",
                          "train.lr=nan", "--runs", str(runs)], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == "error: train.lr: nan is out of range; must be a finite number >= 0"
    assert out.stdout == "" and not runs.exists()


def test_a_broken_plugin_is_one_line(tmp_path):
    (tmp_path / "cfg.yaml").write_text("kind: toy\n")
    env = {**os.environ, "WORKBENCH_PLUGINS": "tests.toy_experiment,no_such_plugin_mod"}
    out = subprocess.run([sys.executable, "-m", "workbench", "train", str(tmp_path / "cfg.yaml"),
                          "--runs", str(tmp_path / "runs")], capture_output=True, text=True,
                         cwd=REPO_ROOT, env=env, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: WORKBENCH_PLUGINS names the module 'no_such_plugin_mod', which could not be imported "
        "(ModuleNotFoundError: No module named 'no_such_plugin_mod'); fix it or remove it from "
        "WORKBENCH_PLUGINS (comma-separated Python module names, e.g. mypkg.my_experiment)")
