"""The model card of a trained BigDrop model: what it is, how it was trained, and its per-domain o.o.d. table."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from .hub import is_hub_id
from .results import RunResults, domain_table, run_title
from .selection import LAST_STEP, ORACLE, TRAINING_DOMAIN_VALIDATION
from .tables import markdown_table, method_title, percent

PAPER_URL = "https://arxiv.org/abs/2403.00946"
CITATION = """@article{zhang2024finetuning,
  title   = {Fine-tuning with Very Large Dropout},
  author  = {Zhang, Jianyu and Bottou, L{\\'e}on},
  journal = {arXiv preprint arXiv:2403.00946},
  year    = {2024}
}"""


def build_model_card(results: RunResults, *, model_id: str | None = None) -> ModelCard:
    """A `huggingface_hub.ModelCard` for the model a run selected.

    Args:
        results (`RunResults`): the run's results.
        model_id (`str`, *optional*): the Hub repository the model goes to, for the loading snippet.

    Returns:
        `ModelCard`: metadata (base model, dataset, tags, metrics) and a body with the per-domain o.o.d. table.
    """
    method = run_title(results)
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        base_model=results.backbone if is_hub_id(results.backbone) else None,
        datasets=[results.dataset] if is_hub_id(results.dataset) else None,
        tags=[
            "hf_bigdrop",
            "very-large-dropout",
            "domain-generalization",
            "out-of-distribution",
            "image-classification",
        ],
        metrics=["accuracy"],
    )
    repo = model_id or "path/to/this/model"
    train = ", ".join(results.train_domains)
    held_out = ", ".join(results.test_domains)
    body = f"""
# {method[0].upper() + method[1:]}: {results.dataset}, held out {held_out}

This model fine-tunes `{results.backbone}` on the **{results.dataset}** domains {train} with **dropout
{results.dropout_rate:g}** on its penultimate representation, the method of *Fine-tuning with Very Large Dropout*
(Zhang & Bottou, [arXiv:2403.00946]({PAPER_URL})), trained with `hf_bigdrop`.{_members_sentence(results)}
{_held_out_sentence(results)}

## Results

{_selected_sentence(results)}

{domain_table(results)}
{_other_methods(results)}
## How it was trained

- Protocol (DomainBed): each training domain split {_holdout(results)} into train / validation, seeded per domain;
  {_selection_sentence(results)}
- Backbone `{results.backbone}`, dropout rate {results.dropout_rate:g} on the pooled features, BatchNorm statistics
  {"frozen" if results.freeze_batchnorm else "trained"}.
- Optimiser `{results.optimizer}`, learning rate {results.learning_rate}, {results.max_steps} steps; every argument
  is in `results.json`. Wall time: {results.wall_time_s:.0f} s.

## Use

```python
from transformers import pipeline

classifier = pipeline("image-classification", model="{repo}", trust_remote_code=True)
```

The model's code (`configuration_bigdrop.py`, `modeling_bigdrop.py`, `pooling_bigdrop.py`) is saved with its
weights and imports only `torch` and `transformers`; with `hf_bigdrop` installed and imported, `trust_remote_code` is not needed.

## Citation

```bibtex
{CITATION}
```
"""
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")


def _held_out_sentence(results: RunResults) -> str:
    domains = ", ".join(results.test_domains)
    plural = len(results.test_domains) > 1
    subject = f"The domain{'s' if plural else ''} {domains}"
    if results.selection == ORACLE:
        return (
            f"{subject} never took part in training, but a validation part of "
            f"{'them' if plural else 'it'} selected the checkpoint (oracle selection): the accuracy below is an "
            "optimistic estimate of out-of-distribution (o.o.d.) generalisation."
        )
    return (
        f"{subject} never took part in training or in model selection: {'their' if plural else 'its'} accuracy "
        "measures out-of-distribution (o.o.d.) generalisation."
    )


_SELECTION_SENTENCES = {
    TRAINING_DOMAIN_VALIDATION: "the checkpoint with the best mean training-domain validation accuracy is selected.",
    ORACLE: "the checkpoint is selected on a validation part of the held-out domains (oracle selection).",
    LAST_STEP: "the model of the last step is kept (no checkpoint selection).",
}


def _selection_sentence(results: RunResults) -> str:
    return _SELECTION_SENTENCES.get(results.selection, f"the model is selected by `{results.selection}`.")


def _members_sentence(results: RunResults) -> str:
    if not results.members:
        return ""
    return (
        f" It combines the selected models of {len(results.members)} such runs "
        f"({method_title(results.primary_method, with_rate=False)}, `hf_bigdrop.experiment.combine_runs`)."
    )


def _selected_sentence(results: RunResults) -> str:
    if results.members:
        return (
            f"Accuracy of the {method_title(results.primary_method, with_rate=False)} of "
            f"{len(results.members)} runs, each at the step its selection `{results.selection}` chose:"
        )
    return (
        f"Accuracy of the selected model (step {results.selected_step}, selection `{results.selection}`, seed "
        f"{results.seed}):"
    )


def _other_methods(results: RunResults) -> str:
    others = {name: record for name, record in results.methods.items() if name != results.primary_method}
    if not others:
        return ""
    intro = (
        "Other combinations of the same runs (their weights are not in this folder):"
        if results.members
        else "Other methods measured along the same run (same selection; their weights are not in this repository):"
    )
    rows = [
        [
            method_title(name, with_rate=False),
            record.selected_step,
            percent(record.mean_test_accuracy),
            percent(record.mean_validation_accuracy),
        ]
        for name, record in others.items()
    ]
    header = ["method", "selected step", "mean o.o.d. accuracy (%)", "mean validation accuracy (%)"]
    return f"\n{intro}\n\n{markdown_table(header, rows)}\n"


def _holdout(results: RunResults) -> str:
    fraction = results.holdout_fraction
    return f"{100 * (1 - fraction):.0f}/{100 * fraction:.0f}"


def write_model_card(results: RunResults, folder: str | os.PathLike, *, model_id: str | None = None) -> Path:
    """Writes `README.md` (the model card) into `folder`."""
    path = Path(folder) / "README.md"
    build_model_card(results, model_id=model_id).save(path)
    return path


__all__ = ["build_model_card", "write_model_card"]
