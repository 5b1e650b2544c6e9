"""The offline tokenizers: MiniLM's WordPiece and one trained on the captions."""
import torch

from workbench.lines.clip.tokenizer import ClipTokenizer


def test_minilm_wordpiece_frames_pads_and_truncates():
    tok = ClipTokenizer.from_minilm(context_length=12)
    assert tok.vocab_size == 30522
    ids = tok.encode(["a photo of a cat", "word " * 40])
    assert ids.shape == (2, 12) and ids.dtype == torch.long
    first = ids[0].tolist()
    end = first.index(tok.eos_id)
    assert first[0] == tok.bos_id and all(i == tok.pad_id for i in first[end + 1:]) and end == 6
    assert ids[1, -1] == tok.eos_id and tok.pad_id not in ids[1].tolist()  # cut, still ends with [SEP]
    again = ClipTokenizer.from_state(tok.state())
    assert torch.equal(again.encode(["a photo of a cat"]), ids[:1])


def test_a_trained_tokenizer_is_deterministic_and_small():
    captions = [f"a {c} field near the {p} coast number {i}" for i in range(40)
                for c, p in (("green", "north"), ("brown", "south"), ("white", "east"))]
    a = ClipTokenizer.train(captions, vocab_size=300, context_length=16)
    b = ClipTokenizer.train(captions, vocab_size=300, context_length=16)
    assert a.to_json() == b.to_json() and a.vocab_size <= 300
    unseen = a.encode(["a purple xylophone"])[0].tolist()
    assert unseen[0] == a.bos_id and a.eos_id in unseen
    assert torch.equal(ClipTokenizer.from_state(a.state()).encode(captions[:5]), a.encode(captions[:5]))
