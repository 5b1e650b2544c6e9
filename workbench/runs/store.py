"""The run store: one directory per run, the only state a job and the app share.

    runs/<run_id>/config.yaml        resolved config
                  status.json        state, pid, heartbeat, progress (written atomically)
                  metrics.jsonl      one JSON record per line, append-only
                  events.out.tfevents.*
                  train.log
                  checkpoints/last.pt, best.pt
                  artifacts/
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from workbench.errors import ConfigError, NotFoundError, RunStateError, WorkbenchError
from workbench.io import write_text

STATES = ("queued", "running", "stopped", "failed", "crashed", "done", "pruned")  # pruned: a study's trial
ACTIVE_STATES = ("queued", "running")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,120}$")


def default_root() -> Path:
    return Path(os.environ.get("WORKBENCH_RUNS", "runs"))


def slugify(name: str, max_len: int = 40) -> str:
    """A user-supplied name as a safe path component: letters, digits, '-', '_' only."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return slug[:max_len].strip("-_")


def make_run_id(kind: str, name: str = "", now: dt.datetime | None = None) -> str:
    """Readable and sortable: ``<kind>-<YYYYmmdd-HHMMSS>[-<name>]``."""
    now = now or dt.datetime.now()
    parts = [slugify(kind) or "run", now.strftime("%Y%m%d-%H%M%S")]
    if slugify(name):
        parts.append(slugify(name))
    return "-".join(parts)


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temp file in the same directory, then rename over ``path``."""
    write_text(path, text)


class Run:
    """Paths and readers/writers of one run directory. Holds no state of its own."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.id = self.path.name
        self._status_lock = threading.Lock()

    # paths
    config_path = property(lambda self: self.path / "config.yaml")
    status_path = property(lambda self: self.path / "status.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    log_path = property(lambda self: self.path / "train.log")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    artifacts_dir = property(lambda self: self.path / "artifacts")
    last_checkpoint = property(lambda self: self.checkpoint_dir / "last.pt")
    best_checkpoint = property(lambda self: self.checkpoint_dir / "best.pt")

    def __repr__(self) -> str:
        return f"Run({self.id!r})"

    # status
    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text())
        except FileNotFoundError:
            return {"state": "queued"}
        except json.JSONDecodeError:  # never happens with atomic writes; be safe anyway
            return {"state": "crashed", "error": "status.json is unreadable"}

    def update_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json atomically. Safe across threads and processes
        (a distributed run's supervisor and rank 0 both write): the read-merge-write holds
        an flock on ``.status.lock``."""
        with self._status_lock, open(self.path / ".status.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            status = self.read_status()
            status.update(fields)
            atomic_write_text(self.status_path, json.dumps(status, indent=1))
            return status

    @property
    def state(self) -> str:
        return self.read_status().get("state", "queued")

    # metrics
    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def read_metrics(self, offset: int = 0) -> tuple[list[dict], int]:
        """Records from byte ``offset`` on, and the offset after the last complete line.

        Lets a live view read only what was appended since its last call.
        """
        try:
            with self.metrics_path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            return [], offset
        end = chunk.rfind(b"\n") + 1
        records = []
        for line in chunk[:end].splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records, offset + end

    def log_tail(self, n_lines: int = 40, max_bytes: int = 64_000) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - max_bytes))
                text = fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""
        # tqdm redraws with carriage returns: keep each line's final state
        lines = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
        return "\n".join(lines[-n_lines:])

    def config_dict(self) -> dict:
        from workbench.config import read_yaml

        return read_yaml(self.config_path)

    def load_config(self):
        from workbench.experiments import build_config

        return build_config(self.config_dict())


def latest_per_step(records: list[dict]) -> list[dict]:
    """After a resume, steps past the last checkpoint are logged twice: keep the latest.

    metrics.jsonl stays append-only (nothing is lost); readers see one record per
    (split, step) in step order.
    """
    latest: dict[tuple, dict] = {}
    for rec in records:
        latest[(rec.get("split"), rec.get("step"))] = rec
    return sorted(latest.values(), key=lambda r: (r.get("step", 0), str(r.get("split"))))


class RunStore:
    """All runs under one root directory."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkbenchError(
                f"cannot create the runs directory {self.root}: {exc.strerror}. "
                "Set WORKBENCH_RUNS to a writable directory."
            ) from None
        if not os.access(self.root, os.W_OK):
            raise WorkbenchError(
                f"the runs directory {self.root} is not writable. "
                "Fix its permissions or set WORKBENCH_RUNS to a writable directory."
            )

    def create(self, cfg: Any) -> Run:
        """A new run directory with the resolved config and a ``queued`` status."""
        from workbench.config import write_yaml

        self._ensure_root()
        if cfg.name and not slugify(cfg.name):
            raise ConfigError(f"run name {cfg.name!r} has no usable characters; use letters, digits, '-' or '_'")
        base = make_run_id(cfg.kind, cfg.name)
        run_id, n = base, 1
        while True:
            try:
                (self.root / run_id).mkdir()
                break
            except FileExistsError:
                n += 1
                run_id = f"{base}-{n}"
        run = Run(self.root / run_id)
        run.checkpoint_dir.mkdir()
        run.artifacts_dir.mkdir()
        write_yaml(cfg, run.config_path)
        run.update_status(state="queued", kind=cfg.kind, name=cfg.name, created=time.time(), step=0, progress=0.0)
        return run

    def get(self, run_id: str) -> Run:
        if not isinstance(run_id, str) or not _ID_RE.match(run_id):
            raise NotFoundError(f"invalid run id {run_id!r}: see `python -m workbench runs list`")
        path = self.root / run_id
        if not (path / "config.yaml").is_file():
            raise NotFoundError(f"run '{run_id}' not found in {self.root}. See `python -m workbench runs list`")
        return Run(path)

    def list(self) -> list[Run]:
        """Runs, newest first."""
        if not self.root.is_dir():
            return []
        runs = [Run(p) for p in self.root.iterdir() if (p / "config.yaml").is_file()]
        return sorted(runs, key=lambda r: r.read_status().get("created", 0), reverse=True)

    def __iter__(self) -> Iterator[Run]:
        return iter(self.list())

    def delete(self, run_id: str) -> None:
        run = self.get(run_id)
        state = run.state
        if state == "running":
            raise RunStateError(
                f"run '{run_id}' is running; stop it first (`python -m workbench runs stop {run_id}`)"
            )
        shutil.rmtree(run.path)
