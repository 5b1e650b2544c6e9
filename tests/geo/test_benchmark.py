"""benchmarks/geo.py in quick mode: both sides agree, the report is complete JSON."""
from __future__ import annotations

import json

from benchmarks import geo as geo_bench


def test_quick_benchmark_reports_agreeing_results():
    result = geo_bench.run(quick=True)
    json.dumps(result)  # JSON-serialisable as the CLI prints it
    details = result["details"]
    assert set(geo_bench.BENCHMARKS) == set(details)
    assert result["s2_speedup"] == round(details["s2_speedup"]["speedup"], 1)
    assert result["geoclip_points_per_s"] > 0 and details["geoclip"]["n"] == 10_000

    s2 = details["s2_speedup"]
    assert s2["ids_match"] is True  # the same ids as s2sphere on the reference subset
    assert s2["n_points"] == 100_000 and s2["reference_n_points"] == 5_000 and s2["level"] == 13
    # Loose bound (the real target, >= 20, is for the full run): vectorised must win clearly.
    assert s2["speedup"] > 3

    metrics = details["metrics_speedup"]
    assert metrics["geoclip_loop_agrees"] is True
    assert metrics["vs_geopy_single_pass"]["agrees"] is True
    assert metrics["vs_python_haversine_loop"]["agrees"] is True
    assert metrics["n_predictions"] == 100_000
    assert metrics["speedup"] > 3 and metrics["vs_python_haversine_loop"]["speedup"] > 1
