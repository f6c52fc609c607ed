"""Per-domain evaluation: the evaluation sets `BigDropTrainer` reads, and the mean and worst accuracy per group.

Evaluation sets are named `<group>_<domain>` (groups: `hf_bigdrop.selection.EVAL_GROUPS`); the Trainer logs
`eval_<group>_<domain>_accuracy` for each, and `summarize_domain_metrics` adds `eval_<group>_accuracy` (the mean over
the group's domains) and `eval_<group>_worst_accuracy`, both as `hf_bigdrop.metrics` defines them.
"""

from __future__ import annotations

import datasets
import numpy as np

from .data import domain_ids, domain_names
from .metrics import mean_domain_accuracy, worst_domain_accuracy
from .selection import EVAL_GROUPS, domain_accuracies


def per_domain_eval_sets(splits: datasets.DatasetDict) -> dict[str, datasets.Dataset]:
    """Splits a `load_domain_dataset` result into the per-domain evaluation sets that `BigDropTrainer` reads.

    Args:
        splits (`datasets.DatasetDict`): with `validation` and `test` (and optionally `test_validation`) splits
            holding a `domain` `ClassLabel` column.

    Returns:
        `dict[str, datasets.Dataset]`: `val_<domain>` for each training domain, `test_<domain>` for each held-out
        domain, and `oracle_<domain>` when a `test_validation` split exists; pass it as the Trainer's
        `eval_dataset`.
    """
    sets: dict[str, datasets.Dataset] = {}
    for group, split in EVAL_GROUPS.items():
        if split not in splits:
            continue
        dataset = splits[split]
        ids = domain_ids(dataset)
        names = domain_names(dataset)
        for domain_id in np.unique(ids):
            sets[f"{group}_{names[domain_id]}"] = dataset.select(np.flatnonzero(ids == domain_id))
    return sets


def summarize_domain_metrics(metrics: dict[str, float], prefix: str = "eval") -> dict[str, float]:
    """Mean and worst `accuracy` over the `<prefix>_<group>_<domain>_accuracy` entries of each group.

    Args:
        metrics (`dict[str, float]`): evaluation metrics, e.g. `{"eval_val_photo_accuracy": 0.9, ...}`.
        prefix (`str`, *optional*, defaults to `"eval"`): the method's key prefix (`eval`, `eval_wa`, `eval_ens`).

    Returns:
        `dict[str, float]`: `<prefix>_<group>_accuracy` (`mean_domain_accuracy`) and
        `<prefix>_<group>_worst_accuracy` (`worst_domain_accuracy`) for each group with at least one domain.
    """
    head = f"{prefix}_"
    by_group = domain_accuracies(
        {key[len(head) :]: value for key, value in metrics.items() if key.startswith(head)}
    )
    summary = {}
    for group, accuracies in by_group.items():
        summary[f"{prefix}_{group}_accuracy"] = mean_domain_accuracy(accuracies.values())
        summary[f"{prefix}_{group}_worst_accuracy"] = worst_domain_accuracy(accuracies.values())
    return summary


__all__ = ["per_domain_eval_sets", "summarize_domain_metrics"]
