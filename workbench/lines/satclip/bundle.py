"""SatCLIP models as the probes, the pages and the CLI use them: load a bundle or run, give
its location encoder as a function, export a run into a bundle.

A satclip bundle (core format) holds model.pt (config + heads + location encoder; the image
backbone too when it was fine-tuned, never a frozen offline preset, which is referenced by
name), config.yaml, metrics.json (val retrieval, untrained, the probe table under
``probes``), README.md and ``embeddings/`` (held-out tiles: image and location points in
paired.npy + paired.parquet).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path


from workbench.config import from_dict, to_dict
from workbench.errors import NotFoundError, WorkbenchError
from workbench.lines.satclip.config import SatClipConfig
from workbench.lines.satclip.models import SatClipModel, build_backbone, location_encoder_fn  # noqa: F401
from workbench.paths import CHECKPOINTS
from workbench.runs.sources import Source, list_sources as core_sources, resolve_source
from workbench.train.bundle import load_bundle, save_bundle

DEMO = CHECKPOINTS / "satclip-demo"


def list_sources(runs_root=None, checkpoints_root=CHECKPOINTS) -> list[Source]:
    return core_sources("satclip", runs_root, checkpoints_root, need="model")


def model_from_state(config: dict, state: dict) -> tuple[SatClipConfig, SatClipModel]:
    cfg = from_dict(SatClipConfig, config)
    if "dims" not in state:
        raise WorkbenchError("the checkpoint has no 'dims' entry: not a satclip model")
    feature_dim, in_chans = (int(v) for v in state["dims"])
    backbone = None
    if any(k.startswith("backbone.") for k in state):
        backbone, _ = build_backbone(from_dict(SatClipConfig, {**config, "model": {**config["model"], "weights": "none"}}),
                                     in_chans)
    model = SatClipModel(cfg, feature_dim, backbone, in_chans)
    model.load_state_dict(state)
    return cfg, model.eval()


def load_model(spec: Source | str | Path, runs_root=None) -> tuple[Source, SatClipConfig, SatClipModel]:
    source = spec if isinstance(spec, Source) else resolve_source(spec, "satclip", runs_root)
    file = source.checkpoint if source.path.is_dir() else source.path
    if file is None:
        raise NotFoundError(f"{source.label} has no model yet (a run saves one at its first validation)")
    ckpt = load_bundle(file, kind="satclip")
    cfg, model = model_from_state(ckpt["config"], ckpt["model"])
    return source, cfg, model


def export_run(run_id: str, out: Path, runs_root=None) -> dict:
    """Bundle a finished run's best weights with its metrics, README and embeddings."""
    from workbench.runs import RunStore

    run = RunStore(runs_root).get(run_id)
    metrics_file = run.artifacts_dir / "metrics.json"
    if not metrics_file.is_file():
        raise WorkbenchError(f"run '{run.id}' has no artifacts/metrics.json: it has not finished")
    metrics = json.loads(metrics_file.read_text())
    ckpt = load_bundle(run.checkpoint_dir / "best.pt", kind="satclip")
    cfg, model = model_from_state(ckpt["config"], ckpt["model"])
    out = Path(out)
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    save_bundle(staging, to_dict(cfg), model.state_dict(), metrics, bundle_readme(run.id, cfg, metrics))
    if (run.artifacts_dir / "embeddings").is_dir():
        shutil.copytree(run.artifacts_dir / "embeddings", staging / "embeddings")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return metrics


def bundle_readme(run_id: str, cfg: SatClipConfig, metrics: dict) -> str:
    from workbench.lines.satclip.probes import probe_table

    val, untrained = metrics.get("val", {}), metrics.get("untrained", {})
    rows = metrics.get("probes") or []
    table = markdown(probe_table(rows)) if rows else "(no probes were run)"
    verdict = probe_summary(rows, cfg) if rows else ""
    return f"""# satclip-demo

SatCLIP trained on `{cfg.data.dir}` ({cfg.data.source}): `{cfg.model.backbone}` image encoder
({'frozen, cached features' if cfg.model.freeze_backbone else 'fine-tuned'}) and a
`{cfg.model.location_encoder}` location encoder, `Project` heads to {cfg.model.embed_dim}-d, clip loss.
Run `{run_id}`, exported with `python -m workbench satclip export-demo RUN_ID`.

## Held-out tiles (whole S2 cells never seen in training): tile <-> location retrieval

| model | tile->loc R@1 | R@5 | R@10 | loc->tile R@1 | R@5 | R@10 |
| --- | --- | --- | --- | --- | --- | --- |
| trained | {_pct(val, 'tile2loc_r1')} | {_pct(val, 'tile2loc_r5')} | {_pct(val, 'tile2loc_r10')} | {_pct(val, 'loc2tile_r1')} | {_pct(val, 'loc2tile_r5')} | {_pct(val, 'loc2tile_r10')} |
| untrained | {_pct(untrained, 'tile2loc_r1')} | {_pct(untrained, 'tile2loc_r5')} | {_pct(untrained, 'tile2loc_r10')} | {_pct(untrained, 'loc2tile_r1')} | {_pct(untrained, 'loc2tile_r5')} | {_pct(untrained, 'loc2tile_r10')} |

## Location-embedding probes (held out by S2 cell; mean ± std over seeds)

Frozen encoder -> linear (ridge / logistic) or MLP probe; R² for continuous targets,
accuracy for classes; {cfg.probe.points} {cfg.probe.where} points, {cfg.probe.seeds} seeds
(`satclip` is this model's location embedding, in the shared space).

{table}
{verdict}"""


def probe_summary(rows: list[dict], cfg: SatClipConfig) -> str:
    """Plain statements from the probe rows: does the trained encoder beat raw lat/lon on
    the continuous targets, and where is a baseline the best encoder."""
    from workbench.lines.satclip.probes import best_per_target, probe_verdicts

    lines = ["", "### Read plainly", ""]
    verdicts = probe_verdicts(rows)
    if not verdicts.empty:
        lost = verdicts[~verdicts["beats"]]
        if lost.empty:
            lines.append("- The trained encoder beats raw lat/lon on every continuous target, with both probes.")
        for r in lost.itertuples():
            lines.append(f"- Raw lat/lon beats the trained encoder on {r.target} ({r.probe}: "
                         f"{r.raw_latlon:.3f} vs {r.satclip:.3f}).")
    for r in best_per_target(rows).itertuples():
        if r.best != "satclip":
            lines.append(f"- {r.target} ({r.probe}, {r.metric}): {r.best} is best ({r.mean:.3f}; "
                         f"next {r.second} {r.second_mean:.3f}).")
    return "\n".join(lines) + "\n"


def _pct(m: dict, key: str) -> str:
    return f"{m[key] * 100:.1f}" if key in m else "-"


def markdown(frame) -> str:
    """A DataFrame as a GitHub markdown table (no tabulate dependency)."""
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
