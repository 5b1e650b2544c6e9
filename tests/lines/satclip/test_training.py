"""Short real SatCLIP runs through the one Trainer on a tiny geo-patches build: the frozen
backbone's features are cached (a second run does not recompute them), fine-tuning runs the
augmentations, the temperature and embedding norms are logged, and validation reports
tile <-> location retrieval better than the untrained model."""
import json

import pytest
import torch

from workbench.data.demo import build_demo
from workbench.experiments import build_config, create_experiment
from workbench.lines.satclip import data as sd
from workbench.runs import RunStore
from workbench.train.trainer import Trainer


@pytest.fixture(scope="module")
def patches(tmp_path_factory):
    root = tmp_path_factory.mktemp("sat")
    build_demo(root, only=["geo-patches"], n_patches=400, patch_size=32, seed=0)
    return root


def config(patches, tmp, **flat):
    values = {"data.dir": str(patches / "geo-patches"), "data.image_size": 32, "data.crop": 32,
              "data.cache_dir": str(tmp / "cache"), "train.device": "cpu", "train.batch_size": 32,
              "train.max_epochs": 4, "train.lr": 3e-3, "train.log_every": 2, "model.legendre_degrees": 4,
              "probe.points": 0, **flat}  # probes: only where a test asks for them (they take minutes)
    return build_config({"kind": "satclip"}, [f"{k}={v}" for k, v in values.items()])


def test_frozen_backbone_run_logs_and_caches_features(patches, tmp_path, monkeypatch):
    cfg = config(patches, tmp_path)
    run = RunStore(tmp_path / "runs").create(cfg)
    exp = create_experiment(cfg)
    result = Trainer(exp, run, progress_bar=False).fit()
    assert result["state"] == "done"
    records = [json.loads(l) for l in run.metrics_path.read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    assert {"train/logit_scale", "train/image_norm", "train/location_norm"} <= set(train[0])
    assert {"val/tile2loc_r1", "val/loc2tile_r10", "val/r_mean"} <= set(val[0])
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    # a second experiment on the same tiles reads the cache: the backbone never runs
    calls = []
    real = sd._encode
    monkeypatch.setattr(sd, "_encode", lambda *a, **k: calls.append(1) or real(*a, **k))
    create_experiment(cfg).build_datasets()
    assert calls == []


def test_training_fits_the_tiles_far_better_than_the_untrained_model(patches, tmp_path):
    """On ~320 training tiles the model must learn the tile <-> location pairing; held-out
    regions of a build this small are too few and too far apart to judge generalisation
    (the demo-scale run reports that)."""
    from torch.utils.data import DataLoader

    cfg = config(patches, tmp_path, **{"train.max_epochs": 15})
    exp = create_experiment(cfg)
    trainer = Trainer(exp, run=None, progress_bar=False)
    trainer.fit()
    loader = DataLoader(trainer.train_ds, batch_size=64, collate_fn=exp.collate)
    trained = exp.evaluate(trainer.model.eval(), loader)
    untrained = exp.evaluate(exp.build_model().eval(), loader)
    assert trained["loss"] < untrained["loss"] - 0.5, (trained["loss"], untrained["loss"])
    assert trained["r_mean"] > untrained["r_mean"] + 0.1, (trained["r_mean"], untrained["r_mean"])


def test_fine_tuning_runs_the_augmentations_and_resumes_exactly(patches, tmp_path):
    flat = {"model.freeze_backbone": "false", "model.weights": "none", "data.crop": 24, "data.flips": "true",
            "data.blur_p": 0.5, "train.max_epochs": 2}
    cfg = config(patches, tmp_path, **flat)
    store = RunStore(tmp_path / "runs")
    straight = store.create(cfg)
    Trainer(create_experiment(cfg), straight, progress_bar=False).fit()
    part = store.create(cfg)
    trainer = Trainer(create_experiment(cfg), part, progress_bar=False)
    step = trainer.train_step

    def stop_after(batch):
        step(batch)
        trainer._stop_requested = trainer.state.step + 1 >= 3

    trainer.train_step = stop_after
    assert trainer.fit()["state"] == "stopped"
    Trainer(create_experiment(cfg), part, progress_bar=False).fit(resume=True)
    a = torch.load(straight.checkpoint_dir / "last.pt", weights_only=True)["model"]
    b = torch.load(part.checkpoint_dir / "last.pt", weights_only=True)["model"]
    assert any(k.startswith("backbone.") for k in a)  # the backbone is part of the model, trained
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_finished_run_writes_embeddings_and_the_probe_table(patches, tmp_path):
    from workbench.contrastive.artifacts import read_embeddings

    cfg = config(patches, tmp_path, **{"train.max_epochs": 2, "probe.points": 300, "probe.seeds": 2,
                                       "probe.baselines": "[raw_latlon,sh10]"})
    run = RunStore(tmp_path / "runs").create(cfg)
    Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    metrics = json.loads((run.artifacts_dir / "metrics.json").read_text())
    assert metrics["weights"] == "best" and {"val", "untrained", "probes"} <= set(metrics)
    rows = metrics["probes"]
    assert {r["encoder"] for r in rows} == {"satclip", "raw_latlon", "sh10"}
    assert {"land", "continent", "coast_km", "relief", "greenness", "log_population"} <= {r["target"] for r in rows}
    assert all(set(r) >= {"encoder", "target", "metric", "mean", "std"} for r in rows)
    assert {r["metric"] for r in rows if r["target"] == "coast_km"} == {"r2"}
    assert {r["metric"] for r in rows if r["target"] == "continent"} == {"accuracy"}
    emb = read_embeddings(run.artifacts_dir / "embeddings")
    assert set(emb.vectors) == {"image", "location"}
    n = metrics["counts"]["val"]
    assert emb.vectors["image"].shape == emb.vectors["location"].shape == (n, 256)
    meta = emb.meta
    assert {"lat", "lon", "country", "continent", "land_fraction", "split"} <= set(meta.columns)
    assert (meta["continent"] != "").mean() > 0.5


def test_export_bundles_a_finished_run_that_the_page_loads(patches, tmp_path, capsys):
    from tests.test_cli import one_line_error
    from workbench.cli import main
    from workbench.lines.satclip import explore

    cfg = config(patches, tmp_path, **{"train.max_epochs": 2})
    runs = tmp_path / "runs"
    run = RunStore(runs).create(cfg)
    Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    out = tmp_path / "bundle"
    assert main(["satclip", "export", run.id, "--out", str(out), "--runs", str(runs)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["out"] == str(out) and printed["val"]["r_mean"] >= 0
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert not any(k.startswith("backbone.") for k in ckpt["model"])  # frozen: named, not copied
    ls = explore.load_satclip(out)
    lat, lon = (float(v) for v in ls.tiles[["lat", "lon"]].iloc[0])
    first = explore.nearest_locations(ls, lat, lon, 3)
    assert first["tile_row"].iloc[0] == 0 and first["score"].iloc[0] > 0.999  # a tile's own place
    assert "held-out tiles" in (out / "README.md").read_text().lower()
    # unknown run, or one that has not finished: a one-line message
    assert "nope" in one_line_error(capsys, ["satclip", "export", "nope", "--out", str(out), "--runs", str(runs)])
    unfinished = RunStore(runs).create(cfg)
    assert "has not finished" in one_line_error(
        capsys, ["satclip", "export", unfinished.id, "--out", str(tmp_path / "b2"), "--runs", str(runs)])
