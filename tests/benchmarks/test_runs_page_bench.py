"""benchmarks/runs_page.py in quick mode: a real server, browser and job; the Runs page
watching a running job stays under the CPU target and keeps updating."""
import json

from benchmarks import runs_page


def test_quick_runs_page_benchmark_is_cheap_and_live():
    result = runs_page.run(quick=True)
    json.dumps(result)
    assert result["within_target"], result  # < 10 % of one core while watching
    assert result["app_cpu_pct_of_core"] < runs_page.TARGET_PCT
    assert result["inotify_overflow_lines"] == 0
    # the page was live during the window: the progress text and the curve both moved on
    assert result["progress_first"] != result["progress_last"]
    assert result["progress_first"].startswith("running · step")
    assert result["curve_points_last"] > result["curve_points_first"] > 0
