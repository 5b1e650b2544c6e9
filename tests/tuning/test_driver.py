"""A real small study of the toy kind through the job manager: every trial is a run (named
after the study, linked by trial.json), the objective is the run's final metric, a trial
whose run fails is marked FAIL with its error and the study goes on, and a rerun resumes."""
import json

import optuna
import yaml

from workbench.runs import RunStore
from workbench.tuning.driver import run_study
from workbench.tuning.spec import parse_spec

BASE = {"kind": "toy", "train": {"device": "cpu", "max_epochs": 2}}


def spec(tmp_path, **extra):
    base = tmp_path / "toy.yaml"
    base.write_text(yaml.safe_dump(BASE))
    data = {"name": "toy-study", "base": str(base), "objective": {"metric": "val/loss", "direction": "minimize"},
            "n_trials": 3, "sampler": {"type": "random", "seed": 0}, "pruner": {"type": "none"},
            "space": {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}, **extra}
    return parse_spec(data)


def test_trials_are_runs_and_the_objective_is_their_final_metric(tmp_path):
    s = spec(tmp_path)
    out = run_study(s, runs_root=tmp_path / "runs", poll_s=0.2)
    assert out["trials"] == 3 and out["states"] == {"COMPLETE": 3}
    store = RunStore(tmp_path / "runs")
    study = optuna.load_study(study_name="toy-study", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs" / "studies" / "toy-study.journal"))))
    for t in study.trials:
        run = store.get(t.user_attrs["run_id"])
        status = run.read_status()
        assert status["state"] == "done" and status["trial"] == t.number and status["study"] == "toy-study"
        assert t.value == status["final"]["val/loss"]
        assert json.loads((run.path / "trial.json").read_text())["number"] == t.number
        assert run.config_path.read_text().count(f"toy-study-t{t.number}") == 1
    assert out["best_value"] == min(t.value for t in study.trials)
    again = run_study(spec(tmp_path, n_trials=4), runs_root=tmp_path / "runs", poll_s=0.2)
    assert again["trials"] == 4  # resumed: one more trial, not four


def test_a_failing_trial_is_marked_failed_and_the_study_goes_on(tmp_path):
    # one trial fails at run time: a non-finite loss from an absurd learning rate
    s = spec(tmp_path, name="fails", n_trials=2, sampler={"type": "grid"},
             space={"train.lr": {"type": "categorical", "choices": [0.01, 1.0e30]}}, overrides=["train.max_epochs=1"])
    out = run_study(s, runs_root=tmp_path / "runs", poll_s=0.2)
    assert out["trials"] == 2 and out["states"] == {"COMPLETE": 1, "FAIL": 1}
    study = optuna.load_study(study_name="fails", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs" / "studies" / "fails.journal"))))
    failed = next(t for t in study.trials if t.state == optuna.trial.TrialState.FAIL)
    assert failed.params["train.lr"] == 1.0e30 and failed.user_attrs["error"]
