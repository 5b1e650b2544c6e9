"""AppTest of pages/5_Errors.py: the demo bundle's test predictions, filters, per-cell
tables, and a freshly finished geolocator run as a second source."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from workbench.geolocator import errors_analysis as ea
from workbench.geolocator.predict import DEMO_CHECKPOINT

REPO_ROOT = Path(__file__).resolve().parents[2]
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
    for row in table.index:
        assert table.loc[row, "acc@2500km"] == pytest.approx(metrics[row]["acc@2500km"])

    worst = ea.worst_errors(saved.frame, 12)
    captions = gallery_captions(at)
    assert len(captions) == 12
    # the gallery fills 4 columns; the element tree lists them column by column
    assert sorted(c.split("**")[1] for c in captions) == sorted(f"{d:,.0f} km" for d in worst["distance_km"])

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
    assert pairs["count"].tolist() == expected["count"].tolist()


def test_a_finished_run_is_a_source(runs_dir, tmp_path):
    from tests.geolocator.conftest import tiny_config, write_tiny_dataset
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
    assert table.loc["model", "n"] == 12
