"""The paper's training protocol on top of the plain `transformers.Trainer`.

`BigDropTrainer` overrides only what the protocol needs:

- `create_optimizer`: a larger learning rate for the classifier (`classifier_lr_multiplier`), weight decay per
  parameter group exactly as the Trainer does it;
- `create_scheduler`: the paper's step schedule (learning rate times `lr_gamma` at each of `lr_milestones`);
- `get_train_dataloader`: domain-balanced batches (`per_domain_batch_size` examples of every training domain);
- `evaluate`: per-domain evaluation sets named `val_<domain>` / `test_<domain>` / `oracle_<domain>`, plus their
  means (`eval_val_accuracy`, ...) so that checkpoint selection reads the training domains' validation accuracy.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from functools import partial

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import seed_worker

from .data import DomainBalancedBatchSampler, SeededBatchSampler, SeededDataset, domain_ids, domain_names
from .modelcard import write_model_card
from .results import RunResults

# Evaluation sets are named "<group>_<domain>"; each group is averaged over its domains.
EVAL_GROUPS = {
    "val": "validation split of the training domains (DomainBed's training-domain validation)",
    "test": "held-out test domains (out of distribution)",
    "oracle": "validation split of the held-out domains (oracle selection only)",
}


@dataclass
class BigDropTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the paper's protocol. Every field is a command-line flag under `HfArgumentParser`.

    By default checkpoints are selected by the training domains' validation accuracy (`eval_val_accuracy`, the mean
    over training domains); held-out domains never drive selection unless `oracle_selection=True`.
    """

    remove_unused_columns: bool = field(
        default=False,
        metadata={
            "help": "Keep the `image` column: the transforms read it lazily (the Trainer's default drops it)."
        },
    )
    per_device_eval_batch_size: int = field(
        default=64,
        metadata={
            "help": "Evaluation batch size per device (the Trainer's default is 8). Evaluation keeps no "
            "activations for backward, and small batches leave CPU kernels idle: 64 evaluates the demo about "
            "1.6x faster on CPU (see docs/benchmarks.md)."
        },
    )
    classifier_lr_multiplier: float = field(
        default=1.0,
        metadata={
            "help": "Learning rate of the classifier = learning_rate x this (paper: 1, studied at 10)."
        },
    )
    lr_milestones: list[int] = field(
        default_factory=list,
        metadata={
            "help": "Step schedule: multiply the learning rate by lr_gamma at each of these optimizer steps "
            "(paper: 5000 of 10000). Empty: use lr_scheduler_type."
        },
    )
    lr_gamma: float = field(default=0.1, metadata={"help": "Factor of the step schedule at each milestone."})
    sgd_momentum: float = field(
        default=0.9, metadata={"help": "Momentum of SGD when optim='sgd' (paper: 0.9)."}
    )
    per_domain_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Domain-balanced batches: this many examples of every training domain per device and step "
            "(paper: 32). Unset: per_device_train_batch_size examples drawn at random."
        },
    )
    channels_last: bool = field(
        default=False,
        metadata={
            "help": "Train convolutional backbones in the channels-last memory format (about 2x faster on CPU for "
            "EfficientNet-Lite0; see docs/benchmarks.md). Weights are saved as usual."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start over in an output_dir that holds checkpoints of an earlier run (else refuse)."
        },
    )
    oracle_selection: bool = field(
        default=False,
        metadata={
            "help": "Select checkpoints on the held-out domains' validation split (DomainBed's oracle)."
        },
    )

    def __post_init__(self):
        if self.metric_for_best_model is None and self.load_best_model_at_end:
            self.metric_for_best_model = "oracle_accuracy" if self.oracle_selection else "val_accuracy"
            self.greater_is_better = True
        super().__post_init__()
        if self.classifier_lr_multiplier <= 0:
            raise ValueError(f"classifier_lr_multiplier must be > 0, got {self.classifier_lr_multiplier}.")
        if not 0 < self.lr_gamma <= 1:
            raise ValueError(f"lr_gamma must be in (0, 1], got {self.lr_gamma}.")
        if list(self.lr_milestones) != sorted(set(self.lr_milestones)) or any(
            m <= 0 for m in self.lr_milestones
        ):
            raise ValueError(f"lr_milestones must be increasing positive steps, got {self.lr_milestones}.")
        if self.per_domain_batch_size is not None and self.per_domain_batch_size < 1:
            raise ValueError(
                f"per_domain_batch_size must be a positive integer, got {self.per_domain_batch_size}."
            )
        metric = (self.metric_for_best_model or "").removeprefix("eval_")
        if metric.startswith("test_"):
            raise ValueError(
                f"metric_for_best_model={self.metric_for_best_model!r} selects on the reported o.o.d. accuracy "
                "itself. Select on 'val_accuracy' (training-domain validation), or on 'oracle_accuracy' with "
                "oracle_selection=True (a validation part of the held-out domains, DomainBed's oracle)."
            )
        if metric.startswith("oracle_") and not self.oracle_selection:
            raise ValueError(
                f"metric_for_best_model={self.metric_for_best_model!r} reads held-out domains; that is oracle "
                "selection. Set oracle_selection=True to do it on purpose, or select on 'val_accuracy'."
            )


def per_domain_eval_sets(splits: datasets.DatasetDict) -> dict[str, datasets.Dataset]:
    """Splits a `load_domain_dataset` result into the per-domain evaluation sets that `BigDropTrainer` reads.

    Args:
        splits (`datasets.DatasetDict`): with `validation` and `test` (and optionally `test_validation`) splits
            holding a `domain` `ClassLabel` column.

    Returns:
        `dict[str, datasets.Dataset]`: `val_<domain>` for each training domain, `test_<domain>` for each held-out
        domain, and `oracle_<domain>` when a `test_validation` split exists; pass it as the Trainer's
        `eval_dataset`.
    """
    sets: dict[str, datasets.Dataset] = {}
    for group, split in (("val", "validation"), ("test", "test"), ("oracle", "test_validation")):
        if split not in splits:
            continue
        dataset = splits[split]
        ids = domain_ids(dataset)
        names = domain_names(dataset)
        for domain_id in np.unique(ids):
            sets[f"{group}_{names[domain_id]}"] = dataset.select(np.flatnonzero(ids == domain_id))
    return sets


def _with_head_groups(optimizer_cls: type[torch.optim.Optimizer], head: torch.nn.Module, head_lr: float):
    """A subclass of `optimizer_cls` that gives the classifier's parameters their own groups at `head_lr`.

    The Trainer still builds the parameter groups (weight decay, device meshes, ...); each group is split in two,
    the classifier's share keeping the group's settings but not its learning rate.
    """
    head_ids = {id(p) for p in head.parameters()}

    class WithClassifierGroups(optimizer_cls):
        def __init__(self, params, *args, **kwargs):
            groups = []
            for group in params:
                group = group if isinstance(group, dict) else {"params": [group]}
                members = list(group["params"])
                rest = [p for p in members if id(p) not in head_ids]
                ours = [p for p in members if id(p) in head_ids]
                groups += [{**group, "params": rest}] if rest else []
                groups += [{**group, "params": ours, "lr": head_lr}] if ours else []
            super().__init__(groups, *args, **kwargs)

    WithClassifierGroups.__name__ = WithClassifierGroups.__qualname__ = optimizer_cls.__name__
    return WithClassifierGroups


def _step_schedule(milestones: list[int], gamma: float, warmup_steps: int):
    def factor(step: int) -> float:
        warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        return warmup * gamma ** bisect.bisect_right(milestones, step)

    return factor


class BigDropTrainer(Trainer):
    """A `Trainer` with the paper's protocol (see `BigDropTrainingArguments`). The plain `Trainer` works too."""

    args: BigDropTrainingArguments
    #: Set after training (see examples/run_ood.py): `push_to_hub` then uploads the o.o.d. model card.
    model_card_results: RunResults | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.args.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.args.per_domain_batch_size is not None and isinstance(self.train_dataset, datasets.Dataset):
            # The Trainer's progress, throughput and epoch arithmetic read the per-device batch size from here.
            num_domains = len(np.unique(domain_ids(self.train_dataset)))
            self._train_batch_size = self.args.per_domain_batch_size * num_domains

    def create_model_card(self, *args, **kwargs) -> None:
        """The o.o.d. model card when `model_card_results` is set, else the Trainer's own card."""
        if self.model_card_results is None:
            return super().create_model_card(*args, **kwargs)
        if self.is_world_process_zero():
            write_model_card(self.model_card_results, self.args.output_dir, model_id=self.hub_model_id)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """The Trainer's optimizer, with the classifier in parameter groups of its own learning rate."""
        if self.optimizer is not None:
            return self.optimizer
        model = self.model if model is None else model
        if self.optimizer_cls_and_kwargs is None:
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            if optimizer_cls is torch.optim.SGD:
                optimizer_kwargs.setdefault("momentum", self.args.sgd_momentum)
            self.optimizer_cls_and_kwargs = (optimizer_cls, optimizer_kwargs)
        multiplier = self.args.classifier_lr_multiplier
        if multiplier != 1.0:
            head = getattr(model, "classifier", None)
            if not isinstance(head, torch.nn.Module):
                raise ValueError(
                    f"classifier_lr_multiplier={multiplier} needs a model with a `classifier` module; "
                    f"{type(model).__name__} has none."
                )
            optimizer_cls, optimizer_kwargs = self.optimizer_cls_and_kwargs
            head_lr = optimizer_kwargs["lr"] * multiplier
            self.optimizer_cls_and_kwargs = (
                _with_head_groups(optimizer_cls, head, head_lr),
                optimizer_kwargs,
            )
        return super().create_optimizer(model)

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        """The step schedule when `lr_milestones` are set, else the Trainer's `lr_scheduler_type`."""
        if self.lr_scheduler is None and self.args.lr_milestones:
            optimizer = optimizer if optimizer is not None else self.optimizer
            warmup = self.args.get_warmup_steps(num_training_steps)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, _step_schedule(list(self.args.lr_milestones), self.args.lr_gamma, warmup)
            )
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    def get_train_dataloader(self) -> DataLoader:
        """Domain-balanced batches when `per_domain_batch_size` is set, else the Trainer's own loader."""
        if self.args.per_domain_batch_size is None:
            return super().get_train_dataloader()
        if not isinstance(self.train_dataset, datasets.Dataset):
            raise ValueError(
                "per_domain_batch_size needs a datasets.Dataset with a `domain` ClassLabel column."
            )
        ids = domain_ids(self.train_dataset)
        if self.args.max_steps > 0:
            # One epoch is the whole run: every process draws its own batches from one seeded stream.
            batches = self.args.max_steps * self.args.gradient_accumulation_steps * self.args.world_size
        else:
            batches = math.ceil(len(ids) / self._train_batch_size)
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

    def evaluate(
        self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """The Trainer's evaluation, plus the mean and worst accuracy of each group of per-domain sets.

        With `eval_dataset={"val_photo": ..., "val_sketch": ..., "test_art": ...}` (see `per_domain_eval_sets`),
        this adds `eval_val_accuracy` (the mean over training domains: DomainBed's training-domain validation),
        `eval_val_worst_accuracy`, `eval_test_accuracy` and `eval_test_worst_accuracy`.
        """
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        summary = summarize_domain_metrics(metrics, metric_key_prefix)
        if summary:
            metrics.update(summary)
            self.log(summary)
        return metrics


def summarize_domain_metrics(metrics: dict[str, float], prefix: str = "eval") -> dict[str, float]:
    """Mean and worst `accuracy` over the `<prefix>_<group>_<domain>_accuracy` entries of each group."""
    summary = {}
    for group in EVAL_GROUPS:
        head = f"{prefix}_{group}_"
        values = [
            value
            for key, value in metrics.items()
            if key.startswith(head) and key.endswith("_accuracy") and key.count("_") > head.count("_")
        ]
        if values:
            summary[f"{prefix}_{group}_accuracy"] = float(np.mean(values))
            summary[f"{prefix}_{group}_worst_accuracy"] = float(np.min(values))
    return summary


__all__ = [
    "BigDropTrainer",
    "BigDropTrainingArguments",
    "EVAL_GROUPS",
    "per_domain_eval_sets",
    "summarize_domain_metrics",
]
