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
from .data.splitting import domain_rng
from .metric_keys import EVAL_GROUPS, domain_accuracies, eval_set_name, metric_key
from .metrics import mean_domain_accuracy, worst_domain_accuracy


def per_domain_eval_sets(
    splits: datasets.DatasetDict, fit_examples_per_domain: int | None = None
) -> dict[str, datasets.Dataset]:
    """Splits a `load_domain_dataset` result into the per-domain evaluation sets that `BigDropTrainer` reads.

    Args:
        splits (`datasets.DatasetDict`): with `validation` and `test` (and optionally `test_validation`,
            `test_known`, `train`) splits holding a `domain` `ClassLabel` column.
        fit_examples_per_domain (`int | None`, *optional*, defaults to `None`): With a `train` split, also evaluate
            a fixed sample of this many training examples per domain (`fit_<domain>`: the fit of the training data,
            with dropout off as in every evaluation). The sample is the same for every seed and step
            (`fit_sample`). `None` or `0`: no fit sets.

    Returns:
        `dict[str, datasets.Dataset]`: `val_<domain>` for each training domain, `test_<domain>` for each held-out
        domain, `oracle_<domain>` when a `test_validation` split exists, `known_<domain>` when a `test_known` split
        exists, and `fit_<domain>` when asked; pass it as the Trainer's `eval_dataset`.
    """
    sets: dict[str, datasets.Dataset] = {}
    for group, split in EVAL_GROUPS.items():
        if split not in splits:
            continue
        dataset = splits[split]
        if group == "fit":
            if not fit_examples_per_domain:
                continue
            dataset = fit_sample(dataset, fit_examples_per_domain)
        ids = domain_ids(dataset)
        names = domain_names(dataset)
        for domain_id in np.unique(ids):
            sets[eval_set_name(group, names[domain_id])] = dataset.select(np.flatnonzero(ids == domain_id))
    return sets


def fit_sample(train: datasets.Dataset, examples_per_domain: int) -> datasets.Dataset:
    """A fixed sample of a training split: at most `examples_per_domain` examples of each domain, drawn by a
    generator seeded by the domain's name alone (`domain_rng(0, domain, "fit")`), in the split's order.

    Args:
        train (`datasets.Dataset`): A training split with a `domain` `ClassLabel` column.
        examples_per_domain (`int`): The most examples kept per domain (a positive integer).

    Returns:
        `datasets.Dataset`: The sample (an index selection: nothing is decoded).
    """
    if (
        isinstance(examples_per_domain, bool)
        or not isinstance(examples_per_domain, int)
        or examples_per_domain < 1
    ):
        raise ValueError(f"examples_per_domain must be a positive integer, got {examples_per_domain!r}.")
    ids, names = domain_ids(train), domain_names(train)
    kept = [
        domain_rng(0, names[domain_id], "fit").permutation(np.flatnonzero(ids == domain_id))[
            :examples_per_domain
        ]
        for domain_id in np.unique(ids)
    ]
    return train.select(np.sort(np.concatenate(kept or [np.empty(0, np.int64)])).tolist())


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


__all__ = ["fit_sample", "per_domain_eval_sets", "summarize_domain_metrics"]
