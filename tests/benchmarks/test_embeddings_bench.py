"""The embeddings bench on a small size: every method runs in its own process and reports
time, peak memory and quality; openTSNE and scikit-learn's t-SNE are compared on the same
points and both keep the clusters' neighbourhoods (trustworthiness)."""
from benchmarks import embeddings


def test_small_bench_reports_every_method():
    out = embeddings.run(n=3000, n_cmp=1000)
    for method in ("pca", "umap", "tsne"):
        r = out[f"{method}_3k"]
        assert "error" not in r, r
        assert out[f"{method}_3k_s"] > 0 and out[f"{method}_3k_peak_mb"] > 100
        assert 0.5 < r["trustworthiness"] <= 1
    assert out["tsne_3k"]["trustworthiness"] > out["pca_3k"]["trustworthiness"]  # t-SNE keeps local structure
    cmp = out["tsne_1k"]
    assert cmp["opentsne"]["trustworthiness"] > 0.9 and cmp["sklearn"]["trustworthiness"] > 0.9
    assert out["tsne_1k_speedup_vs_sklearn"] > 0


def test_synthetic_data_is_clustered_and_seeded():
    a, labels = embeddings.synthetic(2000, d=32, seed=1)
    b, _ = embeddings.synthetic(2000, d=32, seed=1)
    assert (a == b).all() and a.dtype.name == "float32" and len(set(labels)) > 40
