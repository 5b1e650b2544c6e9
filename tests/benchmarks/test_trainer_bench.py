"""benchmarks/trainer.py in quick mode: both loops run the same steps and the report is JSON."""
import json

from benchmarks import trainer as trainer_bench


def test_quick_trainer_benchmark_reports_a_ratio():
    result = trainer_bench.run(quick=True)
    json.dumps(result)
    assert result["steps_per_run"] == 64 and result["pairs"] == 2 and len(result["pair_ratios"]) == 2
    ratios = sorted(result["pair_ratios"])
    assert ratios[0] - 0.001 <= result["overhead_ratio"] <= ratios[-1] + 0.001  # the median pair
    # The target (>= 0.95) is for the full run on a quiet machine; a 64-step quick run on a
    # busy CI box only shows both loops run at the same order of speed.
    assert 0.3 < result["overhead_ratio"] < 3.0
