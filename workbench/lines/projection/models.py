"""Projection heads and the two-tower model that trains them.

``HEADS`` maps a head design to a ``HeadSpec``; ``spec.build(in_dim, cfg.model)`` returns
an ``nn.Module`` [B, in_dim] -> [B, output_dim] (not normalised; the model normalises).
The seven designs of the note:

| name | design |
| --- | --- |
| ``mlp`` | Linear -> LayerNorm -> GELU -> Dropout -> Linear |
| ``attention`` | Linear to ``num_tokens`` tokens, ``num_layers`` self-attention layers over them, LayerNorm, Linear |
| ``cross_modal`` | tokens as above cross-attend to a token bank SHARED by the image and text heads; each modality still embeds on its own, so retrieval stays N + M forward passes (attending to the paired caption, as the note's design suggests, would leak the answer and make retrieval N x M passes) |
| ``siglip`` | one Linear (LiT / SigLIP-style linear head; no dropout) |
| ``clip`` | Linear -> GELU -> Dropout -> Linear without bias (CLIP's projection with a hidden layer) |
| ``align`` | Linear -> BatchNorm -> ReLU -> Dropout -> Linear -> BatchNorm |
| ``blip`` | the mlp design plus momentum (EMA) copies of both heads that give the keys |

``ProjectionModel`` holds both heads, the log logit scale (and the sigmoid loss's bias),
momentum copies when the head or the loss needs them, and the loss module itself (so a
queue's contents live in the state dict and a resumed run continues exactly).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from workbench.contrastive.losses import LOSSES, create_loss, siglip_bias_init
from workbench.lines.projection.config import ProjectionConfig, ProjectionModelConfig
from workbench.registry import Registry


@dataclass(frozen=True)
class HeadSpec:
    build: Callable[[int, ProjectionModelConfig], nn.Module]
    momentum: bool = False  # keeps EMA copies of the heads (the keys of the momentum losses)
    shared_bank: bool = False  # the two heads share their token bank


HEADS: Registry[HeadSpec] = Registry("projection head")


def _mlp(in_dim: int, m: ProjectionModelConfig) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, m.hidden_dim), nn.LayerNorm(m.hidden_dim), nn.GELU(),
                         nn.Dropout(m.dropout), nn.Linear(m.hidden_dim, m.output_dim))


class TokenHead(nn.Module):
    """x [B, in] -> hidden [B, T, W] tokens (T = num_tokens, W = hidden / T) -> blocks ->
    flattened [B, hidden] -> LayerNorm -> Linear -> [B, out]."""

    def __init__(self, in_dim: int, m: ProjectionModelConfig, blocks: nn.ModuleList):
        super().__init__()
        self.tokens, self.width = m.num_tokens, m.hidden_dim // m.num_tokens
        self.embed = nn.Linear(in_dim, m.hidden_dim)
        self.position = nn.Parameter(torch.zeros(1, self.tokens, self.width))
        self.blocks = blocks
        self.norm = nn.LayerNorm(m.hidden_dim)
        self.out = nn.Linear(m.hidden_dim, m.output_dim)
        self.dropout = nn.Dropout(m.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x).view(len(x), self.tokens, self.width) + self.position  # (B, T, W)
        for block in self.blocks:
            h = block(h)
        return self.out(self.dropout(self.norm(h.flatten(1))))


def _attention(in_dim: int, m: ProjectionModelConfig) -> nn.Module:
    width = m.hidden_dim // m.num_tokens
    layers = nn.ModuleList(
        nn.TransformerEncoderLayer(width, m.num_heads, dim_feedforward=2 * width, dropout=m.dropout,
                                   activation="gelu", batch_first=True, norm_first=True)
        for _ in range(m.num_layers))
    return TokenHead(in_dim, m, layers)


class BankAttention(nn.Module):
    """Tokens [B, T, W] cross-attend to a learned bank [K, W] (pre-norm, residual, FFN)."""

    def __init__(self, width: int, n_bank: int, heads: int, dropout: float):
        super().__init__()
        self.bank = nn.Parameter(torch.randn(n_bank, width) / math.sqrt(width))
        self.norm_q, self.norm_ff = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(2 * width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        bank = self.bank.expand(len(h), -1, -1)  # (B, K, W)
        h = h + self.attn(self.norm_q(h), bank, bank, need_weights=False)[0]
        return h + self.ff(self.norm_ff(h))


def _cross_modal(in_dim: int, m: ProjectionModelConfig) -> nn.Module:
    width = m.hidden_dim // m.num_tokens
    return TokenHead(in_dim, m, nn.ModuleList([BankAttention(width, m.num_tokens, m.num_heads, m.dropout)]))


def _siglip(in_dim: int, m: ProjectionModelConfig) -> nn.Module:
    return nn.Sequential(nn.Dropout(m.dropout), nn.Linear(in_dim, m.output_dim))


def _clip(in_dim: int, m: ProjectionModelConfig) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, m.hidden_dim), nn.GELU(), nn.Dropout(m.dropout),
                         nn.Linear(m.hidden_dim, m.output_dim, bias=False))


def _align(in_dim: int, m: ProjectionModelConfig) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, m.hidden_dim), nn.BatchNorm1d(m.hidden_dim), nn.ReLU(),
                         nn.Dropout(m.dropout), nn.Linear(m.hidden_dim, m.output_dim),
                         nn.BatchNorm1d(m.output_dim))


HEADS.register("mlp")(HeadSpec(_mlp))
HEADS.register("attention")(HeadSpec(_attention))
HEADS.register("cross_modal")(HeadSpec(_cross_modal, shared_bank=True))
HEADS.register("siglip")(HeadSpec(_siglip))
HEADS.register("clip")(HeadSpec(_clip))
HEADS.register("align")(HeadSpec(_align))
HEADS.register("blip")(HeadSpec(_mlp, momentum=True))


def _tie_banks(a: nn.Module, b: nn.Module) -> None:
    for block_a, block_b in zip(a.blocks, b.blocks):
        block_b.bank = block_a.bank


def loss_kwargs(cfg: ProjectionConfig, ramp_steps: int) -> dict:
    """Constructor arguments of the configured loss."""
    loss, dim = cfg.loss, cfg.model.output_dim
    return {"clip": {}, "align": {"label_smoothing": loss.label_smoothing},
            "siglip": {"chunk_size": loss.chunk_size, "dist_impl": loss.dist_impl},
            "queue": {"dim": dim, "queue_size": loss.queue_size, "seed": cfg.seed},
            "blip": {"dim": dim, "queue_size": loss.queue_size, "alpha": loss.alpha, "ramp_steps": ramp_steps,
                     "seed": cfg.seed}}.get(loss.type, {})


class ProjectionModel(nn.Module):
    """Image features [B, D_img] and text features [B, D_txt] -> the loss's features dict."""

    def __init__(self, image_dim: int, text_dim: int, cfg: ProjectionConfig, ramp_steps: int = 0):
        super().__init__()
        m, spec, loss_cls = cfg.model, HEADS.get(cfg.model.type), LOSSES.get(cfg.loss.type)
        self.register_buffer("dims", torch.tensor([image_dim, text_dim]))
        self.image_head, self.text_head = spec.build(image_dim, m), spec.build(text_dim, m)
        if spec.shared_bank:
            _tie_banks(self.image_head, self.text_head)
        scale = 1.0 / cfg.loss.temperature if cfg.loss.temperature > 0 else loss_cls.init_logit_scale
        log_scale = torch.tensor(math.log(scale))
        if m.learnable_temp:
            self.logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("logit_scale", log_scale)
        self.scale_range = (math.log(loss_cls.min_logit_scale), math.log(loss_cls.max_logit_scale))
        self.logit_bias = None
        if loss_cls.uses_bias:
            bias = siglip_bias_init(cfg.train.batch_size) if cfg.loss.bias_init == "log_batch" \
                else loss_cls.init_logit_bias
            self.logit_bias = nn.Parameter(torch.tensor(float(bias)))
        self.momentum = m.momentum if (spec.momentum or loss_cls.uses_momentum) else None
        if self.momentum is not None:
            self.image_head_m = copy.deepcopy(self.image_head).requires_grad_(False)
            self.text_head_m = copy.deepcopy(self.text_head).requires_grad_(False)
        self.criterion = create_loss(cfg.loss.type, **loss_kwargs(cfg, ramp_steps))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_head(x), dim=-1)

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(x), dim=-1)

    def scale(self) -> torch.Tensor:
        """The logit scale multiplier, exp of the clamped log (open_clip clamps at ln 100)."""
        return self.logit_scale.clamp(*self.scale_range).exp()

    @torch.no_grad()
    def _update_momentum(self) -> None:
        for online, key in ((self.image_head, self.image_head_m), (self.text_head, self.text_head_m)):
            for p, q in zip(online.parameters(), key.parameters()):
                q.mul_(self.momentum).add_(p.detach(), alpha=1 - self.momentum)
            for b, c in zip(online.buffers(), key.buffers()):  # BatchNorm statistics follow
                c.copy_(b)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"image_features": self.encode_image(image), "text_features": self.encode_text(text),
               "logit_scale": self.scale()}
        if self.logit_bias is not None:
            out["logit_bias"] = self.logit_bias
        if self.momentum is not None:
            if self.training:  # MoCo: step the key encoder, then compute the keys
                self._update_momentum()
            with torch.no_grad():
                out["image_features_m"] = F.normalize(self.image_head_m(image), dim=-1)
                out["text_features_m"] = F.normalize(self.text_head_m(text), dim=-1)
        return out

    def loss(self, image: torch.Tensor, text: torch.Tensor, image_ids: torch.Tensor | None = None
             ) -> dict[str, torch.Tensor]:
        features = self(image, text)
        if image_ids is not None:
            features["image_ids"] = image_ids
        return self.criterion(features)


def build_model(cfg: ProjectionConfig, image_dim: int, text_dim: int, ramp_steps: int = 0) -> ProjectionModel:
    """The model seeded by ``cfg.seed`` (the same weights every time: the untrained baseline)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return ProjectionModel(image_dim, text_dim, cfg, ramp_steps)


def no_decay(name: str, p: nn.Parameter) -> bool:
    """Temperature, bias, norms, biases and position embeddings take no weight decay."""
    return p.ndim < 2 or name.endswith(("logit_scale", "logit_bias", "position", "bank"))


def parameter_groups(model: nn.Module) -> list[dict]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if not no_decay(n, p)]},
              {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def count_parameters(model: ProjectionModel) -> dict[str, int]:
    """Trainable parameters (shared banks once) and the momentum copies (not trained)."""
    trainable = {id(p): p.numel() for p in model.parameters() if p.requires_grad}
    momentum = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("image_head_m", "text_head_m")))
    return {"trainable": int(sum(trainable.values())), "momentum_copies": int(momentum)}
