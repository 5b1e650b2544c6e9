"""Held-out metrics and the prefix-pooled sequence similarity, against naive references."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench.lines.softprompt.evaluate import (evaluate_sequences, pooled_index, prefix_scores, reference_baselines,
                                           retrieval_metrics, sequence_metrics, summarize_seeds, usage_metrics)


def toy(n=12, L=6, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(n, L, D, generator=g)
    lengths = torch.randint(1, L + 1, (n,), generator=g)
    mask = torch.arange(L) < lengths[:, None]
    return target * mask[..., None], mask


def test_prefix_scores_equal_pooling_with_each_candidates_mask():
    target, mask = toy()
    pred = torch.randn(5, 6, 8)
    pooled, lengths = pooled_index(target, mask)
    fast = prefix_scores(pred, pooled, lengths, chunk=2)
    naive = torch.zeros(5, len(target))
    for q in range(5):
        for j in range(len(target)):
            n = int(mask[j].sum())
            naive[q, j] = F.cosine_similarity(pred[q, :n].mean(0), target[j, :n].mean(0), dim=0)
    torch.testing.assert_close(fast, naive, atol=1e-5, rtol=1e-5)


def test_perfect_and_mean_predictions():
    target, mask = toy(n=30)
    countries = ["FR"] * 15 + ["JP"] * 15
    perfect = evaluate_sequences(target, target, mask, countries)
    assert perfect["token_cosine"] == pytest.approx(1.0) and perfect["seq_mse_norm"] == pytest.approx(0.0, abs=1e-6)
    assert perfect["retrieval_r1"] == 1.0 and perfect["country_match"] == 1.0
    m = mask[..., None].float()
    mean = ((target * m).sum(0) / m.sum(0).clamp_min(1)).expand_as(target)  # the per-position mean
    assert sequence_metrics(mean, target, mask)["seq_mse_norm"] == pytest.approx(1.0, rel=1e-5)


def test_retrieval_metrics_against_known_ranks():
    scores = torch.tensor([[0.9, 0.1, 0.5],    # true 0 ranks first
                           [0.9, 0.1, 0.5],    # true 1 ranks third
                           [0.2, 0.9, 0.5]])   # true 2 ranks second
    out = retrieval_metrics(scores, torch.tensor([0, 1, 2]), ["A", "B", "B"], ["A", "B", "B"], ks=(1, 2, 3))
    assert out["retrieval_r1"] == pytest.approx(1 / 3)
    assert out["retrieval_r2"] == pytest.approx(2 / 3)
    assert out["retrieval_r3"] == 1.0
    assert out["country_match"] == pytest.approx(2 / 3)  # query 1 (B) retrieves candidate 0 (A)


def test_usage_metrics():
    K = 8
    uniform = usage_metrics(torch.full((4, K), 1 / K))
    assert uniform["usage_perplexity"] == pytest.approx(K) and uniform["sample_perplexity"] == pytest.approx(K)
    spread = usage_metrics(torch.eye(K))
    assert spread["usage_perplexity"] == pytest.approx(K) and spread["sample_perplexity"] == pytest.approx(1.0)
    assert spread["entries_used"] == K
    collapse = torch.zeros(5, K)
    collapse[:, 3] = 1
    out = usage_metrics(collapse)
    assert out["usage_perplexity"] == pytest.approx(1.0) and out["entries_used"] == 1
    w = torch.softmax(torch.randn(6, K), -1)
    p = w.mean(0).numpy()
    assert usage_metrics(w)["usage_perplexity"] == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-5)


def test_summarize_seeds():
    runs = [{"r10": 0.1, "cos": 0.8}, {"r10": 0.3, "cos": 0.9}, {"r10": 0.2}]
    out = summarize_seeds(runs)
    assert list(out) == ["r10"]  # only metrics every seed reported
    assert out["r10"]["mean"] == pytest.approx(0.2) and out["r10"]["std"] == pytest.approx(np.std([0.1, 0.3, 0.2], ddof=1))
    assert out["r10"]["n"] == 3 and summarize_seeds(runs[:1])["r10"]["std"] == 0.0


def test_reference_baselines():
    target, mask = toy(n=8, L=4, D=3)
    lat = np.array([0.0, 10, 20, 30, 0.5, 10.5, 40, 60])
    lon = np.zeros(8)
    train, val = np.arange(4), np.array([4, 5])
    countries = ["A", "B", "C", "D", "A", "X", "E", "F"]
    out = reference_baselines(target, mask, train, val, lat, lon, countries)
    nearest = out["nearest_train_city"]  # city 4 copies city 0, city 5 copies city 1
    expected = evaluate_sequences(target[[0, 1]], target[[4, 5]], mask[[4, 5]], ["A", "X"])
    assert nearest == expected and nearest["country_match"] == 0.5
    m = mask[train][..., None].float()
    mean = ((target[train] * m).sum(0) / m.sum(0).clamp_min(1)).expand(2, -1, -1)
    assert out["mean_sequence"] == evaluate_sequences(mean, target[val], mask[val], ["A", "X"])
