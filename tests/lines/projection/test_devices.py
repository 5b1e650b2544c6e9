"""Every loss trains on every device this machine has (CPU always; CUDA with AMP and the
pairs kept on the GPU where present), through the one Trainer."""
import pytest
import torch

from workbench.experiments import create_experiment
from workbench.lines.projection import evaluate as ev
from workbench.train.trainer import Trainer

from tests.lines.projection.conftest import small_config

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("loss", ["clip", "siglip", "queue", "blip", "align"])
def test_each_loss_trains_on_each_device(encoded_dir, device, loss):
    extra = {"loss.chunk_size": 8} if loss == "siglip" else {}  # the chunked path, under autocast on CUDA
    cfg = small_config(encoded_dir, "blip" if loss == "blip" else "mlp", loss,
                       **{"train.device": device, "train.amp": True, "train.max_epochs": 3, "train.lr": 3e-3, **extra})
    exp = create_experiment(cfg)
    trainer = Trainer(exp, run=None, progress_bar=False)
    result = trainer.fit()
    assert result["state"] == "done" and trainer.device.type == device
    assert trainer.use_amp == (device == "cuda") and trainer._data_on_device == (device == "cuda")
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    trained = ev.evaluate_model(trainer.model, exp.data.test)
    untrained = ev.evaluate_model(exp.untrained_model(), exp.data.test)
    assert trained["r_mean"] > untrained["r_mean"] + 0.2, (trained["r_mean"], untrained["r_mean"])
