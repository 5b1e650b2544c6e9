"""Two machines, one study on a real PostgreSQL server: two `tune --worker` processes, each
with its own runs folder, share the study; no trial is lost or duplicated and both work."""
import subprocess
import sys

import optuna

from tests.tuning.conftest import write_toy_spec
from workbench.paths import REPO_ROOT
from workbench.tuning.spec import load_spec
from workbench.tuning.storage import open_study

N_TRIALS = 6


def write_spec(tmp_path):
    return write_toy_spec(tmp_path, "pg", N_TRIALS, {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
                                                      "model.hidden": {"type": "int", "low": 4, "high": 32}})


def test_two_workers_share_one_postgresql_study(tmp_path, postgres_url):
    spec_file = write_spec(tmp_path)
    open_study(load_spec(spec_file), postgres_url, tmp_path / "starter")  # the first machine creates it
    runs = [tmp_path / "machine-a", tmp_path / "machine-b"]
    workers = [subprocess.Popen([sys.executable, "-m", "workbench", "tune", str(spec_file), "--storage", postgres_url,
                                 "--worker", "--runs", str(r)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for r in runs]
    try:
        outputs = [w.communicate(timeout=240) for w in workers]
    finally:
        for w in workers:
            w.kill()  # a no-op once it has exited; a hung worker must not outlive the test
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outputs]

    trials = optuna.load_study(study_name="pg", storage=postgres_url).trials
    assert N_TRIALS <= len(trials) <= N_TRIALS + len(workers)  # the study's total; at most one extra per worker
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), [(t.number, t.state) for t in trials]
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    run_ids = [t.user_attrs.get("run_id") for t in trials]
    assert None not in run_ids and len(set(run_ids)) == len(run_ids)
    owners = {rid: [r.name for r in runs if (r / rid / "config.yaml").is_file()] for rid in run_ids}
    assert all(len(where) == 1 for where in owners.values()), owners  # each run on exactly one machine
    assert {where[0] for where in owners.values()} == {"machine-a", "machine-b"}  # both workers ran trials
