"""The trainer reports a trial's objective at every validation to its study; the study's
pruner stops a bad trial, which ends as state 'pruned' (run status and fit result) with its
intermediate values in the study. Without trial.json a run is untouched."""
import json

import optuna

from workbench.experiments import create_experiment
from workbench.runs import RunStore
from workbench.train.trainer import Trainer
from workbench.tuning.report import TRIAL_FILE


def study_with_a_great_first_trial(path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="toy", storage=storage, direction="minimize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    best = study.ask()
    for step in range(0, 100, 4):
        best.report(-1.0, step)  # a loss no real trial reaches
    study.tell(best, -1.0)
    return study


def test_a_bad_trial_is_pruned_at_its_first_validation(toy_cfg, tmp_path):
    journal = tmp_path / "toy.journal"
    study = study_with_a_great_first_trial(journal)
    trial = study.ask()
    cfg = toy_cfg(**{"train.max_epochs": 5, "train.val_every": 4})
    run = RunStore(tmp_path / "runs").create(cfg)
    (run.path / TRIAL_FILE).write_text(json.dumps({"storage": f"journal:{journal}", "study": "toy",
                                                   "trial_id": trial._trial_id, "number": trial.number,
                                                   "metric": "val/loss",
                                                   "pruner": {"type": "median", "n_startup_trials": 1}}))
    result = Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    assert result["state"] == "pruned" and result["step"] == 4
    status = run.read_status()
    assert status["state"] == "pruned" and "pruned by the study at step 4" in status["stop_reason"]
    stored = study.trials[trial.number]
    assert list(stored.intermediate_values) == [4] and stored.intermediate_values[4] > 0
    assert not (run.artifacts_dir / "metrics.json").exists()  # no artifacts for a pruned trial


def test_a_good_trial_runs_to_the_end(toy_cfg, tmp_path):
    journal = tmp_path / "toy.journal"
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.create_study(study_name="toy", storage=JournalStorage(JournalFileBackend(str(journal))),
                                direction="minimize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    cfg = toy_cfg(**{"train.max_epochs": 2})
    run = RunStore(tmp_path / "runs").create(cfg)
    (run.path / TRIAL_FILE).write_text(json.dumps({"storage": f"journal:{journal}", "study": "toy",
                                                   "trial_id": trial._trial_id, "number": 0, "metric": "val/loss",
                                                   "pruner": {"type": "none"}}))
    result = Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    assert result["state"] == "done"
    assert sorted(study.trials[0].intermediate_values) == [8, 16]  # one report per validation
