"""The Explorer's library functions on a small random bundle: one click, meanings, atlas, sources."""
import json
import math

import numpy as np
import pytest

from workbench.errors import InputError, WorkbenchError
from workbench.runs import RunStore
from workbench.lines.softprompt import explorer
from workbench.lines.softprompt.evaluate import prefix_scores

from tests.lines.softprompt.conftest import small_config, write_bundle_folder


@pytest.fixture
def em(bundle_folder):
    return explorer.load_source(bundle_folder)


def test_click_report_weights_top_entries_and_nearest_cities(em):
    r = explorer.click_report(em, 41.9, 12.5, top=3, n_cities=4)
    w = np.array(r["weights"])
    assert r["k"] == len(w) == 6 and w.sum() == pytest.approx(1.0, abs=1e-6) and (w >= 0).all()
    assert r["order"] == np.argsort(-w, kind="stable").tolist()
    assert [t["entry"] for t in r["top_entries"]] == r["order"][:3]
    assert all(len(t["meaning"]) == 3 for t in r["top_entries"])
    # nearest cities = the best prefix-pooled scores against the index, naively recomputed
    tokens = em.predict([[41.9, 12.5]])["tokens"]
    scores = prefix_scores(tokens, em.pooled, em.lengths)[0]
    assert [c["name"] for c in r["nearest_cities"]] == em.cities["name"].to_numpy()[scores.argsort(descending=True)[:4]].tolist()
    every = explorer.click_report(em, 41.9, 12.5, n_cities=6)["nearest_cities"]
    lyon = next(c for c in every if c["name"] == "Lyon")
    assert lyon["distance_km"] == pytest.approx(_haversine(41.9, 12.5, 45.75, 4.85), abs=0.1)
    assert 0 < r["latency_ms"] < 1000
    json.dumps(r)  # the CLI prints it


def _haversine(lat1, lon1, lat2, lon2, r=6371.0088):
    p1, p2, dp, dl = map(math.radians, (lat1, lat2, lat2 - lat1, lon2 - lon1))
    return 2 * r * math.asin(math.sqrt(math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2))


@pytest.mark.parametrize("lat, lon", [(91, 0), (0, -181), ("x", 0), (float("nan"), 0)])
def test_bad_coordinates_raise_input_error(em, lat, lon):
    with pytest.raises(InputError):
        explorer.click_report(em, lat, lon)


def test_entry_meanings_are_the_nearest_index_prompts(em):
    meanings = explorer.entry_meanings(em, 2)
    scores = prefix_scores(em.model.soft_dict.entries.detach(), em.pooled, em.lengths)
    for k, m in enumerate(meanings):
        assert [x["name"] for x in m] == em.cities["name"].to_numpy()[scores[k].argsort(descending=True)[:2]].tolist()


def test_atlas_grid_colours_cells_by_their_dominant_entry(em):
    grid = explorer.atlas_grid(em, step_deg=30.0)
    assert grid["polygons"].shape == (6 * 12, 4, 2)  # +-85 deg: 5 rows of 30 degrees and one of 20
    lat, lon = grid["lat"][[0, 40]], grid["lon"][[0, 40]]
    w = em.predict(np.stack([lat, lon], 1))["weights"]
    assert grid["dominant"][[0, 40]].tolist() == w.argmax(1).tolist()
    lat_span, lon_span = grid["polygons"][..., 0], grid["polygons"][..., 1]
    assert lat_span.min() == -85 and lat_span.max() == 85 and lon_span.min() == -180 and lon_span.max() == 180
    area = ((lat_span.max(1) - lat_span.min(1)) * (lon_span.max(1) - lon_span.min(1))).sum()
    assert area == pytest.approx(170 * 360)  # the cells tile the map without gaps or overlaps
    with pytest.raises(InputError):
        explorer.atlas_grid(em, step_deg=100)


def test_models_without_a_mixture_still_answer(tmp_path):
    folder = tmp_path / "direct"
    folder.mkdir()
    write_bundle_folder(folder, arch="direct")
    em = explorer.load_source(folder)
    r = explorer.click_report(em, 0.0, 0.0)
    assert r["weights"] is None and r["top_entries"] == [] and len(r["nearest_cities"]) == 5
    with pytest.raises(WorkbenchError, match="needs a dictionary model"):
        explorer.atlas_grid(em)


def test_sources_list_bundles_and_softprompt_runs(bundle_folder, tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create(small_config())
    assert explorer.list_sources(store.root, bundle_folder.parent) == [
        explorer.Source("checkpoint: tiny", "checkpoint", bundle_folder)]  # the run has no checkpoint yet
    run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    (bundle_folder / "model.pt").rename(run.checkpoint_dir / "best.pt")  # a bundle reads like a checkpoint
    sources = explorer.list_sources(store.root, bundle_folder.parent)
    assert sources == [explorer.Source(f"run: {run.id}", "run", run.path)]
    em = explorer.load_source(run.id, store.root)
    assert em.source.kind == "run" and not em.has_index  # no artifacts yet: weights but no cities
    assert explorer.click_report(em, 10, 10)["nearest_cities"] == []
    with pytest.raises(WorkbenchError, match="no softprompt checkpoint at 'nope'"):
        explorer.resolve_source("nope", store.root)


def test_side_by_side_choices_never_repeat_the_first_model():
    labels = ["checkpoint: a", "run: b", "run: c"]
    assert explorer.compare_options(labels, "run: b") == [explorer.NO_COMPARISON, "checkpoint: a", "run: c"]
    assert explorer.NO_COMPARISON == "(none)"
    assert explorer.selected_labels("run: b", explorer.NO_COMPARISON) == ["run: b"]
    assert explorer.selected_labels("run: b", "run: c") == ["run: b", "run: c"]


def test_report_texts_name_the_model_and_its_mixture(em):
    assert explorer.model_caption(em) == (f"softprompt · sequence [{em.model.seq_len}, {em.model.token_dim}] from "
                                          f"{em.cfg.targets.encoder} · K = 6")
    report = explorer.click_report(em, 41.9, 12.5)
    assert explorer.mixture_title(report) == "6 mixture weights (sum 100.0%)"


def test_texts_for_a_model_without_a_dictionary(tmp_path):
    folder = tmp_path / "direct"
    folder.mkdir()
    write_bundle_folder(folder, arch="direct")
    em = explorer.load_source(folder)
    assert explorer.model_caption(em).endswith("· K = —")
    assert explorer.no_mixture_note(em) == ("'direct' has no dictionary, so there are no mixture weights; "
                                            "its nearest cities are below.")
    assert explorer.atlas_unavailable_note(em) == "The atlas needs a dictionary model; checkpoint: direct is 'direct'."


def test_atlas_layer_is_the_grid_with_a_tooltip_per_cell(em):
    layer = explorer.atlas_layer(em, 30.0)
    grid = explorer.atlas_grid(em, 30.0)
    np.testing.assert_array_equal(layer["dominant"], grid["dominant"])
    assert len(layer["tooltips"]) == len(grid["dominant"]) == 72
    e = int(grid["dominant"][0])
    assert layer["tooltips"][0] == (f"entry {e} ({100 * grid['weight'][0]:.1f}%): "
                                    + " / ".join(explorer.meaning_labels(em, 2)[e]))
    n = len(set(grid["dominant"].tolist()))
    assert explorer.atlas_note(em, layer) == (f"{n} of 6 entries dominate somewhere on this grid; "
                                              "hover a cell for its entry and the prompts nearest to it.")
