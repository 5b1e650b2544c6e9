"""Short real CLIP runs through the one Trainer on a tiny Flickr30k-layout folder: the run
learns (test R@K above chance and the untrained model), resumes exactly, writes its
artifacts, exports a self-contained bundle that the Retrieval page's interface serves."""
import json

import pytest
import torch

from workbench.experiments import build_config, create_experiment
from workbench.runs import RunStore
from workbench.train.trainer import Trainer

TINY = {"model.img_size": 16, "model.patch_size": 4, "model.embed_dim": 32, "model.depth": 1,
        "model.num_heads": 2, "model.text_embed_dim": 32, "model.text_depth": 1, "model.text_heads": 2,
        "model.output_dim": 32, "text.vocab_size": 120, "text.context_length": 16}


def config(flickr, tmp, **flat):
    values = {"data.format": "flickr30k", "data.dir": str(flickr), "data.val_fraction": 0.25,
              "data.test_fraction": 0.25, **TINY, "train.device": "cpu", "train.batch_size": 16,
              "train.max_epochs": 8, "train.lr": 3e-3, "train.warmup_steps": 5, "train.log_every": 2,
              "train.early_stop_metric": "", **flat}
    return build_config({"kind": "clip"}, [f"{k}={v}" for k, v in values.items()])


@pytest.fixture(autouse=True)
def image_cache(tmp_path, monkeypatch):
    monkeypatch.setattr("workbench.lines.clip.experiment.IMAGE_CACHE", str(tmp_path / "cache"))


def test_a_run_learns_and_writes_its_artifacts(flickr, tmp_path):
    cfg = config(flickr, tmp_path)
    run = RunStore(tmp_path / "runs").create(cfg)
    Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    m = json.loads((run.artifacts_dir / "metrics.json").read_text())
    assert {"test", "chance", "untrained", "zero_shot", "params", "tokenizer"} <= set(m)
    assert m["test"]["i2t_r5"] > 2 * m["chance"]["i2t_r5"] and m["test"]["r_mean"] > m["untrained"]["r_mean"]
    assert m["counts"]["test"]["images"] + m["counts"]["val"]["images"] + m["counts"]["train"]["images"] == 48
    logged = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    train = [r for r in logged if r["split"] == "train"]
    assert {"train/loss", "train/logit_scale", "train/image_norm", "train/text_norm", "lr"} <= set(train[0])
    assert (run.artifacts_dir / "embeddings" / "paired.npy").is_file()
    assert (run.artifacts_dir / "top_captions.parquet").is_file()


def test_resume_is_exact(flickr, tmp_path):
    cfg = config(flickr, tmp_path, **{"train.max_epochs": 2, "train.checkpoint_every": 3})
    store = RunStore(tmp_path / "runs")
    straight = store.create(cfg)
    Trainer(create_experiment(cfg), straight, progress_bar=False).fit()
    interrupted = store.create(cfg)
    trainer = Trainer(create_experiment(cfg), interrupted, progress_bar=False)
    real_step = trainer.train_step
    calls = {"n": 0}

    def stop_after(batch):
        real_step(batch)
        calls["n"] += 1
        if calls["n"] == 4:
            trainer._stop_requested = True

    trainer.train_step = stop_after
    assert trainer.fit()["state"] == "stopped"
    Trainer(create_experiment(cfg), interrupted, progress_bar=False).fit(resume=True)
    a = torch.load(straight.checkpoint_dir / "last.pt", weights_only=True)["model"]
    b = torch.load(interrupted.checkpoint_dir / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_export_is_self_contained_and_served(flickr, tmp_path, capsys):
    from workbench.cli import main
    from workbench.contrastive import serving
    from workbench.lines.clip.bundle import load_clip

    cfg = config(flickr, tmp_path, **{"train.max_epochs": 2})
    run = RunStore(tmp_path / "runs").create(cfg)
    Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    out = tmp_path / "bundle"
    assert main(["clip", "export", run.id, "--out", str(out), "--runs", str(tmp_path / "runs")]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(out)
    m = load_clip(out)
    assert m.embeds_queries and m.text_encoder_name is None
    query = m.encode_query("a red picture with a big white square")
    assert query.shape == (32,)
    top = serving.images_for_query(m, query, top=3)
    assert top["rank"].tolist() == [1, 2, 3] and top["score"].is_monotonic_decreasing
    own = serving.captions_for_image(m, 0, top=5)
    assert len(own) == 5
    rows = m.metric_rows()
    assert [r["heads"] for r in rows] == ["trained", "untrained", "chance"]
    assert "CLIP from scratch" in m.caption()
