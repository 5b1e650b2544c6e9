"""Prompts from templates over city attributes, and their target sequences, cached on disk.

A template such as ``"a photo taken in {city}, {country}"`` is filled from a city table
(fields: ``PROMPT_FIELDS``). The frozen text encoder's per-token states of the prompts are
the targets; they cost seconds per thousand prompts on a CPU, so ``load_targets`` stores
them once per (encoder weights, sequence length, exact prompt list) - i.e. per encoder,
template and dataset - as float16 under ``data/cache/softprompt/`` and reads them back in
well under a second afterwards (without importing transformers).
"""
from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch

from workbench.encoders.text import create_text_encoder, text_encoder_class
from workbench.errors import ConfigError
from workbench.io import atomic_path
from workbench.lines.softprompt.config import DEFAULT_TEMPLATE, PROMPT_FIELDS, template_fields  # noqa: F401
from workbench.paths import REPO_ROOT

DEFAULT_CACHE_DIR = REPO_ROOT / "data" / "cache" / "softprompt"


@dataclass
class Targets:
    """Target sequences of N prompts: ``states`` [N, L, D] float16, ``mask`` [N, L] bool."""

    states: torch.Tensor
    mask: torch.Tensor
    encoder: str
    path: Path | None = None  # the cache file they came from

    @property
    def lengths(self) -> torch.Tensor:
        """Real tokens per prompt [N] (masks are prefixes, so this is also the prefix length)."""
        return self.mask.sum(1)


def render_prompts(cities: pd.DataFrame, template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One prompt per row of ``cities`` (vectorised column concatenation, no per-row format)."""
    template_fields(template)
    out = pd.Series([""] * len(cities), index=cities.index, dtype=object)
    for literal, name, _, _ in string.Formatter().parse(template):
        out = out + literal.replace("{{", "{").replace("}}", "}")
        if name is not None:
            column = PROMPT_FIELDS[name]
            if column not in cities.columns:
                raise ConfigError(f"targets.template uses {{{name}}} but the city table has no '{column}' column")
            out = out + cities[column].astype(str)
    return out.tolist()


def targets_key(encoder: str, fingerprint: str, seq_len: int, prompts: Sequence[str]) -> str:
    h = hashlib.sha256(f"{encoder}|{fingerprint}|{seq_len}|{len(prompts)}".encode())
    for p in prompts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()[:24]


def load_targets(prompts: Sequence[str], encoder: str = "minilm", max_tokens: int = 32,
                 encoder_path: str | Path | None = None, cache_dir: str | Path | None = None,
                 progress: Callable[[str], None] | None = None) -> Targets:
    """Target sequences of ``prompts`` from the cache, computing and caching them on a miss.

    Returns states [N, L, D] float16 and mask [N, L] bool with L = the encoder's sequence
    length for ``max_tokens`` (MiniLM: max_tokens; CLIP: 77).
    """
    cls = text_encoder_class(encoder)
    seq_len = cls.seq_len(max_tokens)
    key = targets_key(encoder, cls.fingerprint(encoder_path), seq_len, prompts)
    directory = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
    path = directory / f"{encoder}-L{seq_len}-{key}.pt"
    if path.is_file():
        data = torch.load(path, map_location="cpu", weights_only=True)
        return Targets(data["states"], data["mask"], encoder, path)
    if progress:
        progress(f"encoding {len(prompts)} prompts with {encoder} (cached afterwards in {path})")
    model = create_text_encoder(encoder, encoder_path)
    states, mask = model.encode(list(prompts), max_tokens)
    states = states.half()
    with atomic_path(path) as tmp:
        torch.save({"states": states, "mask": mask, "prompts_key": key}, tmp)
    return Targets(states, mask, encoder, path)
