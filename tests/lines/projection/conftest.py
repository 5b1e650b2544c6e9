"""Fixtures of the projection tests: a small synthetic pre-encoded folder (split), where the
captions carry a noisy view of a latent shared with their image, so heads can learn it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.config import applicable
from workbench.contrastive.encoded import EncodedPairs, SplitSpec, save_encoded, split_encoded
from workbench.experiments import build_config
from workbench.lines.projection.config import ProjectionModelConfig

D_IMG, D_TXT = 48, 24


def synthetic_pairs(n_images: int = 300, per_image: int = 5, seed: int = 0) -> EncodedPairs:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n_images, 16, generator=g)
    image = z @ torch.randn(16, D_IMG, generator=g) + 0.1 * torch.randn(n_images, D_IMG, generator=g)
    text = (z.repeat_interleave(per_image, 0) @ torch.randn(16, D_TXT, generator=g)
            + 0.5 * torch.randn(n_images * per_image, D_TXT, generator=g))
    ids = np.arange(n_images) + 10
    images = pd.DataFrame({"image_id": ids, "lat": np.linspace(-50, 50, n_images), "lon": np.linspace(-170, 170, n_images),
                           "country": "FR", "country_name": "France", "continent": "Europe",
                           "place": [f"place {i}" for i in ids], "path": "", "group": [f"g{i // 3}" for i in ids]})
    return EncodedPairs(image, text, torch.arange(n_images).repeat_interleave(per_image), ids,
                        [f"caption {i} of image {i // per_image + 10}" for i in range(n_images * per_image)], images,
                        extra={"encoders": {"image": "synthetic", "text": "synthetic"}})


@pytest.fixture(scope="session")
def encoded_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoded")
    save_encoded(folder, "all", synthetic_pairs())
    split_encoded(folder, SplitSpec())
    return folder


def small_config(folder, head: str = "mlp", loss: str = "clip", **flat):
    """A tiny CPU config of ``head`` and ``loss`` over ``folder``: each head's size options small."""
    model = applicable(ProjectionModelConfig, {"type": head, "output_dim": 16, "hidden_dim": 32, "num_tokens": 4,
                                               "num_heads": 2, "num_layers": 1})
    loss_opts = {"queue_size": 64} if loss in ("queue", "blip") else {}
    values = {"data.dir": str(folder), **{f"model.{k}": v for k, v in model.items()}, "loss.type": loss,
              **{f"loss.{k}": v for k, v in loss_opts.items()}, "train.batch_size": 32, "train.device": "cpu",
              "train.max_epochs": 2, **flat}
    return build_config({"kind": "projection"}, [f"{k}={v}" for k, v in values.items()])
