"""A tiny learnable image dataset for the multi-process test scripts beside this file (no files, no network)."""

from __future__ import annotations

import torch


class ToyImages(torch.utils.data.Dataset):
    """Images whose class is the colour channel that is brightest: learnable in a few steps."""

    def __init__(self, size: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 3, (size,), generator=generator)
        self.pixels = torch.rand(size, 3, 16, 16, generator=generator)
        self.pixels[torch.arange(size), self.labels] += 1.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"pixel_values": self.pixels[index], "labels": self.labels[index]}
