"""Per-domain accuracy: an `evaluate` metric, shipped inside hf_bigdrop and loaded by path.

This file is self-contained (it imports only numpy, datasets and evaluate) because ``evaluate.load(path)``
copies it into its module cache and imports it from there.
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Accuracy overall and per domain, for domain generalisation: `accuracy` (over all examples),
`accuracy_<domain>` for every domain, `mean_domain_accuracy` (unweighted mean over domains) and
`worst_domain_accuracy` (minimum over domains). Values are fractions in [0, 1].
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): Predicted class ids.
    references (`list[int]`): True class ids.
    domains (`list[str]`, *optional*): Domain of each example (names, or ids as strings). Without it only
        `accuracy` is returned.
    domain_names (`list[str]`, *optional*): Maps integer domain ids to names (`domain_names[id]`).
Returns:
    `dict[str, float]`: `accuracy`, and with domains `accuracy_<domain>`, `mean_domain_accuracy`,
    `worst_domain_accuracy`.
Examples:
    >>> metric = evaluate.load("path/to/per_domain_accuracy")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], domains=["a", "a", "b"])
    {'accuracy': 0.6666666666666666, 'accuracy_a': 1.0, 'accuracy_b': 0.0, 'mean_domain_accuracy': 0.5, 'worst_domain_accuracy': 0.0}
"""

_CITATION = """
@article{zhang2024finetuning,
  title={Fine-tuning with Very Large Dropout},
  author={Zhang, Jianyu and Bottou, L{\\'e}on},
  journal={arXiv preprint arXiv:2403.00946},
  year={2024}
}
"""


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
        `dict[str, float]`: ``accuracy`` and, with ``domains``, ``accuracy_<domain>`` (in order of first
        appearance of ids / names sorted), ``mean_domain_accuracy`` and ``worst_domain_accuracy``.
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
    result["mean_domain_accuracy"] = float(np.mean(list(per_domain.values())))
    result["worst_domain_accuracy"] = float(min(per_domain.values()))
    return result


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PerDomainAccuracy(evaluate.Metric):
    """Accuracy per domain, mean over domains and worst domain."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # `domains` is a keyword argument of `compute` rather than a feature, so it stays optional.
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://arxiv.org/abs/2403.00946"],
        )

    def _compute(self, predictions, references, domains=None, domain_names=None):
        return per_domain_accuracy(predictions, references, domains, domain_names)
