"""The ``clip`` run config: data, text (tokenizer), model (both towers) and loss sections.

The bottom of the line: it imports only the core. Model keys follow the research note's
config (``img_size``, ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``,
``text_embed_dim``, ``text_depth``, ``temperature``); the defaults are the "tiny" size that
trains on 2 CPU cores in minutes; ``SIZES`` lists the presets' sizes (``clip-base`` is the
note's ViT-B/16 width, for a GPU).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from workbench.config import RunConfig, TrainConfig, option
from workbench.errors import ConfigError

FORMATS = ("geo-captions", "flickr30k", "coco")
TOKENIZERS = ("minilm", "train")
LOSSES = ("clip", "siglip")
# the tower sizes of the presets (configs/clip.yaml = tiny, clip-small.yaml, clip-base.yaml)
SIZES: dict[str, dict] = {
    "tiny": {"img_size": 64, "patch_size": 8, "embed_dim": 128, "depth": 3, "num_heads": 4,
             "text_embed_dim": 128, "text_depth": 3, "text_heads": 4, "output_dim": 128},
    "small": {"img_size": 128, "patch_size": 16, "embed_dim": 384, "depth": 6, "num_heads": 6,
              "text_embed_dim": 384, "text_depth": 4, "text_heads": 6, "output_dim": 256},
    "base": {"img_size": 224, "patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12,
             "text_embed_dim": 512, "text_depth": 8, "text_heads": 8, "output_dim": 512},
}


@dataclass
class ClipDataConfig:
    format: str = option("geo-captions", "geo-captions: the offline demo tiles and captions (their split); "
                                         "flickr30k: flickr30k_images/ + results.csv (image_name| comment_number| "
                                         "comment); coco: a COCO captions JSON + its image folder", choices=FORMATS)
    dir: str = option("data/geo-captions", "the dataset folder")
    captions_file: str = option("", "flickr30k: default DIR/results.csv; coco: the captions JSON "
                                    "(default DIR/annotations/captions_train2017.json)")
    images_dir: str = option("", "flickr30k: default DIR/flickr30k_images; coco: default DIR/train2017")
    val_fraction: float = option(0.1, "images held out for validation (flickr30k / coco)", ge=0, lt=0.5)
    test_fraction: float = option(0.1, "images held out for the test (flickr30k / coco)", gt=0, lt=0.5)
    split_seed: int = option(0, "seed of the image-level split (flickr30k / coco)", ge=0)
    max_images: int = option(0, "use only the first N images (debug); 0 = all", unit="images", ge=0)
    augment: bool = option(True, "random resized crop and horizontal flip on training batches")
    crop_scale: float = option(0.7, "random resized crop: smallest area fraction kept", gt=0, le=1,
                               applies={"augment": (True,)})
    flip: bool = option(False, "random horizontal flips (map tiles: a flip mirrors the geography)",
                        applies={"augment": (True,)})


@dataclass
class ClipTextConfig:
    tokenizer: str = option("train", "minilm: the WordPiece vocabulary shipped with the offline MiniLM "
                                      "package; train: a WordPiece tokenizer trained on the training captions",
                            choices=TOKENIZERS)
    vocab_size: int = option(2000, "train: vocabulary size (MiniLM's 30,522 would be 3.9M embedding "
                                   "weights at width 128)", unit="tokens", ge=100, le=100000,
                             applies={"tokenizer": ("train",)})
    context_length: int = option(32, "tokens per caption (longer ones are cut, keeping the end token)",
                                 unit="tokens", ge=4, le=512)


@dataclass
class ClipModelConfig:
    img_size: int = option(64, "images are resized to this", unit="px", ge=16, le=1024)
    patch_size: int = option(8, "ViT patch size (divides img_size)", unit="px", ge=2, le=64)
    embed_dim: int = option(128, "ViT width", unit="dims", ge=16)
    depth: int = option(3, "ViT layers", unit="layers", ge=1, le=48)
    num_heads: int = option(4, "ViT attention heads (divide embed_dim)", unit="heads", ge=1)
    text_embed_dim: int = option(128, "text transformer width", unit="dims", ge=16)
    text_depth: int = option(3, "text transformer layers", unit="layers", ge=1, le=48)
    text_heads: int = option(4, "text attention heads (divide text_embed_dim)", unit="heads", ge=1)
    causal: bool = option(True, "causal text transformer pooled at the end token (CLIP's); false: "
                                "bidirectional, mean-pooled")
    output_dim: int = option(128, "shared embedding width", unit="dims", ge=1)
    dropout: float = option(0.0, "dropout in both towers", ge=0, lt=1)
    temperature: float = option(0.07, "initial temperature (logit scale = 1 / temperature), learned and "
                                      "clamped to logit scale <= 100", gt=0.005, le=10)


@dataclass
class ClipLossConfig:
    type: str = option("clip", "clip: symmetric softmax (InfoNCE); siglip: pairwise sigmoid", choices=LOSSES)


@dataclass
class ClipConfig(RunConfig):
    main_sections: ClassVar[tuple[str, ...]] = ("data", "model", "train")

    kind: str = option("clip", "experiment kind")
    data: ClipDataConfig = field(default_factory=ClipDataConfig)
    text: ClipTextConfig = field(default_factory=ClipTextConfig)
    model: ClipModelConfig = field(default_factory=ClipModelConfig)
    loss: ClipLossConfig = field(default_factory=ClipLossConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=5e-4, weight_decay=0.1, batch_size=128,
                                                                   max_epochs=30, warmup_steps=100, grad_clip=1.0))

    def __post_init__(self):
        super().__post_init__()
        check_config(self)


def check_config(cfg: ClipConfig) -> None:
    m = cfg.model
    if m.img_size % m.patch_size:
        raise ConfigError(f"model.patch_size ({m.patch_size}) must divide model.img_size ({m.img_size})")
    if m.embed_dim % m.num_heads:
        raise ConfigError(f"model.num_heads ({m.num_heads}) must divide model.embed_dim ({m.embed_dim})")
    if m.text_embed_dim % m.text_heads:
        raise ConfigError(f"model.text_heads ({m.text_heads}) must divide model.text_embed_dim "
                          f"({m.text_embed_dim})")
    if cfg.data.val_fraction + cfg.data.test_fraction >= 0.8:
        raise ConfigError("data.val_fraction + data.test_fraction must leave at least 20 % of the images to train on")
