"""What the Geolocate page shows, as functions of the user's choices and a prediction: the
image chosen, the true position and where it comes from, what a map click does, the score,
the confidence verdict, the cell table and the map.

No Streamlit here; ``workbench.lines.geolocator.ui`` lays these out. The map is built with
the offline folium helpers of ``workbench.ui.map`` (folium only, no Streamlit calls).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.geo import geoguessr_score, haversine_km
from workbench.lines.geolocator.confidence import (
    KNN_K,
    NEAR_UNIFORM_ENTROPY,
    OOD_QUANTILE,
    FeatureReference,
    peakedness,
)
from workbench.lines.geolocator.samples import Sample
from workbench.ui.fmt import fmt_num, fmt_pct

PRED_COLOR = "#e31a1c"  # red: the predicted point
TRUE_COLOR = "#2ca02c"  # green: the true location
COLORMAP = "YlOrRd_09"
# where the true position comes from, strongest first: a data set's label beats EXIF, which
# beats a click (a click only stands in for an image without either)
TRUTH_DATASET, TRUTH_EXIF, TRUTH_CLICK = "the test split's position", "EXIF GPS", "map click"
# what a click on the map does (``click_action``)
CLICK_STORE, CLICK_IGNORE = "store", "ignore"


@dataclass(frozen=True)
class ChosenImage:
    """The image to geolocate: its bytes, file name, how the page names it ("test tile",
    "sample photo", "your upload"), the sample it is (None: an upload) and its SHA-1."""

    data: bytes
    name: str
    what: str
    sample: Sample | None
    digest: str  # hex SHA-1 of data: binds caches, the map widget and a clicked truth to the image

    @property
    def is_tile(self) -> bool:
        return self.sample is not None and self.sample.kind == "tile"

    @property
    def dataset_position(self) -> tuple[float, float] | None:
        """(lat, lon) the data set gives the image (a test tile's), else None."""
        s = self.sample
        return (s.lat, s.lon) if s is not None and s.lat is not None else None


def choose_image(sample: Sample | None, upload: Any = None) -> ChosenImage | None:
    """The image the user chose: an upload (anything with ``getvalue()`` and ``name``, like
    Streamlit's UploadedFile) over a sample; None when neither is chosen yet."""
    if upload is not None:
        data, name, what = upload.getvalue(), upload.name, "your upload"
    elif sample is not None:
        data, name = sample.path.read_bytes(), sample.name
        what = "test tile" if sample.kind == "tile" else "sample photo"
    else:
        return None
    return ChosenImage(data, name, what, None if upload is not None else sample, hashlib.sha1(data).hexdigest())


def no_image_message(kind: str) -> str:
    """What to ask for when no image is chosen yet, for the image source ``kind``."""
    return "Upload an image to geolocate it." if kind == "upload" else "Pick an image to geolocate."


@dataclass(frozen=True)
class Truth:
    lat: float
    lon: float
    source: str  # TRUTH_DATASET | TRUTH_EXIF | TRUTH_CLICK


def pick_truth(dataset: tuple[float, float] | None, exif: tuple[float, float] | None,
               click: dict | None) -> Truth | None:
    """The true location: the data set's position, else EXIF GPS, else the map click."""
    for point, source in ((dataset, TRUTH_DATASET), (exif, TRUTH_EXIF)):
        if point is not None:
            return Truth(float(point[0]), float(point[1]), source)
    if click:
        return Truth(float(click["lat"]), float(click["lon"]), TRUTH_CLICK)
    return None


@dataclass(frozen=True)
class TruthResolution:
    """Where the image was taken, as far as the page knows."""

    truth: Truth | None
    exif_problem: str | None  # a one-line warning about unusable EXIF GPS, else None
    click: dict | None  # the stored click {"digest", "lat", "lon"} if it is for this image


def click_for_image(stored: dict | None, digest: str) -> dict | None:
    """The stored click if it was made on the image with ``digest``; a click made on another
    image is dropped (it would score this one against the wrong place)."""
    return stored if stored and stored.get("digest") == digest else None


def resolve_truth(image: ChosenImage, stored_click: dict | None = None) -> TruthResolution:
    """The true location of ``image`` (``pick_truth``): its data-set position, else its EXIF
    GPS, else the stored click if made on this image. A test tile's EXIF is never read: its
    position comes from the data set."""
    exif, problem = (None, None) if image.is_tile else exif_position(image.data, image.name)
    click = click_for_image(stored_click, image.digest)
    return TruthResolution(pick_truth(image.dataset_position, exif, click), problem, click)


def click_action(click: dict | None, stored: dict | None, truth: Truth | None) -> str | None:
    """What the map widget's last click {"lat", "lon"} means: CLICK_STORE (a new click and
    no better truth: it becomes the true location), CLICK_IGNORE (a new click, but the truth
    comes from the data set or EXIF), None (no click, or the one already stored)."""
    new = click is not None and (not stored or (click["lat"], click["lon"]) != (stored["lat"], stored["lon"]))
    if not new:
        return None
    return CLICK_IGNORE if truth is not None and truth.source != TRUTH_CLICK else CLICK_STORE


def bound_click(digest: str, click: dict) -> dict:
    """The click to store: {"digest", "lat", "lon"}, bound to the image it was made on."""
    return {"digest": digest, **click}


def ignored_click_note(truth: Truth) -> str:
    return f"Map clicks are ignored here: the true location comes from {truth.source}."


def exif_position(data: bytes, name: str | None = None) -> tuple[tuple[float, float] | None, str | None]:
    """(EXIF GPS (lat, lon) or None, a one-line problem to show or None).

    GPS that is present but unusable is a problem ("EXIF GPS is invalid: <reason>"), never
    silently "no GPS"; no GPS at all is not a problem (a click stands in for it)."""
    from workbench.data.exif import exif_gps

    try:
        gps = exif_gps(data, name)
    except WorkbenchError as exc:
        return None, str(exc).splitlines()[0]
    return gps.latlon, (gps.message() if gps.status == "invalid" else None)


@dataclass(frozen=True)
class Score:
    distance_km: float
    geoguessr: float  # 5000 exp(-d / 1492.7 km)


def score(truth: Truth, lat: float, lon: float) -> Score:
    d = float(haversine_km(truth.lat, truth.lon, lat, lon))
    return Score(d, float(geoguessr_score(d)))


@dataclass(frozen=True)
class Confidence:
    """The verdict on one prediction (see ``workbench.lines.geolocator.confidence``).

    top1 / top_mass / entropy_norm: fractions; effective_cells: exp(entropy);
    ood_distance / ood_threshold: kNN cosine distances to the training sample (None: the
    check is unavailable, ood_note says why); ood_rank: fraction of held-out images closer.
    """

    n_cells: int
    top1: float
    top_mass: float
    entropy_norm: float
    effective_cells: float
    near_uniform: bool
    ood: bool | None
    ood_distance: float | None = None
    ood_threshold: float | None = None
    ood_rank: float | None = None
    ood_note: str = ""

    @property
    def low(self) -> bool:
        return self.near_uniform or bool(self.ood)

    def reasons(self) -> list[str]:
        """Why the prediction is low confidence (empty when it is not)."""
        out = []
        if self.near_uniform:
            out.append(f"the distribution is near uniform: entropy {fmt_pct(self.entropy_norm)} of the "
                       f"uniform distribution's (above {fmt_pct(NEAR_UNIFORM_ENTROPY, 0)}), spread as if over "
                       f"{self.effective_cells:.0f} of {self.n_cells} cells")
        if self.ood:
            out.append(f"the image is out of distribution: its features are farther from the training "
                       f"images ({fmt_num(self.ood_distance)}) than {fmt_pct(self.ood_rank)} of held-out "
                       f"images (threshold {fmt_num(self.ood_threshold)})")
        return out


def assess_confidence(all_probs: np.ndarray, features: np.ndarray | None,
                      reference: FeatureReference | None, note: str = "") -> Confidence:
    """Peakedness of all_probs [K] and, with a reference, the OOD check of features [D]."""
    peak = peakedness(all_probs)
    common = dict(n_cells=int(np.shape(all_probs)[-1]), top1=float(peak["top1"]),
                  top_mass=float(peak["top_mass"]), entropy_norm=float(peak["entropy_norm"]),
                  effective_cells=float(peak["effective_cells"]),
                  near_uniform=bool(peak["entropy_norm"] > NEAR_UNIFORM_ENTROPY))
    if reference is None or features is None or np.size(features) == 0:
        return Confidence(**common, ood=None, ood_note=note or "no reference features")
    d = float(reference.distance(np.asarray(features)[None])[0])
    return Confidence(**common, ood=d > reference.threshold, ood_distance=d, ood_threshold=reference.threshold,
                      ood_rank=float(reference.heldout_rank(d)), ood_note=reference.source)


def confidence_verdict(conf: Confidence) -> tuple[str, str]:
    """(level, markdown message) of the verdict box: level "warning" for low confidence
    (with every reason), "info" when peaked but the OOD check is unavailable (and why),
    "success" when peaked and in distribution."""
    if conf.low:
        return "warning", "**Low confidence**: " + "; ".join(conf.reasons()) + "."
    if conf.ood is None:
        return "info", (f"Peaked (spread as if over {conf.effective_cells:.0f} of {conf.n_cells} cells). "
                        f"Out-of-distribution check unavailable: {conf.ood_note}")
    return "success", (f"Not flagged: peaked enough (spread as if over {conf.effective_cells:.0f} of "
                       f"{conf.n_cells} cells) and in distribution (feature distance {fmt_num(conf.ood_distance)}, "
                       f"below the threshold {fmt_num(conf.ood_threshold)}).")


def ood_caption(conf: Confidence) -> str | None:
    """How the OOD check decides, with its threshold and reference; None without the check."""
    if conf.ood is None:
        return None
    return (f"Out of distribution = mean cosine distance of the image's features to its "
            f"{KNN_K} nearest training images above the {fmt_pct(OOD_QUANTILE, 0)} quantile of held-out "
            f"images ({fmt_num(conf.ood_threshold)}); reference: {conf.ood_note}.")


def cells_table(pred) -> pd.DataFrame:
    """The prediction's top cells: cell, probability (percent, 0..100), nearest place, lat, lon."""
    return pd.DataFrame({"cell": pred.tokens, "probability": 100.0 * np.asarray(pred.probs, np.float64),
                         "nearest place": pred.cell_places, "lat": pred.cell_lat, "lon": pred.cell_lon})


def cell_tooltips(tokens, probs: np.ndarray, places) -> list[str]:
    from workbench.lines.geolocator.figures import prob_label

    return [f"{t}: {prob_label(p)} ({n})" for t, p, n in zip(tokens, np.asarray(probs).tolist(), places)]


def prediction_map(pred, polygons: np.ndarray, tokens, places, truth: Truth | None = None,
                   log_scale: bool = False, height: int = 480):
    """The Leaflet map: every cell (polygons [K, 4, 2], in class order like pred.all_probs)
    coloured by its probability, with a colour bar; the predicted point (red) and the true
    location (green) with a marker legend. Zoomed to the top cells and both points."""
    from workbench.ui.map import PointLegend, add_points, add_polygons, make_map
    from workbench.lines.geolocator.figures import probability_scale

    probs = np.asarray(pred.all_probs, np.float64)
    scale = probability_scale(probs, log=log_scale)
    m = make_map(center=(pred.lat, pred.lon), zoom=2, height=height)
    order = np.argsort(probs, kind="stable")  # most probable drawn last, on top
    tips = cell_tooltips(tokens, probs, places)
    add_polygons(m, np.asarray(polygons)[order], scale.values[order], colormap=COLORMAP,
                 vmin=scale.vmin, vmax=scale.vmax, tooltips=[tips[i] for i in order], name="cells",
                 legend=f"P(cell), {'log' if log_scale else 'linear'} scale, all {len(probs)} cells",
                 legend_ticks=scale.ticks)
    add_points(m, [pred.lat], [pred.lon], color=PRED_COLOR, tooltip=[f"predicted: {pred.place}"],
               radius=7, name="prediction")
    items = [(PRED_COLOR, "predicted point")]
    if truth is not None:
        add_points(m, [truth.lat], [truth.lon], color=TRUE_COLOR, tooltip=[f"true location ({truth.source})"],
                   radius=7, name="truth")
        items.append((TRUE_COLOR, f"true location ({truth.source})"))
    PointLegend(items).add_to(m)
    top = np.asarray(pred.polygons, np.float64).reshape(-1, 2)
    lats = np.r_[top[:, 0], pred.lat, truth.lat if truth else pred.lat]
    lons = np.r_[top[:, 1], pred.lon, truth.lon if truth else pred.lon]
    m.fit_bounds([[lats.min(), lons.min()], [lats.max(), lons.max()]], padding=(20, 20), max_zoom=6)
    return m
