"""Projection models as the pages and the CLI use them: load a bundle or run, export a run.

A projection bundle (core format, ``workbench.train.bundle``) holds model.pt, config.yaml,
metrics.json, README.md and the test-split artifacts: ``embeddings/`` (paired.npy +
paired.parquet) and ``top_captions.parquet``. A run holds the same under ``artifacts/``.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from workbench.config import from_dict, to_dict
from workbench.contrastive.artifacts import Embeddings
from workbench.contrastive.serving import (  # noqa: F401 (the generic queries, named here too)
    TABLE_KEYS, ServedModel, captions_for_image, check_query, images_for_query, read_served, table_row)
from workbench.errors import WorkbenchError
from workbench.lines.projection.config import ProjectionConfig
from workbench.lines.projection.data import resolve
from workbench.lines.projection.models import ProjectionModel, build_model
from workbench.paths import CHECKPOINTS
from workbench.runs.sources import Source, list_sources as core_sources
from workbench.train.bundle import load_bundle, save_bundle

DEMO = CHECKPOINTS / "projection-demo"
ARTIFACTS = ("embeddings", "top_captions.parquet")


def list_sources(runs_root=None, checkpoints_root=CHECKPOINTS) -> list[Source]:
    """Projection bundles (the demo first), then finished projection runs with embeddings."""
    return core_sources("projection", runs_root, checkpoints_root, need="embeddings/paired.parquet")


def model_from_state(config: dict, state: dict) -> tuple[ProjectionConfig, ProjectionModel]:
    cfg = from_dict(ProjectionConfig, config)
    if "dims" not in state:
        raise WorkbenchError("the checkpoint has no 'dims' entry: not a projection model")
    image_dim, text_dim = (int(v) for v in state["dims"])
    model = build_model(cfg, image_dim, text_dim)
    model.load_state_dict(state)
    return cfg, model.eval()


@dataclass
class LoadedProjection(ServedModel):
    source: Source
    cfg: ProjectionConfig
    model: ProjectionModel
    metrics: dict
    embeddings: Embeddings
    gallery: pd.DataFrame  # top_captions.parquet

    def data_root(self) -> Path:
        return resolve(self.cfg.data.dir)

    # the serving interface (workbench.contrastive.serving)
    @property
    def text_encoder_name(self) -> str | None:
        return text_encoder_name(self)

    @property
    def embeds_queries(self) -> bool:
        return self.text_encoder_name is not None

    def encode_query(self, text: str, encoder) -> torch.Tensor:
        return encode_query(self, text, encoder)

    def caption(self) -> str:
        m, cfg = self.metrics, self.cfg
        counts = (m.get("counts") or {}).get(cfg.data.test_split, {})
        return (f"{self.source.label}: `{cfg.model.type}` heads, `{cfg.loss.type}` loss, {cfg.model.output_dim}-d "
                f"space; test split: {counts.get('images', '?')} images, {counts.get('pairs', '?')} captions; "
                f"frozen encoders: {encoders_text(m)}")

    def metric_rows(self) -> list[dict]:
        return metric_rows(self)


def load_projection(spec: Source | str | Path, runs_root=None) -> LoadedProjection:
    source, ckpt, metrics, embeddings, gallery = read_served(spec, "projection", runs_root)
    cfg, model = model_from_state(ckpt["config"], ckpt["model"])
    return LoadedProjection(source, cfg, model, metrics, embeddings, gallery)


# -- queries -------------------------------------------------------------------------------------


def text_encoder_name(lp: LoadedProjection) -> str | None:
    """The frozen text encoder the training captions came from, when it ships offline."""
    from workbench.encoders.text import TEXT_ENCODERS

    text = (lp.metrics.get("encoders") or {}).get("text")
    name = text.get("name") if isinstance(text, dict) else text  # {"name": "minilm", "dim": ...} or "minilm"
    return name if isinstance(name, str) and name in TEXT_ENCODERS else None


def encode_query(lp: LoadedProjection, text: str, encoder) -> torch.Tensor:
    """[D] the query's embedding in the shared space: frozen sentence embedding -> text head."""
    from workbench.encoders.text import sentence_embeddings

    frozen = sentence_embeddings(encoder, [check_query(text)])
    if frozen.shape[1] != int(lp.model.dims[1]):
        raise WorkbenchError(f"the text encoder gives {frozen.shape[1]}-d embeddings but this model's text head "
                             f"takes {int(lp.model.dims[1])}-d ones")
    with torch.no_grad():
        return lp.model.encode_text(frozen.float())[0]


def metric_rows(lp: LoadedProjection) -> list[dict]:
    """R@K rows of a model: trained heads, untrained heads, then each baseline."""
    m = lp.metrics
    entries = [("trained", m.get("test")), ("untrained", m.get("untrained"))]
    entries += list((m.get("baselines") or {}).items())
    return [table_row(lp.source.label, what, values) for what, values in entries if values]


def metrics_table(models: list[LoadedProjection]) -> pd.DataFrame:
    """Test R@K (percent) and median ranks: each model, its untrained heads and its baselines."""
    return pd.DataFrame([row for lp in models for row in metric_rows(lp)])


# -- export ----------------------------------------------------------------------------------------


def export_run(run_id: str, out: Path, runs_root=None) -> dict:
    """Bundle a finished run: its best weights (the ones its metrics.json measured), config,
    metrics, a README with the numbers, and the test artifacts. Returns the metrics."""
    from workbench.runs import RunStore

    run = RunStore(runs_root).get(run_id)
    metrics_file = run.artifacts_dir / "metrics.json"
    if not metrics_file.is_file():
        raise WorkbenchError(f"run '{run.id}' has no artifacts/metrics.json: it has not finished")
    metrics = json.loads(metrics_file.read_text())
    which = metrics.get("weights", "best")
    ckpt_file = run.checkpoint_dir / ("best.pt" if which == "best" else "last.pt")
    ckpt = load_bundle(ckpt_file, kind="projection")
    cfg, model = model_from_state(ckpt["config"], ckpt["model"])
    out = Path(out)
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    save_bundle(staging, to_dict(cfg), model.state_dict(), metrics, bundle_readme(run.id, cfg, metrics),
                dims={"image": int(model.dims[0]), "text": int(model.dims[1])})
    for name in ARTIFACTS:
        src = run.artifacts_dir / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, staging / name)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return metrics


def _row(name: str, m: dict) -> str:
    cells = [f"{m[k] * 100:.1f}" for k in TABLE_KEYS[:6]] + [f"{m['i2t_median_rank']:.0f}", f"{m['t2i_median_rank']:.0f}"]
    return f"| {name} | " + " | ".join(cells) + " |"


def encoders_text(metrics: dict) -> str:
    enc = metrics.get("encoders") or {}
    parts = []
    for side in ("image", "text"):
        e = enc.get(side)
        if isinstance(e, dict):
            extra = f", tiles {e['tile_px']} px encoded at {e['encode_px']} px" if "encode_px" in e else ""
            parts.append(f"{side}: {e.get('name')} ({e.get('dim')}-d{extra})")
        elif e:
            parts.append(f"{side}: {e}")
    return "; ".join(parts) or "as named in the data's metadata"


def bundle_readme(run_id: str, cfg: ProjectionConfig, metrics: dict) -> str:
    test, base = metrics["test"], metrics.get("baselines", {})
    rows = [_row(f"**trained {cfg.model.type} heads, {cfg.loss.type} loss**", test),
            _row("untrained heads (same init)", metrics["untrained"])]
    rows += [_row(f"baseline: {name.replace('_', ' ')}", m) for name, m in base.items()]
    best_base = max(base.items(), key=lambda kv: kv[1]["r_mean"]) if base else None
    counts = metrics.get("counts", {})
    verdict = ""
    if best_base:
        gap = (test["r_mean"] - best_base[1]["r_mean"]) * 100
        verdict = (f"Mean recall (the six R@K averaged): trained {test['r_mean'] * 100:.1f}%, untrained "
                   f"{metrics['untrained']['r_mean'] * 100:.1f}%, best baseline ({best_base[0]}) "
                   f"{best_base[1]['r_mean'] * 100:.1f}%: the trained heads are "
                   f"{'ahead by' if gap >= 0 else 'BEHIND by'} {abs(gap):.1f} points.")
        losing = [k for k in TABLE_KEYS[:6] if best_base[1][k] > test[k]]
        if losing:
            verdict += f" The {best_base[0]} baseline wins on {', '.join(losing)}."
    return f"""# projection-demo

Projection heads aligning frozen image and text embeddings, trained from this folder's
config.yaml (the `projection-demo` preset: `python -m workbench train projection-demo`, run
`{run_id}`) and exported with `python -m workbench projection export-demo RUN_ID`.

- data: `{cfg.data.dir}` (splits {cfg.data.train_split} / {cfg.data.val_split} / {cfg.data.test_split});
  {', '.join(f"{s}: {c['images']} images, {c['pairs']} pairs" for s, c in counts.items())}
- frozen encoders: {encoders_text(metrics)}
- heads: `{cfg.model.type}`, {metrics.get('dims', {}).get('image')}-d / {metrics.get('dims', {}).get('text')}-d ->
  {cfg.model.output_dim}-d, hidden {cfg.model.hidden_dim}; loss `{cfg.loss.type}`; learned logit scale
  {metrics.get('logit_scale', float('nan')):.2f}{f", bias {metrics['logit_bias']:.2f}" if metrics.get('logit_bias') is not None else ''}
- trainable parameters: {metrics.get('params', {}).get('trainable')}; weights: the {metrics.get('weights')} checkpoint

## Test split (images never seen in training; whole S2 cells held out when the data has groups)

R@K in percent (I2T: an image's best-ranked caption among all test captions; T2I: a
caption's own image among all test images), median ranks 1-based. Chance R@1 is
{100 / max(1, counts.get(cfg.data.test_split, {}).get('images', 1)):.2f}% for T2I.

| model | I2T R@1 | I2T R@5 | I2T R@10 | T2I R@1 | T2I R@5 | T2I R@10 | I2T med. rank | T2I med. rank |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

{verdict}

Baselines: *random projection* maps both frozen embeddings through seeded Gaussian
matrices to the shared width (the frozen features with no learning; the widths differ so
they cannot be compared directly); *ridge* is a closed-form linear map from image to
text embeddings fitted on the training pairs.

Files: model.pt (config + weights, `torch.load(weights_only=True)`), config.yaml,
metrics.json (`test`, `untrained`, `baselines`, `val`), embeddings/ (test images and
captions: paired.npy + paired.parquet), top_captions.parquet (top-{cfg.eval.top_k} captions per test image).
Generated {time.strftime('%Y-%m-%d')}.
"""
