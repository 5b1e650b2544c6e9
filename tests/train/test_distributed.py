"""Distributed data parallelism on CPU (gloo): real torchrun processes through the CLI and the
job manager. Two processes end with the weights of one process on the global batch; a
stopped two-process run resumes to the uninterrupted run's weights; a failing rank fails
the run with its error; bad settings fail at once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from tests.runs.test_jobs import wait_for
from workbench.runs import JobManager, RunStore
from workbench.train import distributed as ddp
from workbench.train.checkpoint import load_checkpoint
from workbench.train.trainer import EpochBatches, epoch_steps

TOY = {"kind": "toy", "seed": 3, "model": {"dropout": 0.0, "hidden": 16}, "data": {"n_train": 100, "n_val": 30},
       "train": {"device": "cpu", "max_epochs": 2, "batch_size": 20, "lr": 0.01, "log_every": 2, "threads": 1}}


def write_config(tmp_path, name="toy.yaml", **sections):
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in TOY.items()}
    for key, value in sections.items():
        if isinstance(value, dict):
            cfg[key] = {**cfg.get(key, {}), **value}
        else:
            cfg[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def only_run(root):
    runs = RunStore(root).list()
    assert len(runs) == 1, [r.id for r in runs]  # a distributed run is one run
    return runs[0]


def weights(run):
    return load_checkpoint(run.last_checkpoint)["model"]


# -- the batch order ----------------------------------------------------------------------


def test_each_rank_takes_an_equal_contiguous_shard_of_the_same_global_batch():
    single = list(EpochBatches(23, 6, seed=5, epoch=2))
    ranks = [list(EpochBatches(23, 6, seed=5, epoch=2, dist=ddp.Dist(r, 2))) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 4
    for b, batch in enumerate(single):
        per = len(batch) // 2
        assert ranks[0][b] + ranks[1][b] == batch[: 2 * per]  # the last batch (5) drops 1 sample
        assert len(ranks[0][b]) == len(ranks[1][b])
    # a last batch smaller than the world is dropped (a rank would get nothing)
    assert epoch_steps(26, 6, ddp.Dist(0, 2)) == 5 and epoch_steps(26, 6, ddp.Dist(0, 3)) == 4
    assert epoch_steps(25, 6, ddp.Dist(0, 2)) == 4 and epoch_steps(25, 6) == 5
    # a resume from batch 2 replays the same shards
    assert list(EpochBatches(23, 6, 5, 2, start=2, dist=ddp.Dist(1, 2))) == ranks[1][2:]


# -- runs ---------------------------------------------------------------------------------


def test_two_processes_end_with_the_weights_of_one_process_on_the_global_batch(tmp_path):
    config = write_config(tmp_path)
    two = cli("train", str(config), "--nproc", "2", "--runs", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-2000:]
    one = cli("train", str(config), "--runs", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    run2, run1 = only_run(tmp_path / "two"), only_run(tmp_path / "one")
    w2, w1 = weights(run2), weights(run1)
    diff = max((w2[k] - w1[k]).abs().max().item() for k in w1)
    assert diff < 1e-5, diff
    s2, s1 = run2.read_status(), run1.read_status()
    assert s2["state"] == s1["state"] == "done" and s2["step"] == s1["step"] == 10
    # validation is sharded and reduced: the same numbers as one process over the whole set
    assert s2["final"]["val/loss"] == pytest.approx(s1["final"]["val/loss"], rel=1e-5)
    # rank 0 alone wrote: one metrics stream, one TensorBoard file, each validation once
    vals = [r for r in run2.read_metrics()[0] if r["split"] == "val"]
    assert [r["step"] for r in vals] == [5, 10]
    assert len(list(run2.path.glob("events.out.tfevents.*"))) == 1
    assert len(load_checkpoint(run2.last_checkpoint)["rng_ranks"]) == 2


def test_stop_and_resume_a_two_process_run_replays_the_uninterrupted_run(toy_cfg, runs_dir):
    jobs = JobManager(RunStore(runs_dir), max_concurrent=1)
    settings = {"sleep_s": 0.05, "train.max_epochs": 2, "train.batch_size": 16, "train.log_every": 2,
                "train.nproc": 2, "model.dropout": 0.2, "train.threads": 1}
    ref = jobs.submit(toy_cfg(name="ref", **settings))
    wait_for(lambda: jobs.refresh(ref)["state"] == "done", 120, "the uninterrupted two-process run")
    victim = jobs.submit(toy_cfg(name="victim", **settings))
    wait_for(lambda: jobs.refresh(victim).get("step", 0) >= 12, 90, "the second run to pass step 12")
    status = jobs.stop(victim.id, timeout_s=30)
    assert status["state"] == "stopped" and not status.get("error"), status
    stopped_at = load_checkpoint(victim.last_checkpoint)["loop"]["step"]
    assert stopped_at == status["step"] and 12 <= stopped_at < ref.read_status()["step"]
    assert len(RunStore(runs_dir).list()) == 2  # each distributed run is one run

    jobs.resume(victim.id)
    wait_for(lambda: jobs.refresh(victim)["state"] == "done", 120, "the resumed run to finish")
    assert victim.read_status()["final"] == ref.read_status()["final"]
    ref_w, vic_w = weights(ref), weights(victim)
    assert all(torch.equal(ref_w[k], vic_w[k]) for k in ref_w)  # dropout on both ranks replayed


def test_a_failing_rank_fails_the_run_with_its_error(tmp_path):
    config = write_config(tmp_path, raise_at_step=3, raise_rank=1)
    t0 = time.time()
    out = cli("train", str(config), "--nproc", "2", "--runs", str(tmp_path / "runs"), timeout=90)
    took = time.time() - t0
    assert out.returncode == 1
    status = only_run(tmp_path / "runs").read_status()
    assert status["state"] == "failed"
    assert status["error"] == "rank 1 failed: RuntimeError: toy failure at step 3"
    assert took < 60, took  # torchrun tears the waiting rank down; nothing hangs
    assert "error: rank 1 failed: RuntimeError: toy failure at step 3" in out.stderr


def test_rank_zero_trains_in_memory_models_alone_after_the_group(tmp_path):
    """A line's artifacts may train more models (softprompt's extra seeds): rank 0 has left
    the process group by then, so that Trainer is a single process, not a rank waiting
    for peers that are gone."""
    config = write_config(tmp_path, nested_fit=True, train={"max_epochs": 1})
    out = cli("train", str(config), "--nproc", "2", "--runs", str(tmp_path / "runs"), timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    run = only_run(tmp_path / "runs")
    assert run.read_status()["state"] == "done"
    assert json.loads((run.artifacts_dir / "nested.json").read_text()) == {"state": "done", "step": 5}


def test_frozen_feature_caches_are_computed_once_not_per_rank(tmp_path):
    cache = tmp_path / "features.cache"
    config = write_config(tmp_path, cache_file=str(cache), train={"max_epochs": 1})
    out = cli("train", str(config), "--nproc", "2", "--runs", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "features.cache.log").read_text().splitlines() == ["computed rank 0", "loaded rank 1"]


def test_torchrun_itself_on_a_config_makes_one_run(tmp_path):
    """The multi-node form (torchrun ... -m workbench train CONFIG), here on one node."""
    config = write_config(tmp_path)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          "-m", "workbench", "train", str(config), "--runs", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    run = only_run(tmp_path / "runs")
    assert run.read_status()["state"] == "done" and run.read_status()["step"] == 10


def test_settings_that_cannot_split_fail_at_once(tmp_path):
    out = cli("train", str(write_config(tmp_path)), "--nproc", "3", "--runs", str(tmp_path / "runs"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: train.batch_size=20 (the global batch) must be a multiple of train.nproc=3: each process "
        "takes batch_size / nproc samples a step"]
    out = cli("train", str(write_config(tmp_path)), "--nproc", "0", "--runs", str(tmp_path / "runs"))
    assert out.returncode == 2 and "train.nproc" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not RunStore(tmp_path / "runs").list()


def test_a_bad_torchrun_variable_is_one_line(tmp_path):
    out = cli("train", str(write_config(tmp_path)), "--runs", str(tmp_path / "runs"), env={"WORLD_SIZE": "two"})
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: environment variable WORLD_SIZE='two' is invalid: expected an integer >= 1 (torchrun sets it; "
        "unset it outside torchrun)"]


def test_sigterm_to_a_foreground_two_process_run_stops_it_with_one_checkpoint(tmp_path):
    config = write_config(tmp_path, sleep_s=0.1, train={"max_epochs": 50})
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(config), "--nproc", "2", "--runs",
                             str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (tmp_path / "runs").is_dir() and RunStore(tmp_path / "runs").list()
                 and RunStore(tmp_path / "runs").list()[0].read_status().get("step", 0) >= 4, 90, "training")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    run = only_run(tmp_path / "runs")
    status = run.read_status()
    assert status["state"] == "stopped"
    assert load_checkpoint(run.last_checkpoint)["loop"]["step"] == status["step"] >= 4
