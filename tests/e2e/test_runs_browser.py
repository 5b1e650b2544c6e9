"""The Runs page in a real browser: launch a toy run from the form, watch its curve grow
live, stop it, resume it, see it finish. Screenshots land in /tmp/runs_e2e_*.png."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from workbench.runs import RunStore

REPO_ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path("/tmp")
PROGRESS = '[data-testid="stProgress"]'
# 60 epochs x 8 steps x ~0.06 s: about 30 s of training (stopped after ~6-15 s, then resumed); a
# shorter run could finish on a loaded machine before the test reaches Stop
SETTINGS = {"name": "e2e", "sleep_s": "0.05"}
TRAIN_SETTINGS = {"max_epochs": "60", "log_every": "2"}


def progress_text(page) -> str:
    return page.locator(PROGRESS).first.inner_text().strip()


def step_of(text: str) -> int:
    match = re.search(r"step (\d+)", text)
    return int(match.group(1)) if match else -1


def trace_points(page) -> int:
    """Points in the first trace of the first live curve (plotly keeps data on its div)."""
    return page.evaluate("""() => {
        const gd = document.querySelector('.js-plotly-plot');
        // data holds the spec as sent (typed arrays base64-encoded); _fullData the decoded one
        return gd && gd._fullData && gd._fullData.length ? gd._fullData[0].x.length : 0;
    }""")


def wait_progress(page, pattern: str, timeout_s: float) -> str:
    deadline = time.time() + timeout_s
    text = ""
    while time.time() < deadline:
        if page.locator(PROGRESS).count():
            text = progress_text(page)
            if re.match(pattern, text):
                return text
        page.wait_for_timeout(250)
    raise AssertionError(f"progress never matched {pattern!r} in {timeout_s} s; last: {text!r}")


def button(page, key: str, label: str):
    """A button by its Streamlit key (the toolbar has its own "Stop" button while a script runs)."""
    return page.locator(f".st-key-{key}").get_by_role("button", name=label, exact=True)


def fill(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Tab")  # commit the value to the form


@pytest.mark.e2e
def test_launch_watch_stop_resume(streamlit_app, offline_page, blocked_requests, runs_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_PLUGINS", "tests.toy_experiment")
    app = streamlit_app(REPO_ROOT / "app.py")  # the server inherits WORKBENCH_RUNS=runs_dir
    page = offline_page
    page.set_viewport_size({"width": 1280, "height": 1800})  # Streamlit scrolls inside its own div
    page.goto(app.url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Geo Workbench").wait_for(timeout=30_000)
    page.locator('[data-testid="stMain"] [data-testid="stPageLink-NavLink"]', has_text="Runs").wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    page.wait_for_timeout(1000)  # let the data grids paint
    page.screenshot(path=str(SHOTS / "runs_e2e_0_home.png"), full_page=True)
    # the sidebar calls the first page "Home" (not "app"); no "Deploy" button in the toolbar
    nav = page.locator('[data-testid="stSidebarNav"]')
    assert nav.get_by_role("link").first.inner_text().strip() == "Home"
    assert page.get_by_role("button", name="Deploy").count() == 0

    page.locator('[data-testid="stMain"] [data-testid="stPageLink-NavLink"]', has_text="Runs").click()
    page.get_by_role("heading", name="Runs").wait_for(timeout=30_000)
    page.get_by_text("No runs yet").wait_for(timeout=30_000)

    page.get_by_role("tab", name="Launch").click()
    page.get_by_role("combobox", name="Experiment kind").click()  # real kinds may sort first
    page.get_by_role("option", name="toy", exact=True).click()
    page.get_by_text("test-only regression").wait_for()
    # the previous kind's form lingers until the rerun finishes: wait for a single "name" box
    page.wait_for_function("""() => document.querySelectorAll('input[aria-label="name"]').length === 1
                                    && document.querySelector('input[aria-label="sleep_s"]')""")
    for label, value in SETTINGS.items():
        fill(page, label, value)
    # the main sections, train included, start expanded: no click needed
    page.get_by_label("max_epochs", exact=True).wait_for()
    for label, value in TRAIN_SETTINGS.items():
        fill(page, label, value)
    page.screenshot(path=str(SHOTS / "runs_e2e_1_form.png"), full_page=True)
    page.get_by_role("button", name="Launch run").click()

    # the callback selects the new run and switches to the Monitor tab
    first = wait_progress(page, r"running · step [1-9]", 60)
    runs = RunStore(runs_dir).list()
    assert len(runs) == 1 and runs[0].config_dict()["train"]["max_epochs"] == 60
    run = runs[0]
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    points_1 = trace_points(page)
    page.wait_for_timeout(6500)  # three status refreshes (2 s) and a curves refresh (5 s)
    second = progress_text(page)
    points_2 = trace_points(page)
    assert step_of(second) > step_of(first), (first, second)
    assert points_2 > points_1 > 0, (points_1, points_2)
    page.screenshot(path=str(SHOTS / "runs_e2e_2_running.png"), full_page=True)
    assert button(page, "action_delete", "Delete").is_disabled()  # stop it first

    button(page, "action_stop", "Stop").click()
    stopped = wait_progress(page, r"stopped", 30)
    assert run.read_status()["state"] == "stopped"
    page.get_by_text(re.compile(rf"Stopped\s+{re.escape(run.id)}")).wait_for(timeout=10_000)
    page.screenshot(path=str(SHOTS / "runs_e2e_3_stopped.png"), full_page=True)

    button(page, "action_resume", "Resume").click()
    wait_progress(page, r"(queued|running)", 30)
    done = wait_progress(page, r"done · step 480/480", 90)
    status = run.read_status()
    assert status["state"] == "done" and status["resume_count"] == 1 and status["step"] == 480
    assert step_of(stopped) < 480
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "runs_e2e_4_done.png"), full_page=True)
    assert done.startswith("done")
    assert blocked_requests == []  # nothing left localhost
