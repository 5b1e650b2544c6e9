"""Projection jobs: ``python -m workbench embed SOURCE --method pca|umap|tsne ...``.

A job's identity is its cache key: a hash of the set's bytes (``SetRef.fingerprint``), the
method and every parameter. Its folder ``<cache>/<key>/`` (``data/cache/embeddings`` or
``$WORKBENCH_EMBED_CACHE``) holds:

| file | content |
| --- | --- |
| ``status.json`` | state (running / done / failed / stopped), pid, phase, progress 0..1, error, params, source |
| ``coords.npy`` | float32 [N', dims]: the projection of the points in ``rows.npy`` |
| ``rows.npy`` | int64 [N']: which rows of the set (all of them, or a seeded sample of ``max_points``) |
| ``result.json`` | timings, quality numbers, PCA's explained variance |

A rerun with the same key finds ``done`` and returns at once (the cache hit); the page
launches the job detached (``launch``), polls ``read_status``, and ``stop`` sends SIGTERM,
which the job turns into ``stopped`` at its next progress report.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from workbench.embeddings import project as proj
from workbench.embeddings.sets import SetRef, read_set
from workbench.errors import ConfigError, WorkbenchError
from workbench.io import write_bytes, write_json
from workbench.paths import repo_path
from workbench.runs.jobs import pid_alive, process_start_time

CACHE_ENV = "WORKBENCH_EMBED_CACHE"
DEFAULT_CACHE = "data/cache/embeddings"
MAX_POINTS = 1_000_000


@dataclass(frozen=True)
class Params:
    method: str = "pca"
    dims: int = 2
    metric: str = "cosine"
    seed: int = 0
    max_points: int = 0  # 0 = all

    def check(self) -> "Params":
        proj.check_params(self.method, self.dims, self.metric)
        if not 0 <= self.max_points <= MAX_POINTS:
            raise ConfigError(f"max_points must be in [0, {MAX_POINTS}] (0 = all), got {self.max_points}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        return self


def cache_root() -> Path:
    return repo_path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def cache_key(ref: SetRef, params: Params) -> str:
    h = hashlib.sha256(json.dumps({"data": ref.fingerprint(), "set": ref.name, **asdict(params)},
                                  sort_keys=True).encode())
    return h.hexdigest()[:20]


def job_dir(key: str) -> Path:
    return cache_root() / key


def read_status(key: str) -> dict:
    """The job's status (``{"state": "missing"}`` when never run); a ``running`` job whose
    process is gone reads as ``crashed``."""
    file = job_dir(key) / "status.json"
    try:
        status = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError):
        return {"state": "missing"}
    if status.get("state") == "running" and not pid_alive(status.get("pid"), status.get("pid_start")):
        status = {**json.loads(file.read_text())}  # it may have finished meanwhile
        if status.get("state") == "running":
            status.update(state="crashed", error="the projection process exited without a final status")
    return status


def load_result(key: str) -> dict:
    """{"coords", "rows", **result.json} of a finished job."""
    folder = job_dir(key)
    status = read_status(key)
    if status.get("state") != "done":
        raise WorkbenchError(f"projection {key} is {status.get('state')}, not done")
    return {"coords": np.load(folder / "coords.npy"), "rows": np.load(folder / "rows.npy"),
            **json.loads((folder / "result.json").read_text())}


def sample_rows(n: int, max_points: int, seed: int) -> np.ndarray:
    if not max_points or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def _write_status(folder: Path, **fields) -> dict:
    file = folder / "status.json"
    try:
        status = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError):
        status = {}
    status.update(fields, updated=time.time())
    write_json(file, status)
    return status


def run(ref: SetRef, params: Params, force: bool = False) -> tuple[str, dict]:
    """Compute (or find cached) the projection in this process. Returns (key, status)."""
    params = params.check()
    key = cache_key(ref, params)
    folder = job_dir(key)
    status = read_status(key)
    if status.get("state") == "done" and not force:
        return key, {**status, "cached": True}
    if status.get("state") == "running" and status.get("pid") != os.getpid():
        raise WorkbenchError(f"projection {key} is already running (pid {status.get('pid')})")
    folder.mkdir(parents=True, exist_ok=True)
    stop = {"asked": False}

    def on_term(signum, frame):
        stop["asked"] = True

    previous = signal.signal(signal.SIGTERM, on_term)
    _write_status(folder, state="running", pid=os.getpid(), pid_start=process_start_time(os.getpid()),
                  phase="loading", progress=0.0, error=None, params=asdict(params), source=ref.source,
                  set=ref.name, started=time.time())
    last = {"t": 0.0}

    def progress(phase: str, done: float) -> bool:
        now = time.monotonic()
        if now - last["t"] > 0.5 or stop["asked"]:
            last["t"] = now
            _write_status(folder, phase=phase, progress=round(float(done), 3))
        return stop["asked"]

    try:
        emb = read_set(ref)
        rows = sample_rows(len(emb), params.max_points, params.seed)
        x = np.asarray(emb.vectors[rows], dtype=np.float32)
        out = proj.project(x, params.method, params.dims, params.metric, params.seed, progress)
        coords = out.pop("coords")
        if progress("quality", 0.99):
            raise proj.Stopped
        out["quality"] = proj.quality(x, coords, params.metric, seed=params.seed)
        for name, array in (("coords.npy", coords), ("rows.npy", rows.astype(np.int64))):
            import io

            buffer = io.BytesIO()
            np.save(buffer, array)
            write_bytes(folder / name, buffer.getvalue())
        write_json(folder / "result.json", {**out, "n_total": len(emb), "source": ref.source, "set": ref.name})
        status = _write_status(folder, state="done", phase="done", progress=1.0, ended=time.time())
    except proj.Stopped:
        status = _write_status(folder, state="stopped", phase="stopped", ended=time.time())
    except WorkbenchError as exc:
        status = _write_status(folder, state="failed", error=str(exc), ended=time.time())
        raise
    except Exception as exc:  # a crash inside umap / openTSNE: recorded, then re-raised
        status = _write_status(folder, state="failed", error=f"{type(exc).__name__}: {exc}", ended=time.time())
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return key, status


def launch(ref: SetRef, params: Params, runs_root=None) -> str:
    """Start the job as a detached process (or nothing, when it is done or running); its key."""
    params = params.check()
    key = cache_key(ref, params)
    state = read_status(key).get("state")
    if state in ("done", "running"):
        return key
    folder = job_dir(key)
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "workbench", "embed", str(ref.folder), "--set", ref.name, "--method", params.method,
           "--dims", str(params.dims), "--metric", params.metric, "--seed", str(params.seed),
           "--max-points", str(params.max_points), "--label", ref.source]
    with open(folder / "job.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    _write_status(folder, state="running", pid=proc.pid, pid_start=process_start_time(proc.pid), phase="starting",
                  progress=0.0, error=None, params=asdict(params), source=ref.source, set=ref.name,
                  started=time.time())
    return key


def stop(key: str, timeout_s: float = 10.0) -> dict:
    """SIGTERM to a running job (it writes ``stopped``); SIGKILL after ``timeout_s``."""
    status = read_status(key)
    if status.get("state") != "running":
        return status
    pid = status["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.time() + timeout_s
    while time.time() < deadline and pid_alive(pid, status.get("pid_start")):
        time.sleep(0.1)
    if pid_alive(pid, status.get("pid_start")):
        os.kill(pid, signal.SIGKILL)
    status = read_status(key)
    if status.get("state") in ("running", "crashed"):
        status = _write_status(job_dir(key), state="stopped", phase="stopped", ended=time.time())
    return status
