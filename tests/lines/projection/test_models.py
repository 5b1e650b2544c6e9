"""Every head x every loss trains (forward + backward, finite, gradients where they belong);
the model's temperature, bias and momentum copies behave as the losses expect."""
import math

import pytest
import torch

from workbench.contrastive.losses import LOSSES
from workbench.errors import ConfigError
from workbench.lines.projection.models import HEADS, build_model, count_parameters, parameter_groups

from tests.lines.projection.conftest import D_IMG, D_TXT, small_config

HEAD_NAMES = ["mlp", "attention", "cross_modal", "siglip", "clip", "align", "blip"]
LOSS_NAMES = ["clip", "siglip", "queue", "blip", "align"]


def test_registries_list_the_seven_heads_and_five_losses_in_order():
    assert HEADS.names() == HEAD_NAMES
    assert LOSSES.names() == LOSS_NAMES


def compatible(head: str, loss: str) -> bool:
    return True  # every head works with every loss: momentum copies exist whenever a loss needs them


@pytest.mark.parametrize("head", HEAD_NAMES)
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_every_head_with_every_loss_forward_backward(tmp_path, head, loss):
    assert compatible(head, loss)
    cfg = small_config(tmp_path, head, loss)
    model = build_model(cfg, D_IMG, D_TXT).train()
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(32, D_IMG, generator=g), torch.randn(32, D_TXT, generator=g)
    ids = torch.arange(32) // 2  # two captions per image in the batch
    out = model.loss(image, text, ids)
    assert torch.isfinite(out["loss"]) and out["loss"].ndim == 0
    out["loss"].backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    heads = [model.image_head, model.text_head]
    assert all(any(p.grad is not None and p.grad.abs().sum() > 0 for p in h.parameters()) for h in heads)
    assert model.logit_scale.grad is not None and model.logit_scale.grad != 0
    assert out["logit_scale"] == pytest.approx(float(model.scale().detach()))
    if LOSSES.get(loss).uses_bias:
        assert model.logit_bias.grad is not None and "logit_bias" in out
    if model.momentum is not None:
        assert all(p.grad is None for p in model.image_head_m.parameters())
    with torch.no_grad():
        emb = model.eval().encode_image(image)
    assert emb.shape == (32, 16) and torch.allclose(emb.norm(dim=1), torch.ones(32), atol=1e-5)


def test_momentum_copies_exist_for_blip_head_and_momentum_losses_and_follow_by_ema(tmp_path):
    assert build_model(small_config(tmp_path, "mlp", "clip"), D_IMG, D_TXT).momentum is None
    assert build_model(small_config(tmp_path, "blip", "clip"), D_IMG, D_TXT).momentum == 0.995
    model = build_model(small_config(tmp_path, "mlp", "queue", **{"model.momentum": 0.9}), D_IMG, D_TXT).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    before_online = model.image_head[0].weight.detach().clone()
    before_key = model.image_head_m[0].weight.detach().clone()
    assert torch.equal(before_online, before_key)  # copies start equal
    out = model.loss(torch.randn(32, D_IMG), torch.randn(32, D_TXT), torch.arange(32))
    out["loss"].backward()
    opt.step()
    model.loss(torch.randn(32, D_IMG), torch.randn(32, D_TXT), torch.arange(32))  # the EMA step happens here
    online = model.image_head[0].weight.detach()
    expected = 0.9 * before_key + 0.1 * online
    assert torch.allclose(model.image_head_m[0].weight, expected, atol=1e-6)


def test_eval_forward_changes_no_state(tmp_path):
    model = build_model(small_config(tmp_path, "blip", "blip"), D_IMG, D_TXT).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.loss(torch.randn(32, D_IMG), torch.randn(32, D_TXT), torch.arange(32))
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_temperature_and_bias_inits_follow_the_loss_and_config(tmp_path):
    clip = build_model(small_config(tmp_path, "mlp", "clip"), D_IMG, D_TXT)
    assert float(clip.scale().detach()) == pytest.approx(1 / 0.07)
    sig = build_model(small_config(tmp_path, "siglip", "siglip"), D_IMG, D_TXT)
    assert float(sig.scale().detach()) == pytest.approx(10.0) and float(sig.logit_bias.detach()) == -10.0
    small = build_model(small_config(tmp_path, "siglip", "siglip", **{"loss.bias_init": "log_batch"}), D_IMG, D_TXT)
    assert float(small.logit_bias.detach()) == pytest.approx(math.log(1 / 32))
    fixed = build_model(small_config(tmp_path, "mlp", "clip", **{"model.learnable_temp": False,
                                                                 "loss.temperature": 0.05}), D_IMG, D_TXT)
    assert "logit_scale" not in dict(fixed.named_parameters()) and float(fixed.scale()) == pytest.approx(20.0)
    with torch.no_grad():  # the clamp at ln 100 (clip)
        clip.logit_scale.fill_(10.0)
    assert float(clip.scale().detach()) == pytest.approx(100.0)


def test_cross_modal_heads_share_one_bank_and_count_it_once(tmp_path):
    model = build_model(small_config(tmp_path, "cross_modal", "clip"), D_IMG, D_TXT)
    assert model.image_head.blocks[0].bank is model.text_head.blocks[0].bank
    bank = model.image_head.blocks[0].bank.numel()
    naive = sum(p.numel() for p in model.image_head.parameters()) + sum(p.numel() for p in model.text_head.parameters())
    assert count_parameters(model)["trainable"] == naive - bank + 1  # + the logit scale
    restored = build_model(small_config(tmp_path, "cross_modal", "clip"), D_IMG, D_TXT)
    restored.load_state_dict(model.state_dict())
    assert restored.image_head.blocks[0].bank is restored.text_head.blocks[0].bank


def test_no_weight_decay_on_temperature_bias_and_norms(tmp_path):
    model = build_model(small_config(tmp_path, "siglip", "siglip"), D_IMG, D_TXT)
    decay, no_decay = parameter_groups(model)
    assert no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert {"logit_scale", "logit_bias"} <= {names[id(p)] for p in no_decay["params"]}
    assert all(p.ndim == 2 for p in decay["params"])


def test_seeded_init_is_the_untrained_baseline(tmp_path):
    a = build_model(small_config(tmp_path, "attention", "clip"), D_IMG, D_TXT)
    torch.randn(100)  # the caller's RNG state must not matter
    b = build_model(small_config(tmp_path, "attention", "clip"), D_IMG, D_TXT)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("flat, message", [
    ({"model.type": "attention", "model.hidden_dim": 30, "model.num_tokens": 4}, "divisible by model.num_tokens"),
    ({"model.type": "attention", "model.hidden_dim": 32, "model.num_tokens": 4, "model.num_heads": 3},
     "divisible by model.num_heads"),
    ({"loss.type": "queue", "loss.queue_size": 100, "train.batch_size": 32}, "multiple of train.batch_size"),
    ({"model.type": "siglip", "model.num_layers": 3}, "applies only to model.type=attention"),
    ({"loss.type": "clip", "loss.alpha": 0.2}, "applies only to loss.type=blip"),
    ({"data.val_split": "train"}, "must differ"),
    ({"loss.type": "nope"}, "Choose one of"),
])
def test_bad_configs_fail_at_once_with_the_reason(flat, message):
    from workbench.experiments import build_config

    with pytest.raises(ConfigError, match=message):
        build_config({"kind": "projection"}, [f"{k}={v}" for k, v in flat.items()])
