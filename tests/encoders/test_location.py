"""Location encoders: every registry entry's contract, GeoCLIP parity, input errors."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.encoders import LOCATION_ENCODERS, create_location_encoder, encode
from workbench.encoders.location.geoclip import geoclip_weights_path
from workbench.errors import ConfigError, InputError, NotFoundError

SMALL = {  # small trainable variants keep the contract tests fast; geoclip is fixed-size
    "geoclip": {},
    "rff": dict(hidden_dim=64, n_frequencies=32, out_dim=48, seed=0),
    "sh_siren": dict(num_degrees=8, hidden_dim=64, out_dim=32, seed=0),
    "direct": dict(mode="wrap", out_dim=16, seed=0),
}


def sample_points(n: int = 300, seed: int = 0) -> torch.Tensor:
    """n random points plus the poles, the antimeridian and the origin: [n + 6, 2] degrees."""
    rng = np.random.default_rng(seed)
    random = np.column_stack([np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
                              rng.uniform(-180, 180, n)])
    edges = np.array([[90, 0], [-90, 0], [0, 180], [0, -180], [0, 0], [89.9999, 45]])
    return torch.tensor(np.vstack([random, edges]), dtype=torch.float32)


@pytest.fixture(scope="module")
def geoclip_encoder():
    return create_location_encoder("geoclip")


def build(name, geoclip_encoder):
    return geoclip_encoder if name == "geoclip" else create_location_encoder(name, **SMALL[name])


def test_every_registered_encoder_is_covered():
    assert sorted(SMALL) == LOCATION_ENCODERS.list()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_output_shape_finite_and_deterministic(name, geoclip_encoder):
    encoder = build(name, geoclip_encoder)
    latlon = sample_points()
    out = encoder(latlon)
    assert out.shape == (len(latlon), encoder.out_dim)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert torch.equal(out, encoder(latlon))  # same input, same features
    # Rows are independent of the rest of the batch (up to BLAS summation order).
    torch.testing.assert_close(out[:10], encoder(latlon[:10]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["rff", "sh_siren", "direct"])
def test_seed_fixes_initialisation(name):
    latlon = sample_points(20)
    a = create_location_encoder(name, **SMALL[name])
    b = create_location_encoder(name, **SMALL[name])
    c = create_location_encoder(name, **{**SMALL[name], "seed": 1})
    assert torch.equal(a(latlon), b(latlon))
    assert not torch.equal(a(latlon), c(latlon))


@pytest.mark.parametrize("name", ["rff", "sh_siren", "direct"])
def test_gradients_reach_every_trainable_parameter(name):
    encoder = create_location_encoder(name, **SMALL[name])
    latlon = sample_points(64).requires_grad_(True)
    encoder(latlon).pow(2).mean().backward()
    params = [p for p in encoder.parameters() if p.requires_grad]
    assert params
    for p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert torch.isfinite(latlon.grad).all()  # including at the poles and the antimeridian


def test_geoclip_is_frozen_by_default_and_can_be_unfrozen(geoclip_encoder):
    assert geoclip_encoder.out_dim == 512
    assert not geoclip_encoder.training
    assert not any(p.requires_grad for p in geoclip_encoder.parameters())
    assert sum(p.numel() for p in geoclip_encoder.parameters()) == 9_447_936
    assert sum(b.numel() for b in geoclip_encoder.buffers()) == 3 * 256 * 2  # Fourier matrices
    unfrozen = create_location_encoder("geoclip", trainable=True)
    assert unfrozen.training and all(p.requires_grad for p in unfrozen.parameters())
    unfrozen(sample_points(8)).sum().backward()
    assert all(p.grad is not None for p in unfrozen.parameters())


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_geoclip_matches_the_geoclip_package(geoclip_encoder):
    import pandas as pd
    from geoclip import LocationEncoder as PackageLocationEncoder  # imports transformers: slow

    reference = PackageLocationEncoder().eval()
    gallery = pd.read_csv(geoclip_weights_path().parents[1] / "gps_gallery/coordinates_100K.csv")
    latlon = torch.cat([torch.tensor(gallery[["LAT", "LON"]].values[:300], dtype=torch.float32),
                        sample_points(100)])
    with torch.no_grad():
        expected = reference(latlon)
        actual = geoclip_encoder(latlon)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_wrapped_encoders_have_no_seam_at_the_antimeridian():
    latlon = torch.tensor([[10.0, 180.0], [-45.0, 180.0]])
    other_side = torch.tensor([[10.0, -180.0], [-45.0, -180.0]])
    for name in ["sh_siren", "direct"]:
        encoder = create_location_encoder(name, **SMALL[name])
        torch.testing.assert_close(encoder(latlon), encoder(other_side), atol=1e-5, rtol=0)


def test_direct_modes():
    latlon = torch.tensor([[45.0, -90.0], [0.0, 180.0]])
    raw = create_location_encoder("direct", mode="raw")
    assert raw.out_dim == 2
    torch.testing.assert_close(raw(latlon), torch.tensor([[0.5, -0.5], [0.0, 1.0]]))
    xyz = create_location_encoder("direct", mode="xyz")(latlon)
    torch.testing.assert_close(xyz.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(xyz[1], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    assert not list(raw.parameters())  # no out_dim: no layer, nothing to train


def test_encode_batches_numpy_and_validates(geoclip_encoder):
    latlon = sample_points(50).numpy()
    full = geoclip_encoder(torch.from_numpy(latlon)).detach().numpy()
    np.testing.assert_allclose(encode(geoclip_encoder, latlon, batch_size=7), full,
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(InputError, match="row 1: lat = 91.0"):
        encode(geoclip_encoder, np.array([[0.0, 0.0], [91.0, 0.0]]))
    with pytest.raises(InputError, match=r"\[N, 2\]"):
        encode(geoclip_encoder, np.zeros((4, 3)))
    with pytest.raises(InputError, match=r"\[B, 2\]"):
        geoclip_encoder(torch.zeros(4))


def test_unknown_names_and_options_list_the_choices():
    with pytest.raises(NotFoundError, match="Available: .*geoclip"):
        create_location_encoder("satclip")
    with pytest.raises(ConfigError, match="Available: .*wrap"):
        create_location_encoder("direct", mode="polar")
    with pytest.raises(ConfigError, match="equal_earth"):
        create_location_encoder("rff", projection="mercator")


def test_geoclip_loads_without_importing_transformers():
    # `import geoclip` pulls in transformers (~6 s); our loader reads the weights file only.
    code = ("import sys; from workbench.encoders import create_location_encoder; "
            "create_location_encoder('geoclip'); "
            "print(sorted(m for m in ('geoclip', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "[]"
