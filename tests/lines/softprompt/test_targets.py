"""Prompts from templates, the text-encoder registry and the on-disk target cache."""
import pandas as pd
import pytest
import torch

from workbench.encoders.text import TEXT_ENCODERS, CLIPTextEncoder, MiniLMTextEncoder, create_text_encoder
from workbench.errors import ConfigError, InputError, NotFoundError
from workbench.lines.softprompt import targets as T

CITIES = pd.DataFrame({"name": ["Lyon", "Ōsaka"], "country": ["France", "Japan"], "country_code": ["FR", "JP"],
                       "continent": ["Europe", "Asia"], "admin1_code": ["84", "32"]})


def test_render_prompts_from_templates():
    assert T.render_prompts(CITIES) == ["a photo taken in Lyon, France", "a photo taken in Ōsaka, Japan"]
    assert T.render_prompts(CITIES, "{continent}: {city} ({country_code}) {{x}}") == [
        "Europe: Lyon (FR) {x}", "Asia: Ōsaka (JP) {x}"]


@pytest.mark.parametrize("template, message", [
    ("a photo of {town}", "unknown placeholder {town}. Available: ['{city}', '{country}'"),
    ("a photo", "no placeholder"),
    ("a photo of {city", "not a valid format string"),
])
def test_bad_templates_name_the_problem(template, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        T.render_prompts(CITIES, template)


def test_registry_describes_encoders_without_loading_them():
    assert TEXT_ENCODERS.list() == ["clip_text", "minilm"]
    assert (MiniLMTextEncoder.dim, MiniLMTextEncoder.seq_len(24)) == (384, 24)
    assert (CLIPTextEncoder.dim, CLIPTextEncoder.seq_len(24)) == (768, 77)  # CLIP is always 77 x 768


def test_clip_text_without_local_weights_says_what_to_do(tmp_path):
    with pytest.raises(NotFoundError, match="targets.encoder_path"):
        create_text_encoder("clip_text")
    with pytest.raises(NotFoundError, match="no config.json in"):
        create_text_encoder("clip_text", tmp_path)


@pytest.fixture(scope="module")
def minilm():
    return create_text_encoder("minilm")


def test_minilm_states_match_unbatched_forward_and_masks_are_prefixes(minilm):
    prompts = ["a photo taken in Lyon, France", "a photo taken in Thiruvananthapuram, India", "Rome"]
    states, mask = minilm.encode(prompts, max_tokens=16, batch_size=2)  # batches of different padding
    assert states.shape == (3, 16, 384) and mask.shape == (3, 16)
    lengths = mask.sum(1)
    assert (mask == (torch.arange(16) < lengths[:, None])).all()  # prefix masks
    assert (states[~mask] == 0).all()  # padded positions zeroed: independent of batching
    for i, prompt in enumerate(prompts):  # reference: each prompt alone, no padding at all
        batch = minilm.tokenizer([prompt], return_tensors="pt")
        with torch.no_grad():
            alone = minilm.model(**batch).last_hidden_state[0]
        assert len(alone) == lengths[i]
        torch.testing.assert_close(states[i, : lengths[i]], alone, atol=1e-4, rtol=1e-4)


def test_load_targets_caches_per_encoder_and_prompt_list(tmp_path, monkeypatch):
    calls = []

    class Fake:
        def encode(self, prompts, max_tokens):
            calls.append(list(prompts))
            n = torch.tensor([len(p.split()) + 2 for p in prompts]).clamp(max=max_tokens)
            mask = torch.arange(max_tokens) < n[:, None]
            return torch.randn(len(prompts), max_tokens, 384) * mask[..., None], mask

    monkeypatch.setattr(T, "create_text_encoder", lambda name, path=None: Fake())
    monkeypatch.setattr(MiniLMTextEncoder, "fingerprint", classmethod(lambda cls, path=None: "weights-v1"))
    first = T.load_targets(["a b", "c d e"], "minilm", 8, cache_dir=tmp_path)
    again = T.load_targets(["a b", "c d e"], "minilm", 8, cache_dir=tmp_path)
    assert len(calls) == 1 and again.path == first.path
    assert first.states.dtype == torch.float16 and first.states.shape == (2, 8, 384)
    assert torch.equal(first.states, again.states) and first.lengths.tolist() == [4, 5]
    T.load_targets(["a b", "c d f"], "minilm", 8, cache_dir=tmp_path)  # another dataset / template
    T.load_targets(["a b", "c d e"], "minilm", 6, cache_dir=tmp_path)  # another sequence length
    monkeypatch.setattr(MiniLMTextEncoder, "fingerprint", classmethod(lambda cls, path=None: "weights-v2"))
    T.load_targets(["a b", "c d e"], "minilm", 8, cache_dir=tmp_path)  # other weights
    assert len(calls) == 4 and len(list(tmp_path.glob("minilm-*.pt"))) == 4


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's byte -> printable character table (for a character-level test vocabulary)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A randomly initialised 1-layer, 768-d CLIP text tower with a character-level BPE
    vocabulary, saved in the transformers layout that clip_text loads."""
    import json

    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-clip")
    chars = list(_bytes_to_unicode().values())
    vocab = {tok: i for i, tok in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = CLIPTextConfig(vocab_size=len(vocab), hidden_size=768, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"],
                         eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"])
    CLIPTextModel(cfg).save_pretrained(folder)
    return folder


def test_clip_text_gives_77_by_768_sequences_from_a_local_folder(tiny_clip, tmp_path):
    targets = T.load_targets(["a photo taken in Lyon, France", "Rome"], "clip_text", max_tokens=24,
                             encoder_path=tiny_clip, cache_dir=tmp_path)
    assert targets.states.shape == (2, 77, 768)  # always 77 positions, whatever max_tokens says
    # character-level vocabulary: one token per character, plus start and end of text
    assert targets.lengths.tolist() == [len("aphototakeninlyon,france") + 2, len("rome") + 2]
    # diffusion models read the padded positions too, so their states are kept, not zeroed
    assert (targets.states[1, 6:].float().abs().sum(-1) > 0).all()
    with pytest.raises(InputError, match="768-d"):
        _small_tower(tiny_clip, tmp_path)


def _small_tower(tiny_clip, tmp_path):
    """A 64-d tower where clip_text expects ViT-L/14's 768-d one."""
    import shutil

    from transformers import CLIPTextConfig, CLIPTextModel

    folder = tmp_path / "small"
    shutil.copytree(tiny_clip, folder)
    cfg = CLIPTextConfig.from_pretrained(folder)
    cfg.hidden_size, cfg.num_attention_heads = 64, 2
    CLIPTextModel(cfg).save_pretrained(folder)
    return create_text_encoder("clip_text", folder)
