"""Weight averages and ensembles: along one training trajectory, and across finished runs.

Along one trajectory, at no extra training cost (both are `TrainerCallback`s that `BigDropTrainer` wires in):

- `WeightAveragingCallback`: a uniform running mean of the weights after every `every`-th optimizer step from
  `start_step` on (`torch.optim.swa_utils.AveragedModel`), saved in every checkpoint and restored on resume;
- `TrajectoryEnsemble`: at each evaluation from `start_step` on, the live model's logits summed per evaluation
  set; the ensemble predicts the argmax of the sum (no model copies).

Across finished runs (the output_dirs of `examples/run_ood.py`, each with its selected model and `results.json`):

- `uniform_soup`: the mean of the runs' weights;
- `greedy_soup`: model-soups' greedy recipe: runs sorted by training-domain validation accuracy (descending), each
  kept only if it strictly improves the soup's training-domain validation accuracy;
- `ensemble_runs`: a model whose logits are the mean of the runs' logits.

Runs are combined only if they share dataset, backbone (the same pretrained initialisation), label set and
training / held-out domains. `average_state_dicts` is the building block of the soups.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.optim.swa_utils import AveragedModel, update_bn
from transformers import AutoModelForImageClassification, PreTrainedModel, TrainerCallback
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .results import RunResults

WEIGHT_AVERAGE_FILE = "weight_average.safetensors"
TRAJECTORY_ENSEMBLE_FILE = "trajectory_ensemble.safetensors"


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


def has_trained_batchnorm(model: torch.nn.Module) -> bool:
    """Whether `model` has BatchNorm layers whose running statistics training updates.

    `BigDropForImageClassification` with `freeze_batchnorm=True` (the default) keeps them as pretrained.
    """
    frozen = getattr(getattr(model, "config", None), "freeze_batchnorm", False)
    return not frozen and any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        for m in model.modules()
    )


def _checkpoint_folder(args, state) -> Path:
    return Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"


def _refuse_fsdp(args, what: str) -> None:
    if getattr(args, "fsdp", None) or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        raise ValueError(
            f"{what} does not support FSDP (its average is one full copy of the weights, which sharded "
            "parameters do not give); train with DDP (examples/accelerate/multi_gpu.yaml) or switch it off"
        )


class WeightAveragingCallback(TrainerCallback):
    """A uniform running mean of the weights along training, from `start_step` on (trajectory weight averaging).

    After every `every`-th optimizer step from `start_step` on, the live weights join the average (the first
    update copies them; `torch.optim.swa_utils.AveragedModel` with `use_buffers=False`). It costs one copy of the
    weights. The average is saved as `weight_average.safetensors` in every checkpoint and restored when training
    resumes from one (`BigDropTrainer.train` tells the callback which), so a resumed run ends with the same
    average as an uninterrupted one. Under DDP every process holds the same average (the live weights are equal).

    Buffers are not averaged: they follow the live model. With frozen BatchNorm (the default of
    `BigDropForImageClassification`) they are the pretrained statistics, which is right for the average too.
    With BatchNorm that trains, the live statistics do not match the averaged weights: `evaluating_average`
    re-estimates them on training batches (`torch.optim.swa_utils.update_bn`) before the average is evaluated.

    Args:
        start_step (`int`, defaults to 0): first optimizer step whose weights join the average.
        every (`int`, defaults to 1): average every this many steps (the paper averages every step).
        device (`str` or `torch.device`, *optional*): where the average lives (e.g. "cpu" to spare GPU memory);
            default: the model's device.
    """

    def __init__(self, start_step: int = 0, every: int = 1, device: str | torch.device | None = None):
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        if every < 1:
            raise ValueError(f"every must be a positive integer, got {every}")
        self.start_step = start_step
        self.every = every
        self.device = device
        self.averaged: AveragedModel | None = None
        #: A checkpoint folder to restore the average from when training begins (set by `BigDropTrainer.train`).
        self.resume_from: str | None = None

    @property
    def n_averaged(self) -> int:
        """How many snapshots of the weights the average holds."""
        return 0 if self.averaged is None else int(self.averaged.n_averaged)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        _refuse_fsdp(args, "WeightAveragingCallback")
        self.averaged = AveragedModel(model, device=self.device, use_buffers=False)
        if self.resume_from is not None:
            self.load(self.resume_from)
            self.resume_from = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if step >= self.start_step and (step - self.start_step) % self.every == 0:
            self.averaged.update_parameters(model)

    def on_save(self, args, state, control, **kwargs):
        folder = _checkpoint_folder(args, state)
        if args.should_save and self.averaged is not None and folder.is_dir():
            self.save(folder)

    def save(self, folder: str | os.PathLike) -> Path:
        """Writes the average (and how many snapshots it holds) to `folder/weight_average.safetensors`."""
        tensors = {
            key: value.detach().cpu().contiguous().clone()
            for key, value in self.averaged.state_dict().items()
        }
        path = Path(folder) / WEIGHT_AVERAGE_FILE
        save_file(tensors, path)
        return path

    def load(self, folder: str | os.PathLike) -> None:
        """Restores the average saved by `save` in `folder`; a checkpoint from before `start_step` has none."""
        path = Path(folder) / WEIGHT_AVERAGE_FILE
        if not path.exists():
            if self._needs_saved_average(folder):
                raise FileNotFoundError(
                    f"{path} is missing: the checkpoint was saved without its weight average, so resuming would "
                    "lose the steps averaged so far"
                )
            return
        self.averaged.load_state_dict(load_file(path, device=str(self.averaged.n_averaged.device)))

    def _needs_saved_average(self, folder: str | os.PathLike) -> bool:
        step = int(Path(folder).name.rsplit("-", 1)[-1]) if "-" in Path(folder).name else 0
        return step >= self.start_step and step > 0

    @contextlib.contextmanager
    def evaluating_average(
        self, model: torch.nn.Module, bn_batches: Iterable[torch.Tensor] | None = None
    ) -> Iterator[None]:
        """Puts the average into `model` for the duration of the block, then restores the live state bitwise.

        Args:
            model (`torch.nn.Module`): the live model (the one the average follows).
            bn_batches (`Iterable[torch.Tensor]`, *optional*): pixel batches of the training data; when the model's
                BatchNorm trains (`has_trained_batchnorm`), its statistics are re-estimated on them for the average.
        """
        if self.n_averaged == 0:
            raise ValueError("the weight average is empty: no step has reached start_step yet")
        live = {key: value.detach().clone() for key, value in model.state_dict().items()}
        try:
            with torch.no_grad():
                for live_param, averaged_param in zip(
                    model.parameters(), self.averaged.parameters(), strict=True
                ):
                    live_param.copy_(averaged_param.to(live_param.device))
                if bn_batches is not None and has_trained_batchnorm(model):
                    update_bn(bn_batches, model, device=next(model.parameters()).device)
                    _mean_batchnorm_statistics_over_processes(model)
            yield
        finally:
            model.load_state_dict(live)


def _mean_batchnorm_statistics_over_processes(model: torch.nn.Module) -> None:
    # Each process estimated the statistics on its own batches; the mean keeps every process's model equal.
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    world_size = torch.distributed.get_world_size()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for statistic in (module.running_mean, module.running_var):
                torch.distributed.all_reduce(statistic)
                statistic /= world_size


class TrajectoryEnsemble(TrainerCallback):
    """The ensemble of the live model's evaluations along training, from `start_step` on: logits are summed.

    `BigDropTrainer` hands it the logits of every evaluation set (`add`); the ensemble predicts the argmax of the
    sum of raw logits over the evaluations so far (the paper's convention: not probabilities). Its sums are saved
    as `trajectory_ensemble.safetensors` in every checkpoint and restored on resume.

    Args:
        start_step (`int`, defaults to 0): evaluations at this optimizer step or later join the ensemble.
    """

    def __init__(self, start_step: int = 0):
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        self.start_step = start_step
        self.sums: dict[str, torch.Tensor] = {}
        self.last_step: dict[str, int] = {}
        self.members: dict[str, int] = {}
        self.resume_from: str | None = None

    def add(
        self, name: str, step: int, logits: np.ndarray | torch.Tensor, labels: np.ndarray
    ) -> float | None:
        """Adds one evaluation of set `name` at `step` and returns the ensemble's accuracy on it.

        An evaluation before `start_step` is not added (returns `None`); a second evaluation at the same step
        (e.g. `trainer.evaluate()` after training) is not added twice.
        """
        if step < self.start_step:
            return None
        logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
        if name not in self.sums:
            self.sums[name] = torch.zeros_like(logits)
            self.members[name] = 0
        if self.sums[name].shape != logits.shape:
            raise ValueError(
                f"evaluation set {name!r}: logits of shape {tuple(logits.shape)}, the ensemble holds "
                f"{tuple(self.sums[name].shape)}; the evaluation sets must not change during training"
            )
        if self.last_step.get(name) != step:
            self.sums[name] += logits
            self.members[name] += 1
            self.last_step[name] = step
        return float((self.sums[name].argmax(-1).numpy() == np.asarray(labels)).mean())

    def on_train_begin(self, args, state, control, **kwargs):
        self.sums, self.members, self.last_step = {}, {}, {}
        if self.resume_from is not None:
            self.load(self.resume_from)
            self.resume_from = None

    def on_save(self, args, state, control, **kwargs):
        folder = _checkpoint_folder(args, state)
        if args.should_save and folder.is_dir():
            self.save(folder)

    def save(self, folder: str | os.PathLike) -> Path:
        """Writes the summed logits per evaluation set to `folder/trajectory_ensemble.safetensors`."""
        tensors = {f"sum.{name}": value.contiguous() for name, value in self.sums.items()}
        tensors.update({f"members.{name}": torch.tensor(count) for name, count in self.members.items()})
        tensors.update({f"last_step.{name}": torch.tensor(step) for name, step in self.last_step.items()})
        path = Path(folder) / TRAJECTORY_ENSEMBLE_FILE
        save_file(tensors, path)
        return path

    def load(self, folder: str | os.PathLike) -> None:
        """Restores the sums saved by `save` in `folder` (none yet if the checkpoint is from before start_step)."""
        path = Path(folder) / TRAJECTORY_ENSEMBLE_FILE
        self.sums, self.members, self.last_step = {}, {}, {}
        if not path.exists():
            return
        for key, value in load_file(path).items():
            kind, name = key.split(".", 1)
            if kind == "sum":
                self.sums[name] = value
            elif kind == "members":
                self.members[name] = int(value)
            else:
                self.last_step[name] = int(value)


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
    "TRAJECTORY_ENSEMBLE_FILE",
    "WEIGHT_AVERAGE_FILE",
    "TrajectoryEnsemble",
    "WeightAveragingCallback",
    "average_state_dicts",
    "check_compatible_runs",
    "ensemble_runs",
    "greedy_soup",
    "has_trained_batchnorm",
    "uniform_soup",
]
