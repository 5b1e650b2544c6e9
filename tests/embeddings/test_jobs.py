"""Projection jobs through the real CLI and a detached process: done, a cache hit on rerun,
a new key for new parameters, stop of a running job, one-line errors for bad input."""
import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from workbench.embeddings import jobs
from workbench.embeddings.sets import SetRef, write_set
from workbench.paths import REPO_ROOT


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(jobs.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_set(folder, n=300, d=16, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, d)) + np.repeat(rng.normal(size=(3, d)) * 8, -(-n // 3), 0)[:n]).astype(np.float32)
    meta = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "modality": "image", "group": [str(i) for i in range(n)],
                         "split": "test", "lat": rng.uniform(-60, 60, n), "lon": rng.uniform(-180, 180, n)})
    write_set(folder, "test", x, meta)
    return SetRef("test-source", "test", folder)


def cli(*args, env_cache):
    return subprocess.run([sys.executable, "-m", "workbench", "embed", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**__import__("os").environ, jobs.CACHE_ENV: str(env_cache)}, timeout=300)


def test_a_job_finishes_and_a_rerun_is_a_cache_hit(tmp_path, cache):
    make_set(tmp_path / "emb")
    first = cli(str(tmp_path / "emb"), "--method", "pca", env_cache=cache)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["state"] == "done" and not out["cached"] and out["n"] == 300
    assert 0 < out["quality"]["trustworthiness"] <= 1 and 0 < out["quality"]["knn_preservation"] <= 1
    again = json.loads(cli(str(tmp_path / "emb"), "--method", "pca", env_cache=cache).stdout)
    assert again["cached"] and again["key"] == out["key"]
    result = jobs.load_result(out["key"])
    assert result["coords"].shape == (300, 2) and result["rows"].tolist() == list(range(300))
    sampled = json.loads(cli(str(tmp_path / "emb"), "--method", "pca", "--max-points", "100", env_cache=cache).stdout)
    assert sampled["key"] != out["key"] and sampled["n"] == 100 and sampled["n_total"] == 300


def test_new_data_under_the_same_name_is_a_new_key(tmp_path, cache):
    ref = make_set(tmp_path / "emb")
    params = jobs.Params("pca")
    key, _ = jobs.run(ref, params)
    make_set(tmp_path / "emb", seed=1)
    assert jobs.cache_key(ref, params) != key


def test_a_detached_job_reports_progress_and_stops(tmp_path, cache):
    ref = make_set(tmp_path / "emb", n=6000, d=20)
    key = jobs.launch(ref, jobs.Params("tsne", seed=3))
    assert jobs.read_status(key)["state"] == "running"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and jobs.read_status(key).get("phase") != "t-SNE optimisation":
        assert jobs.read_status(key)["state"] == "running", jobs.read_status(key)
        time.sleep(0.2)
    assert jobs.read_status(key)["phase"] == "t-SNE optimisation"
    status = jobs.stop(key)
    assert status["state"] == "stopped"
    assert jobs.launch(ref, jobs.Params("tsne", seed=3)) == key  # a stopped job can be started again
    jobs.stop(key)


def test_bad_input_is_one_line(tmp_path, cache):
    missing = cli("no-such-bundle", env_cache=cache)
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert "no embedding sets in 'no-such-bundle'" in missing.stderr
    make_set(tmp_path / "emb")
    bad = cli(str(tmp_path / "emb"), "--max-points", "-5", env_cache=cache)
    assert bad.returncode == 2 and "max_points must be in" in bad.stderr and "Traceback" not in bad.stderr
