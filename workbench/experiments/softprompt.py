"""Experiment kind ``softprompt``: GPS -> soft-token sequences a text encoder would produce.

GPS -> frozen location encoder (GeoCLIP, cached features [N, 512]) -> a sequence model
(``workbench.softprompt.models``: ``softprompt`` mixes K learnable sequences, or
``lightweight_transformer`` / ``direct``) -> [B, L, D], trained to match the token states of
a frozen text encoder for the place's prompt ("a photo taken in Lyon, France"; MiniLM
[L, 384] offline, or a local CLIP text tower [77, 768]). Held-out cities are whole S2
cells. Runs through the one Trainer; ``save_artifacts`` writes what the Soft-Prompt
Explorer and ``python -m workbench softprompt`` read:

    artifacts/index.pt     pooled targets [N_val, D] float16 + lengths, for nearest cities
    artifacts/cities.csv   the held-out cities (name, country, lat, lon, prompt, ...)
    artifacts/summary.json final and untrained held-out metrics, parameter counts, and with
                           seeds: N > 1, the mean +- std over N seeds
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from workbench.config import RunConfig, TrainConfig, option, to_dict
from workbench.encoders.text import text_encoder_class
from workbench.errors import ConfigError
from workbench.experiments.base import EXPERIMENTS, Experiment
from workbench.softprompt.evaluate import evaluate_sequences, pooled_index, reference_baselines, summarize_seeds
from workbench.softprompt.losses import compute_losses
from workbench.softprompt.models import SequenceModel, create_sequence_model, init_dictionary, parameter_counts
from workbench.softprompt.targets import DEFAULT_TEMPLATE, template_fields
from workbench.runs import progress

# Output size of each supported frozen location encoder (known without loading it).
FEATURE_DIMS = {"geoclip": 512}


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
                          choices=("minilm", "clip_text"))
    encoder_path: str = option("", "local weights folder (clip_text needs one; minilm ships in a package)")
    template: str = option(DEFAULT_TEMPLATE, "prompt template over {city} {country} {country_code} {continent} {admin1}")
    max_tokens: int = option(32, "sequence length L for minilm (at most 256; CLIP is always 77)",
                             unit="tokens", ge=2)
    cache_dir: str = option("data/cache/softprompt", "where target sequences are cached")


@dataclass
class SoftPromptFeaturesConfig:
    location_encoder: str = option("geoclip", "frozen location encoder (features cached)", choices=tuple(FEATURE_DIMS))


@dataclass
class SoftPromptModelConfig:
    arch: str = option("softprompt", "sequence model", choices=("softprompt", "lightweight_transformer", "direct"))
    n_entries: int = option(64, "softprompt: dictionary size K", unit="sequences", ge=2)
    temperature: float = option(0.7, "softprompt: softmax temperature of the mixture", gt=0)
    dict_init: str = option("targets", "softprompt: entries start as K training targets, or random",
                            choices=("targets", "random"))
    hidden: int = option(256, "softprompt / direct: hidden width", unit="units", ge=1)
    dropout: float = option(0.1, "dropout probability", ge=0, lt=1)
    d_model: int = option(128, "lightweight_transformer: width (a multiple of heads)", unit="units", ge=1)
    layers: int = option(2, "lightweight_transformer: decoder layers", unit="layers", ge=1)
    heads: int = option(4, "lightweight_transformer: attention heads", unit="heads", ge=1)
    memory_tokens: int = option(4, "lightweight_transformer: tokens made from the features",
                                unit="tokens", ge=1)


@dataclass
class SoftPromptLossConfig:
    """Weights of the loss terms (see workbench.softprompt.losses); all are logged."""

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


def model_dims(cfg: SoftPromptConfig) -> tuple[int, int, int]:
    """(F, L, D): feature size, sequence length and token size, from the config alone."""
    text = text_encoder_class(cfg.targets.encoder)
    return FEATURE_DIMS[cfg.features.location_encoder], text.seq_len(cfg.targets.max_tokens), text.dim


def build_sequence_model(cfg: SoftPromptConfig) -> SequenceModel:
    """The untrained model a config describes (random dictionary; see ``init_dictionary``)."""
    F, L, D = model_dims(cfg)
    m = cfg.model
    return create_sequence_model(m.arch, feature_dim=F, seq_len=L, token_dim=D, **dataclasses.asdict(m))


def check_config(cfg: SoftPromptConfig) -> None:
    """Constraints between fields (each field's own range is declared with it)."""
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


@EXPERIMENTS.register("softprompt")
class SoftPromptExperiment(Experiment):
    config_cls = SoftPromptConfig
    description = ("GPS -> frozen GeoCLIP -> mixture over K learnable soft-token sequences -> a text "
                   "encoder's token states [L, D]")

    def __init__(self, cfg: SoftPromptConfig, data=None):
        super().__init__(cfg)
        self.data = data  # workbench.softprompt.data.SoftPromptDataConfig, loaded by build_datasets

    # -- parts -----------------------------------------------------------------------
    def build_datasets(self):
        from workbench.softprompt.data import build_data

        if self.data is None:
            self.data = build_data(self.cfg)
        return self.data.dataset(self.data.train_rows), self.data.dataset(self.data.val_rows)

    def build_model(self) -> nn.Module:
        # Seeded here, not by the caller's RNG state (which the encoders' construction moves):
        # the Trainer's step-0 model and ``untrained_model`` are then the same model.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            model = build_sequence_model(self.cfg)
        if self.cfg.model.arch == "softprompt" and self.cfg.model.dict_init == "targets" and self.data is not None:
            g = torch.Generator().manual_seed(self.cfg.seed)
            init_dictionary(model, self.data.targets.states, torch.as_tensor(self.data.train_rows), g)
        return model

    def collate(self, samples):
        # CityTargetDataset.__getitems__ already returns a whole batch as a dict.
        return samples if isinstance(samples, dict) else torch.utils.data.default_collate(samples)

    # -- training and evaluation -----------------------------------------------------
    def training_step(self, model: nn.Module, batch) -> dict[str, torch.Tensor]:
        out = model(batch["features"])  # tokens (B, L, D) [+ weights (B, K)]
        return compute_losses(out, batch["targets"], batch["mask"], model, self.cfg.loss)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        """Loss terms (batch-size weighted means) plus the held-out metrics of
        ``workbench.softprompt.evaluate`` over every city the loader yields."""
        device = next(model.parameters()).device
        sums: dict[str, float] = {}
        parts: dict[str, list[torch.Tensor]] = {"tokens": [], "weights": [], "targets": [], "mask": [], "row": []}
        for batch in loader:
            batch = self.move_to(batch, device)
            out = model(batch["features"])
            n = len(batch["row"])
            for key, value in compute_losses(out, batch["targets"], batch["mask"], model, self.cfg.loss).items():
                sums[key] = sums.get(key, 0.0) + float(value) * n
            parts["tokens"].append(out["tokens"].float().cpu())
            if "weights" in out:
                parts["weights"].append(out["weights"].float().cpu())
            for key in ("targets", "mask", "row"):
                parts[key].append(batch[key].cpu())
        cat = {k: torch.cat(v) for k, v in parts.items() if v}
        count = len(cat["row"])
        countries = self.data.cities["country_code"].to_numpy()[cat["row"].numpy()]
        metrics = evaluate_sequences(cat["tokens"], cat["targets"], cat["mask"], countries, cat.get("weights"))
        return {**{k: v / max(count, 1) for k, v in sums.items()}, **metrics}

    def baselines(self) -> dict[str, dict[str, float]]:
        """Held-out metrics of the model-free reference predictors (``reference_baselines``)."""
        d = self.data
        return reference_baselines(d.targets.states, d.targets.mask, d.train_rows, d.val_rows,
                                   d.cities["lat"].to_numpy(), d.cities["lon"].to_numpy(),
                                   d.cities["country_code"].to_numpy())

    def untrained_model(self) -> nn.Module:
        """The model exactly as the Trainer builds it at step 0 (the untrained baseline)."""
        return self.build_model().eval()

    # -- artifacts -------------------------------------------------------------------
    def save_artifacts(self, model: nn.Module, val_loader, artifacts_dir: Path) -> None:
        artifacts_dir = Path(artifacts_dir)
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        write_index(self.data, artifacts_dir)
        device = next(model.parameters()).device
        progress.set_phase("eval", "evaluating the trained and untrained models")
        final = self.evaluate(model.eval(), val_loader)
        untrained = self.evaluate(self.untrained_model().to(device), val_loader)
        progress.set_phase("artifacts", "baselines and summary")
        summary = {
            "config": to_dict(self.cfg),
            "dims": dict(zip(("features", "seq_len", "token_dim"), model_dims(self.cfg))),
            "n_train": int(len(self.data.train_rows)), "n_val": int(len(self.data.val_rows)),
            "param_counts": parameter_counts(model, _frozen_location_encoder(self.cfg)),
            "final": final, "untrained": untrained, "baselines": self.baselines(),
        }
        if self.cfg.seeds > 1:
            summary["seeds"] = self.run_seeds(final, untrained, artifacts_dir)
        (artifacts_dir / "summary.json").write_text(json.dumps(summary, indent=1))

    def run_seeds(self, final: dict, untrained: dict, artifacts_dir: Path) -> dict:
        """Train seeds seed+1 .. seed+N-1 with the same Trainer (in memory, same data and
        split) and summarise them with this run's own result: mean +- std."""
        from workbench.train.trainer import Trainer

        trained, baselines, seeds = [final], [untrained], [self.cfg.seed]
        for i in range(1, self.cfg.seeds):
            # the seed's in-memory Trainer advances these counters with its steps
            progress.set_phase("seeds", f"training extra seed {i + 1}/{self.cfg.seeds}")
            exp = SoftPromptExperiment(dataclasses.replace(self.cfg, seed=self.cfg.seed + i, seeds=1), data=self.data)
            trainer = Trainer(exp, run=None, progress_bar=False)
            if trainer.fit()["state"] != "done":  # stopped (SIGTERM): keep what finished
                break
            loader = trainer.val_loader()
            trained.append(exp.evaluate(trainer.model.eval(), loader))
            baselines.append(exp.evaluate(exp.untrained_model().to(trainer.device), loader))
            seeds.append(exp.cfg.seed)
        progress.set_phase("artifacts", "writing the seed summary")
        return {"seeds": seeds, "trained": summarize_seeds(trained), "untrained": summarize_seeds(baselines)}


def _frozen_location_encoder(cfg: SoftPromptConfig) -> nn.Module | None:
    """The frozen location encoder, for its parameter count (GeoCLIP: 9.45M)."""
    from workbench.encoders.location import create_location_encoder

    try:
        return create_location_encoder(cfg.features.location_encoder)
    except Exception:  # counts are informative; never fail a finished run over them
        return None


def write_index(data, directory: Path) -> None:
    """The held-out cities and their pooled targets: what nearest-city search needs."""
    rows = torch.as_tensor(data.val_rows)
    pooled, lengths = pooled_index(data.targets.states[rows], data.targets.mask[rows])
    torch.save({"pooled": pooled.half(), "lengths": lengths, "encoder": data.targets.encoder},
               directory / "index.pt")
    cities = data.cities.iloc[data.val_rows].copy()
    cities["prompt"] = [data.prompts[i] for i in data.val_rows]
    columns = ["name", "country", "country_code", "continent", "lat", "lon", "population", "prompt", "n_tokens"]
    cities[columns].to_csv(directory / "cities.csv", index=False)
