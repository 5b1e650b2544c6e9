"""Short real runs through the one Trainer on synthetic pre-encoded pairs: R@K and the
temperature are logged, the trained heads beat their untrained start and the baselines,
the artifacts are in the format the pages read, a resumed run ends identical, and the
exported bundle answers the CLI."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.cli import main
from workbench.contrastive.artifacts import read_embeddings
from workbench.experiments import create_experiment
from workbench.lines.projection.bundle import captions_for_image, images_for_query, load_projection, metrics_table
from workbench.runs import RunStore
from workbench.train.trainer import Trainer

from tests.lines.projection.conftest import small_config


@pytest.fixture(scope="module")
def finished(encoded_dir, tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    cfg = small_config(encoded_dir, "mlp", "siglip", **{"train.max_epochs": 6, "train.lr": 3e-3,
                                                        "train.log_every": 5})
    run = store.create(cfg)
    result = Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    return store, run, result


def records(run, split):
    return [r for r in map(json.loads, run.metrics_path.read_text().splitlines()) if r["split"] == split]


def test_training_logs_recall_temperature_and_bias(finished):
    _, run, result = finished
    assert result["state"] == "done"
    train, val = records(run, "train"), records(run, "val")
    assert {"train/loss", "train/logit_scale", "train/logit_bias", "lr"} <= set(train[0])
    assert {"val/i2t_r1", "val/t2i_r10", "val/i2t_median_rank", "val/r_mean", "val/loss"} <= set(val[0])
    scales = [r["train/logit_scale"] for r in train]
    biases = [r["train/logit_bias"] for r in train]
    assert scales[0] != scales[-1] and biases[0] != biases[-1]  # learned, and logged as they move
    assert val[-1]["val/r_mean"] > val[0]["val/r_mean"]


def test_metrics_json_beats_untrained_and_baselines(finished):
    _, run, _ = finished
    m = json.loads((run.artifacts_dir / "metrics.json").read_text())
    keys = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "i2t_mean_rank", "i2t_median_rank",
            "t2i_mean_rank", "t2i_median_rank"]
    assert set(keys) <= set(m["test"]) and set(keys) <= set(m["untrained"])
    assert set(m["baselines"]) == {"random_projection", "ridge"}  # 48 vs 24 dims: no raw baseline
    assert m["test"]["r_mean"] > m["untrained"]["r_mean"] + 0.2
    assert m["test"]["r_mean"] > m["baselines"]["random_projection"]["r_mean"] + 0.2
    assert m["weights"] == "best" and m["counts"]["test"]["pairs"] == 5 * m["counts"]["test"]["images"]
    assert m["logit_bias"] is not None and m["encoders"] == {"image": "synthetic", "text": "synthetic"}


def test_artifacts_are_the_embeddings_format_and_the_gallery(finished):
    _, run, _ = finished
    emb = read_embeddings(run.artifacts_dir / "embeddings")
    meta = emb.meta
    n_img, n_txt = emb.vectors["image"].shape[0], emb.vectors["text"].shape[0]
    assert n_txt == 5 * n_img and emb.vectors["image"].shape[1] == 16
    assert list(meta.columns[:10]) == ["id", "modality", "row", "image_id", "caption", "lat", "lon", "country",
                                       "continent", "split"]
    assert (meta["split"] == "test").all() and meta["id"].is_unique
    texts = meta[meta["modality"] == "text"]
    assert texts["caption"].str.startswith("caption").all()
    gallery = pd.read_parquet(run.artifacts_dir / "top_captions.parquet")
    assert len(gallery) == 5 * n_img and set(gallery["rank"]) == {1, 2, 3, 4, 5}
    # the gallery agrees with the test I2T R@5 in metrics.json
    m = json.loads((run.artifacts_dir / "metrics.json").read_text())
    hit = gallery.groupby("image_row")["correct"].any().mean()
    assert hit == pytest.approx(m["test"]["i2t_r5"])


def test_resume_ends_identical_to_an_uninterrupted_run(encoded_dir, tmp_path):
    store = RunStore(tmp_path / "runs")
    flat = {"train.max_epochs": 2, "train.lr": 3e-3}
    cfg = small_config(encoded_dir, "blip", "blip", **flat)  # queue, momentum copies and the alpha ramp
    straight = store.create(cfg)
    Trainer(create_experiment(cfg), straight, progress_bar=False).fit()
    interrupted = store.create(cfg)
    t = Trainer(create_experiment(cfg), interrupted, progress_bar=False)
    step = t.train_step

    def stop_mid_epoch(batch):  # what SIGTERM does, at a chosen step
        step(batch)
        t._stop_requested = t.state.step + 1 >= t.steps_per_epoch + 3

    t.train_step = stop_mid_epoch
    assert t.fit()["state"] == "stopped"
    resumed = Trainer(create_experiment(cfg), interrupted, progress_bar=False).fit(resume=True)
    assert resumed["state"] == "done"
    a = torch.load(straight.checkpoint_dir / "last.pt", weights_only=True)["model"]
    b = torch.load(interrupted.checkpoint_dir / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["criterion.steps"]) > 0 and not torch.equal(a["criterion.queue_ids"], torch.full_like(a["criterion.queue_ids"], -1))


def test_export_load_and_query_the_bundle(finished, tmp_path, capsys):
    store, run, _ = finished
    out = tmp_path / "bundle"
    assert main(["projection", "--runs", str(store.root), "export", run.id, "--out", str(out)]) == 0
    assert {"model.pt", "config.yaml", "metrics.json", "README.md", "embeddings", "top_captions.parquet"} <= \
        {p.name for p in out.iterdir()}
    readme = (out / "README.md").read_text()
    assert "untrained heads" in readme and "random projection" in readme and "| I2T R@1 |" in readme
    lp = load_projection(out)
    own = captions_for_image(lp, 0, top=5)
    assert len(own) == 5 and own["rank"].tolist() == [1, 2, 3, 4, 5]
    query = torch.from_numpy(lp.embeddings.vectors["text"][0])
    top = images_for_query(lp, query, top=3)
    first_text = lp.texts.iloc[0]
    assert top["image_id"].iloc[0] == first_text["image_id"] or len(top) == 3
    table = metrics_table([lp])
    assert set(table["heads"]) == {"trained", "untrained", "random_projection", "ridge"}
    assert table.loc[table["heads"] == "trained", "i2t_r1"].iloc[0] == pytest.approx(lp.metrics["test"]["i2t_r1"] * 100)
    capsys.readouterr()
    assert main(["projection", "retrieve", str(out), "--image-row", "0", "--top", "3"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [c["rank"] for c in answer["captions"]] == [1, 2, 3]
    assert main(["projection", "evaluate", str(out)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["trained"]["i2t_r1"] == pytest.approx(lp.metrics["test"]["i2t_r1"])  # reproduces metrics.json


def test_cli_errors_are_one_line(finished, tmp_path, capsys):
    store, run, _ = finished
    out = tmp_path / "b"
    main(["projection", "--runs", str(store.root), "export", run.id, "--out", str(out)])
    capsys.readouterr()
    assert main(["projection", "retrieve", str(out), "--image-row", "x"]) == 2
    assert "must be an integer" in capsys.readouterr().err
    assert main(["projection", "retrieve", str(out), "--image-row", "99999"]) == 2
    assert "image row must be in" in capsys.readouterr().err
    assert main(["projection", "retrieve", str(out), "--text", "a coast"]) == 2
    assert "offline text encoder" in capsys.readouterr().err  # synthetic data names no real encoder
    assert main(["projection", "evaluate", str(tmp_path / "nowhere")]) == 2
    assert "no projection checkpoint" in capsys.readouterr().err


def test_split_command_writes_once_then_reuses(tmp_path, capsys):
    from tests.lines.projection.conftest import synthetic_pairs
    from workbench.contrastive.encoded import save_encoded

    save_encoded(tmp_path, "all", synthetic_pairs(n_images=60))
    assert main(["projection", "split", str(tmp_path), "--seed", "1"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["status"] == "written" and first["groups"] == "group"
    assert main(["projection", "split", str(tmp_path), "--seed", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "reused"
    assert main(["projection", "split", str(tmp_path), "--seed", "2"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["projection", "split", str(tmp_path / "empty")]) == 2
    assert "does not exist" in capsys.readouterr().err
