"""Bad environment variables: one line and exit 2 from the CLI, before any run exists."""
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_bad_max_jobs_is_one_line_and_creates_nothing(value, runs_dir):
    env = {"WORKBENCH_MAX_JOBS": value, "WORKBENCH_RUNS": str(runs_dir), "PATH": "/usr/bin:/bin"}
    for argv in (["runs", "list"], ["train", "geolocator-demo", "--detach"]):
        proc = subprocess.run([sys.executable, "-m", "workbench", *argv], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines == [f"error: environment variable WORKBENCH_MAX_JOBS='{value}' is invalid: expected "
                         "a whole number in [1, 64]; fix it (e.g. export WORKBENCH_MAX_JOBS=...) or unset it"]
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
