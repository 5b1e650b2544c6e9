"""AppTest of pages/5_Errors.py: the demo bundle's test predictions, filters, per-cell
tables, and a freshly finished geolocator run as a second source."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from workbench.lines.geolocator import errors_analysis as ea
from workbench.lines.geolocator.predict import DEMO_CHECKPOINT
from workbench.ui.fmt import fmt_km

REPO_ROOT = Path(__file__).resolve().parents[3]
PAGE = str(REPO_ROOT / "pages" / "5_Errors.py")


def gallery_captions(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if " km** · true `" in m.value]


@pytest.fixture(scope="module")
def saved():
    return ea.load_saved_predictions(DEMO_CHECKPOINT)


def test_demo_metrics_gallery_and_filters(runs_dir, saved):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="errors_source").value == "checkpoint: geolocator-demo"
    metrics = json.loads((DEMO_CHECKPOINT / "metrics.json").read_text())["test"]
    table = at.dataframe[0].value
    assert list(table.index) == ["model", "oracle", "most_frequent_cell"]
    # one unit per kind of number: percent with one decimal, exact counts, km, points
    assert table.loc["model"].to_dict() == {
        "n": "311", "acc@1km": "0.0%", "acc@25km": "0.0%", "acc@200km": "12.2%",
        "acc@750km": "60.1%", "acc@2500km": "80.7%", "geoguessr": "2,881",
        "median_km": "447 km", "mean_km": "2,487 km", "cell_top1": "46.9%",
        "cell_top5": "71.1%", "macro_f1": "19.8%"}
    for row in table.index:
        assert table.loc[row, "acc@2500km"] == f"{100 * metrics[row]['acc@2500km']:.1f}%"
        assert table.loc[row, "n"] == f"{metrics[row].get('n', metrics['n']):,}"
    # the baselines have no cell top-k / F1: an em dash, never "None" / "nan"
    assert table.loc["oracle", "cell_top1"] == "—" and table.loc["most_frequent_cell", "macro_f1"] == "—"
    assert not any(str(v) in ("None", "nan", "-") for v in table.to_numpy().ravel())
    (caption,) = [c.value for c in at.caption if " images · " in c.value]
    assert caption.startswith(f"{len(saved.frame):,} test images · {len(saved.partition):,} cells")

    worst = ea.worst_errors(saved.frame, 12)
    captions = gallery_captions(at)
    assert len(captions) == 12
    # the gallery fills 4 columns; the element tree lists them column by column
    assert sorted(c.split("**")[1] for c in captions) == sorted(fmt_km(d) for d in worst["distance_km"])
    assert all(re.search(r"top-5: (\S+ \d+\.\d%(, |$))+", c) for c in captions), captions[0]

    token = worst["true_token"].iloc[0]
    at.selectbox(key="errors_true").set_value(token).run()
    captions = gallery_captions(at)
    assert captions and all(f"true `{token}`" in c for c in captions)
    assert len(captions) == min(12, int((saved.frame["true_token"] == token).sum()))

    at.selectbox(key="errors_pred").set_value("(all)").run()
    at.slider(key="errors_k").set_value(4).run()
    assert len(gallery_captions(at)) == min(4, int((saved.frame["true_token"] == token).sum()))

    pairs = at.dataframe[1].value
    expected = ea.confused_pairs(saved.frame, ea.per_cell_accuracy(saved.frame, saved.partition))
    assert pairs["true_token"].tolist() == expected["true_token"].tolist()
    assert pairs["count"].tolist() == [f"{c:,}" for c in expected["count"]]
    assert pairs["share"].tolist() == [f"{100 * s:.1f}%" for s in expected["share"]]
    assert pairs["true_accuracy"].tolist() == [f"{100 * a:.1f}%" for a in expected["true_accuracy"]]


def test_a_finished_run_is_a_source(runs_dir, tmp_path):
    from tests.lines.geolocator.conftest import tiny_config, write_tiny_dataset
    from workbench.experiments import create_experiment
    from workbench.runs import RunStore
    from workbench.train.trainer import Trainer

    cfg = tiny_config(write_tiny_dataset(tmp_path / "tiny"), "train.max_epochs=1")
    run = RunStore().create(cfg)
    Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    options = at.selectbox(key="errors_source").options
    assert f"run: {run.id}" in options
    at.selectbox(key="errors_source").set_value(f"run: {run.id}").run()
    assert not at.exception and not at.error
    assert len(gallery_captions(at)) == 12  # the tiny set has 12 validation images
    table = at.dataframe[0].value
    assert table.loc["model", "n"] == "12"
