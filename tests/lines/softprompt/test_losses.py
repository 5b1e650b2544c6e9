"""Each loss against a naive per-sample reference, and its sign (what lowering it rewards)."""
import math

import pytest
import torch
import torch.nn.functional as F

from workbench.lines.softprompt import losses as L_
from workbench.lines.softprompt.models import SoftPromptModel

torch.manual_seed(0)
B, L, D, K = 6, 5, 8, 4


def data():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(B, L, D, generator=g), torch.randn(B, L, D, generator=g)
    lengths = torch.tensor([5, 3, 1, 4, 2, 5])
    mask = torch.arange(L)[None] < lengths[:, None]
    return pred, target, mask


def real_tokens(mask):
    return [(b, l) for b in range(mask.shape[0]) for l in range(mask.shape[1]) if mask[b, l]]


def test_token_mse_matches_naive_and_ignores_padding():
    pred, target, mask = data()
    naive = sum(((pred[b, l] - target[b, l]) ** 2).mean() for b, l in real_tokens(mask)) / mask.sum()
    torch.testing.assert_close(L_.token_mse(pred, target, mask), naive)
    pred2 = pred.clone()
    pred2[~mask] = 1e6  # padded positions never count
    torch.testing.assert_close(L_.token_mse(pred2, target, mask), naive)
    assert L_.token_mse(target, target, mask) == 0


def test_token_cosine_matches_naive_and_sign():
    pred, target, mask = data()
    naive = sum(F.cosine_similarity(pred[b, l], target[b, l], dim=0) for b, l in real_tokens(mask)) / mask.sum()
    torch.testing.assert_close(L_.token_cosine(pred, target, mask), naive)
    assert L_.token_cosine(target * 3, target, mask) == pytest.approx(1.0)
    assert L_.token_cosine(-target, target, mask) == pytest.approx(-1.0)
    cfg = _cfg()
    assert L_.LOSS_TERMS.get("cosine")(target, target, mask, {}, None, cfg) == pytest.approx(0.0, abs=1e-6)


def test_gram_loss_matches_naive():
    pred, target, mask = data()
    num, den = 0.0, 0
    for b in range(B):
        n = int(mask[b].sum())
        p, t = F.normalize(pred[b, :n], dim=-1), F.normalize(target[b, :n], dim=-1)
        num += ((p @ p.T - t @ t.T) ** 2).sum()
        den += n * n
    torch.testing.assert_close(L_.gram_loss(pred, target, mask), num / den)
    # relations, not values: a rotated-and-scaled copy has the same Gram matrix
    q, _ = torch.linalg.qr(torch.randn(D, D))
    assert L_.gram_loss(2 * target @ q, target, mask) == pytest.approx(0.0, abs=1e-6)


def test_contrastive_matches_naive_and_prefers_matched_pairs():
    pred, target, mask = data()
    pooled = lambda x: torch.stack([F.normalize(x[b, : int(mask[b].sum())].mean(0), dim=0) for b in range(B)])  # noqa: E731
    logits = pooled(pred) @ pooled(target).T / 0.1
    naive = 0
    for i in range(B):
        naive -= 0.5 * (torch.log_softmax(logits[i], 0)[i] + torch.log_softmax(logits[:, i], 0)[i]) / B
    torch.testing.assert_close(L_.contrastive_loss(pred, target, mask, 0.1), naive)
    matched = L_.contrastive_loss(target, target, mask, 0.1)
    shuffled = L_.contrastive_loss(target[torch.randperm(B)], target, mask, 0.1)
    assert matched < shuffled and matched < math.log(B)


def test_diversity_sign_and_naive():
    e = torch.randn(K, L, D)
    c = (e - e.mean(0)).reshape(K, -1)
    naive = sum(F.cosine_similarity(c[i], c[j], dim=0) ** 2 for i in range(K) for j in range(K) if i != j) / (K * (K - 1))
    torch.testing.assert_close(L_.dictionary_diversity(e), naive)
    base = torch.randn(1, L, D)
    near_copies = base + 0.01 * torch.randn(K, L, D)  # alike beyond a shared part...
    near_copies[:, :, 0] += torch.arange(K).view(K, 1).float()  # ...that vary along one direction only
    orthogonal = base + torch.eye(K, L * D).reshape(K, L, D) * 5  # distinct directions
    assert L_.dictionary_diversity(orthogonal) < L_.dictionary_diversity(near_copies)
    # a shared component does not count as similarity (centring)
    assert L_.dictionary_diversity(orthogonal + 100 * base) == pytest.approx(float(L_.dictionary_diversity(orthogonal)), abs=1e-4)


def test_usage_balance_sign_penalises_collapse_not_sharp_mixtures():
    collapse = torch.zeros(8, K)
    collapse[:, 2] = 1.0  # every place on entry 2: the reference's entropy minimum
    spread = torch.eye(K).repeat(2, 1)  # one-hot, but every entry used equally
    uniform = torch.full((8, K), 1 / K)
    assert L_.usage_balance(collapse) == pytest.approx(math.log(K))
    assert L_.usage_balance(spread) == pytest.approx(0.0, abs=1e-6)
    assert L_.usage_balance(uniform) == pytest.approx(0.0, abs=1e-6)
    # naive entropy of the batch-mean mixture
    w = torch.softmax(torch.randn(8, K), -1)
    p = w.mean(0)
    assert L_.usage_balance(w) == pytest.approx(float(math.log(K) + (p * p.log()).sum()), rel=1e-5)
    # sharpness: 0 for one-hot mixtures, 1 for uniform ones; it alone cannot tell spread from collapse
    assert L_.mixture_sharpness(spread) == pytest.approx(0.0, abs=1e-6)
    assert L_.mixture_sharpness(uniform) == pytest.approx(1.0)
    assert L_.mixture_sharpness(collapse) == L_.mixture_sharpness(spread)


def test_balance_gradient_moves_a_collapsing_batch_apart():
    logits = torch.zeros(16, K)
    logits[:, 0] = 3.0  # most weight on entry 0
    logits.requires_grad_(True)
    L_.usage_balance(torch.softmax(logits, -1)).backward()
    # gradient descent lowers the dominant entry's logit and raises the others
    assert (logits.grad[:, 0] > 0).all() and (logits.grad[:, 1:] < 0).all()


def _cfg(**weights):
    base = dict(mse=1.0, cosine=1.0, gram=0.5, contrastive=0.1, diversity=0.01, balance=0.1, sharpness=0.0,
                contrastive_temperature=0.07)
    base.update(weights)
    return type("Cfg", (), base)()


def test_compute_losses_weights_and_logs_every_term():
    pred, target, mask = data()
    model = SoftPromptModel(3, L, D, n_entries=K)
    out = model(torch.randn(B, 3))
    cfg = _cfg(sharpness=0.0, gram=2.0)
    result = L_.compute_losses(out, target, mask, model, cfg)
    names = ["mse", "cosine", "gram", "contrastive", "diversity", "balance", "sharpness"]
    assert sorted(result) == sorted(["loss"] + [f"loss_{n}" for n in names])
    expected = sum(getattr(cfg, n) * result[f"loss_{n}"] for n in names)
    torch.testing.assert_close(result["loss"], expected)
    # models without a mixture log only the terms that apply
    plain = L_.compute_losses({"tokens": pred}, target, mask, torch.nn.Linear(1, 1), cfg)
    assert sorted(plain) == ["loss", "loss_contrastive", "loss_cosine", "loss_gram", "loss_mse"]
