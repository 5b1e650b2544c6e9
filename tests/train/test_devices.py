"""Training on every device this machine has (CPU always; CUDA with AMP where present)."""
import pytest
import torch

from workbench.experiments import create_experiment
from workbench.runs import RunStore
from workbench.train.checkpoint import load_checkpoint
from workbench.train.trainer import Trainer, select_device

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_trains_with_amp_where_supported(toy_cfg, runs_dir, device):
    cfg = toy_cfg(**{"train.device": device, "train.amp": True, "train.max_epochs": 4, "train.lr": 0.01,
                     "train.grad_clip": 1.0})
    run = RunStore(runs_dir).create(cfg)
    trainer = Trainer(create_experiment(cfg), run, progress_bar=False)
    result = trainer.fit()
    assert trainer.device.type == device and trainer.use_amp == (device == "cuda")
    vals = [r["val/loss"] for r in run.read_metrics()[0] if r["split"] == "val"]
    assert result["state"] == "done" and vals[-1] < vals[0]
    ckpt = load_checkpoint(run.last_checkpoint)  # maps to CPU
    assert all(t.device.type == "cpu" and torch.isfinite(t).all() for t in ckpt["model"].values())
    assert ckpt["scaler"] is not None


def test_auto_device_prefers_cuda_then_mps_then_cpu():
    mps = getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    expected = "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    assert select_device("auto").type == expected and select_device("cpu").type == "cpu"


def test_asking_for_missing_cuda_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(Exception, match="no CUDA device is available; use train.device=auto or cpu"):
        select_device("cuda")
