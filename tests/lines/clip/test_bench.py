"""The clip bench runs (quick) and reports the keys the issue names, with sane values."""
from workbench.lines.clip import bench


def test_quick_bench_reports_overhead_and_loader_rate():
    out = bench.run(quick=True)
    assert 0.3 < out["overhead_ratio"] < 3.0
    assert out["trainer_steps_per_s"] > 0 and out["bare_steps_per_s"] > 0
    assert out["loader_samples_per_s"] > out["step_samples_per_s"]  # the pipeline is not the bottleneck
    assert out["decode_samples_per_s"] > 0 and out["quick"] is True
