"""The paper's training protocol on top of the plain `transformers.Trainer`.

`BigDropTrainer` overrides only what the protocol needs:

- `create_optimizer`: a larger learning rate for the classifier (`classifier_lr_multiplier`), weight decay per
  parameter group exactly as the Trainer does it;
- `create_scheduler`: the paper's step schedule (learning rate times `lr_gamma` at each of `lr_milestones`);
- `get_train_dataloader`: domain-balanced batches (`per_domain_batch_size` examples of every training domain);
- `evaluate`: per-domain evaluation sets named `val_<domain>` / `test_<domain>` / `oracle_<domain>`, plus their
  means (`eval_val_accuracy`, ...) so that checkpoint selection reads the training domains' validation accuracy;
  with `weight_averaging_start_step` / `ensemble_start_step`, the trajectory weight average (`eval_wa_...`) and the
  trajectory ensemble (`eval_ens_...`) are evaluated beside the live model with the same keys.

Its arguments live in `hf_bigdrop.training_args`, the parameter groups and the schedule in
`hf_bigdrop.optimization`, the per-domain evaluation sets and their summary in `hf_bigdrop.evaluation`, the metric keys
in `hf_bigdrop.metric_keys`.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import math
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, seed_worker

from .averaging import (
    TRAJECTORY_ENSEMBLE_FILE,
    WEIGHT_AVERAGE_FILE,
    TrajectoryEnsemble,
    WeightAveragingCallback,
    has_trained_batchnorm,
)
from .checkpoints import resume_checkpoint
from .data import DomainBalancedBatchSampler, SeededBatchSampler, SeededDataset, domain_ids
from .data.preprocessed import DecodedImages, PreprocessedImages
from .evaluation import summarize_domain_metrics
from .lora import is_lora_model, no_vocabulary_warning
from .metric_keys import METHOD_TAGS, eval_set_name, method_prefix, metric_key, parse_metric_key
from .modeling_bigdrop import BigDropForImageClassification
from .optimization import classifier_parameter_groups, step_schedule
from .progress import EvaluationPrinterCallback, EvaluationProgressCallback
from .selection import Selection, select_all
from .training_args import BigDropTrainingArguments


def _forked_rng(device: torch.device):
    """`torch.random.fork_rng` over the CPU generator and, on CUDA, the current device's."""
    if device.type != "cuda":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(
        devices=[device.index if device.index is not None else torch.cuda.current_device()]
    )


def checkpoint_files(args: BigDropTrainingArguments) -> list[str]:
    """The files `BigDropTrainer` adds to every checkpoint under `args` (the weight average, the trajectory ensemble):
    a checkpoint without them cannot be resumed exactly."""
    files = []
    if args.weight_averaging_start_step is not None:
        files.append(WEIGHT_AVERAGE_FILE)
    if args.ensemble_start_step is not None:
        files.append(TRAJECTORY_ENSEMBLE_FILE)
    return files


# Steps whose mean loss the divergence check compares with the first step's (`BigDropTrainingArguments.divergence_factor`).
DIVERGENCE_WINDOW = 10


class TrainingDivergedError(RuntimeError):
    """Training produced a loss or a gradient norm that is not finite: nothing after it can be trusted."""


class BigDropTrainer(Trainer):
    """A `Trainer` with the paper's protocol (see `BigDropTrainingArguments`). The plain `Trainer` works too."""

    args: BigDropTrainingArguments

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # One progress bar per evaluation, not one per evaluation set (and per method).
        self.evaluation_progress: EvaluationProgressCallback | None = None
        if self.pop_callback(ProgressCallback) is not None:
            self.evaluation_progress = EvaluationProgressCallback()
            self.add_callback(self.evaluation_progress)
        if self.pop_callback(PrinterCallback) is not None:  # disable_tqdm=True: the same lines, without bars
            self.add_callback(EvaluationPrinterCallback())
        if self.args.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.weight_averaging: WeightAveragingCallback | None = None
        self.trajectory_ensemble: TrajectoryEnsemble | None = None
        if self.args.weight_averaging_start_step is not None:
            self.weight_averaging = WeightAveragingCallback(
                self.args.weight_averaging_start_step,
                every=self.args.weight_averaging_every,
                device=self.args.weight_averaging_device,
            )
            self.add_callback(self.weight_averaging)
        if self.args.ensemble_start_step is not None:
            self.trajectory_ensemble = TrajectoryEnsemble(self.args.ensemble_start_step)
            self.add_callback(self.trajectory_ensemble)
        for callback in self._averaging_callbacks():
            callback.save_in_on_save = False  # written into each checkpoint by `save_model`, before its state
        self._nested_evaluation = False
        self._evaluating_average = False
        # The first training step's loss and the last steps' (`divergence_factor`).
        self._first_loss: float | None = None
        self._loss_window: collections.deque[float] = collections.deque(maxlen=DIVERGENCE_WINDOW)
        self._metric_key_prefix = "eval"

    def _averaging_callbacks(self) -> list:
        return [c for c in (self.weight_averaging, self.trajectory_ensemble) if c is not None]

    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, **kwargs):
        """The Trainer's `train`; when resuming, the weight average and the ensemble resume from the checkpoint.

        With `resume_from_checkpoint=True`, the newest *complete* checkpoint of `output_dir` is used
        (`hf_bigdrop.checkpoints.last_complete_checkpoint`): a newer one that a crash left incomplete or damaged is
        skipped with a warning that names what is wrong. A checkpoint named explicitly must be complete (else a
        `hf_bigdrop.checkpoints.ResumeError` names the missing or damaged file).
        """
        checkpoint = resume_from_checkpoint
        if checkpoint:
            checkpoint = resume_checkpoint(self.args.output_dir, checkpoint, checkpoint_files(self.args))
        for callback in self._averaging_callbacks():
            callback.resume_from = checkpoint or None
        return super().train(resume_from_checkpoint=checkpoint, trial=trial, **kwargs)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """The Trainer's `save_model`; into a checkpoint, also the weight average and the trajectory ensemble.

        The Trainer writes a checkpoint's model first and its state (`trainer_state.json`) last, then removes older
        checkpoints: writing the averaging files here makes them part of the checkpoint before it counts as complete
        and before an older one can be removed.
        """
        with no_vocabulary_warning() if is_lora_model(self.model) else contextlib.nullcontext():
            super().save_model(output_dir, _internal_call=_internal_call)
        folder = Path(output_dir or self.args.output_dir)
        if _internal_call and folder.name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and self.args.should_save:
            for callback in self._averaging_callbacks():
                if not isinstance(callback, WeightAveragingCallback) or callback.averaged is not None:
                    callback.save(folder)

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The Trainer's step; a loss that is not finite, or that blew up (`divergence_factor`), stops training with
        `TrainingDivergedError`."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        value = float(loss.detach().float().mean())
        if not math.isfinite(value):
            self._diverged(f"the loss is {value}")
        factor = self.args.divergence_factor
        if factor is not None:
            losses = self._loss_window
            if self._first_loss is None:
                # The reference: the first step's loss (computed before any update: the model as it started), never
                # less than chance's cross-entropy, ln(classes), so that a run resumed (or started) already fitting
                # its data is not stopped by noise around a tiny loss.
                self._first_loss = max(value, self._chance_loss())
            losses.append(value)
            mean = sum(losses) / len(losses)
            if len(losses) == DIVERGENCE_WINDOW and mean > factor * self._first_loss:
                self._diverged(
                    f"the mean training loss of the last {DIVERGENCE_WINDOW} steps, {mean:.4g}, is over {factor:g} "
                    f"times its reference {self._first_loss:.4g} (the first step's loss, at least ln(classes))"
                )
        return loss

    def _chance_loss(self) -> float:
        """ln(number of classes): the cross-entropy of a uniform prediction (0 when the model does not say)."""
        num_labels = getattr(getattr(self.model, "config", None), "num_labels", None)
        return math.log(num_labels) if num_labels and num_labels > 1 else 0.0

    def _diverged(self, what: str) -> None:
        raise TrainingDivergedError(
            f"Training diverged at step {self.state.global_step + 1}: {what} (learning rate "
            f"{self._get_learning_rate():g}). Lower the learning rate (or the classifier's multiplier); no result "
            "or model of this run is written."
        )

    def _get_grad_norm(self, model, grad_norm=None):
        """The Trainer's gradient norm; one that is not finite stops training before the optimizer step (under fp16
        the gradient scaler skips such steps itself)."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        if grad_norm is not None and not self.args.fp16 and not math.isfinite(float(grad_norm)):
            raise TrainingDivergedError(
                f"Training diverged at step {self.state.global_step + 1}: the gradient norm is {float(grad_norm)} "
                f"(learning rate {self._get_learning_rate():g}). Lower the learning rate; no result or model of this "
                "run is written."
            )
        return grad_norm

    def create_model_card(self, *args, **kwargs) -> None:
        """The Trainer's model card, unless `output_dir` already holds one (e.g. the o.o.d. card of
        `examples/run_ood.py`, written from the run's results), which `push_to_hub` then uploads unchanged."""
        if (Path(self.args.output_dir) / "README.md").exists():
            return None
        return super().create_model_card(*args, **kwargs)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """The Trainer's optimizer; with `classifier_lr_multiplier`, explicit parameter groups for the classifier.

        The groups are the Trainer's (weights decay, biases and norms do not), each split into the backbone's share
        and the classifier's, whose learning rate is `learning_rate x classifier_lr_multiplier`.
        """
        if self.optimizer is not None:
            return self.optimizer
        model = self.model if model is None else model
        if self.optimizer_cls_and_kwargs is None:
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            if optimizer_cls is torch.optim.SGD:
                optimizer_kwargs.setdefault("momentum", self.args.sgd_momentum)
            self.optimizer_cls_and_kwargs = (optimizer_cls, optimizer_kwargs)
        multiplier = self.args.classifier_lr_multiplier
        if multiplier == 1.0:
            return super().create_optimizer(model)
        # A BigDrop model names its head; transformers' image classifiers use the same name.
        name = getattr(model, "head_module_name", BigDropForImageClassification.head_module_name)
        head = getattr(model, name, None)
        if not isinstance(head, torch.nn.Module):
            raise ValueError(
                f"classifier_lr_multiplier={multiplier} needs a model with a `{name}` module; "
                f"{type(model).__name__} has none."
            )
        optimizer_cls, optimizer_kwargs = self.optimizer_cls_and_kwargs
        if not isinstance(optimizer_cls, type) or {"params", "model", "optimizer_dict"} & set(
            optimizer_kwargs
        ):
            raise ValueError(
                f"classifier_lr_multiplier={multiplier} needs a standard torch optimizer; optim={self.args.optim!r} "
                "builds its own parameter groups."
            )
        self.optimizer = optimizer_cls(
            classifier_parameter_groups(
                model,
                head,
                decay_names=set(self.get_decay_parameter_names(model)),
                weight_decay=self.args.weight_decay,
                head_lr=optimizer_kwargs["lr"] * multiplier,
            ),
            **optimizer_kwargs,
        )
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        """The step schedule when `lr_milestones` are set, else the Trainer's `lr_scheduler_type`."""
        created = self.lr_scheduler is None
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        if created and self.args.lr_milestones:
            # Built over the Trainer's own scheduler (so the Trainer rebuilds it on the next `train`), from the
            # learning rates it recorded as each group's `initial_lr`.
            optimizer = optimizer if optimizer is not None else self.optimizer
            warmup = self.args.get_warmup_steps(num_training_steps)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, step_schedule(list(self.args.lr_milestones), self.args.lr_gamma, warmup)
            )
            return self.lr_scheduler
        return scheduler

    def get_total_train_batch_size(self, args: TrainingArguments) -> int:
        """The Trainer's total batch size; with `per_domain_batch_size`, that many examples of every domain."""
        if args.per_domain_batch_size is None or not isinstance(self.train_dataset, datasets.Dataset):
            return super().get_total_train_batch_size(args)
        return self._domain_batch_size() * args.gradient_accumulation_steps * args.world_size

    def _domain_batch_size(self) -> int:
        return self.args.per_domain_batch_size * len(np.unique(self._training_domain_ids()))

    def _training_domain_ids(self) -> np.ndarray:
        """The domain of every training example: a `datasets.Dataset`'s `domain` column, or `DecodedImages`'."""
        if isinstance(self.train_dataset, DecodedImages):
            return self.train_dataset.domain_ids
        if not isinstance(self.train_dataset, datasets.Dataset):
            raise ValueError(
                "per_domain_batch_size needs a datasets.Dataset with a `domain` ClassLabel column (or DecodedImages)."
            )
        return domain_ids(self.train_dataset)

    def select_models(self) -> dict[str, Selection]:
        """Per method (`live`, `trajectory_wa`, `trajectory_ensemble`), the evaluation step `selection_strategy`
        selects and the per-domain accuracies there, read from this run's evaluation log."""
        return select_all(self.state.log_history, self.args.selection_strategy)

    def get_train_dataloader(self) -> DataLoader:
        """Domain-balanced batches when `per_domain_batch_size` is set, else the Trainer's own loader."""
        if self.args.per_domain_batch_size is None:
            return super().get_train_dataloader()
        ids = self._training_domain_ids()
        if self.args.max_steps > 0:
            # One epoch is the whole run: every process draws its own batches from one seeded stream.
            batches = self.args.max_steps * self.args.gradient_accumulation_steps * self.args.world_size
        else:
            batches = math.ceil(len(ids) / self._domain_batch_size())
        # Each batch's augmentation is seeded by its position in the run, so a resumed run is exact.
        sampler = SeededBatchSampler(
            DomainBalancedBatchSampler(
                ids, self.args.per_domain_batch_size, seed=self.args.seed, num_batches=batches
            ),
            seed=self.args.seed,
        )
        loader = DataLoader(
            SeededDataset(self.train_dataset),
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory and self.args.device.type != "cpu",
            persistent_workers=self.args.dataloader_persistent_workers
            and self.args.dataloader_num_workers > 0,
            prefetch_factor=self.args.dataloader_prefetch_factor,
            worker_init_fn=partial(
                seed_worker, num_workers=self.args.dataloader_num_workers, rank=self.args.process_index
            ),
        )
        # `accelerate` gives each process whole batches of the shared stream (batch i goes to process
        # i % world_size), so per_domain_batch_size is per device, like per_device_train_batch_size.
        return self.accelerator.prepare(loader)

    def get_eval_dataloader(self, eval_dataset: str | datasets.Dataset | None = None) -> DataLoader:
        """The Trainer's evaluation loader; for images already decoded and resized (`PreprocessedImages`), one read in
        the main process (no worker to start: the batch is one slice of a tensor)."""
        dataset = self.eval_dataset[eval_dataset] if isinstance(eval_dataset, str) else eval_dataset
        if not isinstance(dataset, PreprocessedImages):
            return super().get_eval_dataloader(eval_dataset)
        loader = DataLoader(
            dataset,
            batch_size=self.args.eval_batch_size,
            collate_fn=self.data_collator,
            num_workers=0,
            pin_memory=self.args.dataloader_pin_memory and self.args.device.type != "cpu",
        )
        return self.accelerator.prepare(loader)

    def evaluate(
        self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """The Trainer's evaluation, plus the mean and worst accuracy of each group of per-domain sets.

        With `eval_dataset={"val_photo": ..., "val_sketch": ..., "test_art": ...}` (see `per_domain_eval_sets`),
        this adds `eval_val_accuracy` (the mean over training domains: DomainBed's training-domain validation),
        `eval_val_worst_accuracy`, `eval_test_accuracy` and `eval_test_worst_accuracy`.

        With trajectory weight averaging on (and at least one step averaged), the average is evaluated too: its
        weights are put into the model for the evaluation and the live ones restored bitwise afterwards
        (`eval_wa_val_photo_accuracy`, ..., `eval_wa_val_accuracy`). With the trajectory ensemble on, each live
        evaluation from `ensemble_start_step` on joins it (`eval_ens_...`).

        Evaluating never changes training: each evaluation DataLoader draws its seed from the global random stream,
        so the whole evaluation runs on a fork of it. Which sets are evaluated (fit samples, the weight average), and
        how often, leaves the dropout masks and augmentations of the training steps as they are.
        """
        if self._nested_evaluation:  # one set of the Trainer's loop over a dict of evaluation sets
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        self._nested_evaluation = True
        self._metric_key_prefix = metric_key_prefix
        if self.evaluation_progress is not None:
            self.evaluation_progress.begin_evaluation()
        try:
            with _forked_rng(self.args.device):
                metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            averaging = self.weight_averaging
            if averaging is not None and averaging.n_averaged > 0:
                self._evaluating_average = True
                with (
                    _forked_rng(self.args.device),
                    averaging.evaluating_average(self.model, self._batchnorm_batches()),
                ):
                    average_prefix = method_prefix("trajectory_wa", metric_key_prefix)
                    metrics.update(super().evaluate(eval_dataset, ignore_keys, average_prefix))
        finally:
            self._nested_evaluation = self._evaluating_average = False
            if self.evaluation_progress is not None:
                self.evaluation_progress.end_evaluation(self.state)
        summary = {}
        for method in METHOD_TAGS:
            summary.update(summarize_domain_metrics(metrics, method, metric_key_prefix))
        if summary:
            metrics.update(summary)
            self.log(summary)
        return metrics

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        """The Trainer's loop; a live evaluation from `ensemble_start_step` on also joins the trajectory ensemble."""
        # Only the live model's evaluations join (not the average's, nor `predict`).
        joins = self._nested_evaluation and not self._evaluating_average
        ensemble = self.trajectory_ensemble if joins else None
        if ensemble is not None and self.state.global_step >= ensemble.start_step:
            prediction_loss_only = False  # the ensemble needs the logits even without compute_metrics
        output = super().evaluation_loop(
            dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
        )
        # The live model's key of this set (`eval_val_photo_accuracy`) names the ensemble's (`eval_ens_val_photo_...`).
        live_key = parse_metric_key(f"{metric_key_prefix}_accuracy", self._metric_key_prefix)
        if ensemble is not None and output.predictions is not None and output.label_ids is not None:
            if live_key is None or live_key.domain is None:
                raise ValueError(
                    f"the trajectory ensemble needs per-domain evaluation sets (`per_domain_eval_sets`); got the "
                    f"metric prefix {metric_key_prefix!r}"
                )
            logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
            name = eval_set_name(live_key.group, live_key.domain)
            accuracy = ensemble.add(name, self.state.global_step, logits, output.label_ids)
            if accuracy is not None:
                key = metric_key(
                    live_key.group, live_key.domain, method="trajectory_ensemble", prefix=live_key.prefix
                )
                output.metrics[key] = accuracy
        return output

    def _batchnorm_batches(self):
        """Training batches' pixels to re-estimate BatchNorm statistics of the average (None if BN is frozen)."""
        if not has_trained_batchnorm(self.model):
            return None
        loader = self.get_train_dataloader()
        return (
            batch["pixel_values"] for batch in itertools.islice(loader, self.args.weight_averaging_bn_batches)
        )


__all__ = ["BigDropTrainer", "TrainingDivergedError", "checkpoint_files"]
