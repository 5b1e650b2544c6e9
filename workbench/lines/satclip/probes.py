"""Location-embedding probes: how much a frozen location encoder knows about a place.

    latlon [N, 2] --encoder (frozen, once)--> features [N, D] --standardise (train stats)-->
        linear probe (ridge / logistic) or MLP probe (1 x 256, ReLU) --> R^2 / accuracy on test

Split: whole S2 cells of ``split_level`` (level 4: ~600 km) are held out (``held_out_cells``,
20 % of the points), so a probe is scored on regions it never saw, not on the neighbours of
its training points. Seed ``s`` sets the split (``held_out_cells(seed=s)``) and the MLP's
initialisation (``torch.manual_seed(s)``); the linear probes are deterministic given the
split. Every encoder and target of one seed sees the same split (targets defined on land
only use its land points), so the table compares like with like; ``mean`` / ``std`` are over
seeds (std with ddof 1; 0 for one seed).

Probes:

- ``linear``: regression -> ridge with the penalty chosen by efficient leave-one-out on the
  training points (sklearn ``RidgeCV``, RIDGE_ALPHAS), so a 1600-feature encoder is not
  penalised for being under-regularised; classes -> multinomial logistic regression
  (sklearn, C = LOGISTIC_C).
- ``mlp``: one hidden layer of MLP_HIDDEN ReLU units, MLP_STEPS AdamW steps
  (lr MLP_LR, weight decay MLP_WD) on seeded mini-batches of MLP_BATCH points (as many
  updates as full-batch steps at a fraction of the cost), no early stopping; mean-squared
  error on the standardised target (regression targets are standardised with train statistics, so a
  loss is comparable across targets; R^2 does not depend on it) or cross-entropy.

Classes seen fewer than MIN_CLASS_COUNT times in a seed's training points are merged into
"other" (countries mostly; continents rarely), and test points of a class the training
points never had count as "other" too.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import ConfigError, InputError

PROBES = ("linear", "mlp")
TEST_FRACTION = 0.2
MIN_CLASS_COUNT = 10
RIDGE_ALPHAS = np.logspace(-3, 4, 15)
LOGISTIC_C = 1.0
LOGISTIC_ITERS = 50
MLP_HIDDEN = 256
MLP_STEPS = 200
MLP_BATCH = 256
MLP_LR = 3e-3
MLP_WD = 1e-4
MIN_CSV_ROWS = 50
from workbench.lines.satclip.config import PROBE_ENCODERS as ENCODER_NAMES  # noqa: E402

Encoder = Callable[[np.ndarray], np.ndarray]  # latlon [N, 2] degrees -> features [N, D]


# -- encoders --------------------------------------------------------------------------------


def default_encoders(names: Sequence[str] | None = None) -> dict[str, Encoder]:
    """The frozen baselines, each built on its first call and kept (``names``: a subset).

    | name | features | D |
    | --- | --- | --- |
    | ``raw_latlon`` | (lat, lon) in radians: the baseline every encoder must beat | 2 |
    | ``geoclip`` | pretrained GeoCLIP location encoder, frozen | 512 |
    | ``rff`` | GeoCLIP's architecture (Equal Earth + RFF + MLP), random init (seed 0) | 512 |
    | ``sh10`` / ``sh40`` | the real spherical-harmonic basis itself, L = 10 / 40 (float64) | 100 / 1600 |
    | ``sh40_siren`` | SatCLIP's encoder before training: SH L = 40 + SIREN, random init (seed 0) | 256 |

    "Untrained SH" is the basis, not SH + a random SIREN: the basis is a fixed, meaningful
    feature set (a linear probe on it is a degree-L spherical-harmonic regression), while a
    random SIREN only mixes it; ``sh40_siren`` shows what the random mixing costs.
    """
    names = list(ENCODER_NAMES if names is None else names)
    unknown = [n for n in names if n not in ENCODER_NAMES]
    if unknown:
        raise ConfigError(f"unknown probe encoder(s) {unknown}. Available: {list(ENCODER_NAMES)}")
    return {name: _ENCODERS[name] for name in names}


def _raw_latlon(latlon: np.ndarray) -> np.ndarray:
    return np.radians(np.asarray(latlon, np.float64)).astype(np.float32)  # (N, 2)


def _harmonics(num_degrees: int) -> Encoder:
    def features(latlon: np.ndarray) -> np.ndarray:
        import torch

        from workbench.encoders.location.spherical_harmonics import real_spherical_harmonics

        points = torch.as_tensor(np.asarray(latlon), dtype=torch.float64)  # the basis needs float64
        return real_spherical_harmonics(points, num_degrees).float().numpy()  # (N, L^2)
    return features


def _registered(name: str, **kwargs) -> Encoder:
    @lru_cache(maxsize=1)
    def build():
        from workbench.encoders.location import create_location_encoder

        return create_location_encoder(name, **kwargs).eval()

    def features(latlon: np.ndarray) -> np.ndarray:
        from workbench.encoders.location import encode

        return encode(build(), latlon)  # (N, out_dim) float32
    return features


_ENCODERS: dict[str, Encoder] = {
    "raw_latlon": _raw_latlon,
    "geoclip": _registered("geoclip"),
    "rff": _registered("rff", seed=0),
    "sh10": _harmonics(10),
    "sh40": _harmonics(40),
    "sh40_siren": _registered("sh_siren", num_degrees=40, seed=0),
}


# -- targets ---------------------------------------------------------------------------------


def target_spec(name: str, values: pd.Series) -> tuple[str, str]:
    """(kind, defined on) of a target column: from ``TARGETS`` for the built-in ones, else
    regression if the column is numeric (not bool), classification otherwise, on all points."""
    from workbench.lines.satclip.probe_targets import TARGETS

    if name in TARGETS:
        return TARGETS[name]
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return ("regression" if numeric else "classification"), "anywhere"


def csv_target(path: str | Path) -> tuple[np.ndarray, pd.DataFrame]:
    """A user's CSV of ``lat, lon, target`` -> (latlon [N, 2] degrees, DataFrame [N] with the
    one target column, named as in the file). Numeric -> regression, else classification."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"probe CSV not found: {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path} as CSV: {str(exc).strip().splitlines()[0]}") from None
    columns = {c.strip().lower(): c for c in frame.columns}
    others = [c for c in frame.columns if c.strip().lower() not in ("lat", "lon")]
    if "lat" not in columns or "lon" not in columns or len(others) != 1:
        raise InputError(f"{path} needs columns lat, lon and one target column; "
                         f"found {list(frame.columns)}")
    latlon = frame[[columns["lat"], columns["lon"]]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    target = frame[[others[0]]].reset_index(drop=True)
    bad = ~np.isfinite(latlon).all(axis=1) | target[others[0]].isna().to_numpy()
    if pd.api.types.is_numeric_dtype(target[others[0]]):
        bad |= ~np.isfinite(target[others[0]].to_numpy(np.float64))
    if bad.any():
        raise InputError(f"{path}: {int(bad.sum())} row(s) with a missing or non-finite lat, lon "
                         f"or {others[0]!r} (first: data row {int(np.argmax(bad)) + 1}); fix or drop them")
    out = (np.abs(latlon[:, 0]) > 90) | (np.abs(latlon[:, 1]) > 180)
    if out.any():
        row = int(np.argmax(out))
        raise InputError(f"{path}: {int(out.sum())} row(s) with coordinates out of range (lat in "
                         f"[-90, 90], lon in [-180, 180]); first: data row {row + 1} "
                         f"({latlon[row, 0]}, {latlon[row, 1]})")
    if len(frame) < MIN_CSV_ROWS:
        raise InputError(f"{path} has {len(frame)} rows; a probe needs at least {MIN_CSV_ROWS}")
    return latlon, target


# -- probes ----------------------------------------------------------------------------------


def run_probes(encoders: dict[str, Encoder], latlon: np.ndarray, targets: pd.DataFrame,
               seeds: Sequence[int] = (0, 1, 2, 3, 4), split_level: int = 4,
               probes: Sequence[str] = PROBES) -> list[dict]:
    """Probe every encoder on every target column: rows (encoder x target x probe) of
    ``{"encoder", "target", "probe", "metric", "mean", "std", "n_train", "n_test"}``.

    latlon [N, 2] degrees; targets [N] (a column per target; ``land`` must be there when a
    land-only built-in target is; ``place_km`` is not probed). Metric ``r2`` (regression) or
    ``accuracy`` (classes); n_train / n_test: the target's points, mean over seeds.
    """
    from workbench.encoders.location.cache import as_latlon_array

    latlon = as_latlon_array(latlon)
    unknown = [p for p in probes if p not in PROBES]
    if unknown or not probes:
        raise ConfigError(f"unknown probe(s) {unknown or list(probes)}. Available: {list(PROBES)}")
    if not seeds:
        raise ConfigError("run_probes needs at least one seed")
    if len(targets) != len(latlon):
        raise InputError(f"targets has {len(targets)} rows for {len(latlon)} points")
    specs = {name: target_spec(name, targets[name]) for name in targets.columns if name != "place_km"}
    groups: dict[bytes, list[str]] = {}  # targets probed on the same points share the work
    masks: dict[bytes, np.ndarray] = {}
    for name, (_, on) in specs.items():
        mask = _defined(targets, name, on)
        groups.setdefault(mask.tobytes(), []).append(name)
        masks[mask.tobytes()] = mask
    features = {name: _features(name, fn, latlon) for name, fn in encoders.items()}  # once per call
    with _one_thread():
        return _run(features, latlon, targets, specs, groups, masks, seeds, split_level, probes)


def _run(features, latlon, targets, specs, groups, masks, seeds, split_level, probes) -> list[dict]:
    from workbench.geo.splits import held_out_cells

    scores: dict[tuple[str, str, str], list[float]] = {}
    sizes: dict[str, list[tuple[int, int]]] = {name: [] for name in specs}
    for seed in seeds:
        test = held_out_cells(latlon[:, 0], latlon[:, 1], level=split_level,
                              fraction=TEST_FRACTION, seed=seed)
        for key, names in groups.items():
            train_idx, test_idx = np.flatnonzero(masks[key] & ~test), np.flatnonzero(masks[key] & test)
            labels = {t: _labels(targets[t].to_numpy(), train_idx, test_idx, specs[t][0]) for t in names}
            for t in names:
                sizes[t].append((len(train_idx), len(test_idx)))
            kinds = {t: specs[t][0] for t in names}
            for encoder, x in features.items():
                x_train, x_test = _standardise(x[train_idx], x[test_idx])
                for probe in probes:
                    found = _probe_scores(probe, kinds, labels, x_train, x_test, seed)
                    for t, score in found.items():
                        scores.setdefault((encoder, t, probe), []).append(score)
    rows = []
    for (encoder, target, probe), values in scores.items():
        n_train, n_test = np.mean(sizes[target], axis=0)
        rows.append({"encoder": encoder, "target": target, "probe": probe,
                     "metric": "r2" if specs[target][0] == "regression" else "accuracy",
                     "mean": float(np.mean(values)),
                     "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                     "n_train": int(round(n_train)), "n_test": int(round(n_test))})
    return rows


def probe_table(rows: list[dict]) -> pd.DataFrame:
    """Rows of ``run_probes`` -> a table [encoder x probe, target] of "mean ± std" strings."""
    frame = pd.DataFrame(rows)
    frame["cell"] = [_cell(m, s) for m, s in zip(frame["mean"], frame["std"], strict=True)]
    table = frame.pivot(index=["encoder", "probe"], columns="target", values="cell")
    order = list(dict.fromkeys(frame["target"]))  # targets in the order they were probed
    encoders = list(dict.fromkeys(frame["encoder"]))
    table = table[order].reset_index()
    table["encoder"] = pd.Categorical(table["encoder"], encoders, ordered=True)
    table = table.sort_values(["encoder", "probe"]).reset_index(drop=True)
    table["encoder"] = table["encoder"].astype(str)
    table.columns.name = None
    return table


def probe_verdicts(rows: list[dict], trained: str = "satclip", baseline: str = "raw_latlon") -> pd.DataFrame:
    """Per continuous target and probe: the trained encoder's mean, the baseline's, whether
    it beats it, and the best encoder of the table (which may be a baseline)."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame[frame["metric"] == "r2"]
    out = []
    for (target, probe), group in frame.groupby(["target", "probe"], sort=False):
        by = group.set_index("encoder")["mean"]
        if trained not in by or baseline not in by:
            continue
        best = by.idxmax()
        out.append({"target": target, "probe": probe, trained: round(float(by[trained]), 3),
                    baseline: round(float(by[baseline]), 3), "beats": bool(by[trained] > by[baseline]),
                    "best": best, "best_r2": round(float(by[best]), 3)})
    return pd.DataFrame(out)

def best_per_target(rows: list[dict]) -> pd.DataFrame:
    """Per target and probe: the best encoder and its score, and the runner-up."""
    frame = pd.DataFrame(rows)
    out = []
    for (target, probe), group in frame.groupby(["target", "probe"], sort=False):
        ranked = group.sort_values("mean", ascending=False, kind="stable")
        out.append({"target": target, "probe": probe, "metric": ranked["metric"].iloc[0],
                    "best": ranked["encoder"].iloc[0], "mean": round(float(ranked["mean"].iloc[0]), 3),
                    "second": ranked["encoder"].iloc[1] if len(ranked) > 1 else "",
                    "second_mean": round(float(ranked["mean"].iloc[1]), 3) if len(ranked) > 1 else float("nan")})
    return pd.DataFrame(out)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread, denormals flushed, restored after. The probes' matrices are small,
    so a second thread gains little, and on a shared CPU whose other core is busy its thread
    barriers made a 300-step MLP fit 80x slower (0.5 s -> 40 s); SIREN features produce
    denormal gradients that cost another 3x."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)


def _cell(mean: float, std: float) -> str:
    return "n/a" if not math.isfinite(mean) else f"{mean:.3f} ± {std:.3f}"


def _features(name: str, fn: Encoder, latlon: np.ndarray) -> np.ndarray:
    x = np.asarray(fn(latlon), np.float32)
    if x.ndim != 2 or len(x) != len(latlon):
        raise InputError(f"encoder {name!r} returned shape {x.shape} for {len(latlon)} points; "
                         "expected [N, D]")
    if not np.isfinite(x).all():
        raise InputError(f"encoder {name!r} returned non-finite features")
    return x


def _defined(targets: pd.DataFrame, name: str, on: str) -> np.ndarray:
    """[N] bool: the points a target is probed on (its value known, on land if it says so)."""
    known = targets[name].notna().to_numpy().copy()
    if on == "land":
        if "land" not in targets:
            raise InputError(f"target {name!r} is defined on land only; targets need a 'land' column")
        known &= targets["land"].to_numpy(bool)
    return known


def _labels(values: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
            kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Train / test targets: floats, or class indices with rare classes merged into "other"."""
    if kind == "regression":
        return values[train_idx].astype(np.float64), values[test_idx].astype(np.float64)
    train, test = values[train_idx].astype(str), values[test_idx].astype(str)
    names, counts = np.unique(train, return_counts=True)
    kept = names[counts >= MIN_CLASS_COUNT]
    train = np.where(np.isin(train, kept), train, "other")
    test = np.where(np.isin(test, kept), test, "other")
    classes = np.unique(train)
    index = np.searchsorted(classes, test)
    seen = (index < len(classes)) & (classes[np.minimum(index, len(classes) - 1)] == test)
    return np.searchsorted(classes, train), np.where(seen, index, -1)  # -1: never right


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train.mean(axis=0) if len(train) else 0.0
    std = train.std(axis=0) if len(train) else 1.0
    std = np.where(std > 1e-8, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """1 - SSE / SST around the test mean (sklearn's convention; may be negative)."""
    sst = float(((y - y.mean()) ** 2).sum())
    sse = float(((y - pred) ** 2).sum())
    return 1.0 - sse / sst if sst > 0 else float("nan")


def _probe_scores(probe: str, kinds: dict[str, str], labels: dict[str, tuple[np.ndarray, np.ndarray]],
                  x_train: np.ndarray, x_test: np.ndarray, seed: int) -> dict[str, float]:
    """Test score of one probe for each target of a group (all fitted on the same points)."""
    out = {t: float("nan") for t in kinds}
    if len(x_train) < 2 or len(x_test) < 2:
        return out
    regression = [t for t, kind in kinds.items() if kind == "regression"]
    if regression:
        y = np.column_stack([labels[t][0] for t in regression])  # (N, T)
        mean, std = y.mean(axis=0), np.maximum(y.std(axis=0), 1e-12)
        z = (y - mean) / std  # standardised targets (train statistics)
        if probe == "linear":
            pred = ridge_gcv(x_train, z, x_test)  # (M, T), one penalty per target
        else:
            pred = np.column_stack([mlp_fit_predict(x_train, z[:, k], x_test, seed, classify=False)
                                    for k in range(len(regression))])
        for k, t in enumerate(regression):
            out[t] = r2_score(labels[t][1], pred[:, k] * std[k] + mean[k])
    for t in (t for t, kind in kinds.items() if kind == "classification"):
        y_train, y_test = labels[t]
        if len(np.unique(y_train)) == 1:  # nothing to learn: the only class
            pred = np.full(len(y_test), y_train[0])
        elif probe == "linear":
            pred = softmax_regression(x_train, y_train, x_test)
        else:
            pred = mlp_fit_predict(x_train, y_train, x_test, seed, classify=True)
        out[t] = float(np.mean(pred == y_test))
    return out


def ridge_gcv(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
              alphas: np.ndarray = RIDGE_ALPHAS) -> np.ndarray:
    """Ridge predictions [M, T] for centred features x_train [N, D] and centred targets
    y_train [N, T], each target with the penalty of ``alphas`` that minimises generalised
    cross-validation (the closed-form rotation-invariant leave-one-out estimate).

    One eigendecomposition (of the smaller of X^T X and X X^T) serves every penalty and
    target: with eigenvalues lam_k and projections c_k = u_k^T y,
    GCV(a) = ||y - y_hat(a)||^2 / (N - sum_k lam_k / (lam_k + a))^2.
    """
    import torch

    x = torch.as_tensor(x_train, dtype=torch.float32)
    y = torch.as_tensor(y_train, dtype=torch.float64)  # (N, T)
    n, d = x.shape
    primal = n >= d
    gram = (x.T @ x if primal else x @ x.T).double()  # (D, D) or (N, N), float32 product
    lam, vec = torch.linalg.eigh(gram)
    lam = lam.clamp_min(0.0)
    if primal:  # vec = V; X^T y = V diag(sqrt(lam)) U^T y
        xty = vec.T @ (x.T.double() @ y)  # (D, T)
        c = torch.where(lam[:, None] > 1e-9 * lam.max(), xty / lam.sqrt()[:, None].clamp_min(1e-300), 0.0)
    else:  # vec = U
        c = vec.T @ y  # (N, T)
    a = torch.as_tensor(alphas, dtype=torch.float64)[:, None, None]  # (K, 1, 1)
    shrink = a / (lam[None, :, None] + a)  # (K, r, 1): 1 - hat-matrix eigenvalue
    resid = (y**2).sum(0) - (c**2).sum(0) + ((shrink * c) ** 2).sum(1)  # (K, T)
    dof = (lam[None, :] / (lam[None, :] + a[:, :, 0])).sum(1, keepdim=True)  # (K, 1)
    best = torch.argmin(resid / (n - dof).clamp_min(1e-9) ** 2, dim=0)  # (T,)
    inverse = 1.0 / (lam[:, None] + torch.as_tensor(alphas)[best][None, :])  # (r, T)
    if primal:
        coef = vec @ (xty * inverse)  # (D, T)
    else:
        coef = x.T.double() @ (vec @ (c * inverse))  # (D, T)
    return (torch.as_tensor(x_test, dtype=torch.float64) @ coef).numpy()


def softmax_regression(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                       c: float = LOGISTIC_C, max_iter: int = LOGISTIC_ITERS) -> np.ndarray:
    """Multinomial logistic regression (sklearn's objective: C * sum CE + ||W||^2 / 2, bias
    unpenalised) fitted by full-batch L-BFGS; predicted classes [M] of x_test."""
    import torch

    x = torch.as_tensor(x_train, dtype=torch.float32)  # (N, D)
    y = torch.as_tensor(y_train, dtype=torch.long)
    w = torch.zeros(x.shape[1], int(y.max()) + 1, requires_grad=True)  # (D, K): convex, zero init
    b = torch.zeros(w.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")
    penalty = 1.0 / (2.0 * c * len(x))  # sklearn's objective divided by C N

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, y) + penalty * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (torch.as_tensor(x_test, dtype=torch.float32) @ w + b).argmax(1).numpy()


def mlp_fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int,
                    classify: bool) -> np.ndarray:
    """Predictions [M] (classes, or the standardised target) of a 1-hidden-layer MLP trained
    for MLP_STEPS AdamW steps on seeded mini-batches of MLP_BATCH training points."""
    import torch
    from torch import nn

    from workbench.encoders.location.base import seeded

    x = torch.as_tensor(x_train, dtype=torch.float32)  # (N, D)
    y = torch.as_tensor(y_train, dtype=torch.long if classify else torch.float32)  # (N,)
    out_dim = int(y.max()) + 1 if classify else 1
    with seeded(seed):
        model = nn.Sequential(nn.Linear(x.shape[1], MLP_HIDDEN), nn.ReLU(), nn.Linear(MLP_HIDDEN, out_dim))
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss() if classify else nn.MSELoss()
    opt = torch.optim.AdamW(model.parameters(), lr=MLP_LR, weight_decay=MLP_WD)
    full = len(x) <= MLP_BATCH
    for _ in range(MLP_STEPS):
        batch = slice(None) if full else torch.randint(len(x), (MLP_BATCH,), generator=generator)
        out = model(x[batch])  # (B, out_dim)
        loss = loss_fn(out, y[batch]) if classify else loss_fn(out[:, 0], y[batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = model(torch.as_tensor(x_test, dtype=torch.float32))  # (M, out_dim)
    return out.argmax(1).numpy() if classify else out[:, 0].numpy()
