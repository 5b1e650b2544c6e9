"""Tables the Runs page shows, computed from the run store (pandas; no streamlit here).

- ``runs_overview``: one row per run: state, progress (of the current phase outside
  training), ``now`` (``progress.describe``), last metrics as text (em dash when missing),
  duration (so far while running), finish time, age. A finished run's metrics tail is
  parsed once (``last_metrics`` keys on size + mtime), not on every table refresh.
- ``bar_value``: the live view's bar value and text.
- ``MetricsFollower``: a run's metrics read incrementally (only lines appended since the
  last poll), de-duplicated per (split, step) after resumes.
- ``compare_table``: the hyper-parameters that differ between runs next to their final
  train / val metrics: the experiment table researchers otherwise keep by hand.
"""
from __future__ import annotations

import json
import math
import time
from typing import Any, Iterable, Mapping

import pandas as pd

from workbench.config import flatten
from workbench.runs import Run, latest_per_step
from workbench.runs.progress import describe, format_duration
from workbench.ui.fmt import MISSING
from workbench.viz.curves import records_frame

ACTIVE_STATES = ("queued", "running")
TAIL_BYTES = 64_000


def tail_records(run: Run, max_bytes: int = TAIL_BYTES) -> list[dict]:
    """The records in the last ``max_bytes`` of metrics.jsonl (cheap for any file size)."""
    try:
        with run.metrics_path.open("rb") as fh:
            size = fh.seek(0, 2)
            start = max(0, size - max_bytes)
            fh.seek(start)
            chunk = fh.read()
    except FileNotFoundError:
        return []
    lines = chunk.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first line was cut by the seek
    records = []
    for line in lines[:-1]:  # the last piece is either empty or an unfinished line
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def last_by_split(records: Iterable[Mapping]) -> dict[str, dict]:
    """{"train": last train record, "val": last val record} by step (latest wins a tie)."""
    last: dict[str, dict] = {}
    for rec in records:
        split = rec.get("split")
        if split not in last or rec.get("step", 0) >= last[split].get("step", 0):
            last[split] = dict(rec)
    return last


_TAIL_CACHE: dict[str, tuple[tuple[int, int], dict]] = {}


def last_metrics(run: Run) -> dict[str, dict]:
    """``last_by_split(tail_records(run))``, re-read only when metrics.jsonl changed
    (size, mtime): a table of many finished runs costs a stat per run per refresh."""
    try:
        st_ = run.metrics_path.stat()
        key = (st_.st_size, st_.st_mtime_ns)
    except FileNotFoundError:
        return {}
    hit = _TAIL_CACHE.get(str(run.path))
    if hit is not None and hit[0] == key:
        return hit[1]
    last = last_by_split(tail_records(run))
    if len(_TAIL_CACHE) > 1024:
        _TAIL_CACHE.clear()
    _TAIL_CACHE[str(run.path)] = (key, last)
    return last


def _sig(value) -> str:
    """A metric in a table cell: 4 significant digits; missing is an em dash, never None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return MISSING
    return f"{value:.4g}" if math.isfinite(value) else MISSING


def _clock(ts: float | None, now: float) -> str:
    """Finish time: 'HH:MM' today, 'Mon DD HH:MM' before; '' when unfinished."""
    if not ts:
        return ""
    t = time.localtime(ts)
    return time.strftime("%H:%M" if time.localtime(now)[:3] == t[:3] else "%b %d %H:%M", t)


def runs_overview(statuses: Iterable[tuple[Run, dict]], now: float | None = None) -> pd.DataFrame:
    """One row per run: run, kind, name, state, progress [0, 1], now (``describe``: the
    phase and its counters, or the step and ETA), duration (so far while running),
    finished (clock time), train/loss, val/loss, best (of the monitored metric), age,
    monitor, note (error or stop reason).

    Metric cells are text (4 significant digits, an em dash when missing) so no cell ever
    reads "None".
    """
    now = time.time() if now is None else now
    rows = []
    for run, status in statuses:
        last = last_metrics(run)
        train, val = last.get("train", {}), dict(last.get("val", {}))
        val.update(status.get("final") or {})
        state = status.get("state", "queued")
        started, ended = status.get("started") or status.get("created"), status.get("ended")
        value, _ = bar_value(status)
        rows.append({
            "run": run.id,
            "kind": status.get("kind", ""),
            "name": status.get("name", ""),
            "state": "unresponsive" if status.get("unresponsive") else state,
            "progress": value,
            "now": describe(status) or MISSING,
            "train/loss": _sig(train.get("train/loss")),
            "val/loss": _sig(val.get("val/loss")),
            "best": _sig(status.get("best")),
            # a resumed run that is running again keeps its old "ended": measure to now
            "duration": format_duration((now if state in ACTIVE_STATES else ended or now) - started)
                        if started and state != "queued" else MISSING,
            "finished": (_clock(ended, now) or MISSING) if state not in ACTIVE_STATES else MISSING,
            "age": format_duration(now - status["created"]) if status.get("created") else MISSING,
            "monitor": status.get("monitor") or "",
            "note": status.get("error") or status.get("stop_reason") or "",
        })
    # duration and finish time next to the state: visible without scrolling the table
    columns = ["run", "kind", "name", "state", "progress", "now", "duration", "finished",
               "train/loss", "val/loss", "best", "age", "monitor", "note"]
    return pd.DataFrame(rows, columns=columns)


def bar_value(status: dict) -> tuple[float, str]:
    """(progress in [0, 1], describe text): a phase's own counters outside training, so a
    run caching features or training extra seeds does not read "step 0" or "1000/1000"."""
    value = float(status.get("progress") or 0.0)
    done, total = status.get("phase_done"), status.get("phase_total")
    if status.get("state") == "running" and status.get("phase") not in (None, "train") and total:
        value = (done or 0) / total
    return min(max(value, 0.0), 1.0), describe(status)


class MetricsFollower:
    """A run's metrics, read incrementally: each ``poll`` reads only the new lines.

    Keeps the byte offset into metrics.jsonl and one de-duplicated DataFrame (one row per
    (split, step), the latest record winning, as ``latest_per_step`` defines it).
    """

    def __init__(self, run: Run):
        self.run = run
        self._reset()

    def _reset(self) -> None:
        self.offset = 0
        self.n_records = 0  # lines read so far, duplicates included
        self._frame = records_frame([])

    def poll(self) -> int:
        """Read what was appended since the last poll; returns the number of new records."""
        try:
            size = self.run.metrics_path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < self.offset:  # the file was replaced: start over
            self._reset()
        new, self.offset = self.run.read_metrics(self.offset)
        if new:
            self.n_records += len(new)
            fresh = metrics_frame(new)
            if len(self._frame):
                fresh = pd.concat([self._frame, fresh], ignore_index=True)
                # a resumed run re-logs the steps after its last checkpoint: latest wins
                fresh = fresh.drop_duplicates(subset=["split", "step"], keep="last")
                fresh = fresh.sort_values(["step", "split"], kind="stable").reset_index(drop=True)
            self._frame = fresh
        return len(new)

    @property
    def frame(self) -> pd.DataFrame:
        """[N, step/epoch/split/time/metrics...], sorted by step."""
        return self._frame


def metrics_frame(records: Iterable[Mapping]) -> pd.DataFrame:
    """Records -> one row per (split, step), the latest record winning, sorted by step."""
    return records_frame(latest_per_step(list(records)))


def final_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """The last train row's ``train/*`` values and the last val row's ``val/*`` values.

    ``frame`` is a ``metrics_frame`` (sorted by step); metrics a row did not log are skipped.
    """
    out: dict[str, float] = {}
    if frame.empty or "split" not in frame:
        return out
    for split in ("train", "val"):
        rows = frame[frame["split"] == split]
        if len(rows):
            last = rows.iloc[-1]
            out.update({k: float(v) for k, v in last.items()
                        if isinstance(k, str) and k.startswith(f"{split}/") and pd.notna(v)})
    return out


def _comparable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def differing_params(configs: Mapping[str, Mapping]) -> pd.DataFrame:
    """Flattened config keys whose values differ between runs; rows = runs (index).

    A key missing from some runs (runs of different kinds) counts as differing; missing
    values show as None. Lists and mappings are shown as text.
    """
    flat = {run_id: flatten(dict(cfg)) for run_id, cfg in configs.items()}
    keys = sorted(set().union(*(f.keys() for f in flat.values()))) if flat else []
    differing = [k for k in keys if len({_signature(f, k) for f in flat.values()}) > 1]
    rows = {run_id: {k: _cell(f.get(k)) for k in differing} for run_id, f in flat.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=differing)
    frame.index.name = "run"
    return _arrow_safe(frame)


def _signature(flat: Mapping, key: str) -> str:
    return _comparable(flat[key]) if key in flat else "<missing>"


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict)):
        return _comparable(value)
    return value


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns mixing strings with numbers become text (Arrow needs one type per column)."""
    for col in frame.columns:
        values = frame[col].dropna()
        kinds = {type(v) for v in values}
        if len(kinds) > 1 and not kinds <= {int, float, bool}:
            frame[col] = frame[col].map(lambda v: None if v is None else str(v))
    return frame


def compare_table(configs: Mapping[str, Mapping], frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows = runs (in ``configs`` order); columns = the hyper-parameters that differ, then
    the final ``train/*`` and ``val/*`` metrics (see ``final_metrics``)."""
    params = differing_params(configs)
    metrics = {run_id: final_metrics(frames.get(run_id, records_frame([]))) for run_id in configs}
    mframe = pd.DataFrame.from_dict(metrics, orient="index")
    if not mframe.empty:
        mframe = mframe[sorted(mframe.columns, key=lambda c: (not c.startswith("train/"), c))]
    table = params.join(mframe, how="left")
    table.index.name = "run"
    return table
