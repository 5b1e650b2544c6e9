"""Study storage: the default journal file under the runs folder, resume, a changed search
space refused with the parameter named, and two processes writing one journal at once with
no trial lost or duplicated."""
import subprocess
import sys

import optuna
import pytest
import yaml

from workbench.errors import ConfigError
from workbench.paths import REPO_ROOT
from workbench.tuning.spec import parse_spec, suggest
from workbench.tuning.storage import default_storage_path, open_study

SPEC = {"name": "s1", "base": "projection-demo", "objective": {"metric": "val/r_mean", "direction": "maximize"},
        "n_trials": 4, "sampler": {"type": "random", "seed": 0},
        "space": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                  "model.type": {"type": "categorical", "choices": ["mlp", "siglip"]}}}


def run_trials(study, spec, n):
    for _ in range(n):
        trial = study.ask()
        suggest(trial, spec)
        study.tell(trial, trial.params["train.lr"])


def test_the_default_storage_is_a_journal_under_the_runs_folder_and_resumes(tmp_path):
    spec = parse_spec(SPEC)
    study = open_study(spec, runs_root=tmp_path)
    run_trials(study, spec, 3)
    assert default_storage_path("s1", tmp_path).is_file()
    again = open_study(spec, runs_root=tmp_path)
    assert len(again.trials) == 3 and again.user_attrs["objective"] == "val/r_mean"
    run_trials(again, spec, 2)
    assert [t.number for t in open_study(spec, runs_root=tmp_path).trials] == [0, 1, 2, 3, 4]


def test_a_changed_search_space_is_refused_naming_the_parameter(tmp_path):
    spec = parse_spec(SPEC)
    run_trials(open_study(spec, runs_root=tmp_path), spec, 2)
    changed = {**SPEC, "space": {**SPEC["space"], "model.type": {"type": "categorical", "choices": ["mlp", "align"]}}}
    with pytest.raises(ConfigError, match=r"stored model.type as .* needs a new study name \(e.g. name: s1-2\)"):
        open_study(parse_spec(changed), runs_root=tmp_path)
    fewer = {**SPEC, "space": {"train.lr": SPEC["space"]["train.lr"]}}
    with pytest.raises(ConfigError, match="parameter 'model.type', which the spec's space no longer has"):
        open_study(parse_spec(fewer), runs_root=tmp_path)
    flipped = {**SPEC, "objective": {"metric": "val/loss", "direction": "minimize"}}
    with pytest.raises(ConfigError, match="stored with direction maximize"):
        open_study(parse_spec(flipped), runs_root=tmp_path)


WORKER = """
import sys, yaml
sys.path.insert(0, {root!r})
from workbench.tuning.spec import parse_spec, suggest
from workbench.tuning.storage import open_study
spec = parse_spec(yaml.safe_load(open({spec!r})))
study = open_study(spec, runs_root={runs!r})
for _ in range(15):
    trial = study.ask()
    suggest(trial, spec)
    study.tell(trial, trial.params["train.lr"])
"""


def test_two_processes_share_one_journal_without_losing_a_trial(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    code = WORKER.format(root=str(REPO_ROOT), spec=str(spec_file), runs=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    trials = open_study(parse_spec(SPEC), runs_root=tmp_path).trials
    assert sorted(t.number for t in trials) == list(range(30))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
