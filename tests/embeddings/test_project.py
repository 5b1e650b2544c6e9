"""Projections and their quality numbers against references: PCA against numpy's SVD, the
k-NN search against a brute-force sort, trustworthiness / k-NN preservation at their
extremes, UMAP and t-SNE keeping well-separated clusters apart."""
import numpy as np
import pytest

from workbench.embeddings import project as proj
from workbench.errors import ConfigError


def clusters(n_per=60, k=4, d=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 10
    x = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(k), n_per)


def test_pca_matches_the_svd_of_the_centred_data():
    x, _ = clusters()
    out = proj.project(x, "pca", 2, metric="euclidean")
    xc = x - x.mean(0)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    ref = xc @ vt[:2].T
    for j in range(2):  # components agree up to sign
        assert abs(np.corrcoef(out["coords"][:, j], ref[:, j])[0, 1]) > 0.9999
    np.testing.assert_allclose(out["explained_variance_ratio"], (s[:2] ** 2 / (s ** 2).sum()), atol=1e-3)


def test_cosine_normalises_rows_first():
    x, _ = clusters()
    scaled = x * np.random.default_rng(1).uniform(0.5, 5, size=(len(x), 1)).astype(np.float32)
    a = proj.project(x, "pca", 2, metric="cosine")["coords"]
    b = proj.project(scaled, "pca", 2, metric="cosine")["coords"]
    np.testing.assert_allclose(np.abs(a), np.abs(b), atol=1e-4)  # the lengths do not matter


def test_knn_indices_match_a_brute_force_sort():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(300, 6)).astype(np.float32)
    queries = np.arange(0, 300, 7)
    got = proj.knn_indices(points[queries], points, 5, exclude=queries)
    d = ((points[queries][:, None] - points[None]) ** 2).sum(-1)
    d[np.arange(len(queries)), queries] = np.inf
    np.testing.assert_array_equal(np.sort(got, 1), np.sort(np.argsort(d, 1)[:, :5], 1))


def test_quality_is_perfect_for_an_isometry_and_low_for_noise():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(400, 2)).astype(np.float32)
    rotation = np.array([[0.6, -0.8], [0.8, 0.6]], np.float32)
    same = proj.quality(y, y @ rotation, metric="euclidean", sample=400)
    assert same["trustworthiness"] == pytest.approx(1.0) and same["knn_preservation"] == pytest.approx(1.0)
    noise = proj.quality(y, rng.normal(size=(400, 2)).astype(np.float32), metric="euclidean", sample=400)
    assert noise["knn_preservation"] < 0.1 and noise["trustworthiness"] < 0.7


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_nonlinear_methods_keep_separated_clusters_apart(method):
    x, labels = clusters(d=64)  # > 50 dims: the PCA-50 step runs
    out = proj.project(x, method, 2, metric="euclidean", seed=0)
    y = out["coords"]
    assert y.shape == (240, 2) and out["pre_pca"]["dims"] == 50
    nearest = proj.knn_indices(y, y, 1, exclude=np.arange(len(y)))[:, 0]
    assert (labels[nearest] == labels).mean() > 0.98  # every point's neighbour is in its own cluster
    assert proj.quality(x, y, "euclidean")["trustworthiness"] > 0.9


def test_bad_parameters_fail_at_once():
    x, _ = clusters()
    with pytest.raises(ConfigError, match="unknown projection method 'mds'"):
        proj.project(x, "mds")
    with pytest.raises(ConfigError, match="dims must be 2 or 3"):
        proj.project(x, "pca", 4)
    with pytest.raises(ConfigError, match="at least 5 points"):
        proj.project(x[:3], "pca")


def test_a_progress_callback_can_stop_tsne():
    x, _ = clusters()
    calls = []

    def progress(phase, done):
        calls.append((phase, done))
        return done > 0.3  # stop a third of the way through the optimisation

    with pytest.raises(proj.Stopped):
        proj.project(x, "tsne", 2, progress=progress)
    assert any(p == "t-SNE optimisation" for p, _ in calls)
