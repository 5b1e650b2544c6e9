"""The Tuning page in a real, offline browser: start a small projection-heads study from the
New study form (4 MLP trials of 2 epochs on train_tuning, real training on the demo data), watch
its trials table and optimization-history plot fill in without reloading the page (the watch
fragment refreshes itself), then follow a trial's link to its run on the Runs page.
Screenshots: /tmp/tuning_e2e_*.png (form, study mid-way, finished study, the linked run)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from workbench.runs import RunStore

REPO_ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path("/tmp")
STUDY = "e2e-study"
N_TRIALS = 4
OVERRIDES = "data.train_split=train_tuning\ntrain.max_epochs=2"
# The preset's space without its attention heads (several times slower than the base config's
# MLP on 2 CPU cores): a trial takes seconds, the whole study about a minute.
SPACE = """\
train.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
model.dropout: {type: float, low: 0.0, high: 0.6}
loss.type: {type: categorical, choices: [clip, siglip]}
model.hidden_dim: {type: categorical, choices: [256, 512]}
"""
STUDY_TIMEOUT_S = 240.0
ERRORS = '[data-testid="stAlertContentError"], [data-testid="stException"]'

# The trials table is a canvas (glide data grid); its accessibility table holds the visible
# cells as text: one {column: text} per row, the run column as "/Runs?run=<id>". null while
# the page is between two states: a table still mounting (no rows yet; the page never shows
# an empty one) or, during the full rerun when the study ends, the old table beside the new.
TRIAL_ROWS = """() => {
    const tables = document.querySelectorAll('[data-testid="stDataFrame"]');
    if (tables.length === 0) return [];
    const grid = tables[0].querySelector('table[role="grid"]');
    if (tables.length > 1 || !grid || !grid.querySelector('tbody tr')) return null;
    const names = Object.fromEntries([...grid.querySelectorAll('th[role="columnheader"]')]
        .map(th => [th.getAttribute('aria-colindex'), th.innerText.trim()]));
    return [...grid.querySelectorAll('tbody tr')].map(tr => Object.fromEntries(
        [...tr.querySelectorAll('td[role="gridcell"]')]
            .map(td => [names[td.getAttribute('aria-colindex')], td.innerText.trim()])));
}"""
# Trial numbers of the "Objective Value" trace of Optuna's history plot (null: no plot yet);
# plotly keeps the decoded data on its div as _fullData.
HISTORY_TRIALS = """() => {
    const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
        g => ((g._fullLayout || {}).title || {}).text?.includes('Optimization History Plot'));
    if (!gd || !gd._fullData) return null;
    const trace = gd._fullData.find(t => t.name === 'Objective Value');
    return trace ? Array.from(trace.x) : [];
}"""


def summary(page) -> str:
    """The study's status line, e.g. "running · 2 of 4 trials (1 complete, 1 running) · ..."."""
    line = page.locator('[data-testid="stMarkdown"]', has_text=f" of {N_TRIALS} trials")
    return line.first.inner_text().strip() if line.count() else ""


def complete(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("state", "").startswith("complete")]


def fill(page, box, value: str) -> None:
    box.fill(value)
    box.press("Tab")


def no_errors(page) -> None:
    boxes = page.locator(ERRORS)
    assert boxes.count() == 0, boxes.all_inner_texts()


@pytest.mark.e2e
def test_start_a_study_and_watch_it_live(streamlit_app, offline_page, blocked_requests, runs_dir):
    app = streamlit_app(REPO_ROOT / "app.py")  # the server inherits WORKBENCH_RUNS=runs_dir
    page = offline_page
    page.set_viewport_size({"width": 1280, "height": 1800})  # Streamlit scrolls inside its own div
    page.goto(app.url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Geo Workbench").wait_for(timeout=30_000)
    page.locator('[data-testid="stMain"] [data-testid="stPageLink-NavLink"]', has_text="Tuning").click()
    page.get_by_role("heading", name="Tuning").wait_for(timeout=30_000)
    page.get_by_text("No studies yet").wait_for(timeout=30_000)

    # -- the form: the projection preset, made small ------------------------------------
    page.get_by_role("tab", name="New study").click()
    page.get_by_role("combobox", name="Preset").click()  # another line's preset may sort first
    page.get_by_role("option", name="projection-heads").click()
    page.get_by_text("base config projection-demo").wait_for(timeout=30_000)
    # the previous preset's form lingers until the rerun finishes: wait for its metric
    page.wait_for_function("() => document.querySelector('input[aria-label=\"Objective metric\"]')"
                           "?.value === 'val/r_mean'", timeout=30_000)
    fill(page, page.get_by_label("Study name", exact=True), STUDY)
    fill(page, page.get_by_label("Trials", exact=True), str(N_TRIALS))
    fill(page, page.get_by_role("textbox", name="Per-trial overrides (one key=value a line)"), OVERRIDES)
    fill(page, page.get_by_role("textbox", name="Search space (YAML)"), SPACE)
    page.screenshot(path=str(SHOTS / "tuning_e2e_1_form.png"), full_page=True)
    no_errors(page)
    page.get_by_role("button", name="Start study").click()

    # -- the Studies tab follows the new study ------------------------------------------
    page.get_by_text(f"Started study {STUDY}").wait_for(timeout=30_000)
    assert page.get_by_role("tab", name="Studies").get_attribute("aria-selected") == "true"
    spec = runs_dir / "studies" / f"{STUDY}.yaml"
    assert spec.is_file() and "train.max_epochs=2" in spec.read_text() and "attention" not in spec.read_text()
    page.evaluate("() => { window.__noReload = true; }")  # gone if the page were reloaded

    # -- watch it live: poll the page as it is, never reload --------------------------------
    seen: list[tuple[int, int]] = []  # (rows, complete rows) each time they changed
    mid_history = None
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    rows, history, line = [], None, ""
    while time.monotonic() < deadline:
        rows, history, line = page.evaluate(TRIAL_ROWS), page.evaluate(HISTORY_TRIALS), summary(page)
        if rows is None:
            page.wait_for_timeout(200)
            continue
        counts = (len(rows), len(complete(rows)))
        if not seen or counts != seen[-1]:
            seen.append(counts)
        if mid_history is None and line.startswith("running") and counts[1] >= 1 and history:
            mid_history = history
            no_errors(page)
            page.screenshot(path=str(SHOTS / "tuning_e2e_2_running.png"), full_page=True)
        if line.startswith("done") and counts[1] == N_TRIALS and history and len(history) == N_TRIALS:
            break
        page.wait_for_timeout(500)
    assert line.startswith("done"), (line, seen, runs_dir)
    assert page.evaluate("() => window.__noReload") is True  # the fragment did it all
    # rows appeared one by one and only grew; trials finished while we watched
    assert seen[-1] == (N_TRIALS, N_TRIALS), seen
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(seen, seen[1:])), seen
    assert seen[0] == (0, 0) and any(0 < c < N_TRIALS for _, c in seen), seen  # not all at once
    assert mid_history is not None and 1 <= len(mid_history) < N_TRIALS, (mid_history, seen)
    assert f"{N_TRIALS} of {N_TRIALS} trials ({N_TRIALS} complete)" in line, line
    assert [r["trial"] for r in rows] == [str(n) for n in range(N_TRIALS)], rows
    assert all(r["state"].startswith("complete") for r in rows), rows
    assert sum("★" in r["state"] for r in rows) == 1, rows  # the best trial is marked
    assert sorted(int(x) for x in history) == list(range(N_TRIALS)), history  # every trial plotted
    page.wait_for_timeout(1000)  # let the plot paint
    no_errors(page)
    page.screenshot(path=str(SHOTS / "tuning_e2e_3_done.png"), full_page=True)

    # -- each trial links to its own finished run; the first link opens it on the Runs page --
    assert all(r["run"].startswith("/Runs?run=") for r in rows), rows
    ids = [r["run"].removeprefix("/Runs?run=") for r in rows]
    runs = {run.id: run for run in RunStore(runs_dir).list()}
    assert len(set(ids)) == N_TRIALS and set(ids) <= set(runs), (ids, list(runs))
    assert all(runs[i].read_status()["state"] == "done" for i in ids)
    link, run_id = rows[0]["run"], ids[0]
    page.goto(app.url + link, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Runs").wait_for(timeout=30_000)
    # the Runs page selects the linked run (a selectbox keeps its value in its input)
    page.wait_for_function("id => [...document.querySelectorAll('[data-testid=\"stSelectbox\"] input')]"
                           ".some(i => i.value === id)", arg=run_id, timeout=30_000)
    page.get_by_text("done · step").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    no_errors(page)
    page.screenshot(path=str(SHOTS / "tuning_e2e_4_run.png"), full_page=True)
    assert blocked_requests == []  # nothing left localhost
