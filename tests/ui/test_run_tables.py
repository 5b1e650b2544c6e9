"""Run-page tables: incremental metrics reading, the overview, and the compare table."""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from workbench.runs import RunStore
from workbench.ui.run_tables import (
    MetricsFollower,
    compare_table,
    differing_params,
    final_metrics,
    format_duration,
    metrics_frame,
    runs_overview,
    tail_records,
)


def _train(step, loss):
    return {"step": step, "epoch": 0, "split": "train", "time": float(step), "train/loss": loss, "lr": 0.1}


def _val(step, loss):
    return {"step": step, "epoch": 0, "split": "val", "time": float(step), "val/loss": loss}


@pytest.fixture
def run(tmp_path, toy_cfg):
    return RunStore(tmp_path / "runs").create(toy_cfg())


def test_follower_reads_only_new_complete_lines_and_dedupes_resumes(run):
    follower = MetricsFollower(run)
    assert follower.poll() == 0 and follower.frame.empty
    for step in (2, 4, 6):
        run.append_metrics(_train(step, 1.0 / step))
    run.append_metrics(_val(6, 0.5))
    assert follower.poll() == 4
    assert follower.offset == run.metrics_path.stat().st_size
    # a line being written (no newline yet) is not read until it is complete
    with run.metrics_path.open("a") as fh:
        fh.write(json.dumps(_train(8, 0.125))[:20])
    assert follower.poll() == 0
    with run.metrics_path.open("a") as fh:
        fh.write(json.dumps(_train(8, 0.125))[20:] + "\n")
    assert follower.poll() == 1
    # after a resume from the step-4 checkpoint, steps 6 and 8 are logged again: latest wins
    run.append_metrics(_train(6, 0.06))
    run.append_metrics(_train(8, 0.08))
    assert follower.poll() == 2
    frame = follower.frame
    assert follower.n_records == 7
    assert list(zip(frame["split"], frame["step"])) == [("train", 2), ("train", 4), ("train", 6), ("val", 6), ("train", 8)]
    assert frame.loc[(frame.split == "train") & (frame.step == 6), "train/loss"].item() == 0.06
    assert frame.loc[(frame.split == "train") & (frame.step == 8), "train/loss"].item() == 0.08
    # same result as de-duplicating everything at once
    all_records, _ = run.read_metrics()
    pd.testing.assert_frame_equal(frame, metrics_frame(all_records), check_like=True)


def test_follower_restarts_when_file_is_replaced(run):
    follower = MetricsFollower(run)
    for step in range(1, 6):
        run.append_metrics(_train(step, 1.0))
    follower.poll()
    run.metrics_path.write_text(json.dumps(_train(1, 9.0)) + "\n")
    assert follower.poll() == 1
    assert follower.frame["train/loss"].tolist() == [9.0]


def test_tail_records_reads_only_the_end(run):
    for step in range(1, 2001):
        run.append_metrics(_train(step, float(step)))
    size = run.metrics_path.stat().st_size
    recs = tail_records(run, max_bytes=2000)
    assert 5 < len(recs) < 30 and size > 100_000
    assert recs[-1]["step"] == 2000
    assert [r["step"] for r in recs] == list(range(2001 - len(recs), 2001))  # cut line dropped


def test_runs_overview_rows(tmp_path, toy_cfg):
    store = RunStore(tmp_path / "runs")
    now = time.time()
    a = store.create(toy_cfg(name="a"))
    a.append_metrics(_train(10, 0.3))
    a.append_metrics(_val(10, 0.4))
    a.update_status(state="done", step=10, total_steps=10, progress=1.0, final={"val/loss": 0.35},
                    best=0.35, monitor="val/loss", created=now - 125, started=now - 120, ended=now - 20)
    b = store.create(toy_cfg(name="b"))
    b.update_status(state="running", step=3, total_steps=12, progress=0.25, eta_s=95.0,
                    created=now - 70, started=now - 65, ended=now - 500)  # resumed: old "ended"
    c = store.create(toy_cfg(name="c"))
    c.update_status(state="failed", error="train/loss became nan by step 4; lower train.lr")
    frame = runs_overview([(r, r.read_status()) for r in (a, b, c)], now=now)
    assert list(frame.columns[:8]) == ["run", "kind", "name", "state", "progress", "now", "duration", "finished"]
    assert list(frame["state"]) == ["done", "running", "failed"]
    row_a, row_b, row_c = (frame.iloc[i] for i in range(3))
    assert row_a["now"] == "step 10/10" and row_a["train/loss"] == "0.3"
    assert row_a["val/loss"] == "0.35"  # the status' final value wins over the last record
    assert row_a["age"] == "2m 05s" and row_a["duration"] == "1m 40s"
    assert row_a["finished"] == time.strftime("%H:%M", time.localtime(now - 20))
    assert row_b["progress"] == 0.25 and row_b["now"] == "step 3/12 · ETA 1m 35s"
    assert row_b["duration"] == "1m 05s" and row_b["finished"] == "—"  # elapsed so far
    assert row_c["note"].startswith("train/loss became nan")
    # no cell of the table reads None or nan: missing values are an em dash
    cells = frame.drop(columns=["progress"]).astype(str).to_numpy().ravel().tolist()
    assert not [c for c in cells if c in ("None", "nan", "NaN")]
    assert row_b["train/loss"] == "—" and row_c["best"] == "—" and row_c["finished"] == "—"


def test_runs_overview_shows_phases_not_step_0(tmp_path, toy_cfg):
    store = RunStore(tmp_path / "runs")
    setup = store.create(toy_cfg(name="setup"))
    setup.update_status(state="running", step=0, total_steps=1000, progress=0.0, phase="setup",
                        phase_detail="caching backbone features (training)", phase_done=120, phase_total=3000)
    seeds = store.create(toy_cfg(name="seeds"))
    seeds.update_status(state="running", step=1000, total_steps=1000, progress=1.0, eta_s=0.0,
                        phase="seeds", phase_detail="training extra seed 2/3", phase_done=1, phase_total=4)
    stuck = store.create(toy_cfg(name="stuck"))
    stuck.update_status(state="running", step=40, total_steps=100, progress=0.4, phase="train")
    statuses = [(setup, setup.read_status()), (seeds, seeds.read_status()),
                (stuck, {**stuck.read_status(), "unresponsive": True, "heartbeat_age_s": 300.0})]
    frame = runs_overview(statuses).set_index("name")
    assert frame.loc["setup", "now"] == "setup: caching backbone features (training) 120/3,000 (4%)"
    assert frame.loc["setup", "progress"] == pytest.approx(0.04)  # the phase's bar, not the step's
    assert frame.loc["seeds", "now"] == "seeds: training extra seed 2/3 1/4 (25%)"
    assert frame.loc["seeds", "progress"] == pytest.approx(0.25)
    assert frame.loc["stuck", "state"] == "unresponsive"
    assert frame.loc["stuck", "now"] == "step 40/100 · unresponsive: no heartbeat for 5m 00s"


def test_runs_overview_reads_a_finished_run_once(tmp_path, toy_cfg, monkeypatch):
    """A table refreshing every few seconds re-parses a run's metrics only when they changed."""
    from workbench.ui import run_tables

    run = RunStore(tmp_path / "runs").create(toy_cfg())
    for step in range(1, 50):
        run.append_metrics(_train(step, 1.0 / step))
    calls = []
    real = run_tables.tail_records
    monkeypatch.setattr(run_tables, "tail_records", lambda r, *a, **k: calls.append(r.id) or real(r, *a, **k))
    for _ in range(3):
        assert runs_overview([(run, run.read_status())])["train/loss"].item() == "0.02041"
    assert len(calls) == 1
    run.append_metrics(_train(50, 0.5))
    assert runs_overview([(run, run.read_status())])["train/loss"].item() == "0.5"
    assert len(calls) == 2


def test_differing_params_keeps_only_differing_keys():
    configs = {
        "r1": {"kind": "toy", "seed": 0, "train": {"lr": 0.001, "batch_size": 32}, "tags": [1, 2]},
        "r2": {"kind": "toy", "seed": 1, "train": {"lr": 0.001, "batch_size": 64}, "tags": [1, 2]},
        "r3": {"kind": "toy", "seed": 0, "train": {"lr": 0.01, "batch_size": 32}, "tags": [1, 3], "extra": "x"},
    }
    table = differing_params(configs)
    assert list(table.index) == ["r1", "r2", "r3"]
    assert list(table.columns) == ["extra", "seed", "tags", "train.batch_size", "train.lr"]
    assert table.loc["r2", "train.batch_size"] == 64 and table.loc["r3", "train.lr"] == 0.01
    assert table.loc["r3", "tags"] == "[1, 3]" and pd.isna(table.loc["r1", "extra"])
    assert differing_params({"a": configs["r1"], "b": configs["r1"]}).columns.tolist() == []


def test_final_metrics_and_compare_table():
    f1 = metrics_frame([_train(2, 0.9), _val(2, 0.8), _train(4, 0.7), _train(4, 0.6)])
    f2 = metrics_frame([_train(2, 0.5), _val(2, 0.45), _val(4, 0.4)])
    assert final_metrics(f1) == {"train/loss": 0.6, "val/loss": 0.8}
    assert final_metrics(f2) == {"train/loss": 0.5, "val/loss": 0.4}
    configs = {"a": {"seed": 0, "train": {"lr": 0.1}}, "b": {"seed": 0, "train": {"lr": 0.2}}}
    table = compare_table(configs, {"a": f1, "b": f2})
    assert table.columns.tolist() == ["train.lr", "train/loss", "val/loss"]
    assert table.loc["b"].tolist() == [0.2, 0.5, 0.4]


@pytest.mark.parametrize("seconds,text", [(None, ""), (float("nan"), ""), (0.4, "0s"), (59, "59s"),
                                          (95, "1m 35s"), (7300, "2h 01m"), (90000, "1d 01h")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
