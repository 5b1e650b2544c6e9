"""AppTest of pages/9_Tuning.py: a study started from the projection preset's form runs as
a real background process (real trials on the demo data), the page shows its trials and
Optuna's plots and stops it; a bad search space in the form is an error box."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from workbench.tuning.driver import read_study_status, stop_study

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "9_Tuning.py")


@pytest.fixture
def env(runs_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS", str(runs_dir))
    return runs_dir


def new_study(at: AppTest, name: str, trials: int, overrides: str, space: str | None = None) -> AppTest:
    at.selectbox(key="tuning_preset").set_value("projection-heads").run()
    at.text_input[0].set_value(name)
    at.number_input[0].set_value(trials)
    at.text_area[0].set_value(overrides)
    if space is not None:
        at.text_area[1].set_value(space)
    at.button[-1].click()  # Start study (the form's submit button)
    return at.run()


def test_start_watch_and_stop_a_study(env):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and "No studies yet" in " ".join(i.value for i in at.info)
    at = new_study(at, "ui-study", 3, "data.train_split=train_tuning\ntrain.max_epochs=2")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="tuning_study").value == "ui-study"
    assert (env / "studies" / "ui-study.yaml").is_file()
    deadline = time.time() + 240
    while time.time() < deadline and read_study_status("ui-study", env).get("state") in ("starting", "running"):
        time.sleep(1)
    assert read_study_status("ui-study", env)["state"] == "done"
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert list(frame["trial"]) == [0, 1, 2] and frame["run"].str.startswith("/Runs?run=").all()
    assert "done" in at.markdown[0].value or any("3 of 3 trials" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) >= 1  # the history plot of the first plot tab at least


def test_a_bad_space_is_an_error_box_and_nothing_starts(env):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at = new_study(at, "bad", 2, "train.max_epochs=1", space="train.lrr: {type: float, low: 0.1, high: 1}\n")
    assert not at.exception
    assert any("unknown key 'train.lrr'" in e.value for e in at.error), [e.value for e in at.error]
    assert read_study_status("bad", env) == {} and not (env / "studies" / "bad.yaml").exists()
    at = new_study(AppTest.from_file(PAGE, default_timeout=60).run(), "bad", 2, "x", space="a: [1,\n")
    assert any("not valid YAML" in e.value for e in at.error)


def test_stop_from_the_page(env):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at = new_study(at, "to-stop", 20, "data.train_split=train_tuning\ntrain.max_epochs=50")
    deadline = time.time() + 120
    while time.time() < deadline and read_study_status("to-stop", env).get("state") != "running":
        time.sleep(0.5)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.button(key="study_stop").click().run()
    assert not at.exception
    assert read_study_status("to-stop", env)["state"] == "stopped"
    with pytest.raises(Exception, match="not running"):
        stop_study("to-stop", env)
