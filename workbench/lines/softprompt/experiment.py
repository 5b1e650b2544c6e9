"""Experiment kind ``softprompt``: GPS -> soft-token sequences a text encoder would produce.

GPS -> frozen location encoder (GeoCLIP, cached features [N, 512]) -> a sequence model
(``workbench.lines.softprompt.models``: ``softprompt`` mixes K learnable sequences, or
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
from pathlib import Path

import torch
from torch import nn

from workbench.config import to_dict
from workbench.experiments.base import EXPERIMENTS, Experiment
from workbench.lines.softprompt.config import SoftPromptConfig
from workbench.lines.softprompt.evaluate import (evaluate_sequences, pooled_index, reference_baselines, summarize_seeds,
                                                write_embedding_sets, write_index)
from workbench.lines.softprompt.losses import compute_losses
from workbench.lines.softprompt.models import (build_sequence_model, init_dictionary, location_encoder, model_dims,
                                               parameter_counts)
from workbench.runs import progress

@EXPERIMENTS.register("softprompt")
class SoftPromptExperiment(Experiment):
    config_cls = SoftPromptConfig
    description = ("GPS -> frozen GeoCLIP -> mixture over K learnable soft-token sequences -> a text "
                   "encoder's token states [L, D]")

    def __init__(self, cfg: SoftPromptConfig, data=None):
        super().__init__(cfg)
        self.data = data  # workbench.lines.softprompt.data.SoftPromptDataConfig, loaded by build_datasets

    # -- parts -----------------------------------------------------------------------
    def build_datasets(self):
        from workbench.lines.softprompt.data import build_data

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
        ``workbench.lines.softprompt.evaluate`` over every city the loader yields."""
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
        progress.set_phase("artifacts", "embeddings of the held-out cities")
        rows = torch.as_tensor(self.data.val_rows)
        pooled, lengths = pooled_index(self.data.targets.states[rows], self.data.targets.mask[rows])
        cities = self.data.cities.iloc[self.data.val_rows].assign(prompt=[self.data.prompts[i] for i in self.data.val_rows])
        write_embedding_sets(artifacts_dir / "embeddings", model.eval(), self.data.features[rows], cities, pooled,
                             lengths)
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
    try:
        return location_encoder(cfg.features.location_encoder)
    except Exception:  # counts are informative; never fail a finished run over them
        return None
