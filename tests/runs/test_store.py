import json
import os
import threading

import pytest

from workbench.errors import ConfigError, NotFoundError, RunStateError, WorkbenchError
from workbench.runs.store import RunStore, latest_per_step, make_run_id, slugify


def test_run_ids_are_readable_and_safe(toy_cfg, runs_dir):
    store = RunStore(runs_dir)
    run = store.create(toy_cfg(name="../../etc/passwd"))
    assert run.path.parent == runs_dir and run.id.startswith("toy-") and run.id.endswith("-etc-passwd")
    assert make_run_id("toy", "My Run!").split("-", 3)[-1] == "my-run"
    assert slugify("../..") == ""
    with pytest.raises(ConfigError, match="no usable characters"):
        store.create(toy_cfg(name="../.."))
    for bad in ["../x", "/etc", "a/b", "", ".hidden"]:
        with pytest.raises(NotFoundError):
            store.get(bad)


def test_same_name_twice_gets_distinct_dirs(toy_cfg, runs_dir):
    store = RunStore(runs_dir)
    a, b = store.create(toy_cfg(name="x")), store.create(toy_cfg(name="x"))
    assert a.id != b.id and {r.id for r in store.list()} == {a.id, b.id}


def test_layout_and_status(toy_cfg, runs_dir):
    run = RunStore(runs_dir).create(toy_cfg(name="lay"))
    assert (run.path / "config.yaml").is_file() and run.checkpoint_dir.is_dir() and run.artifacts_dir.is_dir()
    assert run.read_status()["state"] == "queued"
    assert run.load_config().name == "lay"
    run.update_status(state="running", step=3)
    assert json.loads(run.status_path.read_text())["step"] == 3
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_status_updates_never_tear(toy_cfg, runs_dir):
    run = RunStore(runs_dir).create(toy_cfg())
    errors = []

    def writer(key):
        for i in range(200):
            run.update_status(**{key: i})

    def reader():
        for _ in range(400):
            try:
                json.loads(run.status_path.read_text())
            except json.JSONDecodeError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in "ab"] + [threading.Thread(target=reader)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    status = run.read_status()
    assert not errors and status["a"] == 199 and status["b"] == 199


def test_metrics_reader_reads_only_new_complete_lines(toy_cfg, runs_dir):
    run = RunStore(runs_dir).create(toy_cfg())
    run.append_metrics({"step": 1, "split": "train", "loss": 1.0})
    records, offset = run.read_metrics()
    assert [r["step"] for r in records] == [1]
    with run.metrics_path.open("a") as fh:
        fh.write('{"step": 2, "split": "train", "loss": 0.5}\n{"step": 3, "spl')  # half-written line
    records, offset = run.read_metrics(offset)
    assert [r["step"] for r in records] == [2]
    with run.metrics_path.open("a") as fh:
        fh.write('it": "train", "loss": 0.2}\n')
    records, offset2 = run.read_metrics(offset)
    assert [r["step"] for r in records] == [3] and offset2 == run.metrics_path.stat().st_size


def test_latest_per_step_keeps_the_resumed_values():
    recs = [{"step": 1, "split": "train", "v": 1}, {"step": 2, "split": "train", "v": 2},
            {"step": 2, "split": "val", "v": 9}, {"step": 2, "split": "train", "v": 3}]
    out = latest_per_step(recs)
    assert [(r["step"], r["split"], r["v"]) for r in out] == [(1, "train", 1), (2, "train", 3), (2, "val", 9)]


def test_delete_refuses_a_running_run(toy_cfg, runs_dir):
    store = RunStore(runs_dir)
    run = store.create(toy_cfg())
    run.update_status(state="running")
    with pytest.raises(RunStateError, match="is running; stop it first"):
        store.delete(run.id)
    run.update_status(state="stopped")
    store.delete(run.id)
    assert not run.path.exists()


def test_unwritable_runs_dir(toy_cfg, tmp_path, monkeypatch):
    # CI runs as root, which ignores permission bits: ask the OS boundary instead.
    (tmp_path / "runs").mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(WorkbenchError, match="is not writable. Fix its permissions or set WORKBENCH_RUNS"):
        RunStore(tmp_path / "runs").create(toy_cfg())


def test_runs_dir_that_is_a_file(toy_cfg, tmp_path):
    (tmp_path / "runs").write_text("not a dir")
    with pytest.raises(WorkbenchError, match="cannot create the runs directory .*WORKBENCH_RUNS"):
        RunStore(tmp_path / "runs").create(toy_cfg())
