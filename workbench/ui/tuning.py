"""Sections of the Tuning page: start a study from a line's preset, watch it live, stop it,
resume it, launch the best config.

Nothing here trains or samples: Start writes the spec to ``<runs>/studies/<name>.yaml`` and
starts ``python -m workbench tune`` as a background process (``driver.launch_study``);
every view reads the study's storage (Optuna's, the only state its workers share) and the
driver's status file. While a study runs, the watch fragment rereads them every
``LIVE_REFRESH_S``; the plots are rebuilt only when a trial changed (a signature of the
trials' states, values and reported steps keys their cache).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
import yaml

from workbench.errors import WorkbenchError
from workbench.runs.store import default_root
from workbench.tuning import driver
from workbench.ui.fmt import MISSING, fmt_num
from workbench.ui.widgets import flash, show_flash

LIVE_REFRESH_S = 3.0
TABS = ("Studies", "New study")
TAB_KEY = "tuning_tab"
SELECTED_KEY = "tuning_study"
PENDING_KEY = "tuning_started"
ACTIVE = ("starting", "running")
PLOTS = ("History", "Intermediate values", "Importances", "Parallel coordinates", "Slice")


def runs_root() -> Path:
    return default_root()


def follow_started() -> None:
    """After Start: select the new study and show the Studies tab (called before the tabs)."""
    name = st.session_state.pop(PENDING_KEY, None)
    if name:
        st.session_state[SELECTED_KEY] = name
        st.session_state[TAB_KEY] = TABS[0]


def dashboard_note(root: Path) -> None:
    st.caption(f"Studies live in `{root / 'studies'}` (one Optuna journal file each, or the RDB URL they were "
               "started with). The same storage opens in optuna-dashboard: `pip install optuna-dashboard && "
               f"optuna-dashboard {root / 'studies'}/<name>.journal` (or the postgresql:// URL).")


# -- new study ----------------------------------------------------------------------------


def _preset_data(path: Path) -> dict:
    from workbench.config import read_yaml

    return read_yaml(path)


def new_study_section(root: Path) -> None:
    """A line's study preset, edited in a form; Start validates it (errors name the key),
    writes the spec and starts the study process."""
    from workbench import lines

    presets = lines.presets("studies")
    if not presets:
        st.info("No study presets: add one to a line's `configs/studies/`.")
        return
    name = st.selectbox("Preset", list(presets), key="tuning_preset",
                        format_func=lambda n: f"{n}  ({presets[n].parent.parent.parent.name})")
    try:
        data = _preset_data(presets[name])
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    st.caption(f"`{presets[name]}` · base config `{data.get('base')}`")
    objective = data.get("objective") or {}
    sampler, pruner = data.get("sampler") or {"type": "tpe"}, data.get("pruner") or {"type": "median"}
    with st.form(f"new_study::{name}"):
        c1, c2, c3, c4 = st.columns(4)
        study_name = c1.text_input("Study name", value=_free_name(data.get("name", name), root))
        n_trials = c2.number_input("Trials", min_value=0, max_value=10_000, value=int(data.get("n_trials", 20)),
                                   help="0 = until the timeout")
        n_jobs = c3.number_input("Parallel trials", min_value=1, max_value=32, value=int(data.get("n_jobs", 1)))
        timeout = c4.number_input("Timeout (s)", min_value=0, value=int(data.get("timeout", 0)), help="0 = none")
        c1, c2, c3, c4 = st.columns(4)
        metric = c1.text_input("Objective metric", value=objective.get("metric", ""))
        direction = c2.selectbox("Direction", ["maximize", "minimize"],
                                 index=0 if objective.get("direction", "maximize") == "maximize" else 1)
        sampler_type = c3.selectbox("Sampler", ["tpe", "random", "cmaes", "grid"],
                                    index=["tpe", "random", "cmaes", "grid"].index(sampler.get("type", "tpe")))
        pruner_type = c4.selectbox("Pruner", ["median", "hyperband", "none"],
                                   index=["median", "hyperband", "none"].index(pruner.get("type", "median")))
        overrides = st.text_area("Per-trial overrides (one key=value a line)",
                                 value="\n".join(data.get("overrides") or []), height=90,
                                 help="applied to every trial, e.g. a tuning subset or fewer epochs; "
                                      "not to the best config's full run")
        space = st.text_area("Search space (YAML)", value=yaml.safe_dump(data.get("space") or {}, sort_keys=False),
                             height=220, help="dotted config keys: {type: float|int|categorical, low, high, log, "
                                              "step, choices, when: {parent: value}}")
        submitted = st.form_submit_button("Start study", type="primary")
    if submitted:
        _start(root, data, dict(
            name=study_name.strip(), n_trials=int(n_trials), n_jobs=int(n_jobs), timeout=int(timeout),
            objective={"metric": metric.strip(), "direction": direction},
            sampler={**({k: v for k, v in sampler.items() if k != "type"} if sampler_type == sampler.get("type")
                        else {}), "type": sampler_type},
            pruner={**({k: v for k, v in pruner.items() if k != "type"} if pruner_type == pruner.get("type")
                       else {}), "type": pruner_type},
            overrides=[o.strip() for o in overrides.splitlines() if o.strip()]), space)
    show_flash("new")


def _free_name(name: str, root: Path) -> str:
    """The preset's name, or ``<name>-N`` when a study of that name exists already."""
    taken = set(driver.list_studies(root))
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def _start(root: Path, preset: dict, fields: dict, space_text: str) -> None:
    from workbench.tuning.spec import parse_spec

    try:
        space = yaml.safe_load(space_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        st.error(f"The search space is not valid YAML{where}: {getattr(exc, 'problem', exc)}")
        return
    data = {**{k: v for k, v in preset.items() if k in ("base",)}, **fields, "space": space}
    try:
        spec = parse_spec(data, "the study form")
        path = driver.studies_dir(root) / f"{spec.name}.yaml"
        if driver.read_study_status(spec.name, root).get("state") in ACTIVE:
            raise WorkbenchError(f"study '{spec.name}' is running; stop it or pick another name")
        path.parent.mkdir(parents=True, exist_ok=True)
        previous = path.read_text() if path.is_file() else None
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        try:
            driver.launch_study(path, root)
        except WorkbenchError:
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(previous)  # a refused spec never replaces the study's own
            raise
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    st.session_state[PENDING_KEY] = spec.name  # selected and shown on the rerun, before the widgets exist
    flash("studies", "success", f"Started study `{spec.name}` ({spec.n_trials or 'until the timeout'} trials). "
                                "Its trials appear below and on the Runs page.")
    st.rerun()


# -- one study ------------------------------------------------------------------------------


def load_study(name: str, root: Path, storage: str | None):
    import optuna

    from workbench.tuning.storage import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=make_storage(storage, name, root))


def study_picker(root: Path) -> str | None:
    show_flash("studies")
    names = driver.list_studies(root)
    if not names:
        st.info("No studies yet. Start one in the **New study** tab, or from a terminal: "
                "`python -m workbench tune projection-heads`.")
        return None
    if st.session_state.get(SELECTED_KEY) not in names:
        st.session_state[SELECTED_KEY] = st.query_params.get("study") if st.query_params.get("study") in names \
            else names[-1]
    return st.selectbox("Study", names, key=SELECTED_KEY)


def trials_frame(study) -> pd.DataFrame:
    """One row per trial: number, state, value, duration, best-so-far flag, parameters,
    its run (a link to the Runs page) and its error."""
    rows = []
    best = None
    try:
        best = study.best_trial.number
    except ValueError:
        pass
    for t in study.get_trials(deepcopy=False):
        end = t.datetime_complete.timestamp() if t.datetime_complete else time.time()
        start = t.datetime_start.timestamp() if t.datetime_start else None
        run_id = t.user_attrs.get("run_id")
        rows.append({
            "trial": t.number, "state": t.state.name.lower() + (" ★" if t.number == best else ""),
            "value": t.value, "steps": len(t.intermediate_values),
            "duration": f"{end - start:.1f} s" if start else MISSING,
            **{f"{k}": _short(v) for k, v in t.params.items()},
            "run": f"/Runs?run={run_id}" if run_id else None,
            "error": t.user_attrs.get("error") or "",
        })
    return pd.DataFrame(rows)


def _short(value: Any) -> Any:
    return float(f"{value:.4g}") if isinstance(value, float) else value


def _signature(study) -> tuple:
    return tuple((t.number, t.state.name, t.value, len(t.intermediate_values))
                 for t in study.get_trials(deepcopy=False))


@st.cache_data(show_spinner=False, max_entries=64)
def _figures(name: str, root: str, storage: str | None, signature: tuple) -> dict[str, Any]:
    """The five Optuna plotly figures as JSON (or a reason each cannot be drawn yet);
    ``signature`` (the trials' states, values and steps) renews the cache."""
    import plotly.io as pio
    from optuna import visualization as vis

    study = load_study(name, Path(root), storage)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    makers = {"History": vis.plot_optimization_history, "Intermediate values": vis.plot_intermediate_values,
              "Importances": vis.plot_param_importances, "Parallel coordinates": vis.plot_parallel_coordinate,
              "Slice": vis.plot_slice}
    out: dict[str, Any] = {}
    for label, make in makers.items():
        if label == "Importances" and len(complete) < 2:
            out[label] = "Parameter importances need at least 2 completed trials."
            continue
        if label != "Intermediate values" and not complete:
            out[label] = "No completed trial yet."
            continue
        try:
            fig = make(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. one value of every parameter
            out[label] = f"Cannot draw this yet: {exc}"
            continue
        fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10))
        out[label] = pio.to_json(fig)
    return out


def study_view(root: Path, name: str) -> None:
    """Status, actions, trials table and plots of one study; live while it runs."""
    status = driver.read_study_status(name, root)
    active = status.get("state") in ACTIVE
    actions(root, name, status)

    @st.fragment(run_every=LIVE_REFRESH_S if active else None)
    def live() -> None:
        current = driver.read_study_status(name, root)
        if (current.get("state") in ACTIVE) != active:
            st.rerun()  # it finished or was stopped elsewhere: buttons follow
        try:
            study = load_study(name, root, current.get("storage"))
        except (WorkbenchError, KeyError) as exc:
            st.error(f"Cannot open study `{name}`: {exc}")
            return
        summary_line(study, current)
        frame = trials_frame(study)
        if frame.empty:
            st.caption("No trial yet: the first one is starting.")
            return
        st.dataframe(frame, hide_index=True, key=f"trials::{name}", column_config={
            "run": st.column_config.LinkColumn("run", display_text=r"/Runs\?run=(.*)",
                                               help="the trial's run on the Runs page"),
            "value": st.column_config.NumberColumn(format="%.4f"),
            "error": st.column_config.TextColumn(width="large"),
        })
        figures = _figures(name, str(root), current.get("storage"), _signature(study))
        import plotly.io as pio

        for tab, label in zip(st.tabs(PLOTS), PLOTS):
            with tab:
                fig = figures[label]
                if fig.startswith("{"):
                    st.plotly_chart(pio.from_json(fig), key=f"plot::{name}::{label}")
                else:
                    st.caption(fig)

    live()


def summary_line(study, status: dict) -> None:
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    n_trials = status.get("n_trials")
    try:
        best = f"best {status.get('objective') or 'value'} {fmt_num(study.best_value, 4)} (trial " \
               f"{study.best_trial.number})"
    except ValueError:
        best = "no completed trial yet"
    state = status.get("state") or "stored (no driver status here)"
    counts = ", ".join(f"{v} {k}" for k, v in sorted(states.items())) or "none"
    of = f" of {n_trials}" if n_trials else ""
    st.markdown(f"**{state}** · {len(trials)}{of} trials ({counts}) · {best} · {status.get('direction', '')}")
    if status.get("error"):
        st.error(status["error"])


def actions(root: Path, name: str, status: dict) -> None:
    state = status.get("state")
    has_spec = bool(status.get("spec")) and Path(status["spec"]).is_file()
    cols = st.columns([1, 1, 1.4, 4])
    cols[0].button("Stop", key="study_stop", disabled=state not in ACTIVE, on_click=_stop, args=(root, name),
                   help="SIGTERM to the study process: running trials checkpoint and are marked failed "
                        "('stopped with the study'); no new trial starts")
    cols[1].button("Resume", key="study_resume", disabled=state in ACTIVE or not has_spec, on_click=_resume,
                   args=(root, name, status),
                   help="start the study process again: finished trials count, new ones run up to the total"
                   if has_spec else "no spec file recorded for this study here")
    cols[2].button("Launch best config", key="study_best", disabled=not has_spec, on_click=_best,
                   args=(root, name, status),
                   help="write best_config.yaml (the base config + the best parameters, without the per-trial "
                        "overrides) and start that full run")
    show_flash("study_actions")


def _stop(root: Path, name: str) -> None:
    try:
        out = driver.stop_study(name, root)
    except WorkbenchError as exc:
        flash("study_actions", "error", f"Could not stop `{name}`: {exc}")
        return
    flash("study_actions", "success", f"Stopped `{name}` ({out.get('state')}).")


def _resume(root: Path, name: str, status: dict) -> None:
    try:
        driver.launch_study(status["spec"], root, status.get("storage"))
    except WorkbenchError as exc:
        flash("study_actions", "error", f"Could not resume `{name}`: {exc}")
        return
    flash("study_actions", "success", f"Resumed `{name}`.")


def _best(root: Path, name: str, status: dict) -> None:
    from workbench.experiments import load_config
    from workbench.runs import JobManager, RunStore
    from workbench.tuning.spec import load_spec

    try:
        spec = load_spec(status["spec"])
        path = driver.write_best_config(spec, status.get("storage"), root)
        run = JobManager(RunStore(root)).submit(load_config(path))
    except WorkbenchError as exc:
        flash("study_actions", "error", f"Could not launch the best config of `{name}`: {exc}")
        return
    flash("study_actions", "success", f"Wrote `{path}` and launched run `{run.id}` "
                                      f"([open it on the Runs page](/Runs?run={run.id})).")
