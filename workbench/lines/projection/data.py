"""The projection line's data: pre-encoded pairs in memory, batches gathered by index.

A split is read once (``workbench.contrastive.encoded.load_encoded``) and kept as tensors;
``PairBatches.__getitems__`` gathers a whole batch with one index per tensor, so the
DataLoader never collates sample by sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from workbench.contrastive.encoded import EncodedPairs, load_encoded
from workbench.errors import InputError
from workbench.paths import repo_path


class PairBatches(Dataset):
    """(image, caption) pairs of one split; item i = text row i with its image."""

    def __init__(self, pairs: EncodedPairs):
        self.image, self.text, self.text_image = pairs.image, pairs.text, pairs.text_image
        self.image_ids = torch.as_tensor(pairs.image_ids)

    def __len__(self) -> int:
        return len(self.text)

    def to(self, device: torch.device) -> "PairBatches":
        """Move the tensors (in place); indices are moved to them per batch."""
        self.image, self.text = self.image.to(device), self.text.to(device)
        self.text_image, self.image_ids = self.text_image.to(device), self.image_ids.to(device)
        return self

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.text.device)
        rows = self.text_image[idx]
        return {"image": self.image[rows], "text": self.text[idx], "image_id": self.image_ids[rows]}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}


def collate_batch(batch):
    """``PairBatches.__getitems__`` already returns the batch (a list only from a Subset)."""
    return batch if isinstance(batch, dict) else torch.utils.data.default_collate(batch)


resolve = repo_path  # relative paths are relative to the repository root


@dataclass
class ProjectionData:
    train: EncodedPairs
    val: EncodedPairs
    test: EncodedPairs | None
    directory: Path

    @property
    def dims(self) -> tuple[int, int]:
        return self.train.image.shape[1], self.train.text.shape[1]


def load_data(cfg, with_test: bool = True) -> ProjectionData:
    """The configured splits; dims must agree across them."""
    d = cfg.data
    directory = resolve(d.dir)
    train, val = load_encoded(directory, d.train_split), load_encoded(directory, d.val_split)
    test = load_encoded(directory, d.test_split) if with_test else None
    for part in (val, test):
        if part is not None and (part.image.shape[1], part.text.shape[1]) != (train.image.shape[1], train.text.shape[1]):
            raise InputError(f"split '{part.split}' has dims {part.image.shape[1]}/{part.text.shape[1]} but "
                             f"'{train.split}' has {train.image.shape[1]}/{train.text.shape[1]}: "
                             "all splits must come from the same encoders")
    return ProjectionData(train, val, test, directory)
