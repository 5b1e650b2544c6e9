"""AppTest of pages/1_Runs.py against a temporary runs directory and the toy kind.

Jobs are real subprocesses (``python -m workbench train --run-dir``); ``run_every``
fragments do not fire in AppTest, so each check re-runs the page.
"""
from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from workbench.runs import JobManager, Run, RunStore
from workbench.runs.jobs import process_start_time
from workbench.ui import runs as runs_ui
from workbench.ui.forms import NO_PRESET, _cached_presets, widget_key

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = str(REPO_ROOT / "pages" / "1_Runs.py")


@pytest.fixture
def env(runs_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_PLUGINS", "tests.toy_experiment")
    monkeypatch.setenv("WORKBENCH_RUNS", str(runs_dir))
    return runs_dir


def page() -> AppTest:
    """The Runs page with the toy kind chosen in the launch form (real kinds may sort first)."""
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert "toy" in at.selectbox(key="launch_kind").options
    if at.selectbox(key="launch_kind").value != "toy":
        at.selectbox(key="launch_kind").set_value("toy").run()
    return at


def field(at: AppTest, widget: str, key: str, preset: str = NO_PRESET):
    return getattr(at, widget)(key=widget_key("toy", preset, key))


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}; have {[b.label for b in at.button]}"
    return matches[0]


def overview(at: AppTest):
    frames = [df.value for df in at.dataframe if "state" in df.value.columns and "run" in df.value.columns]
    assert frames, "the runs table is missing"
    return frames[0].set_index("run")


def progress_text(at: AppTest) -> str:
    bars = at.get("progress")
    assert bars, "no progress bar"
    return bars[0].proto.text


def plotly_values(values) -> list:
    """Plotly sends numpy arrays as typed arrays ({"dtype", "bdata"}): decode them."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_page_renders_with_generated_form(env):
    at = page()
    assert not at.exception
    assert at.title[0].value == "Runs"
    assert any(f"tensorboard --logdir {env.resolve()}" in c.value for c in at.caption)
    assert at.info and "No runs yet" in at.info[0].value
    assert at.selectbox(key="launch_kind").value == "toy"
    # every field of the toy config, with its default, in the widget its type calls for
    assert field(at, "number_input", "data.n_train").value == 256
    assert field(at, "number_input", "train.batch_size").value == 32
    assert field(at, "number_input", "nan_at_step").value == -1
    assert field(at, "text_input", "train.lr").value == "0.001"
    assert field(at, "text_input", "data.noise").value == "0.1"
    assert field(at, "text_input", "sleep_s").value == "0.0"
    assert field(at, "text_input", "name").value == ""
    assert field(at, "selectbox", "train.optimizer").value == "adamw"
    assert field(at, "selectbox", "train.optimizer").options == ["adamw", "adam", "sgd"]
    assert field(at, "checkbox", "train.amp").value is True
    assert [e.label for e in at.expander] == ["run", "data", "model", "train"]


def test_launch_valid_form_creates_a_run_that_finishes(env):
    at = page()
    field(at, "text_input", "name").set_value("from-ui")
    field(at, "number_input", "train.max_epochs").set_value(2)
    field(at, "number_input", "train.log_every").set_value(2)
    field(at, "text_input", "train.lr").set_value("5e-4")
    button(at, "Launch run").click().run()
    assert not at.exception
    runs = RunStore(env).list()
    assert len(runs) == 1
    run = runs[0]
    cfg = run.config_dict()
    assert cfg["name"] == "from-ui" and cfg["train"]["max_epochs"] == 2 and cfg["train"]["lr"] == 5e-4
    assert at.session_state["selected_run"] == run.id and at.session_state["runs_tab"] == "Monitor"
    assert any(run.id in s.value for s in at.success)
    assert overview(at).loc[run.id, "state"] in ("queued", "running")

    jobs = JobManager(RunStore(env))
    wait_for(lambda: jobs.refresh(run)["state"] == "done", 90, "the launched run to finish")
    at.run()
    assert not at.exception
    row = overview(at).loc[run.id]
    assert row["state"] == "done" and row["progress"] == 1.0 and row["now"] == "step 16/16"
    assert row["finished"] != "—" and row["duration"] != "—" and row["train/loss"] != "—"
    assert progress_text(at).startswith("done · step 16/16")
    names = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert names == ["train/loss", "val/loss"]
    # the live view kept its reader in the session and has read the file to its end
    follower = at.session_state[f"metrics::{run.id}"]
    assert follower.offset == run.metrics_path.stat().st_size
    assert follower.frame["step"].max() == 16


def test_invalid_value_shows_error_and_creates_no_run(env):
    at = page()
    field(at, "text_input", "train.lr").set_value("fast")
    button(at, "Launch run").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("Not launched" in e and "train.lr: expected float, got str 'fast'" in e for e in errors), errors
    assert RunStore(env).list() == []
    # a name with no usable characters is rejected by the run store, also inline
    field(at, "text_input", "train.lr").set_value("0.001")
    field(at, "text_input", "name").set_value("!!!")
    button(at, "Launch run").click().run()
    assert any("no usable characters" in e.value for e in at.error)
    assert RunStore(env).list() == []


def test_preset_fills_the_form(env, tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "toy_quick").write_text("kind: toy\nsleep_s: 0.02\ntrain:\n  lr: 3.0e-4\n  max_epochs: 3\n")
    monkeypatch.setattr("workbench.lines.presets", lambda: {"toy_quick": configs / "toy_quick"})
    _cached_presets.clear()  # the page caches the preset list for 10 s across reruns
    at = page()
    preset = at.selectbox(key="launch_preset::toy")
    assert preset.options == [NO_PRESET, "toy_quick"]
    preset.set_value("toy_quick").run()
    assert not at.exception
    assert field(at, "text_input", "train.lr", "toy_quick").value == "0.0003"
    assert field(at, "number_input", "train.max_epochs", "toy_quick").value == 3
    assert field(at, "text_input", "sleep_s", "toy_quick").value == "0.02"
    assert field(at, "number_input", "train.batch_size", "toy_quick").value == 32


def test_no_kinds_shows_info(env, monkeypatch):
    monkeypatch.setattr("workbench.experiments.load_kinds", lambda: [])
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("No experiment kinds are registered" in i.value for i in at.info)


def _finished_run(store, toy_cfg, losses, **settings):
    run = store.create(toy_cfg(**settings))
    for step, loss in enumerate(losses, start=1):
        run.append_metrics({"step": step, "epoch": 0, "split": "train", "time": 0.0, "train/loss": loss})
    run.append_metrics({"step": len(losses), "epoch": 0, "split": "val", "time": 0.0, "val/loss": losses[-1] + 0.1})
    run.update_status(state="done", step=len(losses), total_steps=len(losses), progress=1.0)
    return run


def test_compare_lists_only_differing_keys(env, toy_cfg):
    store = RunStore(env)
    a = _finished_run(store, toy_cfg, [1.0, 0.5, 0.25], seed=1, **{"train.lr": 0.01})
    b = _finished_run(store, toy_cfg, [1.0, 0.8, 0.6], seed=2, **{"train.lr": 0.02})
    at = page()
    at.multiselect(key="compare_runs").set_value([a.id, b.id]).run()
    assert not at.exception
    table = next(df.value for df in at.dataframe if "train.lr" in df.value.columns)
    assert table.columns.tolist() == ["seed", "train.lr", "train/loss", "val/loss"]
    assert table.loc[a.id].tolist() == pytest.approx([1, 0.01, 0.25, 0.35])
    assert table.loc[b.id].tolist() == pytest.approx([2, 0.02, 0.6, 0.7])
    assert at.selectbox(key="compare_metric").value == "val/loss"
    at.selectbox(key="compare_metric").set_value("train/loss").run()
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert [t["name"] for t in spec["data"]] == [a.id, b.id]
    assert plotly_values(spec["data"][0]["y"]) == pytest.approx([1.0, 0.5, 0.25])
    assert plotly_values(spec["data"][1]["x"]) == [1, 2, 3]


def test_delete_is_disabled_while_running_then_stop_resume_delete(env, toy_cfg):
    jobs = JobManager(RunStore(env))
    run = jobs.submit(toy_cfg(name="slow", sleep_s=0.05, **{"train.max_epochs": 100, "train.log_every": 2}))
    wait_for(lambda: jobs.refresh(run).get("step", 0) >= 2, 60, "the run to start stepping")
    at = page()
    assert at.session_state["selected_run"] == run.id
    assert progress_text(at).startswith("running · step")
    row = overview(at).loc[run.id]
    assert row["finished"] == "—" and row["duration"].endswith("s")  # elapsed so far
    assert button(at, "Delete").disabled and not button(at, "Stop").disabled
    assert not [w for w in at.warning if "cannot be undone" in w.value]

    button(at, "Stop").click().run()
    assert any(f"Stopped `{run.id}`" in s.value for s in at.success)
    assert overview(at).loc[run.id, "state"] == "stopped"
    assert progress_text(at).startswith("stopped")
    assert button(at, "Stop").disabled and not button(at, "Resume").disabled
    assert not button(at, "Delete").disabled
    assert overview(at).loc[run.id, "finished"] != "—"

    stopped_at = run.read_status()["step"]
    button(at, "Resume").click().run()
    assert overview(at).loc[run.id, "state"] in ("queued", "running")
    assert button(at, "Delete").disabled
    assert run.read_status()["resume_count"] == 1
    wait_for(lambda: jobs.refresh(run).get("step", 0) > stopped_at, 60, "the resumed run to step on")
    jobs.stop(run.id)
    at.run()

    button(at, "Delete").click().run()
    assert any("cannot be undone" in w.value for w in at.warning)
    button(at, "Yes, delete").click().run()
    assert not at.exception
    assert any(f"Deleted `{run.id}`" in s.value for s in at.success)
    assert not run.path.exists()
    assert any("No runs yet" in i.value for i in at.info)


# -- phases, liveness, cheap watching (a "running" run owned by this live test process) ----


def _live_run(store, toy_cfg, name="live", heartbeat_age_s=0.0, **status):
    """A run whose status says running with this process' pid, so JobManager.refresh sees a
    live job (nothing trains: the test writes status.json and metrics itself)."""
    run = store.create(toy_cfg(name=name))
    now = time.time()
    run.update_status(state="running", pid=os.getpid(), pid_start=process_start_time(os.getpid()),
                      heartbeat=now - heartbeat_age_s, created=now - 90, started=now - 60, **status)
    return run


def bar_value(at: AppTest) -> int:
    return at.get("progress")[0].proto.value  # percent, 0..100


def test_setup_phase_shows_phase_not_step_0(env, toy_cfg):
    _live_run(RunStore(env), toy_cfg, step=0, total_steps=1000, progress=0.0, phase="setup",
              phase_detail="caching backbone features (training)", phase_done=120, phase_total=3000)
    at = page()
    assert not at.exception
    text = progress_text(at)
    assert text == "running · setup: caching backbone features (training) 120/3,000 (4%)", text
    assert "step 0" not in text and bar_value(at) == 4  # the bar follows the phase
    row = overview(at).iloc[0]
    assert row["now"] == "setup: caching backbone features (training) 120/3,000 (4%)"
    assert row["duration"] in ("1m 00s", "1m 01s", "1m 02s") and row["finished"] == "—"


def test_post_training_phase_shows_extra_seeds_not_eta_0(env, toy_cfg):
    _live_run(RunStore(env), toy_cfg, step=1000, total_steps=1000, progress=1.0, eta_s=0.0,
              phase="seeds", phase_detail="training extra seed 2/3", phase_done=1, phase_total=3)
    at = page()
    text = progress_text(at)
    assert text.startswith("running · seeds: training extra seed 2/3"), text
    assert "ETA 0s" not in text and "1,000/1,000" not in text and bar_value(at) == 33


def test_unresponsive_run_is_noted_not_killed(env, toy_cfg):
    run = _live_run(RunStore(env), toy_cfg, heartbeat_age_s=600, step=40, total_steps=100,
                    progress=0.4, phase="train")
    at = page()
    assert not at.exception
    assert "unresponsive: no heartbeat for 10m 0" in progress_text(at)  # 600 s + test time
    assert any("heartbeat is stale" in w.value and "Stop" in w.value for w in at.warning)
    assert overview(at).loc[run.id, "state"] == "unresponsive"
    assert run.read_status()["state"] == "running"  # reported, never marked crashed or killed


def test_live_view_reads_only_new_bytes_and_skips_unchanged_redraws(env, toy_cfg, monkeypatch):
    run = _live_run(RunStore(env), toy_cfg, step=50, total_steps=1000, progress=0.05, phase="train")
    for step in range(1, 51):
        run.append_metrics({"step": step, "epoch": 0, "split": "train", "time": 0.0, "train/loss": 1 / step})
    offsets, builds = [], []
    real_read = Run.read_metrics
    monkeypatch.setattr(Run, "read_metrics", lambda self, offset=0: offsets.append(offset) or real_read(self, offset))
    real_build = runs_ui.curves_figure
    monkeypatch.setattr(runs_ui, "curves_figure", lambda *a, **k: builds.append(1) or real_build(*a, **k))

    at = page()
    size = run.metrics_path.stat().st_size
    assert offsets and offsets[0] == 0 and len(builds) == 1
    offsets.clear()
    at.run()  # a refresh with nothing new: reads from the end, builds no figure
    at.run()
    assert offsets and set(offsets) == {size}, offsets
    assert len(builds) == 1
    assert plotly_values(json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["x"])[-1] == 50

    run.append_metrics({"step": 51, "epoch": 0, "split": "train", "time": 0.0, "train/loss": 0.01})
    offsets.clear()
    at.run()  # new records: read from the old end only, and the figure is rebuilt once
    assert set(offsets) == {size} and len(builds) == 2
    assert plotly_values(json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["x"])[-1] == 51


@pytest.mark.parametrize("value", ["abc", "0"])
def test_bad_max_jobs_shows_an_error_box(env, monkeypatch, value):
    monkeypatch.setenv("WORKBENCH_MAX_JOBS", value)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert [e.value for e in at.error] and "WORKBENCH_MAX_JOBS" in at.error[0].value, [e.value for e in at.error]
    assert not at.get("tab") and not at.dataframe  # the page stopped after the message


def test_processes_field_launches_one_distributed_run_that_stops_and_resumes(env):
    at = page()
    processes = field(at, "number_input", "train.nproc")
    assert processes.value == 1 and processes.label == "processes"
    # a global batch that does not split is refused in an error box, nothing is created
    processes.set_value(3)
    button(at, "Launch run").click().run()
    assert any("must be a multiple of train.nproc=3" in e.value for e in at.error), [e.value for e in at.error]
    assert RunStore(env).list() == []

    field(at, "number_input", "train.nproc").set_value(2)
    field(at, "number_input", "train.max_epochs").set_value(40)
    field(at, "text_input", "sleep_s").set_value("0.05")
    field(at, "number_input", "train.threads").set_value(1)
    button(at, "Launch run").click().run()
    assert not at.exception
    (run,) = RunStore(env).list()  # one run, whatever the number of ranks
    jobs = JobManager(RunStore(env))
    wait_for(lambda: jobs.refresh(run).get("step", 0) >= 5, 90, "the two-process run to train")
    at.run()
    assert "· 2 processes" in progress_text(at) and progress_text(at).startswith("running · ")
    button(at, "Stop").click().run()
    assert jobs.refresh(run)["state"] == "stopped"
    stopped_at = run.read_status()["step"]
    at.run()
    button(at, "Resume").click().run()
    assert not at.exception
    wait_for(lambda: jobs.refresh(run).get("step", 0) > stopped_at, 90, "the resumed run to train on")
    jobs.stop(run.id)
    assert [r.id for r in RunStore(env).list()] == [run.id] and run.read_status()["processes"] == 2
