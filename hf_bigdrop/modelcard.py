"""The model card of a trained BigDrop model: what it is, how it was trained, and its per-domain o.o.d. table.

Its metadata is what the Hub reads: the per-domain accuracies as `model-index` eval results (`card_eval_results`), the
dataset and the base model as Hub ids where they are known, the licence, the task and the library.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .backbones import is_embedded_backbone
from .data.registry import get_dataset_info
from .hub import backbone_hub_id, is_hub_id
from .results import RunResults
from .selection import SELECTION_RULES
from .tables import domain_table, markdown_table, method_title, percent, run_title

PAPER_URL = "https://arxiv.org/abs/2403.00946"
CITATION = """@article{zhang2024finetuning,
  title   = {Fine-tuning with Very Large Dropout},
  author  = {Zhang, Jianyu and Bottou, L{\\'e}on},
  journal = {arXiv preprint arXiv:2403.00946},
  year    = {2024}
}"""
TASK = "image-classification"
# The licence of hf_bigdrop's code, and of a model whose backbone's licence is not known.
DEFAULT_LICENSE = "apache-2.0"


def card_eval_results(results: RunResults) -> list[EvalResult]:
    """The accuracy of the model a run selected, per domain, as the Hub's eval results (`model-index`).

    One entry per held-out domain (its o.o.d. accuracy, split `test`) and per training domain (its validation
    accuracy, split `validation`), each with the domain as the dataset configuration, the dataset's Hub id as its type
    where one is known (else its registry or folder name), the task `image-classification` and the metric `accuracy`
    (a fraction in [0, 1]). Domains without a finite accuracy are left out.

    Args:
        results (`RunResults`): the run's results (its primary method's model is the one on the card).

    Returns:
        `list[EvalResult]`: what `ModelCardData(eval_results=...)` writes and `model_index_to_eval_results` reads back.
    """
    dataset_type, title, _ = dataset_identity(results.dataset)
    record = results.primary
    groups = (
        ("held out", results.test_domains, record.test_accuracy, "test", "o.o.d. accuracy"),
        (
            "training domain",
            results.train_domains,
            record.validation_accuracy,
            "validation",
            "validation accuracy",
        ),
    )
    entries = []
    for role, domains, accuracy, split, metric_name in groups:
        for domain in domains:
            value = accuracy.get(domain)
            if value is None or not math.isfinite(value):
                continue
            entries.append(
                EvalResult(
                    task_type=TASK,
                    task_name="Image Classification",
                    dataset_type=dataset_type,
                    dataset_name=f"{title} ({domain}, {role})",
                    dataset_config=domain,
                    dataset_split=split,
                    metric_type="accuracy",
                    metric_value=float(value),
                    metric_name=f"{metric_name} ({domain})",
                )
            )
    return entries


def dataset_identity(dataset: str) -> tuple[str, str, str | None]:
    """What a card calls a run's dataset: `(dataset type, pretty name, Hub id or None)`.

    A registered dataset is named by its registry name and typed by its Hub id where the registry knows one (PACS:
    `flwrlabs/pacs`), else by its registry name (the embedded benchmarks); a Hub dataset by its id; a folder by its
    name.
    """
    info = get_dataset_info(dataset) if not Path(dataset).is_dir() else None
    if info is not None:
        return info.hub_id or info.name, info.name, info.hub_id
    if is_hub_id(dataset):
        return dataset, dataset, dataset
    name = Path(dataset).name or str(dataset)
    return name, name, None


def build_model_card(
    results: RunResults, *, model_id: str | None = None, location: str | None = None
) -> ModelCard:
    """A `huggingface_hub.ModelCard` for the model a run selected.

    Args:
        results (`RunResults`): the run's results.
        model_id (`str`, *optional*): the Hub repository the model goes to, for the loading snippet and the model
            name of the eval results.
        location (`str`, *optional*): where the model is when it has no Hub repository (its folder), for the loading
            snippet and the model name.

    Returns:
        `ModelCard`: metadata (the eval results per domain, base model, dataset, licence, tags, metrics) and a body
        with the per-domain o.o.d. table.
    """
    method = run_title(results)
    heading = (
        f"{method[0].upper() + method[1:]}: {results.dataset}, held out {', '.join(results.test_domains)}"
    )
    base_model = backbone_hub_id(results.backbone)
    dataset_hub_id = dataset_identity(results.dataset)[2]
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=TASK,
        license=results.backbone_license or DEFAULT_LICENSE,
        base_model=base_model,
        datasets=[dataset_hub_id] if dataset_hub_id else None,
        model_name=(model_id or location or heading).rstrip("/").split("/")[-1],
        eval_results=card_eval_results(results) or None,
        tags=[
            "hf_bigdrop",
            "very-large-dropout",
            "domain-generalization",
            "out-of-distribution",
            "image-classification",
            *(["lora"] if results.arguments.get("model", {}).get("lora_r") else []),
        ],
        metrics=["accuracy"],
    )
    repo = model_id or location or "path/to/this/model"
    train = ", ".join(results.train_domains)
    body = f"""
# {heading}

This model fine-tunes `{results.backbone}`{_base_model_words(results, base_model)} on the **{results.dataset}**
domains {train} with **dropout {results.dropout_rate:g}** on its penultimate representation, the method of *Fine-tuning with Very Large Dropout*
(Zhang & Bottou, [arXiv:2403.00946]({PAPER_URL})), trained with `hf_bigdrop`.{_members_sentence(results)}
{_held_out_sentence(results)}
{_members_list(results)}
## Results

{_selected_sentence(results)}

{domain_table(results)}
{_other_methods(results)}
## How it was trained

- Protocol (DomainBed): each training domain split {_holdout(results)} into train / validation, seeded per domain;
  {_selection_sentence(results)}
- Backbone `{results.backbone}`, dropout rate {results.dropout_rate:g} on the pooled features, BatchNorm statistics
  {"frozen" if results.freeze_batchnorm else "trained"}.{_lora_item(results)}
- Optimiser `{results.optimizer}`, learning rate {results.learning_rate}, {results.max_steps} steps; every argument
  is in `results.json`. Wall time: {results.wall_time_s:.0f} s.{_subsample_item(results)}

## Use

```python
from transformers import pipeline

classifier = pipeline("image-classification", model="{repo}", trust_remote_code=True)
```

The model's code (`configuration_bigdrop.py`, `modeling_bigdrop.py`, `pooling_bigdrop.py`) is saved with its
weights and imports only `torch` and `transformers`{_timm_words(results)}; with `hf_bigdrop` installed and imported,
`trust_remote_code` is not needed.

## Licence

{_license_sentence(results)}

## Citation

```bibtex
{CITATION}
```
"""
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")


def _timm_words(results: RunResults) -> str:
    """What else loading needs: a timm backbone (a `timm/...` checkpoint or the embedded one) is built by `timm`."""
    backbone = str(results.backbone)
    if backbone.startswith("timm/") or is_embedded_backbone(backbone):
        return "; its timm backbone needs `timm` too (`pip install timm`)"
    return ""


def _base_model_words(results: RunResults, base_model: str | None) -> str:
    """How the card names the weights of an embedded backbone: its Hub twin."""
    if base_model is None or base_model == results.backbone:
        return ""
    return f" (the weights of [`{base_model}`](https://huggingface.co/{base_model}))"


def _lora_item(results: RunResults) -> str:
    model = results.arguments.get("model", {})
    if not model.get("lora_r"):
        return ""
    alpha = model.get("lora_alpha") or model["lora_r"]
    return (
        f"\n- LoRA (`peft`): adapters of rank {model['lora_r']} (alpha {alpha:g}, LoRA dropout "
        f"{model.get('lora_dropout', 0.0):g}) on the backbone's `{'`, `'.join(model.get('lora_target_modules', []))}` "
        "layers, the linear head trained in full, the rest of the backbone as pretrained; the adapters are merged into "
        "these weights (the adapter alone is in `adapter/`)."
    )


def _license_sentence(results: RunResults) -> str:
    if results.backbone_license:
        return (
            f"`{results.backbone_license}`, the licence of the backbone's weights (`{results.backbone}`); "
            f"hf_bigdrop's code is `{DEFAULT_LICENSE}`."
        )
    return (
        f"`{DEFAULT_LICENSE}`, hf_bigdrop's licence: the licence of the backbone `{results.backbone}` was not known "
        "when this card was written, and applies to these weights too; check it before reuse."
    )


def _members_list(results: RunResults) -> str:
    if not results.members:
        return ""
    members = "\n".join(f"- `{member}`" for member in results.members)
    return f"\nThe runs it combines (their output folders):\n\n{members}\n"


def _held_out_sentence(results: RunResults) -> str:
    domains = ", ".join(results.test_domains)
    plural = len(results.test_domains) > 1
    subject = f"The domain{'s' if plural else ''} {domains}"
    rule = SELECTION_RULES.get(results.selection)
    if rule is not None and rule.reads_held_out_domains:
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
    rule = SELECTION_RULES.get(results.selection)
    return rule.card_sentence if rule is not None else f"the model is selected by `{results.selection}`."


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


def _subsample_item(results: RunResults) -> str:
    """A warning item when the run saw only a few examples per domain (`max_per_domain`: a smoke test)."""
    cap = results.arguments.get("data", {}).get("max_per_domain")
    if not cap:
        return ""
    return (
        f"\n- **A reduced run**: at most {cap} examples per domain (`max_per_domain`), for a quick check; its "
        "accuracies are not a result to compare."
    )


def _holdout(results: RunResults) -> str:
    fraction = results.holdout_fraction
    if fraction is None:  # a run whose arguments did not record it
        return "(a fraction not recorded)"
    return f"{100 * (1 - fraction):.0f}/{100 * fraction:.0f}"


def write_model_card(results: RunResults, folder: str | os.PathLike, *, model_id: str | None = None) -> Path:
    """Writes `README.md` (the model card) into `folder`; without a Hub repository its snippet loads the folder."""
    path = Path(folder) / "README.md"
    build_model_card(results, model_id=model_id, location=os.fspath(folder)).save(path)
    return path


__all__ = ["DEFAULT_LICENSE", "build_model_card", "card_eval_results", "dataset_identity", "write_model_card"]
