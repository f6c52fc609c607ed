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
    domains (`list[str]` or `list[int]`, *optional*): Domain of each example, names or integer ids: a feature of
        the module like `predictions`, so it goes with them to `add`, `add_batch` and `compute`. Left out everywhere,
        only `accuracy` is returned.
    domain_names (`list[str]`, *optional*): Maps integer domain ids to names (`domain_names[id]`); a keyword of
        `compute`.
Returns:
    `dict[str, float]`: `accuracy`, and with domains `accuracy_<domain>`, `mean_domain_accuracy`,
    `worst_domain_accuracy`.
Examples:
    >>> metric = evaluate.load("path/to/per_domain_accuracy")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], domains=["a", "a", "b"])
    {'accuracy': 0.6666666666666666, 'accuracy_a': 1.0, 'accuracy_b': 0.0, 'mean_domain_accuracy': 0.5, 'worst_domain_accuracy': 0.0}
    >>> metric.add_batch(predictions=[0, 1], references=[0, 1], domains=["a", "a"])
    >>> metric.add_batch(predictions=[1], references=[0], domains=["b"])
    >>> metric.compute()["mean_domain_accuracy"]
    0.5
"""

_CITATION = """
@article{zhang2024finetuning,
  title={Fine-tuning with Very Large Dropout},
  author={Zhang, Jianyu and Bottou, L{\\'e}on},
  journal={arXiv preprint arXiv:2403.00946},
  year={2024}
}
"""


def _features(domain: datasets.Value) -> datasets.Features:
    return datasets.Features(
        {"predictions": datasets.Value("int64"), "references": datasets.Value("int64"), "domains": domain}
    )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PerDomainAccuracy(evaluate.Metric):
    """Accuracy per domain, mean over domains and worst domain.

    `domains` is a feature, stored with each prediction (as domain names or as integer ids, whichever the first
    batch gives), so batches added one at a time give the result of one `compute` over all of them. It may be left
    out of every call: each example then has no domain (`None`), and only `accuracy` is computed.
    """

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[_features(datasets.Value("string")), _features(datasets.Value("int64"))],
            reference_urls=["https://arxiv.org/abs/2403.00946"],
        )

    # `evaluate` appends the inputs description to these methods' docstrings: each needs one.
    def add_batch(self, *, predictions=None, references=None, domains=None, **kwargs):
        """Adds a batch of predictions, references and (optionally) their domains."""
        domains = self._domains_of(predictions, domains)
        return super().add_batch(predictions=predictions, references=references, domains=domains, **kwargs)

    def add(self, *, prediction=None, reference=None, domains=None, **kwargs):
        """Adds one prediction, its reference and (optionally) its domain."""
        self._domains_of([prediction], [domains])
        return super().add(prediction=prediction, reference=reference, domains=domains, **kwargs)

    def compute(self, *, predictions=None, references=None, domains=None, **kwargs):
        """Computes the accuracies over everything added, and over the batch given here if any."""
        if predictions is None and references is None and domains is not None:
            raise ValueError(
                "`domains` go with their predictions: pass them to `add` / `add_batch`, or all three to `compute`."
            )
        try:
            if predictions is None and references is None:
                return super().compute(**kwargs)
            domains = self._domains_of(predictions, domains)
            return super().compute(predictions=predictions, references=references, domains=domains, **kwargs)
        finally:
            self._with_domains = None

    def _domains_of(self, predictions, domains):
        """`domains`, or one `None` per prediction when left out; refuses batches with and without domains mixed
        (their stored column would mean nothing)."""
        if predictions is None:
            return domains
        if domains is None:
            domains = [None] * len(predictions)
        with_domains = any(domain is not None for domain in domains)
        if getattr(self, "_with_domains", None) not in (None, with_domains):
            raise ValueError(
                "some batches came with `domains` and others without: give `domains` with every batch, or with none."
            )
        self._with_domains = with_domains
        return domains

    def _compute(self, predictions, references, domains=None, domain_names=None):
        known = [domain is not None for domain in domains] if domains is not None else []
        if not any(known):
            domains = None
        elif not all(known):
            raise ValueError(
                f"{known.count(False)} of {len(known)} examples have no domain: give `domains` with every batch, or "
                "with none."
            )
        return per_domain_accuracy(predictions, references, domains, domain_names)
