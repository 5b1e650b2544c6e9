"""Cost of watching a run: CPU of the Streamlit server while a browser shows a running job.

Starts ``streamlit run app.py`` (headless, on a free port, with the repo's
.streamlit/config.toml, so the file-watcher settings users get are the ones measured), a
toy job that logs a metrics record every step (~40 records/s: far more than a real run),
a few finished runs for the table, and headless Chromium on the Runs page with that job
selected. The figure is the server's CPU time (utime + stime from /proc/<pid>/stat) over
the sampling window divided by the wall time, in percent of one core; the job's own CPU is
reported next to it, and so is proof that the page kept updating while it was measured
(the progress text and the number of points in the first curve, at the window's start and
end). Needs the test extras (playwright) and Debian's /usr/bin/chromium.

Measured on the 2-core dev box (full mode, 10 finished runs + the watched job):
before (fragment of 2 s redrawing everything, gc after every rerun): 17-20 % of a core
(57 % with Streamlit's file watcher on); after: about 2 %.

    python -m workbench bench runs_page [--quick]
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from workbench.errors import WorkbenchError

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
PLUGIN = "tests.toy_experiment"
OVERFLOW = "Inotify queue overflowed"
# plotly.js keeps the decoded arrays in _fullData (data holds the {dtype, bdata} wire form)
CURVE_POINTS_JS = "() => { const p = document.querySelector('.js-plotly-plot');" \
                  " const t = p && p._fullData && p._fullData[0]; return t && t.x ? t.x.length : 0; }"
TARGET_PCT = 10.0  # the Runs page on a running job must stay under this share of one core


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (its own threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample_cpu(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Percent of one core each pid used over the next ``seconds``."""
    start = {name: cpu_seconds(pid) for name, pid in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    return {name: round(100 * (cpu_seconds(pid) - start[name]) / wall, 1) for name, pid in pids.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.3)
    raise WorkbenchError(f"runs_page benchmark: timed out after {timeout_s:.0f} s waiting for {what}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _finished_runs(store, make_cfg, n: int, n_records: int) -> None:
    """``n`` done runs with ``n_records`` train records each (what a table of old runs reads)."""
    import json

    for i in range(n):
        run = store.create(make_cfg(name=f"old-{i}"))
        lines = [json.dumps({"step": s, "epoch": 0, "split": "train", "time": float(s),
                             "train/loss": 1.0 / s, "lr": 1e-3}) for s in range(1, n_records + 1)]
        run.metrics_path.write_text("\n".join(lines) + "\n")
        now = time.time()
        run.update_status(state="done", step=n_records, total_steps=n_records, progress=1.0,
                          created=now - 3600 + i, started=now - 3500 + i, ended=now - 3000 + i)


def run(quick: bool = False, runs_root: str | Path | None = None) -> dict:
    """Measure; ``runs_root`` (default: a temp dir) is where the runs go, e.g. a folder under
    the repo to include the file watcher's reaction to the job's writes."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise WorkbenchError("the runs_page benchmark needs playwright: pip install -r requirements-test.txt") from None
    if not Path(CHROMIUM).exists():
        raise WorkbenchError(f"the runs_page benchmark needs {CHROMIUM}: apt-get install -y chromium")
    warmup_s, seconds = (8.0, 20.0) if quick else (15.0, 60.0)

    tmp = Path(tempfile.mkdtemp(prefix="bench-runs-page-"))
    root = Path(runs_root) if runs_root is not None else tmp / "runs"
    saved_env = {k: os.environ.get(k) for k in ("WORKBENCH_RUNS", "WORKBENCH_PLUGINS", "PYTHONPATH")}
    plugins = [p for p in (os.environ.get("WORKBENCH_PLUGINS") or "").split(",") if p]
    os.environ.update({
        "WORKBENCH_RUNS": str(root),
        "WORKBENCH_PLUGINS": ",".join(dict.fromkeys([*plugins, PLUGIN])),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), saved_env["PYTHONPATH"]])),
    })
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    server = job = None
    jobs = None
    log_path = tmp / "streamlit.log"
    try:
        import tests.toy_experiment  # noqa: F401  (registers "toy" in this process)
        from workbench.experiments import build_config
        from workbench.runs import JobManager, RunStore

        def make_cfg(**flat):
            flat = {"train.device": "cpu", **flat}
            return build_config({"kind": "toy"}, [f"{k}={v}" for k, v in flat.items()])

        store = RunStore(root)
        _finished_runs(store, make_cfg, n=3 if quick else 10, n_records=2000)
        jobs = JobManager(store)
        job = jobs.submit(make_cfg(name="watched", sleep_s=0.02, **{"train.max_epochs": 100000,
                                                                   "train.log_every": 1}))
        _wait(lambda: (jobs.refresh(job).get("step") or 0) >= 5, 120, "the toy job to step")

        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                 "--server.headless", "true"],
                cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(lambda: _healthy(url), 90, "the Streamlit server")
        pids = {"app": server.pid, "job": int(jobs.refresh(job)["pid"])}
        idle = sample_cpu(pids, 5.0 if quick else 10.0)  # no browser connected yet

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"{url}/Runs", wait_until="domcontentloaded")
            bar = page.locator('[data-testid="stProgress"]').first
            _wait(lambda: "running" in (bar.inner_text(timeout=60_000) or ""), 120, "the live view")
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            time.sleep(warmup_s)
            first, points_first = bar.inner_text(), page.evaluate(CURVE_POINTS_JS)
            watched = sample_cpu(pids, seconds)
            last, points_last = bar.inner_text(), page.evaluate(CURVE_POINTS_JS)
            browser.close()
    finally:
        if jobs is not None and job is not None:
            try:
                jobs.stop(job.id)
            except WorkbenchError:
                pass
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
        records = sum(1 for _ in job.metrics_path.open()) if job and job.metrics_path.exists() else 0
        shutil.rmtree(tmp, ignore_errors=True)  # the runs (unless runs_root) and the server log
    return {
        "app_cpu_pct_of_core": watched["app"],
        "target_pct": TARGET_PCT,
        "within_target": watched["app"] < TARGET_PCT,
        "app_idle_cpu_pct_of_core": idle["app"],
        "job_cpu_pct_of_core": watched["job"],
        "job_cpu_pct_before_browser": idle["job"],
        "sample_s": seconds,
        "metrics_records_at_end": records,
        "progress_first": first,
        "progress_last": last,
        "curve_points_first": points_first,
        "curve_points_last": points_last,
        "inotify_overflow_lines": log_text.count(OVERFLOW),
        "finished_runs_in_table": 3 if quick else 10,
    }
