"""The pretrained GeoCLIP location encoder (Vivanco Cepeda et al., NeurIPS 2023).

Our ``RFFLocationEncoder`` reimplements GeoCLIP's ``LocationEncoder`` (Equal Earth projection,
random Fourier features at sigma 2^0, 2^4, 2^8, three 1024-wide ReLU MLPs, 512-d heads,
summed); this module loads the weights shipped in the ``geoclip`` package into it. The
Fourier matrices are part of GeoCLIP's state dict (``LocEncK.capsule.0.b``), so the loaded
encoder reproduces the package's output without its random seed.

The file is read directly: ``import geoclip`` would import transformers (~6 s) for nothing.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch

from workbench.encoders.location.base import LOCATION_ENCODERS
from workbench.encoders.location.rff import RFFLocationEncoder
from workbench.errors import NotFoundError

GEOCLIP_SIGMAS = (2**0, 2**4, 2**8)

# geoclip's parameter names -> ours. capsule = [rff, Linear, ReLU, Linear, ReLU, Linear, ReLU].
_KEY_MAP = [
    (re.compile(r"^LocEnc(\d+)\.capsule\.0\.b$"), r"branches.\1.rff.b"),
    (re.compile(r"^LocEnc(\d+)\.capsule\.1\.(weight|bias)$"), r"branches.\1.mlp.0.\2"),
    (re.compile(r"^LocEnc(\d+)\.capsule\.3\.(weight|bias)$"), r"branches.\1.mlp.2.\2"),
    (re.compile(r"^LocEnc(\d+)\.capsule\.5\.(weight|bias)$"), r"branches.\1.mlp.4.\2"),
    (re.compile(r"^LocEnc(\d+)\.head\.0\.(weight|bias)$"), r"branches.\1.head.\2"),
]


def geoclip_weights_path() -> Path:
    """Path of ``location_encoder_weights.pth`` inside the installed ``geoclip`` package."""
    spec = importlib.util.find_spec("geoclip")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(
            "the GeoCLIP weights ship in the 'geoclip' package, which is not installed; "
            "run: pip install geoclip==1.2.3"
        )
    path = Path(spec.submodule_search_locations[0]) / "model/weights/location_encoder_weights.pth"
    if not path.is_file():
        raise NotFoundError(
            f"GeoCLIP location-encoder weights not found at {path}; "
            "reinstall with: pip install --force-reinstall geoclip==1.2.3"
        )
    return path


def convert_geoclip_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename geoclip's ``LocationEncoder`` keys to ``RFFLocationEncoder`` keys."""
    out = {}
    for key, value in state.items():
        for pattern, target in _KEY_MAP:
            if pattern.match(key):
                out[pattern.sub(target, key)] = value
                break
        else:
            raise ValueError(f"unexpected key in the GeoCLIP state dict: {key}")
    return out


@LOCATION_ENCODERS.register("geoclip")
def geoclip(trainable: bool = False, weights_path: str | Path | None = None) -> RFFLocationEncoder:
    """Pretrained GeoCLIP location encoder: [B, 2] degrees -> [B, 512].

    Frozen by default (``requires_grad`` False, eval mode; outputs still carry gradients
    w.r.t. anything upstream); ``trainable=True`` fine-tunes it. ``weights_path`` overrides
    the packaged file (same format: geoclip's ``LocationEncoder.state_dict()``).
    """
    path = Path(weights_path) if weights_path is not None else geoclip_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    encoder = RFFLocationEncoder(sigmas=GEOCLIP_SIGMAS)
    encoder.load_state_dict(convert_geoclip_state_dict(state), strict=True)
    encoder.config["weights"] = "geoclip"
    encoder.requires_grad_(trainable)
    return encoder.train(trainable)
