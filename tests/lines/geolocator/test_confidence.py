"""Peakedness of P(cell) and the feature-distance OOD check, against closed forms and a
naive reference; and on the demo model: street photos are flagged, test tiles are not."""
import math

import numpy as np
import pytest

from workbench.errors import InputError, NotFoundError
from workbench.lines.geolocator.confidence import (
    NEAR_UNIFORM_ENTROPY,
    FeatureReference,
    build_feature_reference,
    is_near_uniform,
    knn_cosine_distance,
    peakedness,
)


def test_uniform_one_hot_and_known_distribution():
    k = 54
    uniform = peakedness(np.full(k, 1 / k))
    assert uniform["entropy_norm"] == pytest.approx(1.0)
    assert uniform["effective_cells"] == pytest.approx(k)
    assert uniform["top1"] == pytest.approx(1 / k) and uniform["top1_vs_uniform"] == pytest.approx(1.0)
    assert uniform["top_mass"] == pytest.approx(5 / k)

    one_hot = peakedness(np.eye(k)[3])
    assert one_hot["entropy"] == 0.0 and one_hot["entropy_norm"] == 0.0  # 0 log 0 = 0, no NaN
    assert one_hot["effective_cells"] == 1.0 and one_hot["top1"] == 1.0 and one_hot["top_mass"] == 1.0

    p = np.array([0.5, 0.25, 0.125, 0.125])
    out = peakedness(p, top_k=2)
    h = 0.5 * math.log(2) + 0.25 * math.log(4) + 2 * 0.125 * math.log(8)  # = 1.75 bits
    assert out["entropy"] == pytest.approx(h) and out["entropy_norm"] == pytest.approx(1.75 / 2)
    assert out["top_mass"] == pytest.approx(0.75) and out["top1_vs_uniform"] == pytest.approx(2.0)


def test_batched_rows_match_one_by_one():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(30, 0.3), size=(4, 5))  # [4, 5, 30]
    batch = peakedness(probs)
    assert batch["entropy_norm"].shape == (4, 5)
    for i, j in [(0, 0), (3, 4), (2, 1)]:
        row = peakedness(probs[i, j])
        assert all(batch[key][i, j] == pytest.approx(float(row[key])) for key in row)
    scipy_h = -(probs * np.log(probs)).sum(-1)
    np.testing.assert_allclose(batch["entropy"], scipy_h, rtol=1e-10)


def test_near_uniform_threshold():
    k = 54
    flat = np.full(k, 1 / k)
    nearly = flat + np.random.default_rng(1).normal(0, 0.002, k).clip(-1 / k, None)
    peaked = np.r_[0.6, np.full(k - 1, 0.4 / (k - 1))]
    flags = is_near_uniform(np.stack([flat, nearly / nearly.sum(), peaked]))
    assert flags.tolist() == [True, True, False]
    assert NEAR_UNIFORM_ENTROPY == 0.9
    # the threshold's meaning: spread as if over more than K^0.9 equally likely cells
    spread = np.r_[np.full(40, 1 / 40), np.zeros(k - 40)]  # 40 > 54^0.9 = 36.3
    assert is_near_uniform(spread) and not is_near_uniform(np.r_[np.full(30, 1 / 30), np.zeros(k - 30)])


def test_peakedness_rejects_bad_input():
    with pytest.raises(InputError, match="K >= 2"):
        peakedness(np.array([1.0]))
    with pytest.raises(InputError, match="non-negative"):
        peakedness(np.array([0.5, np.nan]))


def test_knn_distance_matches_a_naive_loop():
    rng = np.random.default_rng(2)
    ref, q = rng.normal(size=(40, 8)), rng.normal(size=(7, 8)) * 3.0
    fast = knn_cosine_distance(q, ref, k=3)
    naive = []
    for v in q:
        cos = [float(v @ r / np.linalg.norm(v) / np.linalg.norm(r)) for r in ref]
        naive.append(1 - np.mean(sorted(cos)[-3:]))
    np.testing.assert_allclose(fast, naive, rtol=1e-10)
    assert knn_cosine_distance(ref[:3] * 5.0, ref, k=1) == pytest.approx(0.0, abs=1e-12)  # scale-free
    loo = knn_cosine_distance(ref, ref, k=1, exclude_self=True)
    assert (loo > 1e-6).all()  # its own row is not its neighbour
    with pytest.raises(InputError, match="feature sizes differ"):
        knn_cosine_distance(q[:, :4], ref)


def test_reference_threshold_is_the_heldout_quantile():
    rng = np.random.default_rng(3)
    centre = np.eye(16)[0] * 4.0  # one cluster of "training images" around e0
    train, held = centre + rng.normal(size=(200, 16)), centre + rng.normal(size=(100, 16))
    ref = FeatureReference.fit(train, held, k=5, quantile=0.9, source="toy")
    d = knn_cosine_distance(held, train, k=5)
    assert ref.threshold == pytest.approx(np.quantile(d, 0.9))
    np.testing.assert_allclose(ref.heldout, np.sort(d), atol=1e-6)  # features kept as float32
    assert ref.heldout_rank(ref.heldout[49]) == pytest.approx(0.5)
    assert ref.is_ood(held).mean() == pytest.approx(0.1, abs=0.011)
    far = -centre + rng.normal(size=(2, 16))  # images from the opposite side of feature space
    assert ref.is_ood(far).tolist() == [True, True] and ref.heldout_rank(ref.distance(far)).min() == 1.0
    with pytest.raises(InputError, match="quantile"):
        FeatureReference.fit(train, held, quantile=1.0)


def test_reference_from_a_models_training_csv(tiny_bundle, tiny_csv, tmp_path):
    from workbench.lines.geolocator.predict import load_predictor

    predictor = load_predictor(tiny_bundle)
    ref = build_feature_reference(predictor, n_train=20, n_heldout=12, k=1)
    assert ref.features.shape == (20, predictor.model.num_features)
    assert len(ref.heldout) == 12 and "val split" in ref.source
    # a training image the reference holds is at distance 0 from it
    frame = __import__("pandas").read_csv(tiny_csv)
    train_paths = [str(tiny_csv.parent / p) for p in frame.loc[frame["split"] == "train", "path"]]
    feats = predictor.embed_files(train_paths)
    assert np.isclose(ref.distance(feats), 0.0, atol=1e-5).sum() == 20
    with pytest.raises(NotFoundError, match="data CSV not found"):
        build_feature_reference(predictor, csv=tmp_path / "gone.csv")


def test_demo_model_flags_street_photos_not_test_tiles():
    """The demo model's own data: the street photos are OOD, the held-out test tiles are not
    (data/geo-patches comes from `make test` / `python -m workbench data build-demo`)."""
    from workbench.lines.geolocator.predict import DEMO_CHECKPOINT, load_predictor
    from workbench.lines.geolocator.samples import sample_photos, sample_tiles

    predictor = load_predictor(DEMO_CHECKPOINT)
    ref = build_feature_reference(predictor)
    tiles = predictor.embed_files([str(s.path) for s in sample_tiles()])
    street = predictor.embed_files([str(s.path) for s in sample_photos()
                                    if s.name in ("dahlia_kew_gardens.jpg", "summer_palace_beijing.jpg")])
    assert len(tiles) == 8 and not ref.is_ood(tiles).any()
    assert ref.is_ood(street).all()
