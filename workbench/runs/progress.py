"""Liveness and phase progress of a job, as written to ``status.json``.

A job beats from its first second (``Heartbeat``: a daemon thread, independent of whatever
the main thread is busy with), and every long phase says what it is doing::

    status.json  phase        "setup" | "train" | "eval" | "artifacts" | "seeds"
                 phase_detail human text, e.g. "caching backbone features"
                 phase_done   items done in this phase (int) or null
                 phase_total  items in this phase (int) or null

Library code reports through the module-level functions (``phase``, ``advance``) without a
handle on the run: outside a job they cost nothing and write nothing. The heartbeat thread
flushes the latest phase counters with each beat, so a tight loop calling ``advance`` never
writes the file itself.
"""
from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

PHASES = ("setup", "train", "eval", "artifacts", "seeds")
HEARTBEAT_S = 1.0  # beat (and flush phase counters) this often
HEARTBEAT_ENV = "WORKBENCH_HEARTBEAT_S"


def heartbeat_interval() -> float:
    """Seconds between beats: $WORKBENCH_HEARTBEAT_S (0.05 to 60), default 1."""
    from workbench.envvars import env_float

    return env_float(HEARTBEAT_ENV, HEARTBEAT_S, minimum=0.05, maximum=60.0)


class Heartbeat:
    """Beats ``heartbeat`` (and the pending phase fields) into a run's status every ``interval_s``."""

    def __init__(self, run, interval_s: float = HEARTBEAT_S):
        self.run = run
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._beat_forever, name="heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.beat()  # the last phase counters reach the file

    def set(self, **fields: Any) -> None:
        """Fields to write with the next beat (the latest value of each wins)."""
        with self._lock:
            self._pending.update(fields)

    def beat(self) -> None:
        with self._lock:
            fields, self._pending = self._pending, {}
        try:
            self.run.update_status(heartbeat=time.time(), **fields)
        except OSError:  # the run directory was deleted under a finishing job
            pass

    def _beat_forever(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()


_current: Heartbeat | None = None


def install(heartbeat: Heartbeat | None) -> None:
    """Make ``heartbeat`` the one that ``phase`` / ``advance`` report to (None: none)."""
    global _current
    _current = heartbeat


def current() -> Heartbeat | None:
    return _current


def set_phase(name: str, detail: str = "", total: int | None = None, done: int | None = None,
              now: bool = True) -> None:
    """Enter phase ``name`` (one of PHASES); written at once unless ``now`` is False."""
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}; one of {PHASES}")
    hb = _current
    if hb is None:
        return
    if done is None and total is not None:
        done = 0
    hb.set(phase=name, phase_detail=detail, phase_done=done, phase_total=total)
    if now:
        hb.beat()


def advance(done: int, total: int | None = None) -> None:
    """Progress inside the current phase; flushed with the next beat (cheap to call often)."""
    hb = _current
    if hb is None:
        return
    fields: dict[str, Any] = {"phase_done": int(done)}
    if total is not None:
        fields["phase_total"] = int(total)
    hb.set(**fields)


@contextmanager
def phase(name: str, detail: str = "", total: int | None = None) -> Iterator[None]:
    """``with phase("setup", "caching features", total=n): ... advance(i)``.

    On exit the phase stays as the last one entered (the next ``set_phase`` replaces it).
    """
    set_phase(name, detail, total)
    yield
    if total is not None:
        advance(total)


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


def phase_text(status: dict[str, Any]) -> str:
    """"setup: caching backbone features 120/3000 (4%)", or "" outside a reported phase."""
    name = status.get("phase")
    if not name:
        return ""
    detail = status.get("phase_detail") or ""
    done, total = status.get("phase_done"), status.get("phase_total")
    text = f"{name}: {detail}" if detail else str(name)
    if total:
        done = done or 0
        text += f" {done:,}/{total:,} ({100 * done / total:.0f}%)"
    elif done:
        text += f" {done:,}"
    return text


def describe(status: dict[str, Any]) -> str:
    """One line on where a run is, for `runs list`, the Runs page and the Home page.

    Training shows the step and ETA; any other phase shows its own name and counters
    (so a run caching features does not read "step 0", and one training extra seeds does
    not read "step 1000/1000, ETA 0s").
    """
    state = status.get("state", "queued")
    step, total = status.get("step") or 0, status.get("total_steps")
    parts: list[str] = []
    if state == "queued":
        parts.append("waiting for a free job slot (WORKBENCH_MAX_JOBS)")
    elif state == "running":
        name = status.get("phase")
        if name and name != "train":
            parts.append(phase_text(status))
        else:
            parts.append(f"step {step:,}/{total:,}" if total else f"step {step:,}")
            if status.get("eta_s") is not None:
                parts.append(f"ETA {format_duration(status['eta_s'])}")
        if status.get("unresponsive"):
            parts.append(f"unresponsive: no heartbeat for {format_duration(status.get('heartbeat_age_s'))}")
    elif state in ("done", "stopped", "failed", "crashed"):
        parts.append(f"step {step:,}/{total:,}" if total else f"step {step:,}")
    return " · ".join(parts)
