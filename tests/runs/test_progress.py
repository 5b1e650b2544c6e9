"""Heartbeat and phase progress in status.json, and how they read in `runs list`."""
import os
import threading
import time

from workbench.cli import main
from workbench.runs import RunStore, progress
from workbench.train.trainer import Trainer


def test_describe_names_the_phase_not_step_zero():
    setup = {"state": "running", "step": 0, "total_steps": 1000, "phase": "setup",
             "phase_detail": "caching backbone features (training)", "phase_done": 120, "phase_total": 3000}
    assert progress.describe(setup) == "setup: caching backbone features (training) 120/3,000 (4%)"
    seeds = {"state": "running", "step": 1000, "total_steps": 1000, "eta_s": 0.0, "phase": "seeds",
             "phase_detail": "training extra seed 2/3", "phase_done": 250, "phase_total": 1000}
    assert progress.describe(seeds) == "seeds: training extra seed 2/3 250/1,000 (25%)"
    train = {"state": "running", "step": 500, "total_steps": 1000, "eta_s": 65, "phase": "train"}
    assert progress.describe(train) == "step 500/1,000 · ETA 1m 05s"
    hung = {**train, "unresponsive": True, "heartbeat_age_s": 300}
    assert progress.describe(hung).endswith("unresponsive: no heartbeat for 5m 00s")
    assert progress.describe({"state": "done", "step": 10, "total_steps": 10, "phase": "setup"}) == "step 10/10"
    assert progress.describe({"state": "queued", "step": 0}) == "waiting for a free job slot (WORKBENCH_MAX_JOBS)"


def test_phase_calls_are_free_outside_a_job():
    assert progress.current() is None
    progress.set_phase("setup", "nothing listens")
    progress.advance(5, 10)  # no heartbeat installed: nothing written, nothing raised


def test_heartbeat_beats_while_the_main_thread_is_busy(toy_cfg, runs_dir):
    run = RunStore(runs_dir).create(toy_cfg())
    hb = progress.Heartbeat(run, interval_s=0.1).start()
    progress.install(hb)
    try:
        progress.set_phase("setup", "busy loop", total=3)
        t0 = time.time()
        beats = set()
        while time.time() - t0 < 1.0:  # pure-Python work holding the GIL between switches
            sum(range(10_000))
            beats.add(round(run.read_status()["heartbeat"], 3))
            progress.advance(2)
        assert len(beats) >= 5
        status = run.read_status()
        assert time.time() - status["heartbeat"] < 0.5
        assert (status["phase"], status["phase_detail"], status["phase_done"], status["phase_total"]) == (
            "setup", "busy loop", 2, 3)
    finally:
        hb.stop()
        progress.install(None)


def test_in_process_trainer_reports_setup_then_clears_the_phase(toy_cfg, runs_dir):
    from workbench.experiments import create_experiment

    cfg = toy_cfg(setup_sleep_s=1.5, **{"train.max_epochs": 1})
    run = RunStore(runs_dir).create(cfg)
    seen, done = [], threading.Event()

    def poll():
        while not done.is_set():
            s = run.read_status()
            seen.append((s.get("phase"), s.get("phase_detail"), s.get("phase_done"), s.get("phase_total")))
            time.sleep(0.05)

    watcher = threading.Thread(target=poll)
    watcher.start()
    try:
        Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    finally:
        done.set()
        watcher.join()
    assert any(phase == "setup" and detail == "toy setup" and total == 10 for phase, detail, _, total in seen)
    final = run.read_status()
    assert final["state"] == "done" and final["phase"] is None
    assert progress.current() is None  # the trainer's own heartbeat is gone with the fit


def test_runs_list_shows_the_phase(toy_cfg, runs_dir, capsys):
    run = RunStore(runs_dir).create(toy_cfg())
    run.update_status(state="running", pid=os.getpid(), heartbeat=time.time(), step=0, total_steps=80,
                      phase="setup", phase_detail="encoding 8,000 target prompts with minilm",
                      phase_done=2048, phase_total=8000)
    assert main(["runs", "list"]) == 0
    line = capsys.readouterr().out.strip()
    assert "setup: encoding 8,000 target prompts with minilm 2,048/8,000 (26%)" in line
    assert "step 0" not in line
    run.update_status(heartbeat=time.time() - 3600)
    assert main(["runs", "list"]) == 0
    assert " unresponsive " in capsys.readouterr().out
