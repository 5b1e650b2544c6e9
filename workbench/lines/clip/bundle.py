"""CLIP models as the pages and the CLI use them: load a bundle or run, export a run.

A clip bundle (core format, ``workbench.train.bundle``) holds model.pt (config + both towers
+ the tokenizer, as a buffer of the state dict), config.yaml, metrics.json, README.md and
the test-split artifacts ``embeddings/`` (paired.npy + paired.parquet: images and captions) and
``top_captions.parquet``. A run holds the same under ``artifacts/``.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from workbench.config import from_dict, to_dict
from workbench.contrastive.artifacts import Embeddings
from workbench.contrastive.serving import ServedModel, read_served
from workbench.errors import WorkbenchError
from workbench.lines.clip.config import ClipConfig
from workbench.paths import CHECKPOINTS, repo_path
from workbench.runs.sources import Source, list_sources as core_sources
from workbench.train.bundle import load_bundle, save_bundle

DEMO = CHECKPOINTS / "clip-demo"
ARTIFACTS = ("embeddings", "top_captions.parquet")
RECALLS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")


def list_sources(runs_root=None, checkpoints_root=CHECKPOINTS) -> list[Source]:
    """CLIP bundles (the demo first), then finished clip runs with test embeddings."""
    return core_sources("clip", runs_root, checkpoints_root, need="embeddings/paired.parquet")


def model_from_state(config: dict, state: dict):
    """(cfg, tokenizer, model in eval mode) from a checkpoint's config and state dict."""
    from workbench.lines.clip.models import build_model, tokenizer_from_state

    cfg = from_dict(ClipConfig, config)
    tokenizer = tokenizer_from_state(state)
    model = build_model(cfg, tokenizer)
    model.load_state_dict(state)
    return cfg, tokenizer, model.eval()


@dataclass
class LoadedClip(ServedModel):
    source: Source
    cfg: ClipConfig
    tokenizer: object
    model: torch.nn.Module
    metrics: dict
    embeddings: Embeddings
    gallery: pd.DataFrame  # top_captions.parquet

    def data_root(self) -> Path:
        return repo_path(self.cfg.data.dir)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """[N, D] unit embeddings of captions through the run's tokenizer and text tower."""
        return self.model.encode_text(self.tokenizer.encode(list(texts))).float()

    # the serving interface (workbench.contrastive.serving)
    text_encoder_name = None  # self-contained: its own tokenizer and text tower
    embeds_queries = True

    def encode_query(self, text: str, encoder=None) -> torch.Tensor:
        from workbench.contrastive.serving import check_query

        return self.encode_texts([check_query(text)])[0]

    def caption(self) -> str:
        m, counts = self.cfg.model, (self.metrics.get("counts") or {}).get("test", {})
        params = (self.metrics.get("params") or {}).get("total", "?")
        return (f"{self.source.label}: CLIP from scratch, ViT {m.img_size} px / patch {m.patch_size} "
                f"(width {m.embed_dim}, {m.depth} layers) + text transformer (width {m.text_embed_dim}, "
                f"{m.text_depth} layers), {params} parameters, `{self.cfg.loss.type}` loss, {m.output_dim}-d space; "
                f"test split: {counts.get('images', '?')} images, {counts.get('pairs', '?')} captions")

    def metric_rows(self) -> list[dict]:
        from workbench.contrastive.serving import table_row

        m = self.metrics
        return [table_row(self.source.label, what, m[key]) for what, key in
                (("trained", "test"), ("untrained", "untrained"), ("chance", "chance")) if m.get(key)]


def load_clip(spec: Source | str | Path, runs_root=None) -> LoadedClip:
    source, ckpt, metrics, embeddings, gallery = read_served(spec, "clip", runs_root)
    cfg, tokenizer, model = model_from_state(ckpt["config"], ckpt["model"])
    return LoadedClip(source, cfg, tokenizer, model, metrics, embeddings, gallery)


def export_run(run_id: str, out: Path, runs_root=None) -> dict:
    """Bundle a finished run: the weights its metrics.json measured, config, metrics, README
    and the test artifacts. Returns the metrics."""
    from workbench.runs import RunStore

    run = RunStore(runs_root).get(run_id)
    metrics_file = run.artifacts_dir / "metrics.json"
    if not metrics_file.is_file():
        raise WorkbenchError(f"run '{run.id}' has no artifacts/metrics.json: it has not finished")
    metrics = json.loads(metrics_file.read_text())
    which = metrics.get("weights", "best")
    ckpt = load_bundle(run.checkpoint_dir / ("best.pt" if which == "best" else "last.pt"), kind="clip")
    cfg, _, model = model_from_state(ckpt["config"], ckpt["model"])
    out = Path(out)
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    save_bundle(staging, to_dict(cfg), model.state_dict(), metrics,
                bundle_readme(run.id, cfg, metrics, projection_test()))
    for name in ARTIFACTS:
        src = run.artifacts_dir / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, staging / name)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return metrics


def _pct(m: dict | None, key: str) -> str:
    return f"{m[key] * 100:.1f}" if m and key in m else "-"


def retrieval_rows(metrics: dict, projection: dict | None = None) -> str:
    keys = RECALLS
    rows = [("trained (this model)", metrics.get("test")), ("untrained", metrics.get("untrained")),
            ("chance", metrics.get("chance"))]
    if projection:
        rows.append(("projection-demo (frozen encoders + heads)", projection))
    return "\n".join(f"| {name} | " + " | ".join(_pct(m, k) for k in keys) + " |" for name, m in rows if m)


PROJECTION_DEMO = CHECKPOINTS / "projection-demo"

def projection_test(folder: Path = PROJECTION_DEMO) -> dict | None:
    """The projection demo's test R@K (frozen encoders + trained heads, the same geo-captions
    test split), or None when it is not there."""
    file = Path(folder) / "metrics.json"
    try:
        return json.loads(file.read_text()).get("test")
    except (OSError, json.JSONDecodeError):
        return None


def comparison(ours: dict, theirs: dict) -> str:
    """One line: on how many of the six recalls each model is ahead (ties counted apart)."""
    ahead = [k for k in RECALLS if ours.get(k, 0) > theirs.get(k, 0)]
    behind = [k for k in RECALLS if ours.get(k, 0) < theirs.get(k, 0)]
    return (f"CLIP from scratch is ahead on {len(ahead)} of 6 recalls ({', '.join(ahead) or 'none'}), the "
            f"projection demo on {len(behind)} ({', '.join(behind) or 'none'}); mean R@K "
            f"{ours.get('r_mean', 0) * 100:.1f} vs {theirs.get('r_mean', 0) * 100:.1f}.")


def bundle_readme(run_id: str, cfg: ClipConfig, metrics: dict, projection: dict | None = None) -> str:
    m, params = cfg.model, metrics.get("params", {})
    counts = metrics.get("counts", {})
    zs = metrics.get("zero_shot", {})
    zs_u = metrics.get("zero_shot_untrained", {})
    zero = "\n".join(
        f"| {task} | {v['classes']} | {v['images']} | {v['top1'] * 100:.1f} | "
        f"{zs_u.get(task, {}).get('top1', float('nan')) * 100:.1f} | {v['chance_top1'] * 100:.1f} | "
        f"{v['majority_top1'] * 100:.1f} |" for task, v in zs.items())
    losing = [task for task, v in zs.items() if v["majority_top1"] >= v["top1"]]
    if losing:
        zero += (f"\n\nAlways answering the most frequent class beats the zero-shot classifier on: "
                 f"{', '.join(losing)}.")
    return f"""# clip-demo

CLIP trained from scratch on `{cfg.data.dir}` ({cfg.data.format}): ViT {m.img_size} px / patch
{m.patch_size}, width {m.embed_dim}, {m.depth} layers; text transformer width {m.text_embed_dim},
{m.text_depth} layers ({'causal' if m.causal else 'bidirectional'}); {m.output_dim}-d space,
`{cfg.loss.type}` loss; tokenizer `{cfg.text.tokenizer}` (inside model.pt).
Parameters: {params.get('total', '?')} ({params.get('image', '?')} image, {params.get('text', '?')} text).
Run `{run_id}`, exported with `python -m workbench clip export-demo RUN_ID`.

## Test split ({counts.get('test', {}).get('images', '?')} images, {counts.get('test', {}).get('pairs', '?')} captions): R@K in percent

| model | I2T R@1 | R@5 | R@10 | T2I R@1 | R@5 | R@10 |
| --- | --- | --- | --- | --- | --- | --- |
{retrieval_rows(metrics, projection)}

{comparison(metrics.get("test", {}), projection) if projection and metrics.get("test") else ""}

## Zero-shot classification of the test tiles (top-1 %, prompt ensembles)

| task | classes | images | trained | untrained | chance | majority class |
| --- | --- | --- | --- | --- | --- | --- |
{zero}
"""
