"""A short real training run on the demo cities, through the one Trainer: the validation loss
falls, the trained model beats its untrained start on held-out retrieval and token cosine,
the seed study reports mean +- std, and the exported bundle answers the weights command.

Uses the demo config's city subset so the MiniLM targets come from the on-disk cache
(computed once per machine); the held-out fraction is smaller here to keep evaluation quick.
"""
import json

import numpy as np
import pytest
import torch

from workbench.cli import main
from workbench.experiments import create_experiment, load_config
from workbench.runs import RunStore
from workbench.train.trainer import Trainer

OVERRIDES = ["seeds=2", "data.val_fraction=0.05", "train.max_epochs=3", "train.max_samples=1536",
             "train.log_every=8", "train.lr=2e-3", "train.warmup_steps=0"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These small ops gain nothing from a second thread, and on a busy 2-core machine two
    threads spin against each other (measured: 55 s vs 10 s for the training run below)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    cfg = load_config("softprompt-demo", OVERRIDES)
    run = store.create(cfg)
    return store, run, Trainer(create_experiment(cfg), run, progress_bar=False).fit()


def test_training_lowers_val_loss_and_beats_the_untrained_model(trained):
    store, run, result = trained
    assert result["state"] == "done"
    records, _ = run.read_metrics()
    val = [r["val/loss"] for r in records if r["split"] == "val"]
    assert len(val) == 3 and val[-1] < val[0]
    train = [r for r in records if r["split"] == "train"]
    for term in ("mse", "cosine", "gram", "contrastive", "diversity", "balance", "sharpness"):
        assert f"train/loss_{term}" in train[-1]  # every loss term is logged
    summary = json.loads((run.artifacts_dir / "summary.json").read_text())
    final, untrained = summary["final"], summary["untrained"]
    assert final["loss"] < untrained["loss"]
    assert final["retrieval_r10"] > untrained["retrieval_r10"] + 0.05
    assert final["token_cosine"] > untrained["token_cosine"]
    assert final["country_match"] > untrained["country_match"]
    assert set(summary["baselines"]) == {"mean_sequence", "nearest_train_city"}
    assert final["token_cosine"] > summary["baselines"]["mean_sequence"]["token_cosine"]
    counts = summary["param_counts"]
    assert counts["dictionary"] == 64 * 24 * 384 and counts["frozen_location_encoder"] > 9_000_000
    seeds = summary["seeds"]
    assert seeds["seeds"] == [0, 1]
    r10 = seeds["trained"]["retrieval_r10"]
    assert r10["n"] == 2 and r10["values"][0] == pytest.approx(final["retrieval_r10"]) and r10["std"] >= 0
    assert r10["mean"] > seeds["untrained"]["retrieval_r10"]["mean"]
    index = torch.load(run.artifacts_dir / "index.pt", weights_only=True)
    assert index["pooled"].shape == (summary["n_val"], 384)
    from workbench.embeddings.sets import SetRef, read_set

    pairs = read_set(SetRef("run", "predicted", run.artifacts_dir / "embeddings"))
    n = summary["n_val"]
    assert pairs.vectors.shape == (2 * n, 384) and pairs.meta["modality"].value_counts().to_dict() == {
        "predicted": n, "target": n}
    np.testing.assert_allclose(pairs.vectors[n:], index["pooled"].float().numpy(), atol=1e-2)  # fp16 index
    assert read_set(SetRef("run", "location", run.artifacts_dir / "embeddings")).vectors.shape[0] == n


def test_export_then_weights_cli(trained, tmp_path, capsys):
    store, run, _ = trained
    out = tmp_path / "bundle"
    assert main(["softprompt", "--runs", str(store.root), "export", run.id, "--out", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "cities.csv", "config.yaml", "embeddings", "index.pt",
                                                     "metrics.json", "model.pt"]
    assert "| trained |" in (out / "README.md").read_text()
    assert metrics["held_out"]["retrieval_r10"] > metrics["untrained"]["retrieval_r10"]
    assert metrics["seeds"]["trained"]["token_cosine"]["n"] == 2
    assert metrics["baselines"]["nearest_train_city"]["retrieval_r10"] > 0
    assert main(["softprompt", "weights", "--checkpoint", str(out), "--lat", "-33.92", "--lon", "18.42"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["weights"]) == 64 and report["sum"] == pytest.approx(1.0, abs=1e-5)
    assert len(report["nearest_cities"]) == 5


def test_the_untrained_baseline_is_the_trainers_step_0_model():
    cfg = load_config("softprompt-demo", OVERRIDES)
    exp = create_experiment(cfg)
    trainer = Trainer(exp, None, progress_bar=False)
    trainer.setup()  # builds the datasets (moving the global RNG), then the model
    baseline = exp.untrained_model()
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, baseline.state_dict()[name]), name
    entries = baseline.soft_dict.entries  # initialised from training targets, never held-out ones
    train_targets = exp.data.targets.states[torch.as_tensor(exp.data.train_rows)].float()
    assert all((train_targets - e).abs().amax(dim=(1, 2)).min() < 1e-6 for e in entries[:4])
