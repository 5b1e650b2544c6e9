"""CLIP's two towers, trained from scratch, and the contrastive model that joins them.

    images [B, 3, S, S] -> VisionTower (ViT, [CLS] state) [B, W_img] -> image_proj -> [B, E]
    tokens [B, L]       -> TextTower (end-token or mean pool) [B, W_txt] -> text_proj -> [B, E]

Both towers are pre-norm transformers (``Block``) with learned positional embeddings and a
final LayerNorm. ``ClipModel`` L2-normalises the two [B, E] embeddings and hands them, with
its learned and clamped logit scale (and SigLIP's bias), to the core loss named by
``cfg.loss.type``. ``param_groups`` gives AdamW decay on weight matrices only (open_clip's
rule); ``count_parameters`` the size of each tower.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.contrastive.losses import LOSSES, create_loss
from workbench.lines.clip.config import ClipConfig

# 2-D (or 3-D) parameters that are embeddings of positions, not weight matrices: no decay
NO_DECAY_NAMES = ("cls_token", "positional_embedding", "logit_scale", "logit_bias")


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x)); MLP width 4 x D."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.attn_dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(4 * width, width))
        self.dropout = nn.Dropout(dropout)

    def attend(self, x: Tensor, keep: Tensor | None, causal: bool) -> Tensor:
        """x (B, L, D); keep (B, L) bool, the keys to attend to (None: all)."""
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, d)
        mask = None if keep is None else keep[:, None, None, :]  # (B, 1, 1, L), broadcast over heads and queries
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           dropout_p=self.attn_dropout if self.training else 0.0)  # (B, H, L, d)
        return self.proj(y.transpose(1, 2).reshape(B, L, D))

    def forward(self, x: Tensor, keep: Tensor | None = None, causal: bool = False) -> Tensor:
        x = x + self.dropout(self.attend(self.norm1(x), keep, causal))  # (B, L, D)
        return x + self.dropout(self.mlp(self.norm2(x)))


def init_weights(module: nn.Module) -> None:
    """ViT / CLIP init: linear and patch weights trunc-normal std 0.02, biases zero
    (LayerNorms keep ones / zeros; embeddings are drawn by their tower)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class VisionTower(nn.Module):
    """ViT: (S / P)^2 patches from a stride-P conv, a learned [CLS] token in front, learned
    positions, ``depth`` pre-norm blocks, a final LayerNorm; the output is the [CLS] state."""

    def __init__(self, img_size: int, patch_size: int, width: int, depth: int, heads: int,
                 dropout: float = 0.0, in_chans: int = 3):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"patch_size ({patch_size}) must divide img_size ({img_size})")
        self.img_size, self.width = img_size, width
        self.patch_embed = nn.Conv2d(in_chans, width, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.positional_embedding = nn.Parameter(torch.zeros(1, (img_size // patch_size) ** 2 + 1, width))
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(width, heads, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        init_weights(self)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.positional_embedding, std=0.02)

    def forward(self, images: Tensor) -> Tensor:
        """images float (B, C, S, S) -> (B, width)."""
        if images.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"the vision tower takes {self.img_size} x {self.img_size} images "
                             f"(model.img_size), got {tuple(images.shape[-2:])}")
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, N, D), N = (S / P)^2
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)  # (B, N + 1, D)
        x = self.dropout(x + self.positional_embedding)
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, 0])  # (B, D)


class TextTower(nn.Module):
    """Token + learned positional embeddings, ``depth`` pre-norm blocks, a final LayerNorm.

    causal: each position sees only itself and the ones before (CLIP), and the caption is the
    state at its last non-pad position (the end token), which therefore saw every token of
    the caption and none of the padding. Bidirectional: pad keys are masked out and the
    caption is the mean of the states at its non-pad positions.
    """

    def __init__(self, vocab_size: int, context_length: int, width: int, depth: int, heads: int,
                 causal: bool = True, pad_id: int = 0, dropout: float = 0.0):
        super().__init__()
        self.context_length, self.causal, self.pad_id, self.width = context_length, causal, pad_id, width
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.zeros(context_length, width))
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(width, heads, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        init_weights(self)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)  # CLIP's

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens long (B, L), right-padded with pad_id, L <= context_length -> (B, width)."""
        B, L = tokens.shape
        if L > self.context_length:
            raise ValueError(f"captions of {L} tokens exceed the text tower's context_length "
                             f"({self.context_length}); tokenize with that context length")
        real = tokens != self.pad_id  # (B, L)
        x = self.dropout(self.token_embedding(tokens) + self.positional_embedding[:L])  # (B, L, D)
        # bidirectional: an all-pad row would attend to no key (NaN); let it attend to all
        keep = None if self.causal else real | ~real.any(dim=1, keepdim=True)
        for block in self.blocks:
            x = block(x, keep=keep, causal=self.causal)
        x = self.norm(x)
        if self.causal:
            last = (real * torch.arange(L, device=tokens.device)).argmax(dim=1)  # (B,) last non-pad index
            return x[torch.arange(B, device=tokens.device), last]
        weights = real.to(x.dtype)[..., None]  # (B, L, 1)
        return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


class ClipModel(nn.Module):
    """Both towers, their bias-free projections to ``output_dim``, the learned logit scale
    (stored as its log, clamped when used) and, for ``siglip``, the learned logit bias."""

    def __init__(self, cfg: ClipConfig, vocab_size: int, pad_id: int):
        super().__init__()
        m = cfg.model
        self.cfg = cfg
        self.image_tower = VisionTower(m.img_size, m.patch_size, m.embed_dim, m.depth, m.num_heads, m.dropout)
        self.text_tower = TextTower(vocab_size, cfg.text.context_length, m.text_embed_dim, m.text_depth,
                                    m.text_heads, m.causal, pad_id, m.dropout)
        self.image_proj = nn.Linear(m.embed_dim, m.output_dim, bias=False)
        self.text_proj = nn.Linear(m.text_embed_dim, m.output_dim, bias=False)
        # CLIP's projection init: std width^-0.5 keeps the embedding norms O(1)
        nn.init.normal_(self.image_proj.weight, std=m.embed_dim ** -0.5)
        nn.init.normal_(self.text_proj.weight, std=m.text_embed_dim ** -0.5)

        loss_cls = LOSSES.get(cfg.loss.type)
        start = 1.0 / m.temperature
        self.logit_scale = nn.Parameter(torch.tensor(math.log(start)))
        # the loss's range, widened below so that a configured temperature > 1 is not
        # clamped flat (and so without gradient) from the first step
        self.scale_range = (math.log(min(loss_cls.min_logit_scale, start)), math.log(loss_cls.max_logit_scale))
        self.logit_bias = nn.Parameter(torch.tensor(float(loss_cls.init_logit_bias))) if loss_cls.uses_bias else None
        self.criterion = create_loss(cfg.loss.type)

    def embed_image(self, images: Tensor) -> Tensor:
        """images (B, 3, S, S) -> (B, E), before normalisation."""
        return self.image_proj(self.image_tower(images))

    def embed_text(self, tokens: Tensor) -> Tensor:
        """tokens (B, L) -> (B, E), before normalisation."""
        return self.text_proj(self.text_tower(tokens))

    def encode_image(self, images: Tensor) -> Tensor:
        """images (B, 3, S, S) -> (B, E), unit L2 norm."""
        return F.normalize(self.embed_image(images), dim=-1)

    def encode_text(self, tokens: Tensor) -> Tensor:
        """tokens (B, L) -> (B, E), unit L2 norm."""
        return F.normalize(self.embed_text(tokens), dim=-1)

    def scale(self) -> Tensor:
        """The logit scale multiplier (1 / temperature), exp of the clamped log: <= 100."""
        return self.logit_scale.clamp(*self.scale_range).exp()

    def features(self, image_features: Tensor, text_features: Tensor, image_ids: Tensor | None = None
                 ) -> dict[str, Tensor]:
        """The core loss's input dict from normalised (B, E) features."""
        out = {"image_features": image_features, "text_features": text_features, "logit_scale": self.scale()}
        if self.logit_bias is not None:
            out["logit_bias"] = self.logit_bias
        if image_ids is not None:
            out["image_ids"] = image_ids
        return out

    def forward(self, images: Tensor, tokens: Tensor) -> dict[str, Tensor]:
        return self.features(self.encode_image(images), self.encode_text(tokens))

    def loss(self, images: Tensor, tokens: Tensor, image_ids: Tensor | None = None) -> dict[str, Tensor]:
        """The core loss (``loss`` plus its logged terms, among them ``logit_scale``) and the
        mean embedding norms before normalisation, ``image_norm`` / ``text_norm``. Pairs
        sharing an ``image_ids`` entry [B] count as positives."""
        img, txt = self.embed_image(images), self.embed_text(tokens)  # (B, E)
        out = self.criterion(self.features(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), image_ids))
        out["image_norm"] = img.detach().norm(dim=-1).mean()
        out["text_norm"] = txt.detach().norm(dim=-1).mean()
        return out


def decays(name: str, p: nn.Parameter) -> bool:
    """open_clip's rule: weight matrices decay (linear, attention, patch conv, token
    embedding); norms, biases, positions, the [CLS] token and the temperature do not."""
    return p.ndim >= 2 and name.split(".")[-1] not in NO_DECAY_NAMES


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups over the trainable parameters: decayed weight matrices, the rest at 0."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if decays(n, p)], "weight_decay": weight_decay},
              {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def count_parameters(model: ClipModel) -> dict[str, int]:
    """Parameters of the image side (tower + projection), the text side, and in all
    (both plus the logit scale and bias)."""
    def size(*modules: nn.Module) -> int:
        return int(sum(p.numel() for m in modules for p in m.parameters()))

    return {"image": size(model.image_tower, model.image_proj), "text": size(model.text_tower, model.text_proj),
            "total": size(model)}


# -- the tokenizer inside the model ---------------------------------------------------------


def attach_tokenizer(model: nn.Module, tokenizer) -> nn.Module:
    """Store the tokenizer in the model's state dict (a uint8 buffer of its state JSON)."""
    import json

    blob = json.dumps(tokenizer.state()).encode("utf-8")
    model.register_buffer("tokenizer_state", torch.tensor(list(blob), dtype=torch.uint8), persistent=True)
    return model


def tokenizer_from_state(state: dict):
    """The tokenizer stored by ``attach_tokenizer`` in a state dict."""
    import json

    from workbench.errors import WorkbenchError
    from workbench.lines.clip.tokenizer import ClipTokenizer  # the bottom of the line: no cycle

    if "tokenizer_state" not in state:
        raise WorkbenchError("the checkpoint has no tokenizer_state: not a clip model")
    return ClipTokenizer.from_state(json.loads(bytes(state["tokenizer_state"].tolist()).decode("utf-8")))


def build_model(cfg: ClipConfig, tokenizer) -> nn.Module:
    return attach_tokenizer(ClipModel(cfg, tokenizer.vocab_size, tokenizer.pad_id), tokenizer)
