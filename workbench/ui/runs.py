"""Sections of the Runs page: run table, launch form, live view of one run, actions, compare.

Nothing here trains: launching submits a background job (``JobManager.submit``) and every
view reads the run store. Watching a run must stay cheap (the app shares the machine with
the job it watches), so while a run is queued or running:

- the status fragment (progress bar, log tail) reruns every ``LIVE_REFRESH_S`` and reads
  only status.json and the log's tail;
- the curves fragment reruns every ``CURVES_REFRESH_S``, reads only the metrics lines
  appended since its last poll (``MetricsFollower`` in ``st.session_state``) and rebuilds a
  figure only when new records arrived (a per-run figure cache in ``st.session_state``);
- the run table reruns every ``TABLE_REFRESH_S``; a finished run's metrics are not re-read
  (``run_tables.last_metrics`` keys on size + mtime).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from workbench.errors import WorkbenchError
from workbench.runs import JobManager, Run
from workbench.ui import forms
from workbench.ui.run_tables import (
    ACTIVE_STATES,
    MetricsFollower,
    bar_value,
    compare_table,
    metrics_frame,
    runs_overview,
)
from workbench.ui.widgets import flash, show_flash
from workbench.viz.curves import compare_figure, curves_figure, metric_groups, metric_names

LIVE_REFRESH_S = 2.0    # progress, phase and log tail of the watched run
CURVES_REFRESH_S = 5.0  # its curves: rebuilt only when new records arrived
TABLE_REFRESH_S = 5.0   # the table of all runs
LOG_LINES = 40
RESUMABLE = ("stopped", "crashed", "failed")
TABS = ("Monitor", "Launch", "Compare")
TAB_KEY = "runs_tab"
SELECTED_KEY = "selected_run"

Statuses = list[tuple[Run, dict]]


# -- loading ------------------------------------------------------------------------------


def open_jobs() -> JobManager:
    """The job manager; a bad setting (e.g. ``WORKBENCH_MAX_JOBS=abc``) stops the page with
    its message in an error box."""
    try:
        return JobManager()
    except WorkbenchError as exc:
        st.error(str(exc))
        st.stop()


def load_statuses(jobs: JobManager) -> Statuses:
    """Advance the queue (start queued jobs if a slot is free), then every run's status.

    A runs directory that cannot be created or read stops the page with its message.
    """
    try:
        jobs.schedule()
        return jobs.statuses()
    except WorkbenchError as exc:
        st.error(str(exc))
        st.stop()


@st.cache_data(ttl=600, max_entries=256, show_spinner=False)
def _cached_metrics(run_dir: str, size: int, mtime_ns: int) -> pd.DataFrame:
    """A run's whole metrics file as a frame; (size, mtime) in the key invalidates it."""
    records, _ = Run(Path(run_dir)).read_metrics()
    return metrics_frame(records)


def read_metrics_frame(run: Run) -> pd.DataFrame:
    try:
        stat = run.metrics_path.stat()
        size, mtime = stat.st_size, stat.st_mtime_ns
    except FileNotFoundError:
        size, mtime = 0, 0
    return _cached_metrics(str(run.path), size, mtime)


def _signature(statuses: Statuses) -> tuple:
    return tuple((run.id, status.get("state")) for run, status in statuses)


# -- notes and table ----------------------------------------------------------------------


def tensorboard_note(root: Path) -> None:
    st.caption(f"Runs live in `{Path(root).resolve()}`; every run also writes TensorBoard "
               f"scalars: `tensorboard --logdir {Path(root).resolve()}`")


def runs_table(jobs: JobManager, statuses: Statuses) -> None:
    """The run table; refreshes itself every ``TABLE_REFRESH_S`` while a run is active and
    reruns the whole page when a run changes state (so buttons and panels follow)."""
    signature = _signature(statuses)
    active = any(s.get("state") in ACTIVE_STATES for _, s in statuses)
    first = [statuses]  # the full run already read them; fragment reruns read afresh

    @st.fragment(run_every=TABLE_REFRESH_S if active else None)
    def table() -> None:
        current = first.pop() if first else jobs.statuses()
        if _signature(current) != signature:
            st.rerun()
        if not current:
            st.info(f"No runs yet in `{jobs.store.root}`. Launch one in the **Launch** tab, "
                    "or from a terminal: `python -m workbench train configs/<kind>.yaml --detach`.")
            return
        st.dataframe(
            runs_overview(current), hide_index=True, key="runs_overview",
            column_config={
                "run": st.column_config.TextColumn(width="medium"),
                "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0,
                                                            format="percent", width=110),
                "now": st.column_config.TextColumn(width="medium",
                                                   help="the step and ETA while training, else the phase"),
                "best": st.column_config.TextColumn(help="best value of `monitor`"),
                "duration": st.column_config.TextColumn(help="wall time; so far for a running run"),
                "finished": st.column_config.TextColumn(help="local time the run ended"),
                "note": st.column_config.TextColumn(width="large"),
            },
        )

    table()


# -- launch -------------------------------------------------------------------------------


def launch_section(jobs: JobManager) -> None:
    """Kind picker + the form generated from that kind's config dataclass."""
    from workbench.experiments import EXPERIMENTS, load_kinds

    try:
        kinds = load_kinds()
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    if not kinds:
        st.info("No experiment kinds are registered: add a module under `workbench/experiments/` "
                "or name one in the `WORKBENCH_PLUGINS` environment variable.")
        return
    kind = st.selectbox("Experiment kind", kinds, key="launch_kind")
    if EXPERIMENTS.get(kind).description:
        st.caption(EXPERIMENTS.get(kind).description)
    forms.launch_form(kind, on_submit=lambda cfg: _launch(jobs, cfg))
    show_flash("launch")


def _launch(jobs: JobManager, cfg) -> None:
    """Submit callback: queue the job, select it and switch to the Monitor tab."""
    run = jobs.submit(cfg)
    st.session_state[SELECTED_KEY] = run.id
    st.session_state[TAB_KEY] = TABS[0]
    flash("launch", "success", f"Launched `{run.id}` ({run.state}). Follow it in the Monitor tab.")
    flash("monitor", "success", f"Launched `{run.id}`.")


# -- one run ------------------------------------------------------------------------------


def run_picker(statuses: Statuses) -> tuple[Run, dict] | tuple[None, None]:
    """A selectbox of runs (newest first); keeps the selection while the run exists."""
    show_flash("monitor")
    if not statuses:
        show_flash("actions")  # e.g. "Deleted ..." after the last run went
        return None, None
    by_id = {run.id: (run, status) for run, status in statuses}
    for key in [k for k in st.session_state if str(k).startswith(("metrics::", "figures::"))]:
        if key.split("::", 1)[1] not in by_id:  # the run was deleted: drop its reader
            del st.session_state[key]
    linked = st.query_params.get("run")  # /Runs?run=<id>: e.g. a trial's link on the Tuning page
    if linked in by_id and st.session_state.get("linked_run") != linked:
        st.session_state[SELECTED_KEY] = st.session_state["linked_run"] = linked
    if st.session_state.get(SELECTED_KEY) not in by_id:
        st.session_state[SELECTED_KEY] = statuses[0][0].id
    # plain ids as labels: a label that embeds the state goes stale in the browser
    run_id = st.selectbox("Run", list(by_id), key=SELECTED_KEY)
    return by_id[run_id]


def run_actions(jobs: JobManager, run: Run, status: dict) -> None:
    """Stop / resume / delete (with a confirmation step); errors shown as st.error."""
    state = status.get("state")
    cols = st.columns([1, 1, 1, 5])
    cols[0].button("Stop", key="action_stop", disabled=state not in ACTIVE_STATES,
                   on_click=_action, args=(jobs, "stop", run.id),
                   help="SIGTERM: the job saves checkpoints/last.pt and exits as 'stopped'")
    cols[1].button("Resume", key="action_resume", disabled=state not in RESUMABLE,
                   on_click=_action, args=(jobs, "resume", run.id),
                   help="continue from checkpoints/last.pt")
    active = state in ACTIVE_STATES
    cols[2].button("Delete", key="action_delete", on_click=_ask_delete, args=(run.id,), disabled=active,
                   help=("stop the run first: a running or queued run cannot be deleted" if active
                         else "remove the run directory (checkpoints, metrics, logs)"))
    if st.session_state.get("confirm_delete") == run.id and not active:
        st.warning(f"Delete run `{run.id}` and everything in `{run.path}`? This cannot be undone.")
        c1, c2, _ = st.columns([1, 1, 6])
        c1.button("Yes, delete", key="action_delete_confirm", type="primary",
                  on_click=_action, args=(jobs, "delete", run.id))
        c2.button("Cancel", key="action_delete_cancel", on_click=_ask_delete, args=(None,))
    show_flash("actions")


def _ask_delete(run_id: str | None) -> None:
    st.session_state["confirm_delete"] = run_id


def _action(jobs: JobManager, action: str, run_id: str) -> None:
    st.session_state["confirm_delete"] = None
    try:
        getattr(jobs, action)(run_id)
    except WorkbenchError as exc:
        flash("actions", "error", f"Could not {action} `{run_id}`: {exc}")
        return
    done = {"stop": "Stopped", "resume": "Resumed", "delete": "Deleted"}[action]
    flash("actions", "success", f"{done} `{run_id}`.")


def live_run(jobs: JobManager, run: Run, status: dict) -> None:
    """Progress, curves and log tail of one run, live while it is queued or running."""
    active = status.get("state") in ACTIVE_STATES

    @st.fragment(run_every=LIVE_REFRESH_S if active else None)
    def status_panel() -> None:
        current = jobs.refresh(run)
        if (current.get("state") in ACTIVE_STATES) != active:
            st.rerun()  # started or finished: redraw the page (buttons, table, refresh rate)
        _progress(current)

    @st.fragment(run_every=CURVES_REFRESH_S if active else None)
    def curves_panel() -> None:
        follower = _follower(run)
        follower.poll()
        _curves(run, follower)

    @st.fragment(run_every=LIVE_REFRESH_S if active else None)
    def log_panel() -> None:
        failed = status.get("state") in ("failed", "crashed")
        with st.expander(f"train.log (last {LOG_LINES} lines)", expanded=failed):
            st.code(run.log_tail(LOG_LINES) or "(empty)", language=None)

    status_panel()
    curves_panel()
    log_panel()


def _follower(run: Run) -> MetricsFollower:
    """The run's incremental metrics reader, kept in the session across reruns."""
    key = f"metrics::{run.id}"
    follower = st.session_state.get(key)
    if follower is None or follower.run.path != run.path:
        follower = st.session_state[key] = MetricsFollower(run)
    return follower


def _progress(status: dict) -> None:
    state = status.get("state", "queued")
    value, text = bar_value(status)
    if (status.get("processes") or 1) > 1:  # a distributed run: one run, N ranks
        text = f"{text} · {status['processes']} processes" if text else f"{status['processes']} processes"
    st.progress(value, text=f"{state} · {text}" if text else state)
    if status.get("unresponsive"):
        st.warning("The job's heartbeat is stale but its process is alive: it may be busy in a "
                   "long step or stuck. It is not stopped automatically; use **Stop** if it "
                   "does not recover.")
    if state in ("failed", "crashed") and status.get("error"):
        st.error(f"{state}: {status['error']}")
    elif status.get("stop_reason"):
        st.info(status["stop_reason"])
    if status.get("final"):
        final = {**status["final"], **({f"best {status.get('monitor')}": status["best"]}
                                       if status.get("best") is not None else {})}
        st.dataframe(pd.DataFrame([final]), hide_index=True)


def _curves(run: Run, follower: MetricsFollower) -> None:
    frame = follower.frame
    names = metric_names(frame)
    if not names:
        st.caption("No metrics logged yet (the first appear after `train.log_every` steps).")
        return
    groups = metric_groups(names)
    options = list(groups)
    remembered = st.session_state.get(f"groups::{run.id}", ["loss"])
    chosen = st.multiselect(
        "Metrics", options, default=[g for g in remembered if g in groups] or options[:1],
        key=f"groups::{run.id}::{'|'.join(options)}",  # new metrics appear -> fresh widget
        help="train and val of the same metric share a figure",
    )
    st.session_state[f"groups::{run.id}"] = chosen
    log_y = st.checkbox("log scale", key=f"logy::{run.id}")
    cols = st.columns(min(2, max(1, len(chosen))))
    cache = st.session_state.setdefault(f"figures::{run.id}", {})
    for i, group in enumerate(chosen):
        key = (group, log_y, follower.n_records)  # a figure changes only with new records
        fig = cache.get(group)
        if fig is None or fig[0] != key:
            fig = cache[group] = (key, curves_figure(frame, groups[group], title=group, log_y=log_y))
        cols[i % len(cols)].plotly_chart(fig[1], key=f"curve::{run.id}::{group}")


# -- compare ------------------------------------------------------------------------------


def compare_section(statuses: Statuses) -> None:
    """Differing hyper-parameters + final metrics of chosen runs, and one metric overlaid."""
    by_id = {run.id: run for run, _ in statuses}
    if "compare_runs" in st.session_state:  # forget deleted runs before the widget sees them
        st.session_state["compare_runs"] = [r for r in st.session_state["compare_runs"] if r in by_id]
    chosen = st.multiselect("Runs to compare", list(by_id), key="compare_runs",
                            help="the table keeps only the config keys whose values differ")
    chosen = [run_id for run_id in chosen if run_id in by_id]
    if len(chosen) < 2:
        st.caption("Pick two or more runs.")
        return
    frames, configs = {}, {}
    for run_id in chosen:
        frames[run_id] = read_metrics_frame(by_id[run_id])
        try:
            configs[run_id] = by_id[run_id].config_dict()
        except WorkbenchError as exc:
            st.error(f"{run_id}: {exc}")
            return
    table = compare_table(configs, frames)
    st.dataframe(table, key="compare_table")
    st.download_button("Download CSV", table.to_csv().encode(), file_name="runs_compare.csv",
                       mime="text/csv")
    names = sorted(set().union(*(metric_names(f) for f in frames.values())))
    if not names:
        st.caption("No metrics logged yet.")
        return
    default = next((n for n in ("val/loss", "train/loss") if n in names), names[0])
    metric = st.selectbox("Metric", names, index=names.index(default), key="compare_metric")
    st.plotly_chart(compare_figure(frames, metric), key="compare_curves")
