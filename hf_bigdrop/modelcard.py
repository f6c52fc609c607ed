"""The model card of a trained BigDrop model: what it is, how it was trained, and its per-domain o.o.d. table."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from .results import RunResults, domain_table

PAPER_URL = "https://arxiv.org/abs/2403.00946"
CITATION = """@article{zhang2024finetuning,
  title   = {Fine-tuning with Very Large Dropout},
  author  = {Zhang, Jianyu and Bottou, L{\\'e}on},
  journal = {arXiv preprint arXiv:2403.00946},
  year    = {2024}
}"""


def _is_hub_id(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith(("/", ".", "embedded:")) and not Path(name).exists()


def build_model_card(results: RunResults, *, model_id: str | None = None) -> ModelCard:
    """A `huggingface_hub.ModelCard` for the model a run selected.

    Args:
        results (`RunResults`): the run's results.
        model_id (`str`, *optional*): the Hub repository the model goes to, for the loading snippet.

    Returns:
        `ModelCard`: metadata (base model, dataset, tags, metrics) and a body with the per-domain o.o.d. table.
    """
    method = "very large dropout" if results.dropout_rate > 0 else "ERM (dropout 0)"
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        base_model=results.backbone if _is_hub_id(results.backbone) else None,
        datasets=[results.dataset] if _is_hub_id(results.dataset) else None,
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
# {method.capitalize()}: {results.dataset}, held out {held_out}

This model fine-tunes `{results.backbone}` on the **{results.dataset}** domains {train} with **dropout
{results.dropout_rate:g}** on its penultimate representation, the method of *Fine-tuning with Very Large Dropout*
(Zhang & Bottou, [arXiv:2403.00946]({PAPER_URL})), trained with `hf_bigdrop`.
{_held_out_sentence(results)}

## Results

Accuracy of the selected checkpoint (step {results.selected_step}, chosen by `{results.selection_metric}`, seed
{results.seed}):

{domain_table(results)}

## How it was trained

- Protocol (DomainBed): each training domain split {_holdout(results)} into train / validation, seeded per domain;
  {_selection_sentence(results)}
- Backbone `{results.backbone}`, dropout rate {results.dropout_rate:g} on the pooled features, BatchNorm statistics
  {"frozen" if results.arguments.get("model", {}).get("freeze_batchnorm", True) else "trained"}.
- Optimiser `{results.arguments.get("training", {}).get("optim", "?")}`, learning rate
  {results.arguments.get("training", {}).get("learning_rate", "?")}, {results.arguments.get("training", {}).get("max_steps", "?")}
  steps; every argument is in `results.json`. Wall time: {results.wall_time_s:.0f} s.

## Use

```python
from transformers import pipeline

classifier = pipeline("image-classification", model="{repo}", trust_remote_code=True)
```

The model's code (`configuration_bigdrop.py`, `modeling_bigdrop.py`) is saved with its weights and imports only
`torch` and `transformers`; with `hf_bigdrop` installed and imported, `trust_remote_code` is not needed.

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
    if "oracle" in results.selection_metric:
        return (
            f"{subject} never took part in training, but a validation part of "
            f"{'them' if plural else 'it'} selected the checkpoint (oracle selection): the accuracy below is an "
            "optimistic estimate of out-of-distribution (o.o.d.) generalisation."
        )
    return (
        f"{subject} never took part in training or in model selection: {'their' if plural else 'its'} accuracy "
        "measures out-of-distribution (o.o.d.) generalisation."
    )


def _selection_sentence(results: RunResults) -> str:
    if results.selection_metric == "eval_val_accuracy":
        return "the checkpoint with the best mean training-domain validation accuracy is selected."
    if "oracle" in results.selection_metric:
        return "the checkpoint is selected on a validation part of the held-out domains (oracle selection)."
    if results.selection_metric == "last step":
        return "the model of the last step is kept (no checkpoint selection)."
    return f"the checkpoint is selected by `{results.selection_metric}`."


def _holdout(results: RunResults) -> str:
    fraction = results.arguments.get("data", {}).get("holdout_fraction", 0.2)
    return f"{100 * (1 - fraction):.0f}/{100 * fraction:.0f}"


def write_model_card(results: RunResults, folder: str | os.PathLike, *, model_id: str | None = None) -> Path:
    """Writes `README.md` (the model card) into `folder`."""
    path = Path(folder) / "README.md"
    build_model_card(results, model_id=model_id).save(path)
    return path


__all__ = ["build_model_card", "write_model_card"]
