"""Accuracy at km thresholds, GeoGuessr score and error summaries."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.errors import InputError
from workbench.geo import accuracy_at_km, error_summary, geoguessr_score, mean_geoguessr_score


def test_accuracy_counts_distance_equal_to_threshold():
    d = np.array([0.0, 1.0, 1.0000001, 25.0, 200.0, 750.0, 2500.0, 2500.5, 10_000.0, 24.9])
    acc = accuracy_at_km(d)
    assert list(acc) == ["acc@1km", "acc@25km", "acc@200km", "acc@750km", "acc@2500km"]
    assert acc == {
        "acc@1km": 2 / 10,  # 0 and exactly 1 km
        "acc@25km": 5 / 10,  # + 1.0000001, 24.9 and exactly 25
        "acc@200km": 6 / 10,
        "acc@750km": 7 / 10,
        "acc@2500km": 8 / 10,
    }


def test_accuracy_custom_thresholds_and_shapes():
    d = np.array([[0.4, 0.6], [3.0, 0.5]])
    assert accuracy_at_km(d, thresholds=(0.5, 10)) == {"acc@0.5km": 0.5, "acc@10km": 1.0}
    assert accuracy_at_km(7.0) == {"acc@1km": 0.0, "acc@25km": 1.0, "acc@200km": 1.0,
                                   "acc@750km": 1.0, "acc@2500km": 1.0}
    with pytest.raises(InputError, match="thresholds"):
        accuracy_at_km(d, thresholds=(-1,))


def test_geoguessr_score_values():
    assert float(geoguessr_score(0.0)) == 5000.0
    assert float(geoguessr_score(1492.7)) == pytest.approx(5000 / math.e, rel=1e-12)
    d = np.array([0.0, 10.0, 100.0, 1000.0, 20_000.0])
    expected = 5000 * np.exp(-d / 1492.7)
    np.testing.assert_allclose(geoguessr_score(d), expected, rtol=1e-14)
    # PIGEON-style: each guess rounded to an integer point value.
    np.testing.assert_array_equal(geoguessr_score(d, rounded=True), [5000, 4967, 4676, 2559, 0])
    assert mean_geoguessr_score(d) == pytest.approx(expected.mean(), rel=1e-14)
    assert mean_geoguessr_score(d, rounded=True) == pytest.approx((5000 + 4967 + 4676 + 2559 + 0) / 5)


def test_geoguessr_score_is_monotone_decreasing_in_distance():
    d = np.sort(np.random.default_rng(0).uniform(0, 20_037, 10_000))
    s = geoguessr_score(d)
    assert np.all(np.diff(s) <= 0) and s[0] <= 5000 and s[-1] > 0
    assert np.all(np.diff(geoguessr_score(d, rounded=True)) <= 0)


def test_torch_and_numpy_agree():
    d = np.random.default_rng(1).exponential(500, 1000)
    t = torch.tensor(d, requires_grad=True)
    s = geoguessr_score(t)
    assert isinstance(s, torch.Tensor)
    np.testing.assert_allclose(s.detach().numpy(), geoguessr_score(d), rtol=1e-14)
    s.mean().backward()  # differentiable: d score / d d = -score / 1492.7 / N
    np.testing.assert_allclose(t.grad.numpy(), -geoguessr_score(d) / 1492.7 / d.size, rtol=1e-12)
    assert accuracy_at_km(t) == accuracy_at_km(d)
    assert error_summary(torch.tensor(d)) == error_summary(d)


def test_error_summary_numbers():
    d = np.array([0.5, 10.0, 100.0, 1000.0])
    s = error_summary(d)
    assert s["n"] == 4
    assert s["mean_km"] == pytest.approx(277.625)
    assert s["median_km"] == pytest.approx(55.0)
    assert s["acc@1km"] == 0.25 and s["acc@25km"] == 0.5 and s["acc@2500km"] == 1.0
    assert s["geoguessr"] == pytest.approx(np.mean(5000 * np.exp(-d / 1492.7)))
    assert all(isinstance(v, (int, float)) for v in s.values())


@pytest.mark.parametrize(
    "d, pattern",
    [
        ([1.0, 2.0, float("nan")], r"row 2: nan km"),
        ([1.0, -3.0], r"row 1: -3.0 km"),
        ([float("inf")], r"row 0: inf km"),
        ([], "at least one"),
    ],
)
def test_bad_distances_are_named(d, pattern):
    with pytest.raises(InputError, match=pattern):
        error_summary(np.array(d))
