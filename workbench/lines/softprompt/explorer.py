"""What the Soft-Prompt Explorer page (and ``python -m workbench softprompt weights``) does.

A *source* is a trained model plus its nearest-city index:

- a bundle folder (``checkpoints/softprompt-demo/``: ``model.pt``, ``index.pt``,
  ``cities.csv``, ``config.yaml``, ``metrics.json``), or a bundle file inside one;
- a softprompt run (``runs/<id>/``: ``checkpoints/best.pt`` or ``last.pt``, and
  ``artifacts/index.pt`` + ``cities.csv`` once the run has finished).

``load_source`` gives an ``ExplorerModel``; ``click_report`` answers one click (mixture
weights, top entries and what they mean, nearest cities, latency); ``atlas_grid`` colours a
lat/lon grid by dominant entry. Everything runs on the CPU in milliseconds per click.
"""
from __future__ import annotations

import contextlib
import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.errors import InputError, NotFoundError, WorkbenchError
from workbench.geo import haversine_km, validate_latlon
from workbench.paths import CHECKPOINTS
from workbench.runs.sources import Source
from workbench.runs.sources import list_sources as core_sources
from workbench.runs.sources import resolve_source as core_resolve_source
from workbench.lines.softprompt.evaluate import prefix_scores
from workbench.ui.fmt import MISSING, fmt_count, fmt_km, fmt_num, fmt_pct

DEMO_CHECKPOINT = CHECKPOINTS / "softprompt-demo"
BUNDLE_FILE = "model.pt"


def list_sources(runs_root: str | Path | None = None, checkpoints_root: str | Path = CHECKPOINTS) -> list[Source]:
    """Softprompt bundles under ``checkpoints_root`` (the demo first), then softprompt runs
    with a checkpoint, newest first (``workbench.runs.sources.list_sources``)."""
    return core_sources("softprompt", runs_root, checkpoints_root, need="model")


def resolve_source(spec: str | Path, runs_root: str | Path | None = None) -> Source:
    """A source from a path (bundle folder or file, run folder, Trainer checkpoint file)
    or a run id in the run store."""
    return core_resolve_source(spec, "softprompt", runs_root)


@functools.lru_cache(maxsize=2)
def location_encoder(name: str):
    """The frozen location encoder (shared by every model that uses it; loads in ~0.2 s)."""
    from workbench.lines.softprompt.models import location_encoder as build

    return build(name)


@dataclass
class ExplorerModel:
    """A loaded source: the sequence model, its frozen location encoder and the city index."""

    source: Source
    cfg: Any
    model: torch.nn.Module
    encoder: torch.nn.Module
    cities: pd.DataFrame | None  # held-out cities [N] (name, country, lat, lon, prompt, ...)
    pooled: torch.Tensor | None  # (N, D) float32, L2-normalised pooled targets
    lengths: torch.Tensor | None  # (N,) real tokens per prompt
    metrics: dict = field(default_factory=dict)  # metrics.json / summary.json when present
    _meanings: list | None = field(default=None, repr=False)

    @property
    def n_entries(self) -> int | None:
        d = getattr(self.model, "dictionary", None)
        return None if d is None else int(d.entries.shape[0])

    @property
    def has_index(self) -> bool:
        return self.pooled is not None

    @torch.no_grad()
    def predict(self, latlon: Any) -> dict[str, torch.Tensor]:
        """Model outputs for (lat, lon) degrees [B, 2]: tokens [B, L, D] (+ weights [B, K])."""
        array = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
        validate_latlon(array[:, 0], array[:, 1])
        features = self.encoder(torch.as_tensor(array, dtype=torch.float32))
        return self.model(features)


def source_stamp(source: Source) -> int:
    """Latest mtime (ns) of the files a source loads from: a cache key that changes when a
    run writes a new checkpoint or an export replaces a bundle."""
    p = source.path
    files = [p] if p.is_file() else [p / BUNDLE_FILE, p / "index.pt", p / "checkpoints/best.pt",
                                     p / "checkpoints/last.pt", p / "artifacts/index.pt"]
    return max((f.stat().st_mtime_ns for f in files if f.is_file()), default=0)


def load_source(source: Source | str | Path, runs_root: str | Path | None = None) -> ExplorerModel:
    """Load a source (see module docstring) for the CPU."""
    from workbench.lines.softprompt.bundle import load_model

    if not isinstance(source, Source):
        source = resolve_source(source, runs_root)
    path = source.path
    if source.kind == "run":
        run_dir = path.parent.parent if path.is_file() else path
        ckpt = path if path.is_file() else next((p for p in (path / "checkpoints/best.pt", path / "checkpoints/last.pt")
                                                 if p.is_file()), None)
        if ckpt is None:
            raise NotFoundError(f"run '{run_dir.name}' has no checkpoint yet; wait for its first validation")
        index_dir, metrics_file = run_dir / "artifacts", run_dir / "artifacts" / "summary.json"
    else:
        ckpt = path if path.is_file() else path / BUNDLE_FILE
        index_dir = ckpt.parent
        metrics_file = index_dir / "metrics.json"
    cfg, model = load_model(ckpt)
    cities, pooled, lengths = load_index(index_dir)
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return ExplorerModel(source, cfg, model, location_encoder(cfg.features.location_encoder),
                         cities, pooled, lengths, metrics)


def load_index(directory: Path) -> tuple[pd.DataFrame | None, torch.Tensor | None, torch.Tensor | None]:
    """(cities, pooled [N, D], lengths [N]) from ``index.pt`` + ``cities.csv``; Nones if absent."""
    index, table = Path(directory) / "index.pt", Path(directory) / "cities.csv"
    if not (index.is_file() and table.is_file()):
        return None, None, None
    data = torch.load(index, map_location="cpu", weights_only=True)
    cities = pd.read_csv(table, keep_default_na=False, na_values={"lat": [""], "lon": [""]})
    if len(cities) != len(data["pooled"]):
        raise WorkbenchError(f"{table} has {len(cities)} rows but {index} {len(data['pooled'])}; export the source again")
    return cities, data["pooled"].float(), data["lengths"].long()


# -- answers ---------------------------------------------------------------------------


def nearest_cities(em: ExplorerModel, tokens: torch.Tensor, k: int = 5) -> list[list[dict]]:
    """The k held-out cities whose target sequences are most similar to each predicted
    sequence [Q, L, D] (``prefix_scores``); [] per query without an index."""
    if not em.has_index:
        return [[] for _ in range(len(tokens))]
    scores = prefix_scores(tokens, em.pooled, em.lengths)  # (Q, N)
    top = scores.topk(min(k, scores.shape[1]), dim=1)
    rows = []
    for values, idx in zip(top.values.tolist(), top.indices.tolist()):
        sub = em.cities.iloc[idx]
        rows.append([{"name": r.name, "country": r.country, "lat": float(r.lat), "lon": float(r.lon),
                      "prompt": r.prompt, "score": round(s, 4)} for r, s in zip(sub.itertuples(), values)])
    return rows


def entry_meanings(em: ExplorerModel, n: int = 3) -> list[list[dict]]:
    """For each dictionary entry, the n held-out prompts whose target sequences are nearest
    to it (the same pooled similarity as nearest cities). [] without a dictionary or index."""
    if em.n_entries is None or not em.has_index:
        return []
    if em._meanings is None or len(em._meanings[0]) < n:
        entries = em.model.dictionary.entries.detach()
        em._meanings = nearest_cities(em, entries, n)
    return [m[:n] for m in em._meanings]


def meaning_labels(em: ExplorerModel, n: int = 3) -> list[list[str]]:
    """``entry_meanings`` as "City, Country" strings per entry ([] without a dictionary or index)."""
    return [[f"{m['name']}, {m['country']}" for m in ms] for ms in entry_meanings(em, n)]


@contextlib.contextmanager
def one_thread():
    """Run a single click's tensor work on one intra-op thread, then restore the setting.

    A click is batch-1 work (a 512-d GeoCLIP pass, a [K] mixture, a [N] similarity row) that
    a second thread cannot speed up; on a busy 2-core machine two OpenMP threads wait on each
    other instead (measured: 8 ms per click with one thread, 20-48 ms with two).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def click_report(em: ExplorerModel, lat: float, lon: float, top: int = 5, n_cities: int = 5,
                 n_meanings: int = 3) -> dict[str, Any]:
    """Everything the page shows for one click; InputError for bad coordinates.

    Returns lat, lon, arch, k, weights [K] (entry order; None for models without a
    mixture), order (entries by decreasing weight), top_entries [{entry, weight, meaning}],
    nearest_cities [{name, country, lat, lon, prompt, score, distance_km}] and latency_ms
    (coordinates -> weights and nearest cities; the meanings are computed once per model).
    """
    lat, lon = _number(lat, "lat"), _number(lon, "lon")
    validate_latlon(np.array([lat]), np.array([lon]))
    with one_thread():
        start = time.perf_counter()
        out = em.predict([[lat, lon]])
        cities = nearest_cities(em, out["tokens"], n_cities)[0]
        weights = out["weights"][0] if "weights" in out else None
        order = torch.argsort(weights, descending=True).tolist() if weights is not None else []
        latency_ms = (time.perf_counter() - start) * 1000.0
        meanings = meaning_labels(em, n_meanings)
    for c in cities:
        c["distance_km"] = round(float(haversine_km(lat, lon, c["lat"], c["lon"])), 1)
    return {
        "lat": lat, "lon": lon, "source": em.source.label, "arch": em.cfg.model.arch, "k": em.n_entries,
        "weights": weights.tolist() if weights is not None else None,
        "order": order,
        "top_entries": [{"entry": e, "weight": float(weights[e]),
                         "meaning": meanings[e] if meanings else []}
                        for e in order[:top]],
        "nearest_cities": cities,
        "latency_ms": round(latency_ms, 3),
    }


def _number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in degrees, got {value!r}") from None


@torch.no_grad()
def atlas_grid(em: ExplorerModel, step_deg: float = 5.0, max_lat: float = 85.0) -> dict[str, np.ndarray]:
    """The dominant entry over a lat/lon grid of ``step_deg`` cells within +-max_lat.

    Returns lat, lon [M] (cell centres), polygons [M, 4, 2] (lat, lon corners), dominant [M]
    (entry index) and weight [M] (its weight). Needs a model with a mixture.
    """
    if em.n_entries is None:
        raise WorkbenchError(f"the atlas needs a dictionary model; {em.source.label} is '{em.cfg.model.arch}'")
    if not 0.5 <= step_deg <= 30:
        raise InputError(f"step_deg must be in [0.5, 30] degrees, got {step_deg}")
    # Edges every step_deg, closed by the bound itself (the last row / column may be narrower).
    lat_edges = np.append(np.arange(-max_lat, max_lat - 1e-9, step_deg), max_lat)
    lon_edges = np.append(np.arange(-180.0, 180.0 - 1e-9, step_deg), 180.0)
    i, j = np.meshgrid(np.arange(len(lat_edges) - 1), np.arange(len(lon_edges) - 1), indexing="ij")
    south, north = lat_edges[i.ravel()], lat_edges[i.ravel() + 1]
    west, east = lon_edges[j.ravel()], lon_edges[j.ravel() + 1]
    lat, lon = (south + north) / 2, (west + east) / 2
    weights = em.predict(np.stack([lat, lon], axis=1))["weights"]  # (M, K)
    best = weights.max(1)
    polygons = np.stack([np.stack(c, axis=1) for c in ((south, west), (north, west), (north, east), (south, east))], axis=1)
    return {"lat": lat, "lon": lon, "polygons": polygons, "dominant": best.indices.numpy(),
            "weight": best.values.numpy()}


# -- display (what the Explorer page prints; numbers through workbench.ui.fmt) -------------

# The held-out metrics the page compares, each with how it reads: fractions in [0, 1] as
# percent with one decimal, the others as plain numbers.
HEADLINE_METRICS = {
    "token_cosine": lambda v: fmt_num(v, 3),
    "seq_mse_norm": lambda v: fmt_num(v, 3),
    "retrieval_r1": fmt_pct,
    "retrieval_r10": fmt_pct,
    "country_match": fmt_pct,
    "usage_perplexity": lambda v: fmt_num(v, 1),
}


def metrics_display(metrics: dict[str, Any]) -> pd.DataFrame | None:
    """Held-out headline metrics (``HEADLINE_METRICS``, rows) of the trained weights, the
    untrained model and the model-free baselines (columns), from a bundle's metrics.json or
    a run's summary.json, formatted for display; a metric a source lacks is an em dash.
    None without metrics of the trained weights."""
    columns = {"trained": metrics.get("held_out") or metrics.get("final"),
               "untrained": metrics.get("untrained"), **(metrics.get("baselines") or {})}
    columns = {name: values for name, values in columns.items() if values}
    if "trained" not in columns:
        return None
    return pd.DataFrame({name: [fmt(values.get(key)) for key, fmt in HEADLINE_METRICS.items()]
                         for name, values in columns.items()}, index=list(HEADLINE_METRICS))


def top_entries_table(report: dict[str, Any]) -> pd.DataFrame:
    """``click_report``'s top entries: entry, weight (percent, one decimal), nearest prompts."""
    return pd.DataFrame([{"entry": t["entry"], "weight": fmt_pct(t["weight"]),
                          "nearest prompts": " / ".join(t["meaning"]) or MISSING}
                         for t in report["top_entries"]], columns=["entry", "weight", "nearest prompts"])


def cities_table(report: dict[str, Any]) -> pd.DataFrame:
    """``click_report``'s nearest cities: name, country, score (similarity, 3 decimals),
    distance from the click (km), prompt."""
    return pd.DataFrame([{"name": c["name"], "country": c["country"] or MISSING,
                          "score": fmt_num(c["score"], 3), "distance": fmt_km(c["distance_km"]),
                          "prompt": c["prompt"]} for c in report["nearest_cities"]],
                        columns=["name", "country", "score", "distance", "prompt"])


def param_counts_caption(counts: dict[str, Any]) -> str:
    """"parameters: trainable 738,624, ..." with exact counts."""
    return "parameters: " + ", ".join(f"{k} {fmt_count(v)}" for k, v in counts.items())


# -- what the Explorer page selects and lays out ------------------------------------------

NO_COMPARISON = "(none)"  # the "side by side with" choice of no second model


def compare_options(labels: list[str], first: str) -> list[str]:
    """The "side by side with" choices: NO_COMPARISON, then every source but ``first``."""
    return [NO_COMPARISON] + [x for x in labels if x != first]


def selected_labels(first: str, second: str) -> list[str]:
    """The sources to show, in column order: ``first``, and ``second`` unless NO_COMPARISON."""
    return [first] + ([second] if second != NO_COMPARISON else [])


def model_caption(em: ExplorerModel) -> str:
    """"softprompt · sequence [77, 768] from clip-l · K = 64"."""
    return (f"{em.cfg.model.arch} · sequence [{em.model.seq_len}, {em.model.token_dim}] from "
            f"{em.cfg.targets.encoder} · K = {fmt_count(em.n_entries)}")


def no_mixture_note(em: ExplorerModel) -> str:
    """Why a model without a dictionary shows no weight bars."""
    return (f"'{em.cfg.model.arch}' has no dictionary, so there are no mixture weights; "
            "its nearest cities are below.")


def mixture_title(report: dict[str, Any]) -> str:
    """The bar chart's title for a ``click_report`` with weights: "64 mixture weights (sum 100.0%)"."""
    return f"{report['k']} mixture weights (sum {fmt_pct(sum(report['weights']))})"


def atlas_layer(em: ExplorerModel, step_deg: float = 5.0) -> dict[str, Any]:
    """``atlas_grid`` plus tooltips [M]: each cell's dominant entry, its weight and the two
    held-out prompts nearest to that entry."""
    from workbench.lines.softprompt.figures import atlas_tooltips

    grid = atlas_grid(em, step_deg)
    grid["tooltips"] = atlas_tooltips(grid["dominant"], grid["weight"], meaning_labels(em, 2))
    return grid


def atlas_unavailable_note(em: ExplorerModel) -> str:
    return f"The atlas needs a dictionary model; {em.source.label} is '{em.cfg.model.arch}'."


def atlas_note(em: ExplorerModel, grid: dict[str, Any]) -> str:
    """How many of the K entries dominate some cell of ``grid`` (an ``atlas_layer``)."""
    return (f"{len(set(grid['dominant'].tolist()))} of {em.n_entries} entries dominate somewhere on this grid; "
            "hover a cell for its entry and the prompts nearest to it.")
