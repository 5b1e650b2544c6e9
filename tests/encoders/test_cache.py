"""encode_cached: a hit returns the stored array without running the encoder."""
import numpy as np
import pytest

from workbench.encoders import create_location_encoder, encode, encode_cached
from workbench.encoders.location import cache
from workbench.errors import InputError

LATLON = np.array([[48.857, 2.352], [-33.87, 151.21], [0.0, -180.0], [90.0, 0.0]])


@pytest.fixture
def count_encodes(monkeypatch):
    calls = []

    def counting_encode(encoder, latlon, batch_size=8192):
        calls.append(len(latlon))
        return encode(encoder, latlon, batch_size)

    monkeypatch.setattr(cache, "encode", counting_encode)
    return calls


def test_hit_returns_identical_array_without_recomputing(tmp_path, count_encodes):
    first = encode_cached("geoclip", LATLON, cache_dir=tmp_path)
    files = list(tmp_path.glob("geoclip-*.npy"))
    assert len(files) == 1 and count_encodes == [4]
    second = encode_cached("geoclip", LATLON, cache_dir=tmp_path)
    assert count_encodes == [4]  # not recomputed
    np.testing.assert_array_equal(first, second)
    assert first.shape == (4, 512) and first.dtype == np.float32
    np.testing.assert_array_equal(np.load(files[0]), first)


def test_key_changes_with_coordinates_weights_and_config(tmp_path, count_encodes):
    kw = dict(mode="wrap", out_dim=8)
    encode_cached("direct", LATLON, cache_dir=tmp_path, seed=0, **kw)
    encode_cached("direct", LATLON, cache_dir=tmp_path, seed=0, **kw)  # hit
    encode_cached("direct", LATLON[:3], cache_dir=tmp_path, seed=0, **kw)  # other points
    encode_cached("direct", LATLON, cache_dir=tmp_path, seed=1, **kw)  # other weights
    encode_cached("direct", LATLON, cache_dir=tmp_path, mode="xyz", out_dim=8, seed=0)  # config
    assert count_encodes == [4, 3, 4, 4]
    assert len(list(tmp_path.glob("direct-*.npy"))) == 4


def test_a_built_encoder_is_keyed_by_its_weights(tmp_path, count_encodes):
    encoder = create_location_encoder("rff", hidden_dim=16, n_frequencies=8, out_dim=4, seed=0)
    a = encode_cached(encoder, LATLON, cache_dir=tmp_path)
    b = encode_cached(encoder, LATLON, cache_dir=tmp_path)
    np.testing.assert_array_equal(a, b)
    assert count_encodes == [4]
    encoder.branches[0].head.bias.data += 1.0  # e.g. after a training step
    c = encode_cached(encoder, LATLON, cache_dir=tmp_path)
    assert count_encodes == [4, 4] and not np.array_equal(a, c)


def test_invalid_coordinates_are_rejected_before_anything_is_written(tmp_path):
    with pytest.raises(InputError, match="row 2: lon = 200.0"):
        encode_cached("direct", [[0, 0], [1, 1], [0, 200]], cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())
