"""Label spaces over a partition: flat / multilabel / per-level targets, haversine smoothing,
cell probabilities, and the partition stored in the buffers."""
import math

import numpy as np
import pytest
import torch

from workbench.errors import ConfigError
from workbench.geo import build_partition, haversine_km
from workbench.lines.geolocator.labels import LabelSpace, assign_labels, partition_from_labels


@pytest.fixture(scope="module")
def partition():
    """Clusters dense enough to split into cells of several levels."""
    rng = np.random.default_rng(0)
    centres = [(48.8, 2.3, 60), (40.7, -74.0, 25), (-33.9, 151.2, 12), (35.7, 139.7, 40)]
    lat = np.concatenate([c[0] + rng.normal(0, 2.0, c[2]) for c in centres])
    lon = np.concatenate([c[1] + rng.normal(0, 2.0, c[2]) for c in centres])
    return build_partition(lat, lon, t_min=3, t_max=15, min_level=2, max_level=8)


def test_partition_has_several_levels(partition):
    assert len(partition.levels) >= 2 and len(partition) >= 6


def test_flat_targets_are_one_hot_and_smoothing_follows_pigeon(partition):
    k = len(partition)
    flat = LabelSpace(partition, "flat")
    y = torch.tensor([0, k - 1])
    latlon = torch.tensor([[48.8, 2.3], [35.7, 139.7]], dtype=torch.float64)
    assert torch.equal(flat.fine_targets(y, latlon), torch.eye(k)[[0, k - 1]])

    tau = 500.0
    smooth = LabelSpace(partition, "flat", smoothing_km=tau)
    q = smooth.fine_targets(y, latlon)
    c_lat, c_lon = partition.centroids()
    d = haversine_km(48.8, 2.3, c_lat, c_lon)  # [K] km, by hand from the definition
    expected = np.exp(-(d - d.min()) / tau)
    expected /= expected.sum()
    assert q[0].double().numpy() == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert int(q[0].argmax()) == int(np.argmin(d))
    assert torch.allclose(q.sum(1), torch.ones(2))


def test_level_targets_sum_the_fine_mass_in_each_group(partition):
    space = LabelSpace(partition, "per_level", smoothing_km=800.0)
    y = torch.tensor([1, 2, 3])
    latlon = torch.tensor(partition.cells[["lat", "lon"]].to_numpy()[[1, 2, 3]])
    q = space.fine_targets(y, latlon)
    levels = space.level_targets(q)
    groups = partition.hierarchy().to_numpy()
    assert [t.shape[1] for t in levels] == space.level_sizes
    assert space.level_sizes[-1] == len(partition)
    for l, t in enumerate(levels):
        for g in range(t.shape[1]):
            assert t[:, g] == pytest.approx(q[:, groups[:, l] == g].sum(1), abs=1e-6)
    assert torch.allclose(levels[-1], q)
    assert space.n_outputs == sum(space.level_sizes)


@pytest.mark.parametrize("mode", ["flat", "multilabel", "per_level"])
def test_cell_probabilities_sum_to_one_and_loss_is_finite(partition, mode):
    space = LabelSpace(partition, mode)
    torch.manual_seed(0)
    logits = torch.randn(5, space.n_outputs, requires_grad=True)
    log_p = space.cell_log_probs(logits)
    assert log_p.shape == (5, len(partition))
    assert torch.allclose(log_p.exp().sum(1), torch.ones(5, dtype=log_p.dtype), atol=1e-5)
    y = torch.tensor([0, 1, 2, 3, 4])
    latlon = torch.tensor(partition.cells[["lat", "lon"]].to_numpy()[:5])
    loss = space.loss(logits, y, latlon)
    loss.backward()
    assert math.isfinite(float(loss.detach())) and torch.isfinite(logits.grad).all()
    assert float(space.loss(logits[:0], y[:0], latlon[:0]).detach()) == 0.0  # an all-failed batch


def test_per_level_probability_is_the_product_over_levels(partition):
    space = LabelSpace(partition, "per_level")
    torch.manual_seed(1)
    logits = torch.randn(2, space.n_outputs)
    blocks = torch.split(logits, space.level_sizes, 1)
    groups = partition.hierarchy().to_numpy()
    prod = np.ones((2, len(partition)))
    for l, b in enumerate(blocks):
        prod *= torch.softmax(b, 1).numpy()[:, groups[:, l]]
    expected = prod / prod.sum(1, keepdims=True)
    assert space.cell_log_probs(logits).exp().numpy() == pytest.approx(expected, rel=1e-5)


def test_partition_round_trips_through_the_buffers(partition):
    space = LabelSpace(partition, "multilabel")
    rebuilt = partition_from_labels({f"labels.{k}": v for k, v in space.state_dict().items()},
                                    meta={"t_min": 3, "t_max": 15, "min_level": 2, "max_level": 8})
    cols = ["token", "level", "count", "lat", "lon", "center_lat", "center_lon"]
    assert rebuilt.cells[cols].equals(partition.cells[cols])
    assert (rebuilt.ids == partition.ids).all()
    assert rebuilt.hierarchy().equals(partition.hierarchy())


def test_assign_labels_nearest_or_drop(partition):
    lat, lon = np.array([48.8, -80.0]), np.array([2.3, 0.0])  # Paris; Antarctica (no cell)
    near = assign_labels(partition, lat, lon, "nearest")
    drop = assign_labels(partition, lat, lon, "drop")
    assert near[0] == drop[0] >= 0
    assert drop[1] == -1 and near[1] >= 0


def test_bad_mode_and_smoothing_are_config_errors(partition):
    with pytest.raises(ConfigError, match="Choose one of"):
        LabelSpace(partition, "softmax")
    with pytest.raises(ConfigError, match="smoothing_km"):
        LabelSpace(partition, "flat", smoothing_km=-1)
