"""benchmarks/ddp.py and benchmarks/gpu_ddp.py on tiny settings: two CPU processes (torchrun,
gloo) end with the weights of one process and both rates are timed from the run's own
records; the GPU script says so without CUDA and, as a CPU dry run, trains the clip line on
two gloo ranks through the same code path the GPU measurement takes."""
import json

import pytest
import torch

from benchmarks import ddp as ddp_bench
from benchmarks import gpu_ddp
from workbench.errors import WorkbenchError


def test_two_cpu_processes_match_one_and_both_rates_are_timed():
    result = ddp_bench.measure(steps=12, pairs=1, batch_size=64, log_every=3, max_samples=640, timeout_s=120)
    json.dumps(result)
    for key in ("samples_per_s_1proc", "samples_per_s_2proc", "speedup_2proc", "parity_max_abs_diff",
                "startup_s_1proc", "startup_s_2proc", "startup_overhead_2proc_s", "settings", "machine"):
        assert key in result, key
    assert result["parity_max_abs_diff"] < 1e-4  # the same steps on the same global batches
    assert result["parity_val_loss_abs_diff"] < 1e-4
    assert result["samples_per_s_1proc"] > 0 and result["samples_per_s_2proc"] > 0
    assert result["speedup_2proc"] == pytest.approx(result["samples_per_s_2proc"] / result["samples_per_s_1proc"],
                                                    rel=1e-2)
    # the window runs from the first train record (step 3) to the last (step 12)
    assert result["settings"]["timed_steps"] == 9 and result["settings"]["per_rank_batch"] == 32
    assert result["startup_s_1proc"] > 0 and result["startup_s_2proc"] > 0
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["torch"] == torch.__version__


def test_a_max_samples_that_leaves_a_partial_batch_is_refused(tmp_path):
    with pytest.raises(WorkbenchError, match="must be a multiple of train.batch_size=64"):
        ddp_bench.launch("projection-demo", ["train.batch_size=64", "train.max_samples=100"], 1, tmp_path, 10)


def test_gpu_counts_run_the_baseline_and_the_largest_first():
    assert gpu_ddp.gpu_counts(1) == [1]
    assert gpu_ddp.gpu_counts(2) == [1, 2]
    assert gpu_ddp.gpu_counts(8) == [1, 8, 2, 4]
    assert gpu_ddp.gpu_counts(6) == [1, 6, 2, 4]


def test_the_gpu_script_without_cuda_prints_one_line_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_ddp.main([]) == 0
    line = gpu_ddp.NO_CUDA.format(torch=torch.__version__)
    assert capsys.readouterr().out.splitlines() == [line]
    assert gpu_ddp.run(quick=True) == {"skipped": line}  # through `python -m workbench bench gpu_ddp`


def test_the_gpu_script_dry_run_trains_the_clip_line_on_two_gloo_ranks(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    code = gpu_ddp.main(["--device", "cpu", "--max-gpus", "2", "--steps", "6", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    result = json.loads(printed)
    assert result == json.loads(out.read_text())
    assert result["dry_run"] is True and result["ok"] is True and result["skipped"] == []
    one, two = result["runs"]["1"], result["runs"]["2"]
    assert two["backend"] == "gloo" and one["backend"] == "none (1 process)"
    assert one["state"] == two["state"] == "done" and one["steps"] == two["steps"] == 6
    assert one["finite_loss"] and two["finite_loss"]
    assert two["global_batch"] == 2 * one["global_batch"]  # the per-rank batch is held constant
    rates = result["samples_per_s"]
    assert rates["1"] > 0 and rates["2"] > 0
    assert result["scaling_efficiency"] == pytest.approx(rates["2"] / (2 * rates["1"]), abs=2e-3)


def test_the_gpu_script_skips_the_counts_that_would_not_fit_its_budget():
    result = gpu_ddp.measure("cpu", max_gpus=2, **gpu_ddp.DRY, budget_s=10)  # under one run's 30 s floor
    assert result["skipped"] == [1, 2] and result["runs"] == {} and result["samples_per_s"] == {}
    assert result["ok"] is False and result["scaling_efficiency"] is None


def test_the_gpu_script_names_the_missing_data_files(tmp_path, monkeypatch):
    (tmp_path / "images.csv").write_text("image_id,path\n")
    monkeypatch.setattr(gpu_ddp, "DATA", tmp_path)
    with pytest.raises(WorkbenchError, match=r"lacks \['images', 'train_metadata.json', 'val_metadata.json', "
                                             r"'test_metadata.json'\]"):
        gpu_ddp.measure("cpu", max_gpus=2, **gpu_ddp.DRY)
