"""The projection line on two CPU processes (torchrun, gloo, DDP, the distributed losses):
the heads end with the weights of one process trained on the global batch, for the clip
loss (features gathered with gradients), the sigmoid loss passed round the ring of ranks
and the MoCo queue (every rank enqueues the global batch)."""
import subprocess
import sys

import pytest
import torch
import yaml

from tests.lines.projection.conftest import small_config
from workbench.config import to_dict
from workbench.experiments import create_experiment
from workbench.runs import RunStore
from workbench.train.trainer import Trainer


@pytest.mark.parametrize("loss, extra", [("clip", {}), ("siglip", {"loss.dist_impl": "ring", "loss.chunk_size": 8}),
                                         ("queue", {})])
def test_two_processes_match_one_process_on_the_global_batch(encoded_dir, tmp_path, loss, extra):
    cfg = small_config(encoded_dir, "mlp", loss, **{"model.dropout": 0.0, "train.max_epochs": 1, "train.lr": 3e-3,
                                                     "train.threads": 1, **extra})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    out = subprocess.run([sys.executable, "-m", "workbench", "train", str(path), "--nproc", "2", "--runs",
                          str(tmp_path / "two")], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    (two,) = RunStore(tmp_path / "two").list()
    one = RunStore(tmp_path / "one").create(cfg)
    Trainer(create_experiment(cfg), one, progress_bar=False).fit()
    a = torch.load(two.last_checkpoint, weights_only=True)
    b = torch.load(one.last_checkpoint, weights_only=True)
    assert a["loop"]["step"] == b["loop"]["step"] > 10
    diff = max((a["model"][k].double() - b["model"][k].double()).abs().max().item() for k in b["model"])
    assert diff < 1e-4, diff
    if loss == "queue":  # the queue holds the same keys in the same order on the writing rank
        assert torch.allclose(a["model"]["criterion.text_queue"], b["model"]["criterion.text_queue"], atol=1e-4)
        assert torch.equal(a["model"]["criterion.queue_ids"], b["model"]["criterion.queue_ids"])
    # the reduced validation recall of the two equals one process's within float noise
    assert two.read_status()["final"]["val/r_mean"] == pytest.approx(one.read_status()["final"]["val/r_mean"], abs=0.01)
