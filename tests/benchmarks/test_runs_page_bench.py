"""benchmarks/runs_page.py in quick mode: a real server, browser and job; the Runs page
watching a running job stays under the CPU target and keeps updating.

Run through the CLI in a subprocess: Playwright's sync API cannot start while another
sync Playwright (the e2e tests' session browser) is open in the same process.
"""
import json
import subprocess
import sys
from pathlib import Path

from benchmarks import runs_page

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_quick_runs_page_benchmark_is_cheap_and_live():
    out = subprocess.run([sys.executable, "-m", "workbench", "bench", "runs_page", "--quick"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["within_target"], result  # < 10 % of one core while watching
    assert result["app_cpu_pct_of_core"] < runs_page.TARGET_PCT
    assert result["inotify_overflow_lines"] == 0
    # the page was live during the window: the progress text and the curve both moved on
    assert result["progress_first"] != result["progress_last"]
    assert result["progress_first"].startswith("running · step")
    assert result["curve_points_last"] > result["curve_points_first"] > 0
