"""The shipped bundle checkpoints/softprompt-demo: the core bundle format, small, and its
metrics.json numbers reproduced by loading it and evaluating it on its held-out cities."""
import json

import pytest
import torch

from workbench.lines.softprompt.bundle import load_model
from workbench.lines.softprompt.experiment import SoftPromptExperiment
from workbench.lines.softprompt.explorer import DEMO_CHECKPOINT
from workbench.train.bundle import BUNDLE_FORMAT, load_bundle, missing_files


def test_the_demo_is_a_complete_core_bundle():
    assert missing_files(DEMO_CHECKPOINT) == []
    for name in ("index.pt", "cities.csv"):
        assert (DEMO_CHECKPOINT / name).is_file(), name
    raw = load_bundle(DEMO_CHECKPOINT, kind="softprompt")
    assert raw["format"] == BUNDLE_FORMAT and raw["arch"] == "softprompt" and "soft_dict.entries" in raw["model"]
    assert sum(p.stat().st_size for p in DEMO_CHECKPOINT.iterdir()) < 10 * 2**20


def test_the_demo_reproduces_its_held_out_metrics():
    cfg, model = load_model(DEMO_CHECKPOINT / "model.pt")
    exp = SoftPromptExperiment(cfg)
    _, val = exp.build_datasets()  # the MiniLM targets are cached under data/cache/softprompt
    loader = torch.utils.data.DataLoader(val, batch_size=cfg.train.batch_size, collate_fn=exp.collate)
    got = exp.evaluate(model, loader)
    saved = json.loads((DEMO_CHECKPOINT / "metrics.json").read_text())
    assert len(val) == saved["n_val"]
    for key in ("token_cosine", "seq_mse_norm", "retrieval_r1", "retrieval_r10", "country_match",
                "usage_perplexity", "loss"):
        assert got[key] == pytest.approx(saved["held_out"][key], rel=1e-4, abs=1e-5), key
