"""The CLIP line's model: ViT and text towers (shapes, padding and causality), the learned
temperature and SigLIP bias, parity with the core losses, AdamW groups, an overfitting
sanity check and the size of the ViT-B/16 preset."""
import math

import pytest
import torch
import torch.nn.functional as F

from workbench.contrastive.losses import create_loss
from workbench.errors import ConfigError
from workbench.experiments import build_config
from workbench.lines.clip.config import SIZES
from workbench.lines.clip.models import ClipModel, TextTower, VisionTower, count_parameters, param_groups

VOCAB, PAD = 50, 0
TINY = ["model.img_size=32", "model.patch_size=8", "model.embed_dim=32", "model.depth=1", "model.num_heads=2",
        "model.text_embed_dim=32", "model.text_depth=1", "model.text_heads=2", "model.output_dim=16",
        "text.context_length=8"]


def config(*overrides):
    return build_config({"kind": "clip"}, [*TINY, *overrides])


def model(*overrides, seed=0):
    torch.manual_seed(seed)
    return ClipModel(config(*overrides), VOCAB, PAD)


def captions(generator, n=4, length=8, ends=(3, 5, 6, 8)):
    """long (n, length): random real tokens, right-padded with PAD after position ends[i]."""
    tokens = torch.randint(1, VOCAB, (n, length), generator=generator)
    for i, end in enumerate(ends[:n]):
        tokens[i, end:] = PAD
    return tokens


def text_tower(causal):
    torch.manual_seed(0)
    return TextTower(VOCAB, 12, 32, 2, 2, causal=causal, pad_id=PAD).eval()


# ---- shapes ------------------------------------------------------------------------------


def test_towers_and_model_give_the_configured_shapes_and_unit_embeddings():
    m = model().eval()
    images, tokens = torch.randn(3, 3, 32, 32), captions(torch.Generator().manual_seed(0), n=3)
    assert m.image_tower(images).shape == (3, 32) and m.text_tower(tokens).shape == (3, 32)
    img, txt = m.encode_image(images), m.encode_text(tokens)
    assert img.shape == txt.shape == (3, 16)
    assert torch.allclose(img.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(txt.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="img_size"):
        m.encode_image(torch.randn(1, 3, 40, 40))
    with pytest.raises(ValueError, match="context_length"):
        m.encode_text(torch.ones(1, 9, dtype=torch.long))


def test_patch_size_must_divide_image_size_and_positions_are_patches_plus_cls():
    with pytest.raises(ConfigError, match="patch_size"):
        config("model.img_size=30")
    tower = VisionTower(img_size=48, patch_size=8, width=32, depth=1, heads=2)
    assert tower.positional_embedding.shape[-2:] == ((48 // 8) ** 2 + 1, 32)


# ---- text tower: padding and causality -----------------------------------------------------


@pytest.mark.parametrize("causal", [True, False])
def test_padding_after_the_caption_does_not_change_its_embedding(causal):
    tower, g = text_tower(causal), torch.Generator().manual_seed(1)
    tokens = captions(g, n=4, length=8)
    with torch.no_grad():
        base = tower(tokens)
        longer = tower(F.pad(tokens, (0, 4), value=PAD))  # (4, 12): four more pads
        alone = torch.stack([tower(row[None, :int((row != PAD).sum())])[0] for row in tokens])  # no padding at all
    assert torch.allclose(base, longer, atol=1e-5)
    assert torch.allclose(base, alone, atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_every_real_token_of_a_caption_changes_its_embedding(causal):
    tower, g = text_tower(causal), torch.Generator().manual_seed(2)
    tokens = captions(g, n=1, length=8, ends=(6,))
    with torch.no_grad():
        base = tower(tokens)
        for position in range(6):  # the first token too: the causal end token saw it
            changed = tokens.clone()
            changed[0, position] = tokens[0, position] % (VOCAB - 1) + 1  # another real token
            assert not torch.allclose(tower(changed), base, atol=1e-4), position


def test_causal_tower_pools_the_end_token_state_which_sees_no_later_position():
    tower, g = text_tower(True), torch.Generator().manual_seed(3)
    tokens = captions(g, n=2, length=8, ends=(4, 8))
    with torch.no_grad():
        pooled = tower(tokens)
        # the state at the end token of a 4-token caption, computed inside an 8-token one:
        # causality means tokens after position 3 cannot reach it
        prefix = tokens[1:, :4]
        assert torch.allclose(tower(prefix), _state_at(tower, tokens[1:], 3), atol=1e-5)
    assert torch.allclose(pooled[0], tower(tokens[:1, :4])[0], atol=1e-5)


def _state_at(tower, tokens, position):
    """The final-norm state (1, D) at ``position`` of an unpadded (1, L) caption."""
    x = tower.token_embedding(tokens) + tower.positional_embedding[:tokens.shape[1]]
    for block in tower.blocks:
        x = block(x, causal=True)
    return tower.norm(x)[:, position]


# ---- temperature, bias, loss ---------------------------------------------------------------


def test_logit_scale_starts_at_one_over_temperature_is_clamped_at_100_and_learns():
    m = model("model.temperature=0.05")
    assert float(m.scale().detach()) == pytest.approx(20.0, rel=1e-5)
    g = torch.Generator().manual_seed(4)
    out = m.loss(torch.randn(4, 3, 32, 32), captions(g))
    assert float(out["logit_scale"]) == pytest.approx(20.0, rel=1e-5)
    out["loss"].backward()
    assert m.logit_scale.grad is not None and float(m.logit_scale.grad) != 0.0
    assert m.logit_bias is None
    with torch.no_grad():
        m.logit_scale.fill_(math.log(1000.0))
    assert float(m.scale().detach()) == pytest.approx(100.0)


def test_siglip_has_a_learned_bias_at_the_core_init():
    m = model("loss.type=siglip")
    assert float(m.logit_bias) == create_loss("siglip").init_logit_bias
    out = m.loss(torch.randn(4, 3, 32, 32), captions(torch.Generator().manual_seed(5)))
    assert float(out["logit_bias"]) == float(m.logit_bias)
    out["loss"].backward()
    assert float(m.logit_bias.grad) != 0.0 and float(m.logit_scale.grad) != 0.0


@pytest.mark.parametrize("loss_type", ["clip", "siglip"])
@pytest.mark.parametrize("with_ids", [False, True])
def test_loss_is_the_core_loss_of_the_normalised_features(loss_type, with_ids):
    m = model(f"loss.type={loss_type}").eval()
    images, tokens = torch.randn(4, 3, 32, 32), captions(torch.Generator().manual_seed(6))
    ids = torch.tensor([0, 0, 1, 2]) if with_ids else None
    out = m.loss(images, tokens, ids)
    with torch.no_grad():
        img, txt = m.image_proj(m.image_tower(images)), m.text_proj(m.text_tower(tokens))
        features = {"image_features": F.normalize(img, dim=-1), "text_features": F.normalize(txt, dim=-1),
                    "logit_scale": torch.tensor(1 / 0.07)}
        if loss_type == "siglip":
            features["logit_bias"] = torch.tensor(-10.0)
        if with_ids:
            features["image_ids"] = ids
        expected = create_loss(loss_type)(features)
    assert float(out["loss"]) == pytest.approx(float(expected["loss"]), rel=1e-5)
    assert float(out["image_norm"]) == pytest.approx(float(img.norm(dim=1).mean()), rel=1e-5)
    assert float(out["text_norm"]) == pytest.approx(float(txt.norm(dim=1).mean()), rel=1e-5)
    assert {"loss", "logit_scale", "image_norm", "text_norm"} <= set(out)


# ---- optimiser groups and sizes ------------------------------------------------------------


def test_param_groups_decay_weight_matrices_only():
    m = model("loss.type=siglip")
    groups = param_groups(m, 0.2)
    assert [g["weight_decay"] for g in groups] == [0.2, 0.0]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(m.parameters()))
    decay = {id(p) for p in groups[0]["params"]}
    names = dict(m.named_parameters())
    for name in ("logit_scale", "logit_bias", "image_tower.cls_token", "image_tower.positional_embedding",
                 "text_tower.positional_embedding", "image_tower.norm.weight", "image_tower.blocks.0.norm1.weight",
                 "text_tower.blocks.0.qkv.bias", "image_tower.patch_embed.bias"):
        assert id(names[name]) not in decay, name
    for name in ("image_tower.patch_embed.weight", "image_tower.blocks.0.qkv.weight", "image_tower.blocks.0.proj.weight",
                 "text_tower.blocks.0.mlp.0.weight", "image_proj.weight", "text_proj.weight",
                 "text_tower.token_embedding.weight"):
        assert id(names[name]) in decay, name


def test_base_preset_image_tower_is_vit_b16_sized():
    torch.manual_seed(0)
    cfg = build_config({"kind": "clip"}, [f"model.{k}={v}" for k, v in SIZES["base"].items()])
    counts = count_parameters(ClipModel(cfg, 30522, PAD))
    assert 80e6 < counts["image"] < 90e6
    assert counts["total"] == counts["image"] + counts["text"] + 1  # + the logit scale


@pytest.mark.parametrize("preset, size", [("clip", "tiny"), ("clip-small", "small"), ("clip-base", "base")])
def test_each_preset_has_its_listed_tower_sizes(preset, size):
    from dataclasses import asdict

    from workbench.experiments import load_config

    cfg = load_config(preset)
    assert {k: v for k, v in asdict(cfg.model).items() if k in SIZES[size]} == SIZES[size]


# ---- overfitting sanity ---------------------------------------------------------------------


def i2t_accuracy(m, images, tokens):
    with torch.no_grad():
        sims = m.encode_image(images) @ m.encode_text(tokens).T  # (N, N)
    return float((sims.argmax(dim=1) == torch.arange(len(images))).float().mean())


def test_a_tiny_model_memorises_16_pairs():
    m = model("model.output_dim=32")
    g = torch.Generator().manual_seed(7)
    images = torch.randn(16, 3, 32, 32, generator=g)  # zero-mean, as normalised images are
    tokens = captions(g, n=16, length=8, ends=(6,) * 16)
    assert i2t_accuracy(m, images, tokens) <= 0.25  # chance: 1/16
    opt = torch.optim.AdamW(param_groups(m, 0.1), lr=1e-3)
    m.train()
    for _ in range(60):
        loss = m.loss(images, tokens)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    assert i2t_accuracy(m, images, tokens) >= 0.9
