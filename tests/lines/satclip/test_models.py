"""SatCLIP's model: the note's projection head, every location encoder, image backbones
with any number of bands, and the logged loss terms."""
import pytest
import torch

from workbench.config import from_dict
from workbench.errors import ConfigError
from workbench.lines.satclip.config import SatClipConfig
from workbench.lines.satclip.models import Project, SatClipModel


def config(**model):
    return from_dict(SatClipConfig, {"model": model})


def test_project_is_linear_gelu_linear_dropout_residual_layernorm():
    head = Project(12, 8, dropout=0.0).eval()
    x = torch.randn(5, 12)
    p = head.proj(x)
    expected = torch.nn.functional.layer_norm(head.fc(torch.nn.functional.gelu(p)) + p, (8,),
                                              head.norm.weight, head.norm.bias)
    assert torch.allclose(head(x), expected, atol=1e-6)


@pytest.mark.parametrize("encoder, extra", [("sh_siren", {"legendre_degrees": 10}), ("sh_siren", {"legendre_degrees": 40}),
                                            ("rff", {}), ("direct", {}), ("geoclip", {"freeze_location": True})])
def test_every_location_encoder_trains_with_the_clip_loss(encoder, extra):
    model = SatClipModel(config(location_encoder=encoder, **extra), image_features_dim=64)
    latlon = torch.stack([torch.rand(16) * 180 - 90, torch.rand(16) * 360 - 180], dim=1)
    out = model.loss(torch.randn(16, 64), latlon)
    assert {"loss", "logit_scale", "loss_i2t", "loss_t2i", "image_norm", "location_norm"} <= set(out)
    out["loss"].backward()
    assert model.logit_scale.grad is not None and model.image_head.proj.weight.grad is not None
    trainable = [p for p in model.location_encoder.parameters() if p.requires_grad]
    if extra.get("freeze_location"):
        assert not trainable
    elif trainable:
        assert all(p.grad is not None for p in trainable)
    emb = model.encode_location(latlon)
    assert emb.shape == (16, 256) and torch.allclose(emb.norm(dim=1), torch.ones(16), atol=1e-5)


@pytest.mark.parametrize("name, weights, bands", [("efficientnet-lite0", "offline", 10), ("resnet18", "none", 13),
                                                   ("resnet50", "none", 12), ("vit_small", "none", 13)])
def test_backbones_take_any_number_of_bands(name, weights, bands):
    from workbench.encoders.image import create_image_backbone

    backbone = create_image_backbone(name, weights, in_chans=bands)
    model = SatClipModel(config(backbone=name, weights=weights, freeze_backbone=False), backbone.num_features,
                         backbone.model).eval()
    with torch.no_grad():
        emb = model.encode_image(torch.rand(2, bands, 56, 56))
    assert emb.shape == (2, 256)


def test_logit_scale_is_clamped_at_100_and_config_checks():
    model = SatClipModel(config(), 32)
    with torch.no_grad():
        model.logit_scale.fill_(9.0)
    assert float(model.scale().detach()) == pytest.approx(100.0)
    with pytest.raises(ConfigError, match="data.crop"):
        from_dict(SatClipConfig, {"data": {"crop": 80}})
    with pytest.raises(ConfigError, match="freeze_backbone"):
        from_dict(SatClipConfig, {"data": {"flips": True}})
    with pytest.raises(ConfigError, match="applies only to model.location_encoder=sh_siren"):
        from_dict(SatClipConfig, {"model": {"location_encoder": "rff", "legendre_degrees": 20}})
