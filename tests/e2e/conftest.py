"""Browser-test helpers: a Streamlit server on a free port and offline headless Chromium.

Fixtures:
- ``streamlit_app``: factory ``start(script) -> StreamlitApp``; servers stop at session end.
- ``browser``: Debian Chromium driven by Playwright (never a downloaded browser).
- ``blocked_requests`` / ``offline_page``: a page whose context aborts every request that is
  not to localhost, so a test proves the app works with no internet; the aborted URLs are
  collected in ``blocked_requests``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Headless screenshots are blank without this: compositing must finish before capture.
    "--run-all-compositor-stages-before-draw",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
STARTUP_TIMEOUT_S = 60.0


MAP_IFRAME = 'iframe[title="streamlit_folium.st_folium"]'
# for poll_map: the number of circle markers (points) on the frame's first map
CIRCLE_MARKERS = """() => {
    const maps = Object.values(window).filter(v => v instanceof L.Map);
    let n = 0;
    maps[0].eachLayer(l => { if (l instanceof L.CircleMarker) n += 1; });
    return n;
}"""


def map_frame(page, index: int = 0, timeout_ms: int = 30_000):
    """(iframe locator, its content frame) of the index-th offline map on the page."""
    frame_el = page.locator(MAP_IFRAME).nth(index)
    frame_el.wait_for(state="visible", timeout=timeout_ms)
    return frame_el, frame_el.element_handle().content_frame()


def poll_map(page, script: str, want, index: int = 0, timeout_s: float = 60.0):
    """Evaluate ``script`` in the index-th map's frame until it returns ``want`` (reruns
    replace the iframe, so each try finds it again); the last value when time runs out."""
    from playwright.sync_api import Error as PlaywrightError

    deadline, value = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            _, frame = map_frame(page, index)
            if frame is not None and frame.evaluate("() => !!window.L"):
                value = frame.evaluate(script)
                if value == want:
                    return value
        except PlaywrightError:
            pass  # a rerun replaced the iframe
        time.sleep(0.5)
    return value


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: browser tests (Playwright + Debian chromium)")


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class StreamlitApp:
    url: str  # e.g. http://127.0.0.1:8765
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]


def stage_script(script: Path, workdir: Path) -> Path:
    """Copy a test app next to a ``static`` link to the repo's ``static/``.

    Streamlit serves ``/app/static/`` from the folder named ``static`` beside the MAIN
    SCRIPT (not the working directory), so an app under tests/e2e/ would look for
    tests/e2e/static/. A copy in a temp dir with a symlink keeps the repo clean; the
    working directory stays the repo root so .streamlit/config.toml still applies.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    staged = workdir / script.name
    shutil.copy2(script, staged)
    link = workdir / "static"
    if not link.exists():
        link.symlink_to(REPO_ROOT / "static", target_is_directory=True)
    return staged


@pytest.fixture(scope="session")
def static_assets() -> Path:
    """The repo's static/ folder with Leaflet, jQuery and the basemap (built if missing)."""
    from workbench.data.static_assets import DEFAULT_STATIC_ROOT, build_static

    build_static(DEFAULT_STATIC_ROOT)
    return DEFAULT_STATIC_ROOT


@pytest.fixture(scope="session")
def streamlit_app(tmp_path_factory, static_assets):
    """Factory: ``start(script: Path) -> StreamlitApp`` once /_stcore/health answers.

    Scripts outside the repo root are staged (see ``stage_script``) so that static files
    are served. The server runs with cwd = repo root and headless; it is stopped (SIGTERM,
    then SIGKILL) at the end of the session.
    """
    started: list[StreamlitApp] = []

    def start(script: Path) -> StreamlitApp:
        script = Path(script).resolve()
        if script.parent != REPO_ROOT:
            script = stage_script(script, tmp_path_factory.mktemp("app"))
        port = free_port()
        log_path = tmp_path_factory.mktemp("log") / "streamlit.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        cmd = [
            sys.executable, "-m", "streamlit", "run", str(script),
            "--server.port", str(port),
            "--server.headless", "true",
            "--server.fileWatcherType", "none",
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        app = StreamlitApp(f"http://127.0.0.1:{port}", proc, log_path)
        started.append(app)
        _wait_healthy(app)
        return app

    yield start

    for app in started:
        _stop(app.process)


def _wait_healthy(app: StreamlitApp) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {app.process.returncode}:\n{app.log_tail()}")
        try:
            with urllib.request.urlopen(f"{app.url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"no answer from {app.url}/_stcore/health in {STARTUP_TIMEOUT_S} s:\n{app.log_tail()}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    # The server runs in its own session (start_new_session), so its group is only ours.
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium (``/usr/bin/chromium``) through Playwright."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: apt-get install -y chromium (never `playwright install`)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def blocked_requests() -> list[str]:
    """URLs that ``offline_page`` aborted because they left localhost."""
    return []


@pytest.fixture
def offline_page(browser, blocked_requests):
    """A fresh page (1280 x 900) that can reach only localhost, as on a machine offline."""

    def guard(route):
        url = route.request.url
        parsed = urlparse(url)
        if parsed.scheme in ("data", "blob", "about") or parsed.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked_requests.append(url)
            route.abort("internetdisconnected")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", guard)
    page = context.new_page()
    yield page
    context.close()
