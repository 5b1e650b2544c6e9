"""The geolocation classifier: image backbone -> head -> logits over S2 cells.

``HEADS`` registers the classifier heads (``create_head(name, in_features, n_outputs, ...)``):

| name | layers |
| --- | --- |
| ``linear`` | [Dropout] -> Linear(D, n) |
| ``mlp`` | [Dropout] -> Linear(D, hidden) -> GELU -> [Dropout] -> Linear(hidden, n); ``dropout_position`` picks the before / after slot |

``GeoClassifier.forward`` takes images [B, C, H, W] or precomputed backbone features [B, D]
(``data.cache_features``), so one training step serves both.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from workbench.encoders.image import Backbone, create_image_backbone
from workbench.errors import ConfigError
from workbench.lines.geolocator.labels import LabelSpace
from workbench.registry import Registry

HEADS: Registry[Callable[..., nn.Module]] = Registry("classifier head")


@HEADS.register("linear")
def linear_head(in_features: int, n_outputs: int, dropout: float = 0.0, **_: object) -> nn.Module:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, n_outputs))


@HEADS.register("mlp")
def mlp_head(in_features: int, n_outputs: int, hidden: int = 2048, dropout: float = 0.0,
             dropout_position: str = "after", **_: object) -> nn.Module:
    """One hidden layer. The work log found dropout after the hidden layer better than on the
    backbone features (before), hence the default."""
    if hidden < 1:
        raise ConfigError(f"model.hidden must be >= 1 for the mlp head, got {hidden}")
    if dropout_position not in ("before", "after"):
        raise ConfigError(f"model.dropout_position {dropout_position!r} is not valid. "
                          "Choose one of ['before', 'after']")
    before = nn.Dropout(dropout if dropout_position == "before" else 0.0)
    after = nn.Dropout(dropout if dropout_position == "after" else 0.0)
    return nn.Sequential(before, nn.Linear(in_features, hidden), nn.GELU(), after,
                         nn.Linear(hidden, n_outputs))


def create_head(name: str, in_features: int, n_outputs: int, **kw) -> nn.Module:
    if not 0.0 <= kw.get("dropout", 0.0) < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {kw['dropout']}")
    return HEADS.create(name, in_features=in_features, n_outputs=n_outputs, **kw)


class GeoClassifier(nn.Module):
    """backbone [B, C, H, W] -> [B, D]; head [B, D] -> logits [B, n_outputs]; ``labels``
    holds the partition and turns logits into cell probabilities."""

    def __init__(self, backbone: nn.Module, head: nn.Module, labels: LabelSpace, num_features: int):
        super().__init__()
        self.backbone, self.head, self.labels = backbone, head, labels
        self.num_features = num_features
        self.backbone_frozen = False

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, D] pooled features; x is images [B, C, H, W] or already features [B, D]."""
        return x if x.ndim == 2 else self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def cell_probs(self, x: torch.Tensor) -> torch.Tensor:
        """P(cell) [B, K] for images or features x."""
        return self.labels.cell_log_probs(self(x)).exp()

    def freeze_backbone(self, frozen: bool) -> None:
        """Stop (or restart) training the backbone. A frozen backbone also stays in eval mode,
        so its BatchNorm statistics are not updated by the head-only epochs."""
        self.backbone_frozen = frozen
        for p in self.backbone.parameters():
            p.requires_grad_(not frozen)
        self.backbone.train(self.training and not frozen)

    def train(self, mode: bool = True) -> "GeoClassifier":
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self


class CellProbabilities(nn.Module):
    """images [B, C, H, W] -> P(cell) [B, K]: the graph exported to ONNX."""

    def __init__(self, model: GeoClassifier):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.cell_probs(images)


def build_classifier(model_cfg, labels: LabelSpace, in_chans: int = 3,
                     backbone: Backbone | None = None) -> tuple[GeoClassifier, Backbone]:
    """The classifier for a ``GeoModelConfig``; pass ``backbone`` to reuse a built one."""
    backbone = backbone or create_image_backbone(model_cfg.backbone, model_cfg.weights, in_chans)
    head = create_head(model_cfg.head, backbone.num_features, labels.n_outputs, hidden=model_cfg.hidden,
                       dropout=model_cfg.dropout, dropout_position=model_cfg.dropout_position)
    return GeoClassifier(backbone.model, head, labels, backbone.num_features), backbone
