"""Per-domain accuracy as an `evaluate` module loaded by path (never by name: that would download), a
`compute_metrics` factory for the `transformers` Trainer, and the one definition of the mean and the worst
accuracy over domains (`mean_domain_accuracy`, `worst_domain_accuracy`) that the Trainer and the results use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .per_domain_accuracy.domain_accuracy import (
    mean_domain_accuracy,
    per_domain_accuracy,
    worst_domain_accuracy,
)

__all__ = [
    "PER_DOMAIN_ACCURACY_PATH",
    "load_per_domain_accuracy",
    "make_compute_metrics",
    "mean_domain_accuracy",
    "per_domain_accuracy",
    "worst_domain_accuracy",
]

# Folder of the `evaluate` module (`evaluate.load(str(PER_DOMAIN_ACCURACY_PATH))`).
PER_DOMAIN_ACCURACY_PATH = Path(__file__).resolve().parent / "per_domain_accuracy"


def load_per_domain_accuracy(**kwargs: Any):
    """Loads the per-domain accuracy `evaluate` module from inside the package (works offline).

    Args:
        **kwargs: Passed to `evaluate.load` (e.g. `experiment_id`, `keep_in_memory`).

    Returns:
        `evaluate.EvaluationModule`: `compute(predictions=..., references=..., domains=...)` returns
        `accuracy`, `accuracy_<domain>`, `mean_domain_accuracy` and `worst_domain_accuracy`.
    """
    import evaluate

    return evaluate.load(str(PER_DOMAIN_ACCURACY_PATH), **kwargs)


def make_compute_metrics(domain_names: Sequence[str] | None = None) -> Callable[[Any], dict[str, float]]:
    """Builds a `compute_metrics` function for the `transformers` Trainer.

    With plain `(logits, labels)` it returns `{"accuracy": ...}`. Evaluating with
    `trainer.evaluate(eval_dataset={"photo": ds1, "sketch": ds2})` then logs `eval_photo_accuracy`,
    `eval_sketch_accuracy`. When `label_ids` is a tuple `(labels, domain_ids)` (the collator's
    `include_domain_ids=True` with `label_names=["labels", "domain_ids"]`), it also returns
    `accuracy_<domain>`, `mean_domain_accuracy` and `worst_domain_accuracy`.

    Args:
        domain_names (`Sequence[str] | None`, *optional*, defaults to `None`): Names for domain ids (e.g.
            `splits["train"].features["domain"].names`); ids are used as names otherwise.

    Returns:
        `Callable[[EvalPrediction], dict[str, float]]`: The function to pass as `compute_metrics`.
    """
    names = None if domain_names is None else list(domain_names)

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        if hasattr(eval_prediction, "predictions"):
            logits, label_ids = eval_prediction.predictions, eval_prediction.label_ids
        else:
            logits, label_ids = eval_prediction
        if isinstance(logits, (tuple, list)):  # models that also return hidden states
            logits = logits[0]
        logits = np.asarray(logits)
        predictions = logits.argmax(axis=-1) if logits.ndim > 1 else logits
        domains = None
        if isinstance(label_ids, (tuple, list)):
            label_ids, domains = label_ids[0], label_ids[1] if len(label_ids) > 1 else None
        as_names = None
        if domains is not None:
            ids = np.asarray(domains).reshape(-1).astype(np.int64).tolist()
            as_names = [names[i] for i in ids] if names is not None else [str(i) for i in ids]
        return per_domain_accuracy(predictions, np.asarray(label_ids), as_names)

    return compute_metrics
