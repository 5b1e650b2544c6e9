"""Checkpoint bundles: the reference layout, weights_only loading, exact round trips."""
import pytest
import torch

from workbench.config import to_dict
from workbench.errors import WorkbenchError
from workbench.experiments.softprompt import build_sequence_model
from workbench.softprompt.bundle import load_model, save_bundle

from tests.softprompt.conftest import small_config


@pytest.mark.parametrize("arch", ["softprompt", "lightweight_transformer", "direct"])
def test_bundle_round_trip(tmp_path, arch):
    torch.manual_seed(1)
    cfg = small_config(arch)
    model = build_sequence_model(cfg).eval()
    path = save_bundle(model, to_dict(cfg), tmp_path / "model.pt", source_run="r1")
    raw = torch.load(path, weights_only=True)  # plain tensors and dicts only
    assert {"model_state_dict", "dict_state_dict", "config", "format", "param_counts"} <= set(raw)
    assert raw["config"]["model"]["arch"] == arch and raw["source_run"] == "r1"
    cfg2, loaded = load_model(path)
    assert cfg2 == cfg
    x = torch.randn(3, 512)
    for key, value in model(x).items():
        torch.testing.assert_close(loaded(x)[key], value, rtol=0, atol=0)


def test_reference_layout_loads_like_the_reference(tmp_path):
    """bundle["dict_state_dict"] goes into the dictionary, bundle["model_state_dict"] into the rest."""
    cfg = small_config()
    model = build_sequence_model(cfg)
    raw = torch.load(save_bundle(model, to_dict(cfg), tmp_path / "model.pt"), weights_only=True)
    assert list(raw["dict_state_dict"]) == ["entries"] and raw["dict_state_dict"]["entries"].shape == (6, 5, 384)
    assert not any(k.startswith("soft_dict") for k in raw["model_state_dict"])
    fresh = build_sequence_model(cfg)
    fresh.soft_dict.load_state_dict(raw["dict_state_dict"])
    fresh.load_state_dict({**raw["model_state_dict"], **{f"soft_dict.{k}": v for k, v in raw["dict_state_dict"].items()}})
    torch.testing.assert_close(fresh.soft_dict.entries, model.soft_dict.entries)


def test_trainer_checkpoints_load_too(tmp_path):
    cfg = small_config()
    model = build_sequence_model(cfg)
    torch.save({"config": to_dict(cfg), "model": model.state_dict(), "optimizer": {}}, tmp_path / "best.pt")
    _, loaded = load_model(tmp_path / "best.pt")
    torch.testing.assert_close(loaded.soft_dict.entries, model.soft_dict.entries)


def test_wrong_checkpoints_fail_with_one_line(tmp_path):
    torch.save({"config": {"kind": "toy"}, "model": {}}, tmp_path / "toy.pt")
    with pytest.raises(WorkbenchError, match="not a softprompt checkpoint"):
        load_model(tmp_path / "toy.pt")
    cfg = small_config()
    bad = {"config": to_dict(small_config(**{"model.n_entries": 9})), "model": build_sequence_model(cfg).state_dict()}
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(WorkbenchError, match="does not match the model its config describes"):
        load_model(tmp_path / "bad.pt")
