"""Checkpoint bundles: the core format, the reference layout, weights_only loading, exact round trips."""
import pytest
import torch

from workbench.config import to_dict
from workbench.errors import WorkbenchError
from workbench.lines.softprompt.models import build_sequence_model
from workbench.lines.softprompt.bundle import load_model, reference_layout, save_bundle
from workbench.train.bundle import BUNDLE_FORMAT

from tests.lines.softprompt.conftest import small_config


@pytest.mark.parametrize("arch", ["softprompt", "lightweight_transformer", "direct"])
def test_bundle_round_trip(tmp_path, arch):
    torch.manual_seed(1)
    cfg = small_config(arch)
    model = build_sequence_model(cfg).eval()
    path = save_bundle(model, to_dict(cfg), tmp_path / "model.pt", source_run="r1")
    raw = torch.load(path, weights_only=True)  # plain tensors and dicts only
    assert {"model", "config", "format", "kind", "param_counts"} <= set(raw)
    assert raw["config"]["model"]["arch"] == arch and raw["source_run"] == "r1"
    cfg2, loaded = load_model(path)
    assert cfg2 == cfg
    x = torch.randn(3, 512)
    for key, value in model(x).items():
        torch.testing.assert_close(loaded(x)[key], value, rtol=0, atol=0)


def test_bundle_is_the_core_format(tmp_path):
    cfg = small_config()
    model = build_sequence_model(cfg)
    raw = torch.load(save_bundle(model, to_dict(cfg), tmp_path / "model.pt"), weights_only=True)
    assert raw["format"] == BUNDLE_FORMAT and raw["kind"] == "softprompt" and raw["config"] == to_dict(cfg)
    assert set(raw["model"]) == set(model.state_dict()) and raw["arch"] == "softprompt"
    assert raw["dims"] == {"features": 512, "seq_len": 5, "token_dim": 384}


def test_reference_layout_loads_like_the_reference(tmp_path):
    """The reference's bundles: dict_state_dict goes into the dictionary, model_state_dict into the rest."""
    cfg = small_config()
    model = build_sequence_model(cfg)
    raw = reference_layout(model, to_dict(cfg))
    assert list(raw["dict_state_dict"]) == ["entries"] and raw["dict_state_dict"]["entries"].shape == (6, 5, 384)
    assert not any(k.startswith("soft_dict") for k in raw["model_state_dict"])
    torch.save(raw, tmp_path / "reference.pt")
    _, loaded = load_model(tmp_path / "reference.pt")
    torch.testing.assert_close(loaded.soft_dict.entries, model.soft_dict.entries, rtol=0, atol=0)
    x = torch.randn(3, 512)
    torch.testing.assert_close(loaded(x)["tokens"], model.eval()(x)["tokens"], rtol=0, atol=0)


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
