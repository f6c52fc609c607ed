"""Soups and ensembles of finished runs (the output_dirs of `examples/run_ood.py`, each with its selected model and
`results.json`):

- `uniform_soup`: the mean of the runs' weights;
- `greedy_soup`: model-soups' greedy recipe: runs sorted by training-domain validation accuracy (descending), each
  kept only if it strictly improves the soup's training-domain validation accuracy;
- `ensemble_runs`: a model whose logits are the mean of the runs' logits.

Runs are combined only if they share dataset, backbone (the same pretrained initialisation), label set and
training / held-out domains (`check_compatible_runs`). `average_state_dicts` is the building block of the soups.
Averages and ensembles along one run's trajectory are in `hf_bigdrop.averaging`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from .results import RunResults


def average_state_dicts(
    state_dicts: Iterable[Mapping[str, torch.Tensor]], weights: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """The (weighted) mean of state dicts with the same keys and shapes, read one at a time.

    Floating tensors are accumulated in float64 and cast back to their own dtype; integer and boolean tensors
    (e.g. BatchNorm's `num_batches_tracked`) must be equal in every input and are copied, never averaged.

    Args:
        state_dicts (`Iterable[Mapping[str, torch.Tensor]]`): the state dicts; a generator that loads them lazily
            keeps only the running sum and the current one in memory.
        weights (`Sequence[float]`, *optional*): one non-negative weight per state dict (normalised to sum to 1);
            default: uniform.

    Returns:
        `dict[str, torch.Tensor]`: the average, with the first input's keys, dtypes and devices.

    Raises:
        `ValueError`: no input, a key missing or extra in one input, a shape mismatch, unequal integer tensors,
            or weights that do not match the inputs.
    """
    sums: dict[str, torch.Tensor] = {}
    reference: dict[str, torch.Tensor] = {}
    total = 0.0
    count = 0
    for index, state_dict in enumerate(state_dicts):
        weight = 1.0 if weights is None else _weight_at(weights, index)
        if index == 0:
            reference = {key: value.detach() for key, value in state_dict.items()}
            for key, value in reference.items():
                if value.is_floating_point():
                    sums[key] = value.to(torch.float64) * weight
        else:
            _check_same_keys(reference, state_dict, index)
            for key, value in state_dict.items():
                first = reference[key]
                if value.shape != first.shape:
                    raise ValueError(
                        f"state dict {index}: {key!r} has shape {tuple(value.shape)}, the first has "
                        f"{tuple(first.shape)}"
                    )
                if key in sums:
                    sums[key] += value.detach().to(sums[key].device, torch.float64) * weight
                elif not torch.equal(value.detach().to(first.device), first):
                    raise ValueError(
                        f"state dict {index}: integer tensor {key!r} differs from the first one's; integer "
                        "buffers are copied, never averaged, so they must be equal"
                    )
        total += weight
        count += 1
    if count == 0:
        raise ValueError("average_state_dicts needs at least one state dict")
    if weights is not None and len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} state dicts")
    if total <= 0:
        raise ValueError(f"weights must sum to a positive number, got {list(weights or [])}")
    return {
        key: (sums[key] / total).to(value.dtype) if key in sums else value.clone()
        for key, value in reference.items()
    }


def _weight_at(weights: Sequence[float], index: int) -> float:
    if index >= len(weights):
        raise ValueError(f"{len(weights)} weights for more than {len(weights)} state dicts")
    weight = float(weights[index])
    if weight < 0:
        raise ValueError(f"weights must be non-negative, got {weight} at position {index}")
    return weight


def _check_same_keys(
    reference: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor], index: int
) -> None:
    missing = [key for key in reference if key not in other]
    extra = [key for key in other if key not in reference]
    if missing:
        raise ValueError(f"state dict {index} lacks {missing[0]!r} (and {len(missing) - 1} more key(s))")
    if extra:
        raise ValueError(f"state dict {index} has {extra[0]!r}, which the first one lacks")


def _run_description(run_dir: Path) -> dict:
    """What must agree for runs to be combined: from each run's results.json and config.json."""
    results = RunResults.load(run_dir)
    config_file = run_dir / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"no config.json in {run_dir}: is it the output_dir of a finished run?")
    config = json.loads(config_file.read_text())
    return {
        "dataset": results.dataset,
        "backbone": results.backbone,
        "label set": {str(k): v for k, v in config.get("id2label", {}).items()},
        "training domains": sorted(results.train_domains),
        "held-out domains": sorted(results.test_domains),
        "_validation": results.mean_validation_accuracy,
    }


def check_compatible_runs(run_dirs: Sequence[str | os.PathLike]) -> list[Path]:
    """Checks that finished runs can be averaged or ensembled together, and returns their folders.

    Runs must share dataset, backbone (soups average models fine-tuned from one pretrained initialisation),
    label set and training / held-out domains.

    Raises:
        `ValueError`: no run, or a run that differs from the first one (the message names both and the difference).
        `FileNotFoundError`: a folder without `results.json` / `config.json`.
    """
    folders = [Path(run_dir) for run_dir in run_dirs]
    if not folders:
        raise ValueError("no run to combine")
    first = _run_description(folders[0])
    for folder in folders[1:]:
        other = _run_description(folder)
        for what, value in first.items():
            if not what.startswith("_") and other[what] != value:
                raise ValueError(
                    f"cannot combine {folder} with {folders[0]}: different {what} ({other[what]!r} vs {value!r}); "
                    "only runs of one dataset, backbone, label set and held-out domains are combined"
                )
    return folders


def _state_dict(run_dir: Path) -> dict[str, torch.Tensor]:
    weights = run_dir / "model.safetensors"
    if weights.exists():
        return load_file(weights)
    return _load_model(run_dir).state_dict()


def _load_model(run_dir: Path) -> PreTrainedModel:
    return AutoModelForImageClassification.from_pretrained(run_dir).eval()


def _model_with(run_dir: Path, state_dict: Mapping[str, torch.Tensor]) -> PreTrainedModel:
    model = _load_model(run_dir)
    model.load_state_dict(state_dict)
    return model


def uniform_soup(run_dirs: Sequence[str | os.PathLike]) -> PreTrainedModel:
    """The uniform soup: one model whose weights are the mean of the runs' selected models.

    Args:
        run_dirs (`Sequence[str | os.PathLike]`): output_dirs of finished, compatible runs
            (see `check_compatible_runs`).

    Returns:
        `PreTrainedModel`: the soup (a `BigDropForImageClassification` for runs of `examples/run_ood.py`), in eval
        mode; `save_pretrained` makes it a checkpoint like any run's.
    """
    folders = check_compatible_runs(run_dirs)
    return _model_with(folders[0], average_state_dicts(_state_dict(folder) for folder in folders))


def greedy_soup(
    run_dirs: Sequence[str | os.PathLike], validation_accuracy: Callable[[PreTrainedModel], float]
) -> tuple[PreTrainedModel, list[Path]]:
    """model-soups' greedy soup, chosen on training-domain validation accuracy only.

    The runs are sorted by the training-domain validation accuracy their `results.json` records (descending); the
    soup starts from the best one, and each next run is kept only if the soup with it (the uniform mean of the
    kept runs) has a strictly higher `validation_accuracy`. Held-out domains never choose ingredients: pass a
    function that measures the training domains' validation split.

    Args:
        run_dirs (`Sequence[str | os.PathLike]`): output_dirs of finished, compatible runs.
        validation_accuracy (`Callable[[PreTrainedModel], float]`): the mean training-domain validation accuracy
            of a model.

    Returns:
        `tuple[PreTrainedModel, list[Path]]`: the soup (eval mode) and the runs it holds, in the order added.
    """
    folders = check_compatible_runs(run_dirs)
    ranked = sorted(folders, key=lambda folder: -_run_description(folder)["_validation"])
    kept = [ranked[0]]
    soup = _state_dict(ranked[0])
    model = _model_with(ranked[0], soup)
    best = validation_accuracy(model)
    for folder in ranked[1:]:
        n = len(kept)
        candidate = average_state_dicts([soup, _state_dict(folder)], weights=[n, 1])
        model.load_state_dict(candidate)
        score = validation_accuracy(model)
        if score > best:
            soup, best = candidate, score
            kept.append(folder)
    model.load_state_dict(soup)
    return model, kept


class LogitEnsemble(torch.nn.Module):
    """Several image classifiers as one: the logits are the mean of the members' logits (not of probabilities).

    Args:
        members (`Sequence[torch.nn.Module]`): models that map `pixel_values` to outputs with `logits`.
    """

    def __init__(self, members: Sequence[torch.nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = torch.nn.ModuleList(members)
        self.config = getattr(members[0], "config", None)

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs
    ) -> ImageClassifierOutput:
        logits = torch.stack([member(pixel_values=pixel_values).logits for member in self.members]).mean(0)
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
        return ImageClassifierOutput(loss=loss, logits=logits)


def ensemble_runs(run_dirs: Sequence[str | os.PathLike]) -> LogitEnsemble:
    """The ensemble of finished, compatible runs' selected models: mean of their logits (see `LogitEnsemble`)."""
    return LogitEnsemble([_load_model(folder) for folder in check_compatible_runs(run_dirs)]).eval()


__all__ = [
    "LogitEnsemble",
    "average_state_dicts",
    "check_compatible_runs",
    "ensemble_runs",
    "greedy_soup",
    "uniform_soup",
]
