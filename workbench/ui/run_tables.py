"""Tables the Runs page shows, computed from the run store (pandas; no streamlit here).

- ``runs_overview``: one row per run (state, progress, last metrics, age).
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
from workbench.viz.curves import records_frame

ACTIVE_STATES = ("queued", "running")
TAIL_BYTES = 64_000


def format_duration(seconds: float | None) -> str:
    """12 -> '12s', 95 -> '1m 35s', 7300 -> '2h 01m'; None/NaN -> ''."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


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


def runs_overview(statuses: Iterable[tuple[Run, dict]], now: float | None = None) -> pd.DataFrame:
    """One row per run: run, kind, name, state, progress [0, 1], step, train/loss, val/loss,
    best (of the monitored metric), ETA, age, monitor, note (error or stop reason)."""
    now = time.time() if now is None else now
    rows = []
    for run, status in statuses:
        last = last_by_split(tail_records(run))
        train, val = last.get("train", {}), dict(last.get("val", {}))
        val.update(status.get("final") or {})
        state = status.get("state", "queued")
        total = status.get("total_steps")
        step = status.get("step") or 0
        rows.append({
            "run": run.id,
            "kind": status.get("kind", ""),
            "name": status.get("name", ""),
            "state": state,
            "progress": float(status.get("progress") or 0.0),
            "step": f"{step}/{total}" if total else str(step),
            "train/loss": train.get("train/loss"),
            "val/loss": val.get("val/loss"),
            "best": status.get("best"),
            "monitor": status.get("monitor") or "",
            "ETA": format_duration(status.get("eta_s")) if state == "running" else "",
            "age": format_duration(now - status["created"]) if status.get("created") else "",
            "note": status.get("error") or status.get("stop_reason") or "",
        })
    columns = ["run", "kind", "name", "state", "progress", "step", "train/loss", "val/loss",
               "best", "ETA", "age", "monitor", "note"]
    frame = pd.DataFrame(rows, columns=columns)
    for col in ("train/loss", "val/loss", "best"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


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
