"""LR range test: a finite suggestion on a real experiment, and the suggestion rule on a
known curve."""
import math

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.experiments import create_experiment
from workbench.lines.geolocator.lr_finder import lr_range_test, suggest_lr
from workbench.lines.geolocator.figures import lr_finder_figure


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = np.logspace(-6, 0, 61)
    x = np.log10(lrs)
    # a loss falling fastest at lr = 1e-3 (tanh centre), minimum near 1e-1, diverging after
    losses = 2.0 - np.tanh(2 * (x + 3)) + np.where(x > -1, 20 * (x + 1) ** 2, 0)
    assert suggest_lr(lrs, losses) == pytest.approx(1e-3, rel=0.13)
    assert suggest_lr(lrs, np.linspace(1, 3, 61)) is None  # never decreases


def test_range_test_on_the_tiny_geolocator(tiny_cfg):
    exp = create_experiment(tiny_cfg("model.head=mlp", "model.hidden=32"))
    result = lr_range_test(exp, start_lr=1e-5, end_lr=10.0, num_iter=40)
    assert result.suggestion is not None and math.isfinite(result.suggestion)
    assert 1e-5 <= result.suggestion <= 10.0
    assert len(result.lrs) == len(result.losses) >= 10
    assert np.all(np.diff(result.lrs) > 0)
    assert all(math.isfinite(v) for v in result.losses)
    fig = lr_finder_figure(result.lrs, result.losses, result.suggestion, result.raw_losses)
    assert fig.layout.xaxis.type == "log" and len(fig.data) == 2
    with pytest.raises(ConfigError):
        lr_range_test(exp, start_lr=1.0, end_lr=0.1)
