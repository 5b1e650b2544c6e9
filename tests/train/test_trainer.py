import json
import os
import signal
import threading

import pytest
import torch

from workbench.experiments import create_experiment
from workbench.runs import RunStore
from workbench.train.checkpoint import load_checkpoint
from workbench.train.trainer import NonFiniteLoss, Trainer


def fit(cfg, runs_dir, resume_run=None):
    run = resume_run or RunStore(runs_dir).create(cfg)
    trainer = Trainer(create_experiment(cfg), run, progress_bar=False)
    return run, trainer, trainer.fit(resume=resume_run is not None)


def weights(run, which="last"):
    return load_checkpoint(run.checkpoint_dir / f"{which}.pt")["model"]


def test_run_writes_the_store(toy_cfg, runs_dir):
    run, _, result = fit(toy_cfg(**{"train.max_epochs": 2, "train.log_every": 2}), runs_dir)
    status = run.read_status()
    assert status["state"] == "done" and status["progress"] == 1.0 and status["step"] == 16
    records = [json.loads(l) for l in run.metrics_path.read_text().splitlines()]
    assert {r["split"] for r in records} == {"train", "val"}
    assert [r["epoch"] for r in records if r["split"] == "val"] == [1, 2]
    assert any(p.name.startswith("events.out.tfevents") for p in run.path.iterdir())
    ckpt = torch.load(run.last_checkpoint, weights_only=True)  # safe loading works
    assert ckpt["loop"]["step"] == 16 and ckpt["config"]["kind"] == "toy"
    assert run.best_checkpoint.is_file()
    assert result["final"]["val/loss"] == status["final"]["val/loss"]


def test_training_lowers_validation_loss(toy_cfg, runs_dir):
    run, _, _ = fit(toy_cfg(**{"train.max_epochs": 5, "train.lr": 0.01}), runs_dir)
    vals = [r["val/loss"] for r, in [(json.loads(l),) for l in run.metrics_path.read_text().splitlines()]
            if r["split"] == "val"]
    assert vals[-1] < 0.5 * vals[0]


@pytest.mark.parametrize("stop_at", [5, 8, 13])
def test_exact_resume_is_bit_identical(toy_cfg, runs_dir, stop_at):
    """Stop mid-epoch (5, 13) or at an epoch end (8), resume: same weights as one go."""
    cfg = toy_cfg(**{"train.max_epochs": 3, "model.dropout": 0.3, "train.scheduler": "cosine",
                     "train.warmup_steps": 3, "train.log_every": 3})
    full, _, full_result = fit(cfg, runs_dir)

    part = RunStore(runs_dir).create(cfg)
    trainer = Trainer(create_experiment(cfg), part, progress_bar=False)
    step = trainer.train_step

    def stop_after(batch):  # what SIGTERM does, at a chosen step
        step(batch)
        trainer._stop_requested = trainer.state.step + 1 >= stop_at

    trainer.train_step = stop_after
    assert trainer.fit()["state"] == "stopped"
    assert load_checkpoint(part.last_checkpoint)["loop"]["step"] == stop_at

    resumed, _, resumed_result = fit(cfg, runs_dir, resume_run=part)
    for key, value in weights(full).items():
        assert torch.equal(value, weights(resumed)[key]), key
    assert resumed_result["final"] == full_result["final"]


def test_sigterm_checkpoints_and_stops(toy_cfg, runs_dir):
    cfg = toy_cfg(**{"train.max_epochs": 50, "sleep_s": 0.01})
    run = RunStore(runs_dir).create(cfg)
    trainer = Trainer(create_experiment(cfg), run, progress_bar=False)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()
    result = trainer.fit()
    assert result["state"] == "stopped" and run.state == "stopped"
    step = load_checkpoint(run.last_checkpoint)["loop"]["step"]
    assert 0 < step == result["step"] < 400


def test_nan_loss_fails_with_message(toy_cfg, runs_dir):
    cfg = toy_cfg(**{"nan_at_step": 3, "train.log_every": 2})
    run = RunStore(runs_dir).create(cfg)
    with pytest.raises(NonFiniteLoss, match="loss became nan by step 4; lower train.lr"):
        Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    status = run.read_status()
    assert status["state"] == "failed" and "nan" in status["error"]


def test_early_stopping_on_a_metric(toy_cfg, runs_dir):
    # lr = 0 never improves, so patience 2 stops after 1 + 2 validations
    cfg = toy_cfg(**{"train.lr": 0.0, "train.max_epochs": 20, "train.early_stop_metric": "val/mae",
                     "train.patience": 2, "train.scheduler": "constant"})
    run, _, result = fit(cfg, runs_dir)
    assert result["stop_reason"].startswith("early stopping: val/mae")
    assert result["step"] == 3 * 8


def test_keep_every_n_epochs(toy_cfg, runs_dir):
    run, _, _ = fit(toy_cfg(**{"train.max_epochs": 5, "train.keep_every_epochs": 2}), runs_dir)
    kept = sorted(p.name for p in run.checkpoint_dir.glob("*.pt"))
    assert kept == ["best.pt", "epoch-002.pt", "epoch-004.pt", "last.pt"]
    assert load_checkpoint(run.checkpoint_dir / "epoch-004.pt")["loop"]["step"] == 4 * 8


def test_val_every_n_steps(toy_cfg, runs_dir):
    run, _, _ = fit(toy_cfg(**{"train.max_epochs": 2, "train.val_every": 5}), runs_dir)
    steps = [json.loads(l)["step"] for l in run.metrics_path.read_text().splitlines()
             if json.loads(l)["split"] == "val"]
    assert steps == [5, 10, 15, 16]


@pytest.mark.parametrize("scheduler", ["cosine", "plateau", "onecycle", "constant"])
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_schedulers_and_optimizers_train(toy_cfg, runs_dir, scheduler, optimizer):
    common = {"train.scheduler": scheduler, "train.optimizer": optimizer, "train.max_epochs": 3,
              "train.grad_clip": 1.0}
    _, _, untrained = fit(toy_cfg(**common, **{"train.lr": 0.0}), runs_dir)
    _, _, result = fit(toy_cfg(**common, **{"train.lr": 0.02}), runs_dir)
    assert result["state"] == "done"
    assert result["final"]["val/loss"] < 0.7 * untrained["final"]["val/loss"]


def test_lr_schedules_shape(toy_cfg, runs_dir):
    def lrs(**kw):
        run, _, _ = fit(toy_cfg(**{"train.max_epochs": 4, "train.log_every": 1, **kw}), runs_dir)
        return [json.loads(l)["lr"] for l in run.metrics_path.read_text().splitlines()
                if json.loads(l)["split"] == "train"]

    cos = lrs(**{"train.scheduler": "cosine", "train.warmup_steps": 4, "train.lr": 0.1})
    assert cos[0] == pytest.approx(0.1 * 2 / 4) and max(cos) == pytest.approx(0.1, rel=1e-3)
    assert cos[-1] == pytest.approx(0.0, abs=1e-9)
    one = lrs(**{"train.scheduler": "onecycle", "train.lr": 0.1})
    assert max(one) == pytest.approx(0.1, rel=0.05) and one[0] < 0.02 and one[-1] < 1e-3
    const = lrs(**{"train.scheduler": "constant", "train.lr": 0.1})
    assert set(const) == {0.1}
    plateau = lrs(**{"train.scheduler": "plateau", "train.lr": 0.0001, "train.plateau_patience": 0,
                     "train.plateau_factor": 0.5, "train.optimizer": "sgd", "train.momentum": 0.0,
                     "train.max_epochs": 6, "train.early_stop_metric": "val/loss",
                     "train.early_stop_mode": "max", "train.patience": 99})
    # mode=max on a falling loss: validations 2..6 never improve and each halves the LR; the
    # last halving comes after the last logged training step
    assert plateau[0] == 0.0001 and plateau[-1] == pytest.approx(0.0001 * 0.5**4)


def test_max_samples_limits_the_epoch(toy_cfg, runs_dir):
    _, trainer, result = fit(toy_cfg(**{"train.max_samples": 40, "train.max_epochs": 1}), runs_dir)
    assert result["step"] == 2


def test_experiment_hooks_param_groups_weights_epoch_start(toy_cfg, runs_dir):
    """Per-group LR scales, weighted sampling and the epoch hook (used by e.g. geolocator)."""
    cfg = toy_cfg(**{"train.max_epochs": 2, "train.scheduler": "constant", "train.lr": 0.1})
    exp = create_experiment(cfg)
    seen_epochs, drawn = [], []
    exp.param_groups = lambda model: [{"params": model[0].parameters(), "lr_scale": 0.1},
                                      {"params": model[3].parameters()}]
    exp.on_epoch_start = lambda model, epoch: seen_epochs.append(epoch)
    weights = torch.zeros(256)
    weights[:10] = 1.0  # only the first 10 samples may be drawn
    exp.sample_weights = lambda ds: weights
    step = exp.training_step

    def recording_step(model, batch):
        if model.training:
            drawn.append(batch[0])
        return step(model, batch)

    exp.training_step = recording_step
    trainer = Trainer(exp, RunStore(runs_dir).create(cfg), progress_bar=False)
    trainer.fit()
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([0.01, 0.1])
    assert seen_epochs == [0, 1]
    x_train = exp.build_datasets()[0].tensors[0]
    rows = torch.cat(drawn)
    assert rows.shape[0] == 2 * 256
    allowed = x_train[:10]
    assert all((allowed == r).all(1).any() for r in rows)


def test_threads_setting_applies(toy_cfg, runs_dir):
    before = torch.get_num_threads()
    try:
        fit(toy_cfg(**{"train.threads": 1, "train.max_epochs": 1}), runs_dir)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_final_metrics_without_a_run_directory(toy_cfg):
    """In-memory training (no run store, as seed studies use) still reports final metrics."""
    result = Trainer(create_experiment(toy_cfg(**{"train.max_epochs": 2})), None, progress_bar=False).fit()
    assert result["state"] == "done" and set(result["final"]) == {"val/loss", "val/mae"}
