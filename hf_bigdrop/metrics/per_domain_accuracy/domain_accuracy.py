"""Accuracy per domain, and the one definition of the mean and the worst accuracy over domains.

The `evaluate` module beside this file, `BigDropTrainer`'s evaluation (`eval_<group>_accuracy` /
`eval_<group>_worst_accuracy`) and the run results (`MethodResults.mean_test_accuracy`, ...) all summarise
per-domain accuracies with `mean_domain_accuracy` and `worst_domain_accuracy`.

This file imports only numpy: `evaluate.load(path)` copies it next to the metric script and imports it from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np


def mean_domain_accuracy(accuracies: Iterable[float]) -> float:
    """The unweighted mean of per-domain accuracies (every domain counts alike, whatever its size); `nan` for none.

    Args:
        accuracies (`Iterable[float]`): one accuracy per domain.
    """
    return _over_domains(np.mean, accuracies)


def worst_domain_accuracy(accuracies: Iterable[float]) -> float:
    """The lowest of per-domain accuracies (`accuracies`, one per domain); `nan` for none."""
    return _over_domains(np.min, accuracies)


def _over_domains(reduce: Callable[[np.ndarray], float], accuracies: Iterable[float]) -> float:
    values = np.asarray(list(accuracies), dtype=float)
    return float(reduce(values)) if values.size else float("nan")


def per_domain_accuracy(
    predictions: Sequence[int],
    references: Sequence[int],
    domains: Sequence | None = None,
    domain_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Accuracy overall, per domain, mean over domains and worst domain.

    Args:
        predictions (`Sequence[int]`): Predicted class ids.
        references (`Sequence[int]`): True class ids.
        domains (`Sequence | None`, *optional*, defaults to `None`): Domain (name or integer id) per example.
        domain_names (`Sequence[str] | None`, *optional*, defaults to `None`): Names for integer domain ids.

    Returns:
        `dict[str, float]`: `accuracy` and, with `domains`, `accuracy_<domain>` (in order of first
        appearance of ids / names sorted), `mean_domain_accuracy` and `worst_domain_accuracy`.
    """
    predictions, references = np.asarray(predictions).reshape(-1), np.asarray(references).reshape(-1)
    if predictions.shape != references.shape:
        raise ValueError(
            f"predictions ({predictions.shape[0]}) and references ({references.shape[0]}) differ in length."
        )
    if predictions.size == 0:
        raise ValueError("Cannot compute accuracy of zero examples.")
    correct = predictions == references
    result = {"accuracy": float(correct.mean())}
    if domains is None:
        return result
    domains = np.asarray(domains).reshape(-1)
    if domains.shape != correct.shape:
        raise ValueError(
            f"domains ({domains.shape[0]}) and predictions ({correct.shape[0]}) differ in length."
        )
    per_domain = {}
    for value in sorted(np.unique(domains).tolist()):
        name = str(value)
        if domain_names is not None and not isinstance(value, str):
            if not 0 <= value < len(domain_names):
                raise ValueError(f"Domain id {value} out of range for domain_names {list(domain_names)}.")
            name = str(domain_names[int(value)])
        per_domain[name] = float(correct[domains == value].mean())
    result.update({f"accuracy_{name}": acc for name, acc in per_domain.items()})
    result["mean_domain_accuracy"] = mean_domain_accuracy(per_domain.values())
    result["worst_domain_accuracy"] = worst_domain_accuracy(per_domain.values())
    return result
