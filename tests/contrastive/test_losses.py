"""Contrastive losses against naive float64 references (value and gradients), the chunked
sigmoid against the plain one, queue / ramp state, learned temperature and the registry."""
from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.contrastive.losses import (
    LOSSES, AlignLoss, BlipLoss, ClipLoss, QueueLoss, SigLipLoss, create_loss, positive_mask,
    siglip_bias_init,
)
from workbench.errors import NotFoundError

B, D = 6, 8
DUP_IDS = [3, 7, 3, 1, 7, 3]  # three captions of image 3, two of image 7
TOL = dict(rtol=1e-10, atol=1e-12)


# ---- inputs -----------------------------------------------------------------------------


def unit(n: int, d: int = D, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1).requires_grad_()


def make_features(n: int = B, ids=None, seed: int = 0, scale: float = 7.0, bias: float = -2.0,
                  momentum: bool = False) -> dict:
    f = {
        "image_features": unit(n, seed=seed),
        "text_features": unit(n, seed=seed + 1),
        "logit_scale": torch.tensor(scale, dtype=torch.float64, requires_grad=True),
        "logit_bias": torch.tensor(bias, dtype=torch.float64, requires_grad=True),
    }
    if momentum:
        f["image_features_m"] = unit(n, seed=seed + 2)
        f["text_features_m"] = unit(n, seed=seed + 3)
    if ids is not None:
        f["image_ids"] = torch.tensor(ids, dtype=torch.long)
    return f


def inputs(f: dict, bias: bool = False) -> list[torch.Tensor]:
    keys = ["image_features", "text_features", "logit_scale"] + (["logit_bias"] if bias else [])
    return [f[k] for k in keys]


def grads(loss: torch.Tensor, f: dict, bias: bool = False) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(loss, inputs(f, bias))


def assert_same_value_and_grads(ours: torch.Tensor, ref: torch.Tensor, f: dict, bias: bool = False):
    torch.testing.assert_close(ours, ref, **TOL)
    for a, b in zip(grads(ours, f, bias), grads(ref, f, bias)):
        torch.testing.assert_close(a, b, **TOL)


def row_ids(f: dict) -> list[int]:
    ids = f.get("image_ids")
    return list(range(len(f["image_features"]))) if ids is None else ids.tolist()


# ---- naive references: explicit rows, textbook formulas ---------------------------------


def log_softmax_row(z: torch.Tensor) -> torch.Tensor:
    return z - torch.log(torch.exp(z).sum())


def ref_clip(f: dict, eps: float = 0.0) -> torch.Tensor:
    img, txt, s = inputs(f)
    ids, n = row_ids(f), len(img)
    total = 0.0
    for a, b in [(img, txt), (txt, img)]:
        for i in range(n):
            z = torch.stack([s * torch.dot(a[i], b[j]) for j in range(n)])
            pos = torch.tensor([float(ids[i] == ids[j]) for j in range(n)], dtype=z.dtype)
            target = (1 - eps) * pos / pos.sum() + eps / n
            total = total - (target * log_softmax_row(z)).sum() / n
    return total / 2


def ref_siglip(f: dict) -> torch.Tensor:
    img, txt, s, b = inputs(f, bias=True)
    ids, n = row_ids(f), len(img)
    total = 0.0
    for i in range(n):
        for j in range(n):
            y = 1.0 if ids[i] == ids[j] else -1.0
            total = total - torch.log(torch.sigmoid(y * (s * torch.dot(img[i], txt[j]) + b)))
    return total / n


def ref_queue(f: dict, image_queue, text_queue, queue_ids) -> torch.Tensor:
    """MoCo CE per row; queue entries of the row's own image are simply not in its row."""
    img, txt, s = inputs(f)
    img_k = f.get("image_features_m", img).detach()
    txt_k = f.get("text_features_m", txt).detach()
    ids = f.get("image_ids")
    total = 0.0
    for q, k, queue in [(img, txt_k, text_queue), (txt, img_k, image_queue)]:
        for i in range(len(q)):
            keep = [j for j in range(len(queue)) if ids is None or queue_ids[j] != ids[i]]
            z = torch.stack([s * torch.dot(q[i], k[i])] + [s * torch.dot(q[i], queue[j]) for j in keep])
            total = total - log_softmax_row(z)[0] / len(q)
    return total / 2


def ref_blip(f: dict, image_queue, text_queue, queue_ids, alpha: float,
             queue_positives: bool = True) -> torch.Tensor:
    img, txt, s = inputs(f)
    img_m = f.get("image_features_m", img).detach()
    txt_m = f.get("text_features_m", txt).detach()
    ids, n = row_ids(f), len(img)
    has_ids = "image_ids" in f
    col_ids = ids + [int(q) if has_ids and queue_positives else -1 for q in queue_ids]
    total = 0.0
    for q, q_m, cols in [(img, img_m, torch.cat([txt_m, text_queue])),
                         (txt, txt_m, torch.cat([img_m, image_queue]))]:
        for i in range(n):
            z = torch.stack([s * torch.dot(q[i], c) for c in cols])
            z_m = torch.stack([s.detach() * torch.dot(q_m[i], c) for c in cols])
            pos = torch.tensor([float(c == ids[i] and (j < n or c >= 0)) for j, c in enumerate(col_ids)],
                               dtype=z.dtype)
            target = alpha * torch.softmax(z_m, 0) + (1 - alpha) * pos / pos.sum()
            total = total - (target * log_softmax_row(z)).sum() / n
    return total / 2


def queue_state(loss) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return loss.image_queue.double().clone(), loss.text_queue.double().clone(), loss.queue_ids.clone()


def written_first_rows(f: dict, image_queue, text_queue, queue_ids):
    """The queue expected after one batch of keys (float32, as stored) went into rows 0..B-1."""
    img_k = f.get("image_features_m", f["image_features"]).detach()
    txt_k = f.get("text_features_m", f["text_features"]).detach()
    image_queue, text_queue, queue_ids = image_queue.clone(), text_queue.clone(), queue_ids.clone()
    n = len(img_k)
    image_queue[:n], text_queue[:n] = img_k.float().double(), txt_k.float().double()
    queue_ids[:n] = f["image_ids"] if "image_ids" in f else -1
    return image_queue, text_queue, queue_ids


def assert_queue_holds(loss, image_queue, text_queue, queue_ids):
    torch.testing.assert_close(loss.image_queue.double(), image_queue, rtol=0, atol=0)
    torch.testing.assert_close(loss.text_queue.double(), text_queue, rtol=0, atol=0)
    assert torch.equal(loss.queue_ids, queue_ids)


# ---- clip / align -----------------------------------------------------------------------


@pytest.mark.parametrize("ids", [None, DUP_IDS])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_clip_matches_reference(ids, eps):
    f = make_features(ids=ids)
    out = ClipLoss(label_smoothing=eps)(f)
    assert_same_value_and_grads(out["loss"], ref_clip(f, eps), f)
    torch.testing.assert_close((out["loss_i2t"] + out["loss_t2i"]) / 2, out["loss"].detach())


def test_align_is_clip_with_label_smoothing():
    f = make_features(ids=DUP_IDS)
    assert AlignLoss().label_smoothing == 0.1
    assert torch.equal(AlignLoss()(f)["loss"], ClipLoss(label_smoothing=0.1)(f)["loss"])
    torch.testing.assert_close(AlignLoss()(f)["loss"], ref_clip(f, 0.1), **TOL)


def test_duplicate_ids_change_clip_targets():
    # Sensitivity: treating same-image captions as negatives gives a different loss.
    assert not torch.allclose(ClipLoss()(make_features(ids=DUP_IDS))["loss"],
                              ClipLoss()(make_features())["loss"])


# ---- siglip -----------------------------------------------------------------------------


@pytest.mark.parametrize("ids", [None, DUP_IDS])
@pytest.mark.parametrize("chunk_size", [0, 4])
def test_siglip_matches_reference(ids, chunk_size):
    f = make_features(ids=ids)
    out = SigLipLoss(chunk_size=chunk_size)(f)
    assert_same_value_and_grads(out["loss"], ref_siglip(f), f, bias=True)
    assert out["logit_bias"] == -2.0 and not out["logit_bias"].requires_grad


@pytest.mark.parametrize("ids", [None, [0, 1, 0, 2, 3, 3, 4, 5, 0, 6]])
@pytest.mark.parametrize("chunk_size", [1, 3, 10, 20])
def test_chunked_sigmoid_equals_unchunked(chunk_size, ids):
    f = make_features(n=10, ids=ids)
    plain = SigLipLoss()(f)["loss"]
    chunked = SigLipLoss(chunk_size=chunk_size)(f)["loss"]
    assert_same_value_and_grads(chunked, plain, f, bias=True)


def saved_bytes(fn) -> int:
    """Bytes of the tensors autograd saves for backward while ``fn`` runs."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def test_chunked_sigmoid_never_saves_the_batch_by_batch_logits():
    n, d = 4096, 32
    f = {"image_features": unit(n, d, dtype=torch.float32),
         "text_features": unit(n, d, seed=1, dtype=torch.float32),
         "logit_scale": torch.tensor(10.0, requires_grad=True),
         "logit_bias": torch.tensor(-8.0, requires_grad=True)}
    out = {}
    saved = saved_bytes(lambda: out.update(SigLipLoss(chunk_size=256)(f)))
    # img + txt [B, D] + ids [B] + two scalars, nothing of size B x B.
    assert saved <= 2 * n * d * 4 + n * 8 + 64
    assert saved < n * n * 4 / 50
    g = grads(out["loss"], f, bias=True)
    assert all(torch.isfinite(x).all() for x in g)
    # The counter does see the logits of the plain loss (a smaller batch keeps this quick).
    small = {k: (v[:1024] if v.dim() else v) for k, v in f.items()}
    assert saved_bytes(lambda: SigLipLoss()(small)) >= 1024 * 1024 * 4


def test_siglip_bias_init_is_log_inverse_batch():
    assert siglip_bias_init(512) == pytest.approx(math.log(1 / 512))
    assert siglip_bias_init(1) == 0.0
    with pytest.raises(ValueError, match="batch_size"):
        siglip_bias_init(0)


# ---- queue ------------------------------------------------------------------------------


@pytest.mark.parametrize("ids", [None, DUP_IDS])
@pytest.mark.parametrize("momentum", [False, True])
def test_queue_matches_reference_over_two_steps(ids, momentum):
    loss = QueueLoss(dim=D, queue_size=16, seed=3)
    image_queue, text_queue, queue_ids = queue_state(loss)
    f1 = make_features(ids=ids, momentum=momentum)
    assert_same_value_and_grads(loss(f1)["loss"], ref_queue(f1, image_queue, text_queue, queue_ids), f1)

    # The second batch sees the first batch's keys in rows 0..B-1 (enqueued after its logits),
    # and with ids some of them show the same images and are masked out.
    image_queue, text_queue, queue_ids = written_first_rows(f1, image_queue, text_queue, queue_ids)
    assert_queue_holds(loss, image_queue, text_queue, queue_ids)
    assert loss.queue_ptr.tolist() == [B]

    f2 = make_features(ids=None if ids is None else [7, 0, 3, 8, 9, 3], seed=10, momentum=momentum)
    out = loss(f2)
    ref = ref_queue(f2, image_queue, text_queue, queue_ids)
    assert_same_value_and_grads(out["loss"], ref, f2)
    if ids is not None:  # sensitivity: without the mask the value differs
        unmasked = {k: v for k, v in f2.items() if k != "image_ids"}
        assert not torch.allclose(out["loss"], ref_queue(unmasked, image_queue, text_queue, queue_ids))


def test_queue_initial_state_is_seeded_unit_vectors():
    a, b, c = (QueueLoss(dim=D, queue_size=32, seed=seed) for seed in (0, 0, 1))
    torch.testing.assert_close(a.image_queue.norm(dim=1), torch.ones(32))
    torch.testing.assert_close(a.text_queue.norm(dim=1), torch.ones(32))
    assert torch.equal(a.image_queue, b.image_queue) and not torch.equal(a.image_queue, c.image_queue)
    assert not torch.equal(a.image_queue, a.text_queue)
    assert (a.queue_ids == -1).all() and a.queue_ptr.tolist() == [0]


def test_queue_ring_wraps_with_a_partial_batch():
    loss = QueueLoss(dim=D, queue_size=8)
    ptrs, written = [], {}
    for step in range(4):  # 3 + 3 + 3 rows into 8: the third batch writes rows 6, 7, 0
        f = make_features(n=3, ids=[10 * step, 10 * step + 1, 10 * step + 2], seed=step)
        loss(f)
        ptrs.append(loss.queue_ptr.item())
        for k, row in enumerate((3 * step + torch.arange(3)) % 8):
            written[int(row)] = (f["image_features"][k].detach().float(), 10 * step + k)
    assert ptrs == [3, 6, 1, 4]
    for row, (key, image_id) in written.items():
        assert torch.equal(loss.image_queue[row], key) and loss.queue_ids[row] == image_id
    assert loss.queue_ids.tolist() == [22, 30, 31, 32, 11, 12, 20, 21]


def test_queue_eval_does_not_mutate():
    loss = QueueLoss(dim=D, queue_size=16).eval()
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    out = loss(make_features(ids=DUP_IDS))
    assert torch.isfinite(out["loss"])
    assert all(torch.equal(before[k], v) for k, v in loss.state_dict().items())
    loss(make_features(n=20))  # eval never writes, so a batch longer than the queue is fine


def test_queue_keys_get_no_gradient():
    f = make_features(momentum=True)
    loss = QueueLoss(dim=D, queue_size=16)(f)["loss"]
    g = torch.autograd.grad(loss, [f["image_features_m"], f["text_features_m"], f["image_features"]],
                            allow_unused=True)
    assert g[0] is None and g[1] is None and g[2] is not None
    f = make_features()  # online features as keys: the key path is detached
    g_ours = grads(QueueLoss(dim=D, queue_size=16)(f)["loss"], f)
    g_ref = grads(ref_queue(f, *queue_state(QueueLoss(dim=D, queue_size=16))), f)
    torch.testing.assert_close(g_ours, g_ref, **TOL)


def test_queue_batch_larger_than_queue_raises():
    with pytest.raises(ValueError, match=r"batch of 6 .*queue_size=4"):
        QueueLoss(dim=D, queue_size=4)(make_features())
    with pytest.raises(ValueError, match="queue_size"):
        QueueLoss(dim=D, queue_size=0)


def test_queue_state_dict_resumes_identically():
    loss = QueueLoss(dim=D, queue_size=16)
    loss(make_features(ids=DUP_IDS))
    assert set(loss.state_dict()) == {"image_queue", "text_queue", "queue_ids", "queue_ptr"}
    resumed = QueueLoss(dim=D, queue_size=16, seed=99)
    resumed.load_state_dict(loss.state_dict())
    f = make_features(ids=DUP_IDS, seed=5)
    assert torch.equal(resumed(f)["loss"], loss(f)["loss"])


# ---- blip -------------------------------------------------------------------------------


@pytest.mark.parametrize("ids", [None, DUP_IDS])
@pytest.mark.parametrize("queue_size", [0, 16])
def test_blip_matches_reference_over_two_steps(ids, queue_size):
    loss = BlipLoss(dim=D, queue_size=queue_size, alpha=0.4)
    image_queue, text_queue, queue_ids = queue_state(loss)  # the initial (random) queue
    for step in range(2):
        step_ids = None if ids is None else [i + 2 * step for i in ids]  # overlaps across steps
        f = make_features(ids=step_ids, seed=10 * step, momentum=True)
        out = loss(f)
        ref = ref_blip(f, image_queue, text_queue, queue_ids, alpha=0.4)
        assert_same_value_and_grads(out["loss"], ref, f)
        assert out["alpha"] == pytest.approx(0.4)
        if queue_size and step == 0:  # the second step sees this batch's momentum keys
            image_queue, text_queue, queue_ids = written_first_rows(f, image_queue, text_queue, queue_ids)
            assert_queue_holds(loss, image_queue, text_queue, queue_ids)
    assert loss.steps.item() == 2


def test_blip_counts_same_image_queue_entries_as_positives():
    loss = BlipLoss(dim=D, queue_size=8, alpha=0.3)
    loss(make_features(n=4, ids=[0, 1, 2, 3], momentum=True))  # queue rows 0..3: ids 0..3
    assert loss.queue_ids.tolist() == [0, 1, 2, 3, -1, -1, -1, -1]
    ids = torch.tensor([2, 5, 2, 7])
    expected = torch.tensor([
        # batch: 2  5  2  7 | queue: 0  1  2  3 -1 -1 -1 -1
        [1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(positive_mask(ids, loss.queue_ids), expected)

    image_queue, text_queue, queue_ids = queue_state(loss)
    f = make_features(n=4, ids=ids.tolist(), seed=4, momentum=True)
    out = loss(f)
    assert_same_value_and_grads(out["loss"], ref_blip(f, image_queue, text_queue, queue_ids, 0.3), f)
    ignoring_queue = ref_blip(f, image_queue, text_queue, queue_ids, 0.3, queue_positives=False)
    assert not torch.allclose(out["loss"], ignoring_queue)


def test_blip_alpha_ramps_over_training_forwards():
    loss = BlipLoss(dim=D, queue_size=0, alpha=0.4, ramp_steps=4)
    seen = []
    for step in range(7):
        f = make_features(momentum=True, seed=step)
        out = loss(f)
        seen.append(out["alpha"].item())
        if step == 2:  # ramp / 2: the loss really uses alpha = 0.2
            empty = torch.zeros(0, D, dtype=torch.float64)
            assert_same_value_and_grads(out["loss"], ref_blip(f, empty, empty, [], alpha=0.2), f)
    assert seen == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    assert loss.steps.item() == 7 and "steps" in loss.state_dict()

    loss.eval()
    assert loss(make_features(momentum=True))["alpha"].item() == pytest.approx(0.4)
    assert loss.steps.item() == 7  # eval forwards are not training steps

    loss.train()
    out = loss({**make_features(momentum=True), "alpha": 0.25})
    assert out["alpha"].item() == 0.25 and loss.steps.item() == 8


def test_blip_eval_does_not_mutate_and_keys_get_no_gradient():
    loss = BlipLoss(dim=D, queue_size=12).eval()
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    f = make_features(ids=DUP_IDS, momentum=True)
    out = loss(f)
    assert all(torch.equal(before[k], v) for k, v in loss.state_dict().items())
    g = torch.autograd.grad(out["loss"], [f["image_features_m"], f["text_features_m"]], allow_unused=True)
    assert g == (None, None)


# ---- every loss -------------------------------------------------------------------------


def build(name: str, **kw) -> nn.Module:
    if "dim" in inspect.signature(LOSSES.get(name)).parameters:
        kw.setdefault("dim", D)
    return create_loss(name, **kw)


@pytest.mark.parametrize("name", LOSSES.names())
def test_distinct_ids_equal_no_ids_exactly(name):
    f = make_features(momentum=True)
    f_ids = {**f, "image_ids": torch.tensor([40, 2, 17, 5, 99, 0])}
    plain, with_ids = build(name)(f)["loss"], build(name)(f_ids)["loss"]
    assert torch.equal(plain, with_ids)
    for a, b in zip(grads(plain, f), grads(with_ids, f)):
        assert torch.equal(a, b)


def test_chunked_siglip_distinct_ids_equal_no_ids_exactly():
    f = make_features()
    f_ids = {**f, "image_ids": torch.tensor([40, 2, 17, 5, 99, 0])}
    loss = SigLipLoss(chunk_size=4)
    assert torch.equal(loss(f)["loss"], loss(f_ids)["loss"])


EXPECTED_ATTRIBUTES = {  # init scale, init bias, bias, momentum, min scale, max scale
    "clip": (1 / 0.07, None, False, False, 1.0, 100.0),
    "siglip": (10.0, -10.0, True, False, 1.0, 100.0),
    "queue": (1 / 0.07, None, False, True, 1.0, 100.0),
    "blip": (1 / 0.07, None, False, True, 2.0, 1000.0),
    "align": (1 / 0.07, None, False, False, 1.0, 100.0),
}


@pytest.mark.parametrize("name", LOSSES.names())
def test_class_attributes(name):
    cls = LOSSES.get(name)
    got = (cls.init_logit_scale, cls.init_logit_bias, cls.uses_bias, cls.uses_momentum,
           cls.min_logit_scale, cls.max_logit_scale)
    want = EXPECTED_ATTRIBUTES[name]
    assert got[1:4] == want[1:4]
    assert [got[0], *got[4:]] == pytest.approx([want[0], *want[4:]])


def test_registry_order_and_unknown_name():
    assert LOSSES.names() == ["clip", "siglip", "queue", "blip", "align"]
    assert set(EXPECTED_ATTRIBUTES) == set(LOSSES.names())
    with pytest.raises(NotFoundError, match=r"'nope' not found. Available: \[.*'align'.*'siglip'"):
        create_loss("nope")


@pytest.mark.parametrize("name", LOSSES.names())
def test_forward_backward_smoke(name):
    # float32 like training: the queues are used as they are stored, and backward runs
    # after the forward has enqueued (a queue saved for backward must not be overwritten).
    cls = LOSSES.get(name)
    n = 32
    f = {"image_features": unit(n, 16, dtype=torch.float32),
         "text_features": unit(n, 16, seed=1, dtype=torch.float32),
         "logit_scale": torch.tensor(cls.init_logit_scale, requires_grad=True),
         "image_ids": torch.arange(n) // 2}
    if cls.uses_bias:
        f["logit_bias"] = torch.tensor(cls.init_logit_bias, requires_grad=True)
    if cls.uses_momentum:
        f["image_features_m"] = unit(n, 16, seed=2, dtype=torch.float32)
        f["text_features_m"] = unit(n, 16, seed=3, dtype=torch.float32)
    takes = inspect.signature(cls).parameters
    kw = {"dim": 16, "queue_size": 64} if "queue_size" in takes else {}
    out = build(name, **kw)(f)
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    assert out["logit_scale"].item() == pytest.approx(cls.init_logit_scale)
    assert all(v.dim() == 0 and not v.requires_grad for k, v in out.items() if k != "loss")
    g = grads(out["loss"], f, bias=cls.uses_bias)
    assert all(torch.isfinite(x).all() and x.abs().sum() > 0 for x in g)


# ---- temperature and bias are learned and logged ----------------------------------------


class TwoTowers(nn.Module):
    """Two linear heads and the loss's temperature (as a log) and bias parameters."""

    def __init__(self, loss_cls):
        super().__init__()
        self.image_head, self.text_head = nn.Linear(8, 4), nn.Linear(8, 4)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(loss_cls.init_logit_scale)))
        bias = loss_cls.init_logit_bias
        self.logit_bias = nn.Parameter(torch.tensor(bias)) if loss_cls.uses_bias else None

    def forward(self, x_img, x_txt) -> dict:
        out = {"image_features": F.normalize(self.image_head(x_img), dim=-1),
               "text_features": F.normalize(self.text_head(x_txt), dim=-1),
               "logit_scale": self.logit_scale.exp()}
        if self.logit_bias is not None:
            out["logit_bias"] = self.logit_bias
        return out


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_temperature_and_bias_are_learned_and_logged(name):
    torch.manual_seed(0)
    loss_fn = create_loss(name)
    model = TwoTowers(type(loss_fn))
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x_img = torch.randn(16, 8)
    x_txt = x_img + 0.3 * torch.randn(16, 8)
    losses = []
    for _ in range(30):
        out = loss_fn(model(x_img, x_txt))
        assert out["logit_scale"].item() == pytest.approx(model.logit_scale.exp().item(), rel=1e-6)
        if model.logit_bias is not None:
            assert out["logit_bias"].item() == model.logit_bias.item()
        losses.append(out["loss"].item())
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert abs(model.logit_scale.item() - start["logit_scale"].item()) > 1e-3
    if model.logit_bias is not None:
        assert abs(model.logit_bias.item() - start["logit_bias"].item()) > 1e-3
    assert losses[-1] < losses[0]
