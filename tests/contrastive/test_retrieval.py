"""Chunked retrieval metrics against a full-matrix stable argsort, with ties and several
captions per image; zero-shot accuracy against a direct computation."""
import pytest
import torch

from workbench.contrastive import recall_mean, retrieval_metrics, top_k, zero_shot_accuracy
from workbench.contrastive.retrieval import full_matrix_ranks, i2t_ranks, t2i_ranks
from workbench.errors import InputError


def tied_data(seed: int, n: int, m: int, d: int = 4):
    """Small-integer features: many exactly equal scores (ties), exact float arithmetic."""
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(-2, 3, (n, d), generator=g).float()
    txt = torch.randint(-2, 3, (m, d), generator=g).float()
    owner = torch.randint(0, n, (m,), generator=g)  # several captions per image, some images none
    return img, txt, owner


def naive_ranks(img, txt, owner):
    """Per-query Python loops over a stable descending order: the textbook definition."""
    scores = (img @ txt.T).tolist()
    i2t = []
    for i, row in enumerate(scores):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        positions = [p for p, j in enumerate(order) if owner[j] == i]
        i2t.append(min(positions) if positions else -1)
    t2i = []
    for t in range(len(txt)):
        col = [scores[i][t] for i in range(len(img))]
        order = sorted(range(len(col)), key=lambda i: (-col[i], i))
        t2i.append(order.index(int(owner[t])))
    return torch.tensor(i2t), torch.tensor(t2i)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("chunk", [1, 3, None])
def test_chunked_ranks_equal_full_argsort_and_naive_with_ties(seed, chunk):
    g = torch.Generator().manual_seed(100 + seed)
    n, m = int(torch.randint(2, 30, (1,), generator=g)), int(torch.randint(1, 90, (1,), generator=g))
    img, txt, owner = tied_data(seed, n, m)
    full_i2t, full_t2i = full_matrix_ranks(img, txt, owner)
    assert torch.equal(i2t_ranks(img, txt, owner, chunk), full_i2t)
    assert torch.equal(t2i_ranks(img, txt, owner, chunk), full_t2i)
    if chunk == 1:
        naive_i2t, naive_t2i = naive_ranks(img, txt, owner)
        assert torch.equal(full_i2t, naive_i2t) and torch.equal(full_t2i, naive_t2i)


def test_float_data_chunked_metrics_identical_to_full_matrix():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(300, 32, generator=g), dim=1)
    txt = torch.nn.functional.normalize(img.repeat_interleave(5, 0) + 0.8 * torch.randn(1500, 32, generator=g), dim=1)
    owner = torch.arange(1500) // 5
    full_i2t, full_t2i = full_matrix_ranks(img, txt, owner)
    for chunk in (7, 64, None):
        m = retrieval_metrics(img, txt, owner, chunk_size=chunk)
        for k in (1, 5, 10):
            assert m[f"i2t_r{k}"] == pytest.approx(float((full_i2t < k).double().mean()), abs=0)
            assert m[f"t2i_r{k}"] == pytest.approx(float((full_t2i < k).double().mean()), abs=0)
        assert m["t2i_mean_rank"] == pytest.approx(float(full_t2i.double().mean() + 1))
        assert m["i2t_median_rank"] == pytest.approx(float(torch.quantile(full_i2t.double(), 0.5) + 1))
    assert 0.02 < m["i2t_r1"] < m["i2t_r10"] < 1.0  # a real, non-trivial task


def test_i2t_counts_best_caption_and_t2i_the_one_image():
    # image 0 has captions 0 and 1; caption 1 is its best match, caption 0 ranks last
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    owner = torch.tensor([0, 0, 1])
    m = retrieval_metrics(img, txt, owner, ks=(1,))
    assert m["i2t_r1"] == 1.0  # both images find a caption of theirs first
    assert m["t2i_r1"] == pytest.approx(2 / 3)  # caption 0 ranks image 0 behind image 1
    assert m["n_images"] == 2 and m["n_texts"] == 3


def test_ties_break_to_lower_index_every_time():
    img = torch.ones(3, 2)  # identical images: every score ties
    txt = torch.ones(3, 2)
    owner = torch.tensor([0, 1, 2])
    assert t2i_ranks(img, txt, owner).tolist() == [0, 1, 2]
    assert i2t_ranks(img, txt, owner).tolist() == [0, 1, 2]


def test_images_without_captions_are_not_queries():
    img, txt = torch.eye(3), torch.eye(3)[:2]
    m = retrieval_metrics(img, txt, torch.tensor([0, 1]))
    assert m["n_images"] == 2 and m["i2t_r1"] == 1.0


def test_recall_mean_and_bad_inputs():
    img, txt, owner = tied_data(0, 5, 12)
    m = retrieval_metrics(img, txt, owner)
    assert recall_mean(m) == pytest.approx(sum(m[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10)) / 6)
    with pytest.raises(InputError, match="same D"):
        retrieval_metrics(img, txt[:, :3], owner)
    with pytest.raises(InputError, match="one image row per text"):
        retrieval_metrics(img, txt, owner[:-1])
    with pytest.raises(InputError, match="image rows in"):
        retrieval_metrics(img, txt, owner + 5)


def test_top_k_matches_a_stable_sort():
    img, txt, _ = tied_data(3, 6, 40)
    scores, index = top_k(img, txt, 5, chunk_size=4)
    full = img @ txt.T
    order = torch.sort(full, dim=1, descending=True, stable=True)
    assert torch.equal(scores, order.values[:, :5])
    # the tied candidates inside the top 5 come in index order
    for row in range(len(img)):
        for a, b in zip(index[row, :-1].tolist(), index[row, 1:].tolist()):
            assert full[row, a] > full[row, b] or a < b


def test_zero_shot_accuracy_against_direct_argmax():
    g = torch.Generator().manual_seed(1)
    classes = torch.nn.functional.normalize(torch.randn(7, 3, 16, generator=g), dim=-1)  # 3 prompts each
    labels = torch.randint(0, 7, (200,), generator=g)
    mean = torch.nn.functional.normalize(classes.mean(1), dim=-1)
    img = torch.nn.functional.normalize(mean[labels] + 0.9 * torch.randn(200, 16, generator=g), dim=-1)
    acc = zero_shot_accuracy(img, classes, labels, ks=(1, 3))
    scores = img @ mean.T
    assert acc["top1"] == pytest.approx(float((scores.argmax(1) == labels).double().mean()))
    top3 = scores.topk(3, dim=1).indices
    assert acc["top3"] == pytest.approx(float((top3 == labels[:, None]).any(1).double().mean()))
    with pytest.raises(InputError, match="class indices"):
        zero_shot_accuracy(img, classes, labels + 7)
