"""Every registered sequence model: shapes, gradients, mixture weights, honest parameter counts."""
import pytest
import torch

from workbench.lines.softprompt.models import (SEQUENCE_MODELS, SoftPromptModel, create_sequence_model, init_dictionary,
                                         parameter_counts)

F, L, D, K = 32, 7, 16, 8
OPTIONS = dict(n_entries=K, hidden=24, d_model=16, heads=2, layers=1, memory_tokens=2, dropout=0.1)


def make(name):
    torch.manual_seed(0)
    return create_sequence_model(name, feature_dim=F, seq_len=L, token_dim=D, **OPTIONS)


@pytest.mark.parametrize("name", SEQUENCE_MODELS.list())
def test_forward_shapes_and_gradients(name):
    model = make(name).train()
    out = model(torch.randn(5, F))
    assert out["tokens"].shape == (5, L, D)
    assert torch.isfinite(out["tokens"]).all()
    (out["tokens"].pow(2).mean() + (out["weights"].std() if "weights" in out else 0)).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"


def test_registry_has_the_three_architectures():
    assert SEQUENCE_MODELS.list() == ["direct", "lightweight_transformer", "softprompt"]


def test_mixture_weights_sum_to_one_and_mix_the_dictionary():
    model = make("softprompt").eval()
    out = model(torch.randn(6, F) * 10)
    w = out["weights"]
    assert w.shape == (6, K) and (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(6))
    # tokens are exactly the weighted sum of the entries, with softmax(logits / T)
    torch.testing.assert_close(w, torch.softmax(out["logits"] / 0.7, -1))
    naive = torch.stack([sum(w[b, k] * model.soft_dict.entries[k] for k in range(K)) for b in range(6)])
    torch.testing.assert_close(out["tokens"], naive, rtol=1e-5, atol=1e-6)


def test_temperature_sharpens_the_mixture():
    torch.manual_seed(0)
    hot = SoftPromptModel(F, L, D, n_entries=K, temperature=5.0).eval()
    cold = SoftPromptModel(F, L, D, n_entries=K, temperature=0.1).eval()
    cold.load_state_dict(hot.state_dict())
    x = torch.randn(10, F)
    assert cold(x)["weights"].max(-1).values.mean() > hot(x)["weights"].max(-1).values.mean()


def test_parameter_counts_include_the_dictionary_and_frozen_encoder():
    model = make("softprompt")
    encoder = torch.nn.Linear(2, F).requires_grad_(False)
    counts = parameter_counts(model, encoder)
    mixer = sum(p.numel() for p in model.mixer.parameters())
    assert counts["dictionary"] == K * L * D
    assert counts["trainable"] == mixer + K * L * D == sum(p.numel() for p in model.parameters())
    assert counts["trainable_without_dictionary"] == mixer
    assert counts["frozen"] == counts["frozen_location_encoder"] == 2 * F + F
    assert counts["total"] == counts["trainable"] + counts["frozen"]
    assert parameter_counts(make("direct"))["dictionary"] == 0


def test_reference_sized_mixer_is_150k_but_the_model_is_millions():
    """The reference's '~150K trainable' is the conditioning network alone; with CLIP's
    [77, 768] sequences its K = 64 dictionary adds 3.8M."""
    model = SoftPromptModel(512, 77, 768, n_entries=64, hidden=256)
    counts = parameter_counts(model)
    assert 140_000 < counts["trainable_without_dictionary"] < 160_000
    assert counts["dictionary"] == 64 * 77 * 768 == 3_784_704
    assert counts["trainable"] > 3_900_000


def test_init_dictionary_from_candidate_targets():
    model = make("softprompt")
    targets = torch.randn(50, L, D)
    candidates = torch.arange(20, 50)  # e.g. the training rows
    rows = init_dictionary(model, targets, candidates, torch.Generator().manual_seed(3))
    assert len(set(rows.tolist())) == K and all(20 <= r < 50 for r in rows.tolist())
    torch.testing.assert_close(model.soft_dict.entries.data, targets[rows])
    with pytest.raises(ValueError, match="at least K"):
        init_dictionary(model, targets, torch.arange(3))
