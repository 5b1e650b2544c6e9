"""AppTest of the Home page (app.py): demo assets, page links, jobs at a glance, no torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from workbench.data.static_assets import ALL_FILES
from workbench.runs import RunStore
from workbench.ui.home import demo_assets, manifest_status, page_files, page_label

REPO_ROOT = Path(__file__).resolve().parents[2]


def _write_dataset(folder: Path, name: str, files: dict[str, bytes], listed: list[str] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    manifest = {"dataset": name, "format_version": 1, "counts": {"rows": 3},
                "files": listed if listed is not None else sorted(files)}
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def fake_repo(tmp_path, runs_dir, monkeypatch):
    """Asset folders in tmp: cities, photos and one checkpoint built; gallery half-built
    (no manifest), geo-patches with a file missing, static with 2 files only."""
    data, static, assets, ckpts = (tmp_path / n for n in ("data", "static", "assets", "checkpoints"))
    _write_dataset(data / "cities", "cities", {"cities.csv": b"name,lat,lon\n"})
    (data / "gallery").mkdir()
    (data / "gallery" / "gallery.csv").write_text("lat,lon\n")  # no manifest: interrupted build
    _write_dataset(data / "geo-patches", "geo-patches", {"patches.csv": b""}, ["patches.csv", "bands.npy"])
    _write_dataset(assets / "photos", "photos", {"china.jpg": b"\xff\xd8"})
    (ckpts / "geolocator-demo").mkdir(parents=True)
    (ckpts / "geolocator-demo" / "best.pt").write_bytes(b"")
    static.mkdir()
    for rel in ALL_FILES[:2]:
        (static / rel).parent.mkdir(parents=True, exist_ok=True)
        (static / rel).write_text("x")
    for name, value in {"DATA_ROOT": data, "STATIC": static, "ASSETS": assets, "CHECKPOINTS": ckpts}.items():
        monkeypatch.setattr(f"workbench.ui.home.{name}", value)
    return {"data": data, "static": static, "assets": assets, "checkpoints": ckpts, "runs": runs_dir}


def test_demo_assets_table(fake_repo):
    table = demo_assets(fake_repo["data"], fake_repo["static"], fake_repo["assets"], fake_repo["checkpoints"])
    rows = table.set_index("asset")
    assert rows["present"].to_dict() == {
        "data/cities": True, "data/gallery": False, "data/geo-captions": False, "data/geo-patches": False,
        "assets/photos": True,
        "static/": False, "checkpoints/geolocator-demo": True}
    assert rows.loc["data/cities", "detail"] == "3 rows"
    big = fake_repo["data"] / "big"
    _write_dataset(big, "big", {"big.csv": b""})
    manifest = json.loads((big / "manifest.json").read_text())
    (big / "manifest.json").write_text(json.dumps({**manifest, "counts": {"cities": 34006}}))
    assert manifest_status(big, "big") == (True, "34,006 cities")  # exact, with separators
    assert rows.loc["data/gallery", "detail"] == "no manifest.json (not built)"
    assert rows.loc["data/geo-patches", "detail"] == "1 of 2 files missing (e.g. bands.npy)"
    assert rows.loc["static/", "detail"] == f"2/{len(ALL_FILES)} files"
    assert rows.loc["data/gallery", "build"] == "python -m workbench data build-demo --only gallery"
    assert rows.loc["assets/photos", "build"] == "python -m workbench data build-demo --only photos"
    assert rows.loc["static/", "build"] == "python -m workbench data build-demo --only static"
    assert rows.loc["checkpoints/geolocator-demo", "build"] == "make app"
    # every registered demo dataset has a row, so new datasets show up without editing Home
    from workbench.data.demo import DEMO_DATASETS
    assert len(table) == len(DEMO_DATASETS.list()) + 2


def test_page_files_and_labels(tmp_path):
    for name in ("10_Later.py", "2_Map_probe.py", "1_Runs.py", "_helper.py", "Extra.py"):
        (tmp_path / name).write_text("")
    assert [p.name for p in page_files(tmp_path)] == ["1_Runs.py", "2_Map_probe.py", "10_Later.py", "Extra.py"]
    assert page_label(Path("2_Map_probe.py")) == "Map probe" and page_label(Path("Extra.py")) == "Extra"


def test_home_page_renders(fake_repo, toy_cfg):
    queued = RunStore(fake_repo["runs"]).create(toy_cfg(name="waiting"))
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "Geo Workbench"
    assert "image geolocation" in at.markdown[0].value
    assert any("4 of 7 demo assets are missing" in w.value and "data/gallery" in w.value and "python -m workbench data build-demo" in w.value
               for w in at.warning)
    assets = next(df.value for df in at.dataframe if "asset" in df.value.columns)
    assert assets.set_index("asset")["present"].to_dict()["data/geo-patches"] == "missing"
    assert assets.set_index("asset")["present"].to_dict()["data/cities"] == "present"
    links = {link.proto.label: link.proto.page for link in at.get("page_link")}
    expected = {page_label(p) for p in page_files(REPO_ROOT / "pages")}
    assert "Runs" in links and set(links) == expected
    bars = [b.proto.text for b in at.get("progress")]
    assert bars == [f"**{queued.id}** · queued · waiting for a free job slot (WORKBENCH_MAX_JOBS) · —"], bars
    assert any("1 queued" in c.value for c in at.caption)


def test_navigation_labels_home_and_keeps_page_urls(fake_repo):
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    pages = sorted(at._registered_pages.values(), key=lambda p: p["url_pathname"])
    by_url = {p["url_pathname"]: p["page_name"] for p in pages}
    assert by_url[""] == "Home"  # the sidebar reads "Home", not "app"
    # every page keeps the URL path it had without st.navigation (pages/1_Runs.py -> /Runs)
    expected = {page_label(p).replace(" ", "_"): page_label(p) for p in page_files(REPO_ROOT / "pages")}
    assert {u: n for u, n in by_url.items() if u} == expected
    assert by_url["Runs"] == "Runs"
    at.switch_page("pages/1_Runs.py").run()
    assert not at.exception and at.title[0].value == "Runs"


def test_home_jobs_show_phases(fake_repo, toy_cfg):
    import os
    import time

    from workbench.runs.jobs import process_start_time

    run = RunStore(fake_repo["runs"]).create(toy_cfg(name="caching"))
    run.update_status(state="running", pid=os.getpid(), pid_start=process_start_time(os.getpid()),
                      heartbeat=time.time(), started=time.time() - 30, step=0, total_steps=500,
                      phase="setup", phase_detail="caching backbone features (training)",
                      phase_done=120, phase_total=3000)
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    [bar] = at.get("progress")
    assert f"**{run.id}** · running · setup: caching backbone features (training) 120/3,000 (4%)" in bar.proto.text
    assert "step 0" not in bar.proto.text and bar.proto.value == 4


def test_bad_max_jobs_is_an_error_box_on_home(fake_repo, monkeypatch):
    monkeypatch.setenv("WORKBENCH_MAX_JOBS", "abc")
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    assert any("WORKBENCH_MAX_JOBS" in e.value for e in at.error), [e.value for e in at.error]
    assert at.title[0].value == "Geo Workbench"  # the rest of Home still shows


def test_home_page_does_not_import_torch(tmp_path):
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(REPO_ROOT / 'app.py')!r}, default_timeout=60).run()\n"
        "assert not at.exception, at.exception\n"
        "print('torch' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "WORKBENCH_RUNS": str(tmp_path / "runs"),
           "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
