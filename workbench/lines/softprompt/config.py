"""The ``softprompt`` run config: data, targets, features, model and loss sections.

The bottom of the line: it imports only the core, and every other module of the line takes
its section from here.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import ClassVar

from workbench.config import RunConfig, TrainConfig, option
from workbench.errors import ConfigError
from workbench.registry import RegistryNames

DEFAULT_TEMPLATE = "a photo taken in {city}, {country}"
# template placeholder -> column of the city table
PROMPT_FIELDS = {"city": "name", "country": "country", "country_code": "country_code",
                 "continent": "continent", "admin1": "admin1_code"}
TEXT_ENCODERS = RegistryNames("workbench.encoders.text:TEXT_ENCODERS")
LOCATION_ENCODERS = RegistryNames("workbench.encoders.location:LOCATION_ENCODERS")
SEQUENCE_MODELS = RegistryNames("workbench.lines.softprompt.models:SEQUENCE_MODELS")
SOFTPROMPT, TRANSFORMER, DIRECT = ("softprompt",), ("lightweight_transformer",), ("direct",)


@dataclass
class SoftPromptDataConfig:
    cities_csv: str = option("data/cities/cities.csv", "city table (python -m workbench data build-demo)")
    max_cities: int = option(0, "keep the N most populous cities; 0 = all", unit="cities", ge=0)
    min_population: int = option(0, "drop smaller cities", unit="inhabitants", ge=0)
    split_level: int = option(5, "S2 level of the held-out cells (5: cells of ~250 km)", ge=0, le=30)
    val_fraction: float = option(0.2, "fraction of cities held out (as whole S2 cells)", gt=0, lt=1)
    split_seed: int = option(0, "seeds the held-out cells; fixed across training seeds", ge=0, le=2**32 - 1)


@dataclass
class SoftPromptTargetsConfig:
    encoder: str = option("minilm", "frozen text encoder giving the target token states",
                          choices=TEXT_ENCODERS)
    encoder_path: str = option("", "local weights folder (clip_text needs one; minilm ships in a package)")
    template: str = option(DEFAULT_TEMPLATE, "prompt template over {city} {country} {country_code} {continent} {admin1}")
    max_tokens: int = option(32, "sequence length L for minilm (at most 256; CLIP is always 77)",
                             unit="tokens", ge=2)
    cache_dir: str = option("data/cache/softprompt", "where target sequences are cached")


@dataclass
class SoftPromptFeaturesConfig:
    location_encoder: str = option("geoclip", "frozen location encoder (features cached)", choices=LOCATION_ENCODERS)


@dataclass
class SoftPromptModelConfig:
    """The sequence model; an option of one architecture fails when another is chosen."""

    arch: str = option("softprompt", "sequence model", choices=SEQUENCE_MODELS)
    n_entries: int = option(64, "softprompt: dictionary size K", unit="sequences", ge=2, applies={"arch": SOFTPROMPT})
    temperature: float = option(0.7, "softprompt: softmax temperature of the mixture", gt=0,
                                applies={"arch": SOFTPROMPT})
    dict_init: str = option("targets", "softprompt: entries start as K training targets, or random",
                            choices=("targets", "random"), applies={"arch": SOFTPROMPT})
    hidden: int = option(256, "softprompt / direct: hidden width", unit="units", ge=1,
                         applies={"arch": SOFTPROMPT + DIRECT})
    dropout: float = option(0.1, "dropout probability", ge=0, lt=1)
    d_model: int = option(128, "lightweight_transformer: width (a multiple of heads)", unit="units", ge=1,
                          applies={"arch": TRANSFORMER})
    layers: int = option(2, "lightweight_transformer: decoder layers", unit="layers", ge=1,
                         applies={"arch": TRANSFORMER})
    heads: int = option(4, "lightweight_transformer: attention heads", unit="heads", ge=1,
                        applies={"arch": TRANSFORMER})
    memory_tokens: int = option(4, "lightweight_transformer: tokens made from the features",
                                unit="tokens", ge=1, applies={"arch": TRANSFORMER})


@dataclass
class SoftPromptLossConfig:
    """Weights of the loss terms (see workbench.lines.softprompt.losses); all are logged."""

    mse: float = option(1.0, "masked token MSE; 0 = off", ge=0)
    cosine: float = option(1.0, "1 - token cosine; 0 = off", ge=0)
    gram: float = option(0.5, "inter-token (Gram) relations; 0 = off", ge=0)
    contrastive: float = option(0.1, "InfoNCE of pooled sequences across the batch; 0 = off", ge=0)
    diversity: float = option(0.01, "penalise similar dictionary entries; 0 = off", ge=0)
    balance: float = option(0.1, "log K - entropy of the batch-mean mixture (no dead entries); 0 = off", ge=0)
    sharpness: float = option(0.0, "per-sample mixture entropy / log K (confident mixtures); 0 = off", ge=0)
    contrastive_temperature: float = option(0.07, "InfoNCE temperature", gt=0)


@dataclass
class SoftPromptConfig(RunConfig):
    main_sections: ClassVar[tuple[str, ...]] = ("data", "targets", "model", "train")

    kind: str = "softprompt"
    seeds: int = option(1, "train N seeds (seed, seed+1, ...) on the same split; report mean +- std",
                        unit="seeds", ge=1)
    data: SoftPromptDataConfig = field(default_factory=SoftPromptDataConfig)
    targets: SoftPromptTargetsConfig = field(default_factory=SoftPromptTargetsConfig)
    features: SoftPromptFeaturesConfig = field(default_factory=SoftPromptFeaturesConfig)
    model: SoftPromptModelConfig = field(default_factory=SoftPromptModelConfig)
    loss: SoftPromptLossConfig = field(default_factory=SoftPromptLossConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=5e-4, batch_size=64, max_epochs=15))

    def __post_init__(self):
        super().__post_init__()  # declared choices and ranges
        check_config(self)  # at build time, so a bad value fails before a run directory exists


def template_fields(template: str) -> list[str]:
    """Placeholders of ``template``; ConfigError for unknown ones or format specs."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"targets.template {template!r} is not a valid format string: {exc}") from None
    fields = [name for _, name, _, _ in parsed if name is not None]
    for name in fields:
        if name not in PROMPT_FIELDS:
            raise ConfigError(f"targets.template: unknown placeholder {{{name}}}. Available: "
                              f"{['{' + f + '}' for f in PROMPT_FIELDS]}")
    if not fields:
        raise ConfigError(f"targets.template {template!r} has no placeholder, so every place would get "
                          "the same prompt; use e.g. 'a photo taken in {city}, {country}'")
    return fields


def check_config(cfg: SoftPromptConfig) -> None:
    """Constraints between fields (each field's own range is declared with it)."""
    from workbench.encoders.text import text_encoder_class

    text = text_encoder_class(cfg.targets.encoder)
    if text.fixed_len is None and cfg.targets.max_tokens > text.max_positions:
        raise ConfigError(f"targets.max_tokens: {cfg.targets.max_tokens} is out of range; must be an "
                          f"integer in [2, {text.max_positions}] (tokens) for targets.encoder={cfg.targets.encoder}")
    template_fields(cfg.targets.template)
    if cfg.seed + cfg.seeds - 1 > 2**32 - 1:
        raise ConfigError(f"seed ({cfg.seed}) + seeds ({cfg.seeds}) - 1 must be <= {2**32 - 1}: "
                          "the extra seeds are seed+1, seed+2, ...")
    if cfg.model.arch == "lightweight_transformer" and cfg.model.d_model % cfg.model.heads:
        raise ConfigError(f"model.d_model ({cfg.model.d_model}) must be divisible by model.heads ({cfg.model.heads})")
