"""Weight averages and ensembles along one training trajectory, at no extra training cost (both are
`TrainerCallback`s that `BigDropTrainer` wires in from `BigDropTrainingArguments`):

- `WeightAveragingCallback`: a uniform running mean of the weights after every `every`-th optimizer step from
  `start_step` on (`torch.optim.swa_utils.AveragedModel`), saved in every checkpoint and restored on resume;
- `TrajectoryEnsemble`: at each evaluation from `start_step` on, the live model's logits summed per evaluation
  set; the ensemble predicts the argmax of the sum (no model copies).

`hf_bigdrop.averaging` is the public home of every averaging and ensembling name: the soups and ensembles across
finished runs are written in `hf_bigdrop.soups` and offered here too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.optim.swa_utils import AveragedModel, update_bn
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .soups import (
    LogitEnsemble,
    average_state_dicts,
    check_compatible_runs,
    ensemble_runs,
    greedy_soup,
    uniform_soup,
)

WEIGHT_AVERAGE_FILE = "weight_average.safetensors"
TRAJECTORY_ENSEMBLE_FILE = "trajectory_ensemble.safetensors"


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
        # A checkpoint folder to restore the average from when training begins (set by `BigDropTrainer.train`).
        self.resume_from: str | None = None
        # With the plain Trainer the average is written in `on_save`, after the checkpoint; `BigDropTrainer` turns
        # this off and writes it into the checkpoint before the Trainer state that completes it.
        self.save_in_on_save = True

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
        if self.save_in_on_save and args.should_save and self.averaged is not None and folder.is_dir():
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
        # As `WeightAveragingCallback.save_in_on_save`.
        self.save_in_on_save = True

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
        if self.save_in_on_save and args.should_save and folder.is_dir():
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
