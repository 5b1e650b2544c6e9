"""Projection benchmarks (``python -m workbench bench embeddings``).

On synthetic clustered data (100k x 512 float32: 50 Gaussian clusters of different sizes and
spreads), PCA, UMAP and t-SNE (openTSNE, FFT) wall time and peak memory, each in its own
process (peak resident memory of that process, imports included), with the quality numbers
of each projection; then t-SNE by openTSNE side by side with scikit-learn's Barnes-Hut
t-SNE on 10k points of the same data: the time ratio and the trustworthiness of each.
``quick``: 5k points and 2k for the comparison.

Keys: ``pca_100k_s``, ``umap_100k_s``, ``tsne_100k_s``, their ``*_peak_mb``, and
``tsne_10k_speedup_vs_sklearn``.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from typing import Any

import numpy as np

from workbench.paths import REPO_ROOT

N, D, CLUSTERS = 100_000, 512, 50


def synthetic(n: int, d: int = D, k: int = CLUSTERS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 [n, d], labels [n]): k clusters with Dirichlet sizes and spreads 0.5..2."""
    rng = np.random.default_rng(seed)
    sizes = rng.multinomial(n, rng.dirichlet(np.full(k, 2.0)))
    centres = rng.normal(size=(k, d)).astype(np.float32) * 4
    spreads = rng.uniform(0.5, 2.0, k).astype(np.float32)
    labels = np.repeat(np.arange(k), sizes)
    x = centres[labels] + rng.normal(size=(n, d)).astype(np.float32) * spreads[labels, None]
    return x.astype(np.float32), labels


def child(method: str, n: int, seed: int = 0) -> dict:
    """One projection in this process: seconds, peak RSS, quality. (Run by ``_in_process``.)"""
    import resource
    import time

    from workbench.embeddings import project as proj

    x, _ = synthetic(n, seed=seed)
    start = time.perf_counter()
    if method == "sklearn-tsne":
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE

        xs = proj.prepare(x, "euclidean")
        xs = PCA(50, random_state=seed).fit_transform(xs)
        y = TSNE(2, perplexity=30, init="pca", random_state=seed, n_jobs=-1).fit_transform(xs).astype(np.float32)
        seconds = time.perf_counter() - start
    else:
        out = proj.project(x, method, 2, metric="euclidean", seed=None if method == "umap" else seed)
        y, seconds = out["coords"], out["seconds"]
    quality = proj.quality(x, y, "euclidean", seed=seed)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(seconds, 2), "peak_mb": round(peak), **quality}


def _in_process(method: str, n: int, timeout_s: int = 1800) -> dict:
    code = ("import json, sys; sys.path.insert(0, %r); from benchmarks.embeddings import child; "
            "print(json.dumps(child(%r, %d)))" % (str(REPO_ROOT), method, n))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s,
                          cwd=REPO_ROOT)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _tag(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def run(quick: bool = False, n: int | None = None, n_cmp: int | None = None) -> dict[str, Any]:
    n = n or (5_000 if quick else N)
    n_cmp = n_cmp or (2_000 if quick else 10_000)
    tag, tag_cmp = _tag(n), _tag(n_cmp)
    out: dict[str, Any] = {"data": f"synthetic: {n} x {D} float32, {CLUSTERS} Gaussian clusters (euclidean)"}
    for method in ("pca", "umap", "tsne"):
        r = _in_process(method, n)
        out[f"{method}_{tag}_s"] = r.get("seconds")
        out[f"{method}_{tag}_peak_mb"] = r.get("peak_mb")
        out[f"{method}_{tag}"] = r
    ours, theirs = _in_process("tsne", n_cmp), _in_process("sklearn-tsne", n_cmp)
    out[f"tsne_{tag_cmp}"] = {"opentsne": ours, "sklearn": theirs}
    if "seconds" in ours and "seconds" in theirs:
        out[f"tsne_{tag_cmp}_speedup_vs_sklearn"] = round(theirs["seconds"] / ours["seconds"], 2)
    out["targets"] = {"umap_100k_s": 180, "tsne_100k_s": 300}
    out.update(umap_note="UMAP unseeded (seed None lets it use both cores); the page's default seed 0 is "
                         "single-threaded", cpu_count=os.cpu_count(), machine=platform.machine(), quick=quick)
    return out
