"""Training through the one Trainer: overfit-1 reaches high accuracy; a finished run leaves
the artifacts the Errors page reads."""
import json

import pandas as pd

from workbench.experiments import create_experiment
from workbench.runs import RunStore
from workbench.train.trainer import Trainer


def test_overfit_one_image_per_cell_reaches_high_accuracy(tiny_cfg, runs_dir):
    cfg = tiny_cfg("data.overfit=1", "train.max_epochs=200", "train.batch_size=8", "train.lr=3e-2",
                   "model.head=linear", "model.backbone=efficientnet-lite0", "model.weights=offline",
                   "model.freeze_epochs=-1", "data.cache_features=true", "train.log_every=50",
                   "train.val_every=100")  # validate (and checkpoint) every 100 steps, not every 1-step epoch
    exp = create_experiment(cfg)
    prepared = exp.prepare()
    n_cells = len(prepared.partition)
    assert len(prepared.train) == n_cells == 6  # one image per cell (one cell per city) ...
    assert prepared.val is prepared.train  # ... and the same images for validation
    run = RunStore().create(cfg)
    result = Trainer(exp, run, progress_bar=False).fit()
    final = result["final"]
    assert final["val/cell_top1"] >= 0.9, final
    assert final["val/macro_f1"] >= 0.85
    records, _ = run.read_metrics()
    losses = [r["train/loss"] for r in records if r["split"] == "train"]
    assert losses[-1] < 0.25 * losses[0]
    assert [r["step"] for r in records if r["split"] == "val"] == [100, 200]  # train.val_every=100


def test_finished_run_writes_predictions_and_metrics(tiny_cfg, runs_dir):
    cfg = tiny_cfg("train.max_epochs=2", "eval.top_k=3")
    run = RunStore().create(cfg)
    Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    art = run.artifacts_dir
    frame = pd.read_parquet(art / "predictions.parquet")
    assert len(frame) == 12  # the 12 validation images
    for col in ("path", "true_lat", "true_lon", "pred_lat", "pred_lon", "distance_km", "true_token",
                "pred_token", "topk_cells", "topk_probs", "topk_tokens"):
        assert col in frame.columns
    assert all(len(p) == 3 and sum(p) <= 1 + 1e-6 for p in frame["topk_probs"])
    metrics = json.loads((art / "metrics.json").read_text())
    assert set(metrics) >= {"model", "oracle", "most_frequent_cell", "n_cells"}
    assert metrics["oracle"]["acc@2500km"] >= metrics["most_frequent_cell"]["acc@2500km"]
    status = run.read_status()
    assert metrics["model"]["acc@2500km"] == status["final"]["val/acc@2500km"]
    assert (art / "partition.csv").is_file()
