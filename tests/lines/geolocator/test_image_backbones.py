"""Image backbones: the offline EfficientNet-Lite0 weights classify real photos correctly;
timm models, local weight files, and a clear message when the hub is unreachable."""
import pytest
import torch
from PIL import Image

from workbench.encoders.image import (
    create_image_backbone,
    efficientnet_lite0_weights_path,
    imagenet_labels,
    load_efficientnet_lite0,
    map_lite0_state_dict,
)
from workbench.errors import ConfigError, NotFoundError, WorkbenchError


@pytest.fixture(scope="module")
def lite0_classifier():
    return load_efficientnet_lite0(num_classes=1000).eval()


def top5(model, image: Image.Image) -> list[str]:
    """ImageNet evaluation through the library's transform: shorter side 256, centre crop
    224, mean = std = 0.5."""
    from workbench.lines.geolocator.data import ImageTransform, to_tensor

    x = ImageTransform(224, (0.5,) * 3, (0.5,) * 3, crop="center", resize=256)(to_tensor(image.convert("RGB")))
    with torch.no_grad():
        idx = model(x[None]).softmax(-1)[0].topk(5).indices.tolist()
    names = imagenet_labels()
    return [names[i] for i in idx]


def test_all_247_tensors_map_shape_for_shape(lite0_classifier):
    raw = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    mapped = map_lite0_state_dict(raw, lite0_classifier)
    assert len(mapped) == 247
    src = [v for k, v in raw.items() if not k.endswith("num_batches_tracked")]
    assert all(torch.equal(a, b) for a, b in zip(src, mapped.values()))


def test_lite0_classifies_the_sample_photos(lite0_classifier):
    from sklearn.datasets import load_sample_image

    china = top5(lite0_classifier, Image.fromarray(load_sample_image("china.jpg")))
    assert china[0] == "palace" and {"bell cote, bell cot", "monastery"} <= set(china)
    flower = top5(lite0_classifier, Image.fromarray(load_sample_image("flower.jpg")))
    assert flower[0] == "daisy"


def test_feature_backbone_and_multiband_stem():
    rgb = create_image_backbone("efficientnet-lite0", "offline", in_chans=3)
    assert rgb.num_features == 1280 and rgb.mean == (0.5,) * 3 and rgb.std == (0.5,) * 3
    five = create_image_backbone("efficientnet-lite0", "offline", in_chans=5)
    w3, w5 = rgb.model.conv_stem.weight, five.model.conv_stem.weight
    assert w5.shape[1] == 5 and five.mean == (0.5,) * 5
    assert not torch.equal(w5[:, :3], torch.zeros_like(w5[:, :3]))
    # timm's adapt_input_conv: RGB filters repeated, rescaled by 3 / in_chans
    assert torch.allclose(w5[:, :3], w3 * 3 / 5, atol=1e-6)
    with torch.no_grad():
        assert rgb.model.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 1280)


def test_timm_names_local_files_and_errors(tmp_path, monkeypatch):
    b = create_image_backbone("test_efficientnet", "none", in_chans=3)
    assert b.num_features == b.model.num_features and len(b.mean) == 3
    path = tmp_path / "w.pt"
    torch.save({k: torch.full_like(v, 0.5) if v.is_floating_point() else v for k, v in b.model.state_dict().items()},
               path)
    loaded = create_image_backbone("test_efficientnet", str(path))
    assert torch.equal(loaded.model.conv_stem.weight, torch.full_like(loaded.model.conv_stem.weight, 0.5))
    with pytest.raises(NotFoundError, match=r"'no_such_net' not found. Available: presets \['efficientnet-lite0'\]"):
        create_image_backbone("no_such_net", "none")
    with pytest.raises(NotFoundError, match="backbone weights file not found"):
        create_image_backbone("test_efficientnet", str(tmp_path / "missing.pt"))
    with pytest.raises(ConfigError, match="has no offline weights"):
        create_image_backbone("test_efficientnet", "offline")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WorkbenchError, match=r"model.weights=hub needs internet.*offline preset"):
        create_image_backbone("resnet18", "hub")
