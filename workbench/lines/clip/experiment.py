"""Experiment kind ``clip``: a ViT and a text transformer trained from scratch, end to end.

Images (geo-captions tiles by default; Flickr30k or COCO layouts) are decoded once into a
uint8 tensor at ``model.img_size`` (cached on disk), captions are tokenised once by the
run's tokenizer (MiniLM's WordPiece, or one trained on the training captions), and batches
of (image, caption) pairs are gathered by index; training batches get the random resized
crop / flip on the batch. The towers are trained with the core ``clip`` (or ``siglip``) loss,
a learned and clamped temperature, AdamW without weight decay on norms, biases, embeddings
and the temperature. Validation logs the loss and I2T / T2I R@K on the held-out images;
``val/r_mean`` selects the best checkpoint. The tokenizer travels inside the model state
(a uint8 buffer of its JSON), so a checkpoint or bundle is self-contained.

    artifacts/metrics.json          test R@K under "test", "chance", "untrained" and
                                    "zero_shot" (continent / country) beside it
    artifacts/embeddings/           test images + captions: paired.npy + paired.parquet
    artifacts/top_captions.parquet  the top-5 captions of every test image
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn

from workbench.config import to_dict
from workbench.experiments.base import EXPERIMENTS, Experiment
from workbench.io import write_json
from workbench.lines.clip import evaluate as ev
from workbench.lines.clip.config import ClipConfig
from workbench.lines.clip.models import build_model
from workbench.paths import repo_path
from workbench.runs import progress

IMAGE_CACHE = "data/cache/clip"


def cached_images(paths: list[str], size: int, cache_dir: Path) -> torch.Tensor:
    """uint8 [N, 3, size, size] of the files, decoded once per (files, mtimes, size)."""
    import hashlib
    import io

    from workbench.io import write_bytes
    from workbench.lines.clip.data import decode_images

    h = hashlib.sha256(f"{size}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    file = Path(cache_dir) / f"images-{size}-{h.hexdigest()[:16]}.pt"
    if file.is_file():
        try:
            return torch.load(io.BytesIO(file.read_bytes()), weights_only=True)
        except Exception:  # a torn file: decode again
            pass
    images = decode_images(paths, size)
    buffer = io.BytesIO()
    torch.save(images, buffer)
    write_bytes(file, buffer.getvalue())
    return images


class Split:
    """One split in memory: its image table, captions, uint8 images and caption tokens."""

    def __init__(self, name: str, part, images: torch.Tensor, tokens: torch.Tensor):
        self.name, self.images_table, self.captions = name, part.images, part.captions
        self.images = images  # (N, 3, S, S) uint8
        self.tokens = tokens  # (M, L) long
        self.caption_image = torch.tensor(part.captions["image_id"].to_numpy(), dtype=torch.long)  # (M,)

    def pairs(self):
        from workbench.lines.clip.data import PairBatches

        return PairBatches(self.images, self.tokens, self.caption_image)


@EXPERIMENTS.register("clip")
class ClipExperiment(Experiment):
    config_cls = ClipConfig
    description = "a ViT and a text transformer trained from scratch on image-caption pairs (clip loss)"

    def __init__(self, cfg: ClipConfig, splits: dict | None = None, tokenizer=None):
        super().__init__(cfg)
        self.splits = splits or {}
        self.tokenizer = tokenizer

    # -- data ------------------------------------------------------------------------
    def load(self) -> None:
        if self.splits:
            return
        from workbench.lines.clip.data import load_captioned
        from workbench.lines.clip.tokenizer import ClipTokenizer

        cfg = self.cfg
        progress.set_phase("setup", f"reading {cfg.data.format} captions and decoding images")
        data = load_captioned(cfg.data)
        root = repo_path(cfg.data.dir)
        data.images["rel_path"] = [os.path.relpath(p, root) for p in data.images["path"]]
        train = data.split("train")
        if self.tokenizer is None:
            self.tokenizer = ClipTokenizer.from_config(cfg.text, train.captions["caption"].astype(str).tolist())
        cache = repo_path(IMAGE_CACHE)
        for name in ("train", "val", "test"):
            part = train if name == "train" else data.split(name)
            images = cached_images(part.images["path"].tolist(), cfg.model.img_size, cache)
            tokens = self.tokenizer.encode(part.captions["caption"].astype(str).tolist())
            self.splits[name] = Split(name, part, images, tokens)

    def build_datasets(self):
        self.load()
        val = self.splits["val"]
        return self.splits["train"].pairs(), (val.pairs() if len(val.tokens) else None)

    def steps_per_epoch(self) -> int:
        n = len(self.splits["train"].tokens)
        if self.cfg.train.max_samples:
            n = min(n, self.cfg.train.max_samples)
        return math.ceil(n / self.cfg.train.batch_size)

    def build_model(self) -> nn.Module:
        self.load()
        return build_model(self.cfg, self.tokenizer)

    def param_groups(self, model: nn.Module) -> list[dict]:
        from workbench.lines.clip.models import param_groups

        return param_groups(model, self.cfg.train.weight_decay)

    def collate(self, samples):
        from workbench.lines.clip.data import collate

        return collate(samples)

    # -- training and evaluation -----------------------------------------------------
    def training_step(self, model: nn.Module, batch) -> dict[str, torch.Tensor]:
        from workbench.lines.clip.data import augment, to_float

        d = self.cfg.data
        if model.training and d.augment:
            # the global generator: checkpoints save and restore it, so a resumed run draws the same crops
            images = augment(batch["image"], None, d.crop_scale, d.flip)
        else:
            images = to_float(batch["image"])
        return model.loss(images, batch["tokens"], batch["image_ids"])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        """The loss terms over the val pairs plus I2T / T2I R@K of the val images and captions."""
        out = super().evaluate(model, loader)
        val = self.splits["val"]
        return {**out, **self.retrieval_of(model, val)}

    def retrieval_of(self, model: nn.Module, split: Split) -> dict[str, float]:
        model.eval()
        return ev.retrieval(ev.embed_images(model, split.images), ev.embed_texts(model, split.tokens),
                            split.caption_image)

    # -- artifacts -------------------------------------------------------------------
    def save_artifacts(self, model: nn.Module, val_loader, artifacts_dir: Path) -> None:
        from workbench.lines.clip.models import count_parameters

        artifacts_dir = Path(artifacts_dir)
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.load()
        test = self.splits["test"]
        model, which = self.best_model(model, artifacts_dir)
        model.eval()
        progress.set_phase("eval", f"test R@K and zero-shot of the {which} model and the untrained one")
        image = ev.embed_images(model, test.images)
        untrained = build_model(self.cfg, self.tokenizer).eval()
        report = {
            "test": ev.retrieval(image, ev.embed_texts(model, test.tokens), test.caption_image),
            "chance": ev.chance(len(test.images), test.caption_image),
            "untrained": self.retrieval_of(untrained, test),
            "val": self.retrieval_of(model, self.splits["val"]),
            "zero_shot": ev.zero_shot(model, self.tokenizer, image, test.images_table),
            "zero_shot_untrained": ev.zero_shot(untrained, self.tokenizer, ev.embed_images(untrained, test.images),
                                                test.images_table),
            "weights": which,
            "logit_scale": float(model.scale().detach()),
            "params": count_parameters(model),
            "tokenizer": {"kind": self.cfg.text.tokenizer, "vocab_size": self.tokenizer.vocab_size,
                          "context_length": self.tokenizer.context_length},
            "counts": {name: {"images": int(len(s.images)), "pairs": int(len(s.tokens))}
                       for name, s in self.splits.items()},
            "config": to_dict(self.cfg),
        }
        progress.set_phase("artifacts", "test embeddings and the caption gallery")
        report["artifacts"] = ev.write_artifacts(model, test.images, test.tokens, test.images_table, test.captions,
                                                 artifacts_dir, "test")
        write_json(artifacts_dir / "metrics.json", report)

