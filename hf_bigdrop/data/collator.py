"""Collator: a list of transformed examples -> a batch of tensors for the model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["DomainCollator", "collate_fn"]


@dataclass
class DomainCollator:
    """Stacks examples produced by `DomainBatchTransform`.

    Output: `pixel_values` (float `(B, 3, H, W)`), `labels` (long `(B,)`) and, only when
    `include_domain_ids=True`, `domain_ids` (long `(B,)`). Domain ids are off by default because a model
    `forward` must not receive keys it does not know; turn them on for a trainer that pops them (per-domain
    metrics) and list `"domain_ids"` in `label_names` so that `compute_metrics` receives them.

    Args:
        include_domain_ids (`bool`, *optional*, defaults to `False`): Add the `domain_ids` tensor.
        domain_key (`str`, *optional*, defaults to `"domain_ids"`): Name of that tensor in the batch.
    """

    include_domain_ids: bool = False
    domain_key: str = "domain_ids"

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if len(examples) == 0:
            raise ValueError("Cannot collate an empty list of examples.")
        first = examples[0]
        if "pixel_values" not in first:
            raise ValueError(
                f"Examples have keys {sorted(first)}, not 'pixel_values': set the transforms first with "
                "hf_bigdrop.data.apply_transforms(dataset, image_processor)."
            )
        label_key = "labels" if "labels" in first else "label"
        batch = {
            "pixel_values": torch.stack([torch.as_tensor(e["pixel_values"]) for e in examples]),
            "labels": torch.tensor([int(e[label_key]) for e in examples], dtype=torch.long),
        }
        if self.include_domain_ids:
            domain_key = "domain_ids" if "domain_ids" in first else "domain"
            batch[self.domain_key] = torch.tensor([int(e[domain_key]) for e in examples], dtype=torch.long)
        return batch


# A ready-made collator without domain ids (`DataLoader(..., collate_fn=collate_fn)`).
collate_fn = DomainCollator()
