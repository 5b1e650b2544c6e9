"""A trial's link from its training run back to its study: the trainer reports the
objective at every validation, and the study's pruner may stop the run (state ``pruned``).

The tune process writes ``trial.json`` into the trial's run directory before the job starts:
``{"storage": URL or journal:PATH, "study": name, "trial_id": int, "number": int, "metric": "val/...",
"pruner": the spec's pruner mapping}``. The job (another process, maybe another machine)
reopens the study from that storage with that pruner (Optuna does not store pruners).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from workbench.errors import WorkbenchError

TRIAL_FILE = "trial.json"


class TrialReporter:
    def __init__(self, info: dict):
        import optuna

        from workbench.tuning.samplers import make_pruner
        from workbench.tuning.storage import make_storage

        self.info, self.metric = info, info["metric"]
        storage = make_storage(info["storage"], info["study"])
        study = optuna.load_study(study_name=info["study"], storage=storage,
                                  pruner=make_pruner(info.get("pruner") or {"type": "median"}))
        self.trial = optuna.trial.Trial(study, int(info["trial_id"]))

    @classmethod
    def for_run(cls, run_dir: str | Path) -> "TrialReporter | None":
        file = Path(run_dir) / TRIAL_FILE
        if not file.is_file():
            return None
        try:
            info = json.loads(file.read_text())
            return cls(info)
        except (json.JSONDecodeError, KeyError) as exc:
            raise WorkbenchError(f"{file} is not a trial link ({exc}); delete it to train outside the study") from None

    def report(self, metrics: dict[str, float], step: int) -> bool:
        """Report the objective at this step; True when the pruner says stop."""
        value = metrics.get(self.metric)
        if value is None:
            raise WorkbenchError(f"the study's objective '{self.metric}' is not logged. Available: {sorted(metrics)}")
        if not math.isfinite(value):
            return True  # a diverged trial: nothing to learn from continuing
        self.trial.report(float(value), step)
        return bool(self.trial.should_prune())
