"""Per-domain evaluation: the evaluation sets `BigDropTrainer` reads, and the mean and worst accuracy per group.

Evaluation sets are named `<group>_<domain>` (`hf_bigdrop.metric_keys.eval_set_name`); the Trainer logs
`eval_<group>_<domain>_accuracy` for each, and `summarize_domain_metrics` adds `eval_<group>_accuracy` (the mean over
the group's domains) and `eval_<group>_worst_accuracy`, both as `hf_bigdrop.metrics` defines them (every key is
built and read by `hf_bigdrop.metric_keys`).
"""

from __future__ import annotations

import datasets
import numpy as np

from .data import domain_ids, domain_names
from .metric_keys import EVAL_GROUPS, domain_accuracies, eval_set_name, metric_key
from .metrics import mean_domain_accuracy, worst_domain_accuracy


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
            sets[eval_set_name(group, names[domain_id])] = dataset.select(np.flatnonzero(ids == domain_id))
    return sets


def summarize_domain_metrics(
    metrics: dict[str, float], method: str = "live", prefix: str = "eval"
) -> dict[str, float]:
    """Mean and worst accuracy over the per-domain accuracies of each group, for one method.

    Args:
        metrics (`dict[str, float]`): evaluation metrics, e.g. `{"eval_val_photo_accuracy": 0.9, ...}`.
        method (`str`, *optional*, defaults to `"live"`): `live`, `trajectory_wa` or `trajectory_ensemble`.
        prefix (`str`, *optional*, defaults to `"eval"`): the Trainer's `metric_key_prefix`.

    Returns:
        `dict[str, float]`: the mean (`eval_<group>_accuracy`, `mean_domain_accuracy`) and the worst
        (`eval_<group>_worst_accuracy`, `worst_domain_accuracy`) of each group with at least one domain, under the
        method's keys.
    """
    summary = {}
    for group, accuracies in domain_accuracies(metrics, method, prefix).items():
        summary[metric_key(group, method=method, prefix=prefix)] = mean_domain_accuracy(accuracies.values())
        worst = metric_key(group, statistic="worst_accuracy", method=method, prefix=prefix)
        summary[worst] = worst_domain_accuracy(accuracies.values())
    return summary


__all__ = ["per_domain_eval_sets", "summarize_domain_metrics"]
