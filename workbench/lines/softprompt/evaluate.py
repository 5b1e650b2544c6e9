"""Held-out metrics of predicted sequences, and the sequence-similarity search they share
with the Explorer.

Sequence similarity. A prediction [L, D] is compared with a target prompt of n real tokens
the way the contrastive loss compares them: both are mean-pooled over the first n positions
and L2-normalised, then their cosine is taken. Masks are prefixes, so the pooled
prediction for *any* candidate length is a cumulative mean: ``prefix_scores`` scores Q
predictions against N targets from the targets' pooled vectors [N, D] and lengths [N]
alone (an index of a few MB instead of every target token). For MiniLM the pooled target
is the prompt's sentence embedding.

Metrics (``sequence_metrics``, ``retrieval_metrics``, ``usage_metrics``):

- ``token_cosine``: mean cosine of matching real tokens (higher is better, max 1).
- ``seq_mse_norm``: masked MSE / the MSE of always predicting the per-position mean target
  of the evaluated set (1 = no better than that constant; 0 = exact).
- ``retrieval_r1/r5/r10``: the true city's target ranks in the top k among all held-out
  cities' targets. ``country_match``: the top-ranked target belongs to a city of the same
  country.
- ``usage_perplexity``: exp(entropy of the mean mixture) in [1, K] - how many entries are in
  use; ``sample_perplexity``: exp(mean per-sample entropy) - how many entries one place mixes;
  ``entries_used``: entries that are some held-out city's top entry.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from workbench.lines.softprompt.losses import entropy, token_cosine

RETRIEVAL_KS = (1, 5, 10)
HEADLINE_METRICS = ("loss", "token_cosine", "seq_mse_norm", "retrieval_r1", "retrieval_r5", "retrieval_r10",
                    "country_match", "usage_perplexity", "sample_perplexity", "entries_used")


def pooled_index(states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled, L2-normalised targets [N, D] float32 and their lengths [N] (real tokens)."""
    m = mask.unsqueeze(-1).to(torch.float32)
    pooled = (states.float() * m).sum(1)  # (N, D); the norm below makes sum and mean equal
    return F.normalize(pooled, dim=-1), mask.sum(1).long()


def prefix_scores(pred: torch.Tensor, pooled: torch.Tensor, lengths: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """Cosine of each prediction [Q, L, D], mean-pooled over each target's first n_j
    positions, with that target's pooled vector -> scores [Q, N].

    pooled: [N, D] (from ``pooled_index``); lengths: [N] in 1..L.
    """
    pred = pred.float()
    pooled = pooled.to(pred)
    lengths = lengths.to(pred.device).long().clamp(1, pred.shape[1])
    cols = torch.arange(len(pooled), device=pred.device)
    out = torch.empty(len(pred), len(pooled), device=pred.device)
    for start in range(0, len(pred), chunk):  # bounds the [q, L, N] temporary
        cum = F.normalize(pred[start:start + chunk].cumsum(1), dim=-1)  # (q, L, D) prefix-mean directions
        all_lengths = torch.einsum("qld,nd->qln", cum, pooled)  # (q, L, N)
        out[start:start + chunk] = all_lengths[:, lengths - 1, cols]  # (q, N): row l = n_j - 1 for column j
    return out


def sequence_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """token_cosine and seq_mse_norm of pred / target [N, L, D] over real tokens (mask [N, L])."""
    pred, target = pred.float(), target.float()
    m = mask.unsqueeze(-1).to(torch.float32)  # (N, L, 1)
    per_pos_mean = (target * m).sum(0) / m.sum(0).clamp_min(1.0)  # (L, D)
    err = ((pred - target).pow(2) * m).sum()
    spread = ((target - per_pos_mean).pow(2) * m).sum()
    return {"token_cosine": float(token_cosine(pred, target, mask)),
            "seq_mse_norm": float(err / spread.clamp_min(1e-12))}


def retrieval_metrics(scores: torch.Tensor, true_cols: torch.Tensor, query_countries: Sequence[str],
                      candidate_countries: Sequence[str], ks: Sequence[int] = RETRIEVAL_KS) -> dict[str, float]:
    """Recall@k of the true column and the country match of the top-1 column.

    scores: [Q, N] (higher = more similar); true_cols: [Q] the true candidate of each query.
    Rank = number of candidates scoring strictly higher than the true one.
    """
    true_scores = scores.gather(1, true_cols.view(-1, 1))  # (Q, 1)
    rank = (scores > true_scores).sum(1)  # (Q,)
    out = {f"retrieval_r{k}": float((rank < k).float().mean()) for k in ks}
    top = scores.argmax(1).cpu().numpy()
    out["country_match"] = float(np.mean(np.asarray(candidate_countries, dtype=object)[top]
                                         == np.asarray(query_countries, dtype=object)))
    return out


def usage_metrics(weights: torch.Tensor) -> dict[str, float]:
    """usage_perplexity, sample_perplexity and entries_used of mixtures [N, K]."""
    weights = weights.float()
    return {"usage_perplexity": math.exp(float(entropy(weights.mean(0)))),
            "sample_perplexity": math.exp(float(entropy(weights).mean())),
            "entries_used": float(len(torch.unique(weights.argmax(1))))}


def evaluate_sequences(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, countries: Sequence[str],
                       weights: torch.Tensor | None = None) -> dict[str, float]:
    """All held-out metrics for N cities: pred / target [N, L, D], mask [N, L], countries [N],
    weights [N, K] or None. Retrieval searches the N targets themselves."""
    pooled, lengths = pooled_index(target, mask)
    scores = prefix_scores(pred, pooled, lengths)
    out = sequence_metrics(pred, target, mask)
    out.update(retrieval_metrics(scores, torch.arange(len(pred)), countries, countries))
    if weights is not None:
        out.update(usage_metrics(weights))
    return out


def reference_baselines(states: torch.Tensor, mask: torch.Tensor, train_rows: np.ndarray, val_rows: np.ndarray,
                        lat: np.ndarray, lon: np.ndarray, countries: Sequence[str]) -> dict[str, dict[str, float]]:
    """Held-out metrics of two predictors that learn nothing, to give the numbers a scale.

    ``mean_sequence``: the mean training target at each position, the same for every place.
    ``nearest_train_city``: the target of the geographically nearest training city (a
    lookup table over all training targets: the geographic prior at full memory cost).
    states [N, L, D], mask [N, L], lat / lon [N] degrees, countries [N]; rows index them.
    """
    from workbench.geo import haversine_km

    tr, va = torch.as_tensor(train_rows), torch.as_tensor(val_rows)
    target, m = states[va].float(), mask[va]
    w = mask[tr].unsqueeze(-1).float()
    mean = ((states[tr].float() * w).sum(0) / w.sum(0).clamp_min(1.0)).expand_as(target)  # (Nv, L, D)
    nearest = np.empty(len(va), dtype=np.int64)
    for start in range(0, len(va), 512):  # bounds the [chunk, N_train] distance matrix
        rows = val_rows[start:start + 512]
        d = haversine_km(lat[rows][:, None], lon[rows][:, None], lat[train_rows][None], lon[train_rows][None])
        nearest[start:start + len(rows)] = train_rows[d.argmin(1)]
    countries = np.asarray(countries, dtype=object)[val_rows]
    return {"mean_sequence": evaluate_sequences(mean, target, m, countries),
            "nearest_train_city": evaluate_sequences(states[torch.as_tensor(nearest)].float(), target, m, countries)}


def summarize_seeds(results: list[dict[str, float]]) -> dict[str, dict]:
    """{metric: {"mean", "std" (sample, ddof=1; 0 for one run), "n", "values"}} over runs."""
    keys = [k for k in results[0] if all(k in r for r in results)]
    out = {}
    for key in keys:
        values = np.array([r[key] for r in results], dtype=np.float64)
        out[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "n": len(values), "values": values.tolist()}
    return out


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


@torch.no_grad()
def embedding_sets(model, features: torch.Tensor, cities, pooled: torch.Tensor, lengths: torch.Tensor) -> dict:
    """The embeddings artifact's sets (``workbench.embeddings.sets``) of the held-out cities:
    ``location`` (the frozen location features [N, F]) and ``predicted`` (2N rows: each
    city's predicted token sequence, mean-pooled over its real tokens and L2-normalised, and
    its pooled target, modality "predicted" / "target", paired by ``group``)."""
    import numpy as np
    import pandas as pd

    device = next(model.parameters()).device
    tokens = torch.cat([model(features[i:i + 256].to(device))["tokens"].float().cpu()
                        for i in range(0, len(features), 256)])  # (N, L, D)
    mask = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]  # (N, L): each target's real tokens
    predicted, _ = pooled_index(tokens, mask)
    n = len(cities)
    base = pd.DataFrame({
        "group": [f"city:{i}" for i in range(n)], "split": "val",
        "lat": cities["lat"].to_numpy(np.float64), "lon": cities["lon"].to_numpy(np.float64),
        **{c: cities[c].to_numpy() for c in ("name", "country", "continent", "population") if c in cities},
        "caption": cities["prompt"].astype(str).to_numpy() if "prompt" in cities else ""})
    location = base.assign(id=base["group"], modality="location")
    pairs = pd.concat([base.assign(id=[f"predicted:{i}" for i in range(n)], modality="predicted"),
                       base.assign(id=[f"target:{i}" for i in range(n)], modality="target")], ignore_index=True)
    return {"location": (features.float().numpy(), location),
            "predicted": (torch.cat([predicted, pooled.float()]).numpy(), pairs)}


def write_embedding_sets(folder: Path, model, features: torch.Tensor, cities, pooled: torch.Tensor,
                         lengths: torch.Tensor, dtype: str = "float16") -> list[str]:
    from workbench.embeddings.sets import write_set

    sets = embedding_sets(model, features, cities, pooled, lengths)
    for name, (vectors, meta) in sets.items():
        write_set(folder, name, vectors, meta, dtype)  # float16: half the size, plenty for maps of the space
    return list(sets)


def bundle_embeddings(directory: Path) -> list[str]:
    """Write ``embeddings/`` into a soft-prompt bundle (or a run's artifacts folder) from what
    it holds: the model, ``cities.csv`` and ``index.pt``; the location features are encoded
    again by the frozen encoder the config names (cached)."""
    import numpy as np
    import pandas as pd

    from workbench.encoders.location import encode_cached
    from workbench.lines.softprompt.bundle import load_model
    from workbench.lines.softprompt.models import location_encoder_kwargs

    directory = Path(directory)
    model_file = directory / "model.pt"
    if not model_file.is_file():
        model_file = directory.parent / "checkpoints" / "best.pt"
    cfg, model = load_model(model_file)
    cities = pd.read_csv(directory / "cities.csv")
    index = torch.load(directory / "index.pt", weights_only=True)
    name = cfg.features.location_encoder
    features = torch.from_numpy(encode_cached(name, cities[["lat", "lon"]].to_numpy(np.float64),
                                              **location_encoder_kwargs(name)))
    return write_embedding_sets(directory / "embeddings", model, features, cities, index["pooled"].float(),
                                index["lengths"])
