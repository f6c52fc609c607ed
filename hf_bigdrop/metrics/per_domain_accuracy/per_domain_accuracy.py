"""Per-domain accuracy: an `evaluate` metric, shipped inside hf_bigdrop and loaded by path.

`evaluate.load(path)` copies this file into its module cache and imports it from there, together with the
sibling file it imports relatively (`domain_accuracy.py`, which computes the accuracies); it imports nothing else
from hf_bigdrop.
"""

from __future__ import annotations

import datasets
import evaluate

from .domain_accuracy import per_domain_accuracy

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
