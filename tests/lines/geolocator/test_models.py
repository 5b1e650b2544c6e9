"""Heads x label modes train through the one Trainer; freezing schedule, per-group LR,
class-balanced sampling, cached features."""
import copy
import math

import pytest
import torch

from workbench.experiments import create_experiment
from workbench.lines.geolocator.config import LABEL_MODES
from workbench.lines.geolocator.models import HEADS, create_head
from workbench.train.trainer import Trainer


@pytest.mark.parametrize("head", HEADS.list())
@pytest.mark.parametrize("mode", LABEL_MODES)
def test_each_head_and_label_mode_trains_with_finite_loss(tiny_cfg, head, mode):
    own = ["model.hidden=16"] if head == "mlp" else []  # an mlp-only option fails with another head
    cfg = tiny_cfg("train.max_steps=3", f"model.head={head}", f"labels.mode={mode}", *own,
                   "model.dropout=0.1", "labels.t_max=4", "labels.smoothing_km=200")
    exp = create_experiment(cfg)
    trainer = Trainer(exp, None, progress_bar=False)
    result = trainer.fit()
    assert result["state"] == "done" and result["step"] == 3
    if mode != "flat":
        assert len(trainer.model.labels.level_sizes) >= 2  # t_max=4 splits the clusters: a real hierarchy
    final = result["final"]
    assert math.isfinite(final["val/loss"]) and 0.0 <= final["val/acc@2500km"] <= 1.0
    for key in ("val/cell_top1", "val/cell_top5", "val/macro_f1", "val/geoguessr", "val/median_km"):
        assert key in final


def test_mlp_head_places_dropout_before_or_after():
    before = create_head("mlp", 8, 3, hidden=4, dropout=0.3, dropout_position="before")
    after = create_head("mlp", 8, 3, hidden=4, dropout=0.3, dropout_position="after")
    assert (before[0].p, before[3].p) == (0.3, 0.0)
    assert (after[0].p, after[3].p) == (0.0, 0.3)
    assert before[1].out_features == 4 and before[4].out_features == 3


def test_freeze_then_unfreeze_with_a_lower_backbone_lr(tiny_cfg):
    cfg = tiny_cfg("model.freeze_epochs=1", "model.backbone_lr_scale=0.1", "train.max_epochs=2",
                   "train.scheduler=constant")
    exp = create_experiment(cfg)
    trainer = Trainer(exp, None, progress_bar=False)
    trainer.setup()
    model = trainer.model
    groups = trainer.optimizer.param_groups
    assert groups[0]["lr"] == pytest.approx(1e-2) and groups[1]["lr"] == pytest.approx(1e-3)
    start = copy.deepcopy(model.backbone.state_dict())
    exp.on_epoch_start(model, 0)
    model.train()
    assert model.backbone_frozen and not model.backbone.training  # BN statistics stay fixed
    assert not any(p.requires_grad for p in model.backbone.parameters())
    batch = next(iter(trainer.train_loader(0, 0)))
    trainer.train_step(batch)
    after_frozen = model.backbone.state_dict()
    assert all(torch.equal(start[k], after_frozen[k]) for k in start)  # weights AND running stats
    exp.on_epoch_start(model, 1)
    model.train()
    assert model.backbone.training and all(p.requires_grad for p in model.backbone.parameters())
    trainer.train_step(batch)
    assert any(not torch.equal(start[k], model.backbone.state_dict()[k]) for k in start)


def test_balanced_sampling_weights_are_inverse_class_frequency(tiny_cfg):
    exp = create_experiment(tiny_cfg("data.balanced=true", "labels.t_max=4"))
    train, _ = exp.build_datasets()
    w = exp.sample_weights(train)
    labels = train.labels
    counts = torch.bincount(labels)
    assert torch.allclose(w, 1.0 / counts[labels].double())
    per_class = torch.zeros(len(counts), dtype=torch.float64).index_add_(0, labels, w)
    assert torch.allclose(per_class[counts > 0], torch.ones(int((counts > 0).sum()), dtype=torch.float64))
    assert create_experiment(tiny_cfg()).sample_weights(train) is None


def test_cached_features_need_a_frozen_backbone_and_no_augmentation(tiny_cfg, runs_dir):
    from workbench.errors import ConfigError
    from workbench.runs import RunStore

    with pytest.raises(ConfigError, match="freeze_epochs=-1"):
        create_experiment(tiny_cfg("data.cache_features=true")).build_datasets()
    with pytest.raises(ConfigError, match="random augmentation"):
        create_experiment(tiny_cfg("data.cache_features=true", "model.freeze_epochs=-1",
                                   "data.crop=random")).build_datasets()
    exp = create_experiment(tiny_cfg("data.cache_features=true", "model.freeze_epochs=-1"))
    train, val = exp.build_datasets()
    model = exp.build_model().eval()
    assert train[0]["image"].shape == (model.num_features,)
    # the cached features are exactly what the backbone computes from the image
    image_ds = exp.image_dataset(exp.prepare().train, exp.prepare().y_train, train=False)
    with torch.no_grad():
        direct = model.backbone(image_ds[0]["image"][None])[0]
    assert torch.allclose(direct, train[0]["image"], atol=1e-5)
    result = Trainer(exp, RunStore().create(exp.cfg), progress_bar=False).fit()
    assert result["state"] == "done" and math.isfinite(result["final"]["val/loss"])
