"""GPS -> soft-token sequences: the models of the soft-prompt line (no training here).

Every model has one contract. Input: location features [B, F] from a frozen location
encoder (GeoCLIP: F = 512; the encoder is not part of the model, so its 9.45M weights are
neither trained nor saved in checkpoints). Output: a dict with

- ``tokens``  [B, L, D]  the predicted sequence (MiniLM: L <= 32, D = 384; CLIP: 77 x 768)
- ``weights`` [B, K]     mixture weights over the dictionary (``softprompt`` only; rows sum to 1)
- ``logits``  [B, K]     the conditioning network's logits before the temperature

Registered in ``SEQUENCE_MODELS`` (``create_sequence_model(name, feature_dim=, seq_len=,
token_dim=, **options)``):

| name | what |
| --- | --- |
| ``softprompt`` | conditioning MLP -> softmax(logits / T) over K learnable sequences [K, L, D] -> their mixture |
| ``lightweight_transformer`` | L learned queries decode the sequence, cross-attending to M memory tokens made from the features |
| ``direct`` | an MLP from the features straight to the L * D numbers |

``parameter_counts`` reports trainable and frozen parameters with the dictionary counted
(K * L * D is most of the soft-prompt model; the reference's "~150K trainable" counted only
the conditioning network).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any

import torch
from torch import nn

from workbench.lines.softprompt.config import SoftPromptConfig
from workbench.registry import Registry

SEQUENCE_MODELS: Registry["SequenceModel"] = Registry("soft-prompt model")


class SequenceModel(nn.Module):
    """Base class: ``forward(features [B, F]) -> {"tokens": [B, L, D], ...}``."""

    def __init__(self, feature_dim: int, seq_len: int, token_dim: int):
        super().__init__()
        self.feature_dim, self.seq_len, self.token_dim = feature_dim, seq_len, token_dim

    @property
    def dictionary(self) -> "SoftPromptDictionary | None":
        return None


class SoftPromptDictionary(nn.Module):
    """K learnable soft-token sequences ``entries`` [K, L, D]; ``forward(weights [B, K]) -> [B, L, D]``."""

    def __init__(self, n_entries: int, seq_len: int, token_dim: int):
        super().__init__()
        self.entries = nn.Parameter(torch.randn(n_entries, seq_len, token_dim) * 0.02)

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        K, L, D = self.entries.shape
        return (weights @ self.entries.reshape(K, L * D)).reshape(-1, L, D)  # (B, L, D)


class GeoDictMixer(nn.Module):
    """The conditioning network: location features [B, F] -> logits over K entries [B, K]."""

    def __init__(self, feature_dim: int, n_entries: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        # LayerNorm first: GeoCLIP features are unnormalised sums of three branches.
        self.net = nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, n_entries))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


@SEQUENCE_MODELS.register("softprompt")
class SoftPromptModel(SequenceModel):
    """features -> softmax(mixer(features) / temperature) [B, K] -> weights @ entries [B, L, D]."""

    def __init__(self, feature_dim: int, seq_len: int, token_dim: int, n_entries: int = 64,
                 hidden: int = 256, temperature: float = 0.7, dropout: float = 0.1, **_: Any):
        super().__init__(feature_dim, seq_len, token_dim)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.mixer = GeoDictMixer(feature_dim, n_entries, hidden, dropout)
        self.soft_dict = SoftPromptDictionary(n_entries, seq_len, token_dim)

    @property
    def dictionary(self) -> SoftPromptDictionary:
        return self.soft_dict

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.mixer(features)  # (B, K)
        weights = torch.softmax(logits / self.temperature, dim=-1)  # (B, K), rows sum to 1
        return {"tokens": self.soft_dict(weights), "weights": weights, "logits": logits}


@SEQUENCE_MODELS.register("lightweight_transformer")
class LightweightTransformer(SequenceModel):
    """L learned position queries -> a small pre-norm TransformerDecoder over M memory tokens
    projected from the features -> Linear(d_model, D)."""

    def __init__(self, feature_dim: int, seq_len: int, token_dim: int, d_model: int = 128,
                 layers: int = 2, heads: int = 4, memory_tokens: int = 4, dropout: float = 0.1, **_: Any):
        super().__init__(feature_dim, seq_len, token_dim)
        self.memory_tokens, self.d_model = memory_tokens, d_model
        self.norm = nn.LayerNorm(feature_dim)
        self.memory = nn.Linear(feature_dim, memory_tokens * d_model)
        self.queries = nn.Parameter(torch.randn(seq_len, d_model) * 0.02)
        layer = nn.TransformerDecoderLayer(d_model, heads, dim_feedforward=2 * d_model, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.out = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, token_dim))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        B = features.shape[0]
        memory = self.memory(self.norm(features)).reshape(B, self.memory_tokens, self.d_model)  # (B, M, d)
        queries = self.queries.unsqueeze(0).expand(B, -1, -1)  # (B, L, d)
        return {"tokens": self.out(self.decoder(queries, memory))}  # (B, L, D)


@SEQUENCE_MODELS.register("direct")
class DirectSequenceModel(SequenceModel):
    """LayerNorm -> Linear(F, H) -> GELU -> Dropout -> Linear(H, L * D), reshaped to [B, L, D]."""

    def __init__(self, feature_dim: int, seq_len: int, token_dim: int, hidden: int = 256,
                 dropout: float = 0.1, **_: Any):
        super().__init__(feature_dim, seq_len, token_dim)
        self.net = nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, seq_len * token_dim))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"tokens": self.net(features).reshape(-1, self.seq_len, self.token_dim)}


def create_sequence_model(name: str, feature_dim: int, seq_len: int, token_dim: int, **options: Any) -> SequenceModel:
    """Build the model registered as ``name`` from the whole model section; a built config
    has already refused options of another architecture (``option(applies=...)``)."""
    return SEQUENCE_MODELS.create(name, feature_dim=feature_dim, seq_len=seq_len, token_dim=token_dim, **options)


def location_encoder_kwargs(name: str) -> dict[str, Any]:
    """Builder arguments of the frozen location encoder ``name``: a randomly initialised one
    (rff, sh_siren, ...) is drawn from seed 0, so training, the explorer and the CLI all see
    the same features; a pretrained one (geoclip) takes none."""
    from workbench.encoders.location import LOCATION_ENCODERS

    return {"seed": 0} if "seed" in inspect.signature(LOCATION_ENCODERS.get(name)).parameters else {}


def location_encoder(name: str) -> nn.Module:
    """The frozen location encoder ``name`` in eval mode (GeoCLIP: [B, 2] degrees -> [B, 512])."""
    from workbench.encoders.location import create_location_encoder

    return create_location_encoder(name, **location_encoder_kwargs(name)).requires_grad_(False).eval()


@functools.lru_cache(maxsize=None)
def feature_dim(name: str) -> int:
    """F, the output size of the location encoder ``name`` (built once per process)."""
    return int(location_encoder(name).out_dim)


def model_dims(cfg: SoftPromptConfig) -> tuple[int, int, int]:
    """(F, L, D): feature size, sequence length and token size."""
    from workbench.encoders.text import text_encoder_class

    text = text_encoder_class(cfg.targets.encoder)
    return feature_dim(cfg.features.location_encoder), text.seq_len(cfg.targets.max_tokens), text.dim


def build_sequence_model(cfg: SoftPromptConfig) -> SequenceModel:
    """The untrained model a config describes (random dictionary; see ``init_dictionary``)."""
    F, L, D = model_dims(cfg)
    m = cfg.model
    return create_sequence_model(m.arch, feature_dim=F, seq_len=L, token_dim=D, **dataclasses.asdict(m))


@torch.no_grad()
def init_dictionary(model: SequenceModel, targets: torch.Tensor, candidates: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Set the K entries to the target sequences of K prompts drawn without replacement.

    targets: [N, L, D]; candidates: row indices [M] to draw from (default: all N rows; pass
    the training rows so held-out targets never leak into the model). Returns the drawn rows
    [K]. Starting from real sequences puts every entry on the data manifold, so each one
    starts out useful.
    """
    entries = model.dictionary.entries
    K = entries.shape[0]
    pool = torch.arange(len(targets)) if candidates is None else torch.as_tensor(candidates, dtype=torch.long)
    if len(pool) < K:
        raise ValueError(f"need at least K={K} target sequences to initialise the dictionary, got {len(pool)}")
    rows = pool[torch.randperm(len(pool), generator=generator)[:K]]
    entries.copy_(targets[rows].to(entries))
    return rows


def parameter_counts(model: nn.Module, location_encoder: nn.Module | None = None) -> dict[str, int]:
    """Honest counts: trainable / frozen, the dictionary (K * L * D) included and also shown apart.

    ``frozen`` adds the location encoder's parameters (GeoCLIP: 9.45M), which the model
    consumes but never trains.
    """
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen_in_model = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    encoder = sum(p.numel() for p in location_encoder.parameters()) if location_encoder is not None else 0
    dictionary = getattr(model, "dictionary", None)
    dict_params = dictionary.entries.numel() if dictionary is not None else 0
    return {
        "trainable": trainable,
        "dictionary": dict_params,
        "trainable_without_dictionary": trainable - dict_params,
        "frozen": frozen_in_model + encoder,
        "frozen_location_encoder": encoder,
        "total": trainable + frozen_in_model + encoder,
    }
