"""The ``projection`` run config: data, model (the head), loss and eval sections.

The bottom of the line: it imports only the core. Keys follow the research note's configs
(``model.type``, ``output_dim``, ``hidden_dim``, ``num_heads``, ``num_layers``, ``dropout``,
``momentum``, ``learnable_temp``; ``loss.type``, ``temperature``, ``alpha``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from workbench.config import RunConfig, TrainConfig, option
from workbench.errors import ConfigError
from workbench.registry import RegistryNames

HEADS = RegistryNames("workbench.lines.projection.models:HEADS")
LOSSES = RegistryNames("workbench.contrastive.losses:LOSSES")
TOKEN_HEADS = ("attention", "cross_modal")
HIDDEN_HEADS = ("mlp", "attention", "cross_modal", "clip", "align", "blip")


@dataclass
class ProjectionDataConfig:
    dir: str = option("data/geo-captions", "pre-encoded folder: {split}_image_embeddings.pt, "
                                           "{split}_text_embeddings.pt, {split}_metadata.json "
                                           "(python -m workbench data build-demo; split it with "
                                           "python -m workbench projection split DIR)")
    train_split: str = option("train", "pairs to train on (train_tuning: the fast subset for studies)")
    val_split: str = option("val", "pairs validated on (early stopping, R@K during training)")
    test_split: str = option("test", "pairs of the final evaluation and the artifacts")
    on_device: bool = option(True, "on CUDA, keep the training and validation pairs on the GPU (one copy; "
                                   "batches gathered there, no per-batch host copies); needs train.num_workers=0")


@dataclass
class ProjectionModelConfig:
    """The projection head (one per modality, same design); options of another head fail."""

    type: str = option("mlp", "head design", choices=HEADS)
    output_dim: int = option(256, "shared embedding width", unit="dims", ge=1)
    hidden_dim: int = option(512, "hidden width", unit="units", ge=1, applies={"type": HIDDEN_HEADS})
    dropout: float = option(0.1, "dropout probability", ge=0, lt=1)
    num_heads: int = option(4, "attention / cross_modal: attention heads (divide the token width)",
                            unit="heads", ge=1, applies={"type": TOKEN_HEADS})
    num_layers: int = option(2, "attention: self-attention layers", unit="layers", ge=1,
                             applies={"type": ("attention",)})
    num_tokens: int = option(8, "attention / cross_modal: tokens the hidden vector is split into "
                                "(cross_modal: also the shared token bank both modalities attend to)",
                             unit="tokens", ge=1, applies={"type": TOKEN_HEADS})
    momentum: float = option(0.995, "EMA coefficient of the momentum heads (blip head; queue and blip "
                                    "losses): key = m * key + (1 - m) * online", ge=0, lt=1)
    learnable_temp: bool = option(True, "learn the temperature (logit scale); false keeps loss.temperature")


@dataclass
class ProjectionLossConfig:
    type: str = option("clip", "contrastive loss", choices=LOSSES)
    temperature: float = option(0.0, "initial temperature tau (logit scale = 1 / tau); 0 = the loss's "
                                     "own init (clip / align / queue / blip 0.07, siglip 0.1)", ge=0, le=10)
    bias_init: str = option("default", "siglip: initial bias: -10 (the paper's, for batches of ~20k) or "
                                       "log(1 / batch_size), better for small batches",
                            choices=("default", "log_batch"), applies={"type": ("siglip",)})
    chunk_size: int = option(0, "siglip: compute the loss in column chunks (memory O(chunk x batch)); "
                                "0 = one block", unit="columns", ge=0, applies={"type": ("siglip",)})
    dist_impl: str = option("gather", "siglip, distributed: gather every rank's texts, or pass them round the "
                                      "ring of ranks one block at a time", choices=("gather", "ring"),
                            applies={"type": ("siglip",)})
    queue_size: int = option(4096, "queue / blip: momentum keys kept as extra negatives (divisible by "
                                   "train.batch_size; blip: 0 = in-batch only)", unit="keys", ge=0,
                             applies={"type": ("queue", "blip")})
    alpha: float = option(0.4, "blip: weight of the momentum-distillation targets (ramped up over the "
                               "first epoch)", ge=0, le=1, applies={"type": ("blip",)})
    label_smoothing: float = option(0.1, "align: label smoothing of the InfoNCE targets", ge=0, lt=1,
                                    applies={"type": ("align",)})


@dataclass
class ProjectionEvalConfig:
    top_k: int = option(5, "captions retrieved per test image for the gallery", unit="captions", ge=1, le=100)
    chunk_size: int = option(0, "retrieval query chunk; 0 = sized to ~128 MB score blocks", unit="queries", ge=0)
    baseline_seed: int = option(0, "seeds the random-projection baseline", ge=0, le=2**32 - 1)


def _projection_train() -> TrainConfig:
    return TrainConfig(lr=1e-3, weight_decay=0.01, batch_size=256, max_epochs=20,
                       early_stop_metric="val/r_mean", early_stop_mode="max", patience=4, log_every=10)


@dataclass
class ProjectionConfig(RunConfig):
    main_sections: ClassVar[tuple[str, ...]] = ("data", "model", "loss", "train")

    kind: str = option("projection", "experiment kind")
    data: ProjectionDataConfig = field(default_factory=ProjectionDataConfig)
    model: ProjectionModelConfig = field(default_factory=ProjectionModelConfig)
    loss: ProjectionLossConfig = field(default_factory=ProjectionLossConfig)
    eval: ProjectionEvalConfig = field(default_factory=ProjectionEvalConfig)
    train: TrainConfig = field(default_factory=_projection_train)

    def __post_init__(self):
        super().__post_init__()  # declared choices and ranges
        check_config(self)  # at build time, so a bad value fails before a run directory exists


def check_config(cfg: ProjectionConfig) -> None:
    """Constraints between fields (each field's own range is declared with it)."""
    m, loss, bs = cfg.model, cfg.loss, cfg.train.batch_size
    if m.type in TOKEN_HEADS:
        if m.hidden_dim % m.num_tokens:
            raise ConfigError(f"model.hidden_dim ({m.hidden_dim}) must be divisible by model.num_tokens "
                              f"({m.num_tokens}): the hidden vector is split into equal tokens")
        width = m.hidden_dim // m.num_tokens
        if width % m.num_heads:
            raise ConfigError(f"the token width hidden_dim / num_tokens = {width} must be divisible by "
                              f"model.num_heads ({m.num_heads})")
    if loss.type == "queue" and (loss.queue_size < bs or loss.queue_size % bs):
        raise ConfigError(f"loss.queue_size ({loss.queue_size}) must be a positive multiple of "
                          f"train.batch_size ({bs}), as in MoCo, e.g. {max(1, 4096 // bs) * bs}")
    if loss.type == "blip" and loss.queue_size and loss.queue_size % bs:
        raise ConfigError(f"loss.queue_size ({loss.queue_size}) must be 0 or a multiple of "
                          f"train.batch_size ({bs}), e.g. {max(1, 4096 // bs) * bs}")
    splits = (cfg.data.train_split, cfg.data.val_split, cfg.data.test_split)
    if not all(splits):
        raise ConfigError("data.train_split, data.val_split and data.test_split must be split names")
    if cfg.data.train_split in (cfg.data.val_split, cfg.data.test_split):
        raise ConfigError(f"data.train_split '{cfg.data.train_split}' must differ from the val and test "
                          "splits: evaluating on training pairs measures memory, not retrieval")
