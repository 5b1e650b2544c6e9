"""AppTest of pages/8_Embeddings.py on the committed demo bundles: an uncached projection
offers a Compute button that launches the real background job; when it is done the page
shows the scatter (every point) with its quality numbers; the selection helpers against
brute-force references; bad parameters are an error box."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from workbench.embeddings import jobs
from workbench.ui import embeddings as ui

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = str(REPO_ROOT / "pages" / "8_Embeddings.py")


@pytest.fixture
def cache(tmp_path, monkeypatch, runs_dir):
    monkeypatch.setenv(jobs.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_compute_launches_the_job_and_the_scatter_shows_every_point(cache):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="em_set").value == "checkpoint: clip-demo / paired"
    launch = [b for b in at.button if b.key == "em_launch"]
    assert launch and "PCA" in launch[0].label and not at.get("plotly_chart")
    launch[0].click().run()
    key = next(p.name for p in cache.iterdir())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and jobs.read_status(key)["state"] == "running":
        time.sleep(0.3)
    assert jobs.read_status(key)["state"] == "done"
    at.run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    import json

    fig = json.loads(charts[0].proto.spec)
    n = sum(points(t["x"]) for t in fig["data"] if t.get("mode") == "markers")
    assert n == 2550  # 425 images + 2125 captions, none sampled away
    assert {t["name"] for t in fig["data"]} >= {"Europe", "Asia"}  # coloured by continent, with a legend
    assert any("trustworthiness" in c.value for c in at.caption)


def points(xs) -> int:
    """Length of a plotly trace's x: a list, or a typed array {"dtype", "bdata"}."""
    if isinstance(xs, dict):
        import base64

        return len(base64.b64decode(xs["bdata"])) // np.dtype(xs["dtype"]).itemsize
    return len(xs)


def test_a_corrupt_set_is_an_error_box(cache, tmp_path, monkeypatch):
    from workbench.embeddings.sets import SetRef

    folder = tmp_path / "emb"
    folder.mkdir()
    (folder / "broken.npy").write_bytes(b"not a numpy file")
    pd.DataFrame({"id": ["a"]}).to_parquet(folder / "broken.parquet")
    monkeypatch.setattr(ui, "list_sets", lambda: [SetRef("run: x", "broken", folder)])
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    assert any("is not a .npy array" in e.value for e in at.error)


def test_selection_helpers():
    event = {"selection": {"points": [{"customdata": 5}, {"customdata": [2]}, {"customdata": 5}]}}
    assert ui.selected_points(event).tolist() == [2, 5]
    assert ui.selected_points({"selection": {"points": []}}).tolist() == []
    meta = pd.DataFrame({"lat": [0.0, 0.0, 45.0, np.nan], "lon": [0.0, 5.0, 0.0, 0.0]})
    assert ui.near_click(meta, {"lat": 0.0, "lon": 1.0}, km=600).tolist() == [0, 1]
    assert ui.near_click(meta, None).tolist() == []


def test_neighbours_are_the_nearest_outside_the_selection():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    meta = pd.DataFrame({"id": [f"p{i}" for i in range(200)], "modality": "image"})
    chosen = np.array([3, 17, 40])
    got = ui.neighbours(x, meta, chosen, "euclidean", k=5)
    centre = x[chosen].mean(0)
    d = np.linalg.norm(x - centre, axis=1)
    d[chosen] = np.inf
    assert got["id"].tolist() == [f"p{i}" for i in np.argsort(d)[:5]]
    np.testing.assert_allclose(got["distance"], np.sort(d)[:5], rtol=1e-4)


def test_two_projections_side_by_side(cache):
    from workbench.embeddings.sets import find_set

    ref = find_set("clip-demo", "paired")
    for dims in (2, 3):
        jobs.run(ref, jobs.Params("pca", dims))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.toggle(key="em_compare").set_value(True).run()
    at.selectbox(key="em2_dims").set_value(3).run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    import json

    kinds = [{t["type"] for t in json.loads(c.proto.spec)["data"]} for c in charts]
    assert kinds == [{"scattergl"}, {"scatter3d"}]


def test_two_runs_side_by_side(cache):
    from workbench.embeddings.sets import find_set

    clip, projection = find_set("clip-demo", "paired"), find_set("projection-demo", "paired")
    for ref in (clip, projection):
        jobs.run(ref, jobs.Params("pca"))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.toggle(key="em_compare").set_value(True).run()
    at.selectbox(key="em_set2").set_value(projection.key).run()
    assert not at.exception, at.exception
    import json

    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 2
    counts = [sum(points(t["x"]) for t in c["data"] if t.get("mode") == "markers") for c in charts]
    assert counts == [2550, 2550]  # both test splits: 425 tiles + 2,125 captions each
    assert any("not linked to the map" in c.value for c in at.caption)
