"""SatCLIP: an image encoder and a location encoder, each with the note's projection head,
aligned by the core's ``clip`` loss with a learned temperature.

    tiles [B, C, S, S] -> backbone (timm / offline preset, any in_chans) -> [B, F] -> Project -> [B, d]
    lat/lon [B, 2]     -> location encoder (sh_siren, rff, geoclip, direct) -> [B, L] -> Project -> [B, d]

With a frozen backbone the model takes cached features [B, F] instead of tiles.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from workbench.contrastive.losses import create_loss
from workbench.lines.satclip.config import SatClipConfig


class Project(nn.Module):
    """The note's projection: x -> p = Linear(x); Linear(GELU(p)) -> Dropout -> + p -> LayerNorm."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.1):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)
        self.fc = nn.Linear(out_dim, out_dim)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.proj(x)
        return self.norm(self.dropout(self.fc(F.gelu(p))) + p)


def build_location_encoder(cfg: SatClipConfig) -> nn.Module:
    from workbench.encoders.location import create_location_encoder

    m = cfg.model
    kwargs = {"sh_siren": {"num_degrees": m.legendre_degrees, "out_dim": m.location_dim, "seed": cfg.seed},
              "rff": {"out_dim": m.location_dim, "seed": cfg.seed},
              "geoclip": {}, "direct": {}}.get(m.location_encoder, {})
    encoder = create_location_encoder(m.location_encoder, **kwargs)
    if m.freeze_location:
        encoder.requires_grad_(False)
    return encoder


class SatClipModel(nn.Module):
    """Returns the clip loss's features dict from (images or features, latlon)."""

    def __init__(self, cfg: SatClipConfig, image_features_dim: int, backbone: nn.Module | None = None,
                 in_chans: int = 0):
        super().__init__()
        m = cfg.model
        # what a loader needs to rebuild the model from a state dict: feature width, bands
        self.register_buffer("dims", torch.tensor([image_features_dim, in_chans]))
        self.backbone = backbone  # None: the inputs are cached backbone features
        self.location_encoder = build_location_encoder(cfg)
        self.image_head = Project(image_features_dim, m.embed_dim, m.dropout)
        self.location_head = Project(self.location_encoder.out_dim, m.embed_dim, m.dropout)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.criterion = create_loss("clip")

    def project_image(self, x: torch.Tensor) -> torch.Tensor:
        """[B, d] before normalisation (tiles, or cached features when the backbone is frozen)."""
        return self.image_head(self.backbone(x) if self.backbone is not None else x)

    def project_location(self, latlon: torch.Tensor) -> torch.Tensor:
        return self.location_head(self.location_encoder(latlon))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project_image(x), dim=-1)

    def encode_location(self, latlon: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project_location(latlon), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(0, math.log(100)).exp()  # open_clip: at most 100

    def loss(self, image: torch.Tensor, latlon: torch.Tensor) -> dict[str, torch.Tensor]:
        """The clip loss and what is logged with it: temperature (as the logit scale) and the
        mean norms of the image and location embeddings before normalisation."""
        img, loc = self.project_image(image), self.project_location(latlon)
        out = self.criterion({"image_features": F.normalize(img, dim=-1), "text_features": F.normalize(loc, dim=-1),
                              "logit_scale": self.scale()})
        out["image_norm"] = img.detach().norm(dim=-1).mean()
        out["location_norm"] = loc.detach().norm(dim=-1).mean()
        return out


class Normalize(nn.Module):
    """Per-band (x - mean) / std in front of a backbone (its expected input statistics)."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32)[None, :, None, None])
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32)[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_backbone(cfg: SatClipConfig, in_chans: int) -> tuple[nn.Module, int]:
    from workbench.encoders.image import create_image_backbone

    b = create_image_backbone(cfg.model.backbone, cfg.model.weights, in_chans=in_chans)
    return nn.Sequential(Normalize(b.mean, b.std), b.model), b.num_features


def location_encoder_fn(model: SatClipModel, batch: int = 8192) -> Callable[[np.ndarray], np.ndarray]:
    """latlon [N, 2] degrees -> the model's location embeddings [N, d] (shared space)."""

    @torch.no_grad()
    def encode(latlon: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.array(latlon, np.float32))  # a copy: the input may be read-only
        return torch.cat([model.encode_location(x[i:i + batch]) for i in range(0, len(x), batch)]).numpy()

    return encode
