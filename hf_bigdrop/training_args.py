"""`BigDropTrainingArguments`: the `transformers.TrainingArguments` of the paper's protocol, checked on creation.

Every field is a command-line flag under `HfArgumentParser`; `BigDropTrainer` (`hf_bigdrop.training`) reads them.
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from .metric_keys import metric_key, parse_metric_key
from .selection import LAST_STEP, ORACLE, SELECTION_RULES, TRAINING_DOMAIN_VALIDATION, selection_rule

logger = logging.getLogger(__name__)


@functools.cache
def _warn_emulated_bf16() -> None:
    """Once a process (a sweep checks every job's arguments)."""
    logger.warning(
        "bf16 on this CPU is emulated (no AVX512-BF16 or AMX kernels): training runs several times slower than fp32 "
        "(12x for Lite0 at 224 px on an AVX2-only CPU, docs/benchmarks.md); leave --bf16 out"
    )


def _native_cpu_bf16() -> bool:
    """Whether this CPU has bf16 kernels (AVX512-BF16 or AMX, as oneDNN sees them, `ONEDNN_MAX_CPU_ISA` included)."""
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(supported()) if supported is not None else True  # unknown: say nothing


@dataclass
class BigDropTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the paper's protocol. Every field is a command-line flag under `HfArgumentParser`.

    By default checkpoints are selected by the training domains' validation accuracy (`eval_val_accuracy`, the mean
    over training domains); held-out domains never drive selection unless `selection_strategy="oracle"`.
    `selection_strategy` (see `hf_bigdrop.selection`) is applied alike to the live model, the trajectory weight
    average and the trajectory ensemble; with `load_best_model_at_end` the live model's selected checkpoint is the
    one the Trainer loads.
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
    oracle_selection: bool = field(
        default=False,
        metadata={"help": f"Deprecated: use --selection_strategy {ORACLE} (the same rule, one setting)."},
    )
    selection_strategy: str | None = field(
        default=None,
        metadata={
            "help": f"Which evaluation step each method reports (hf_bigdrop.selection): {' | '.join(SELECTION_RULES)}. "
            f"Unset: {TRAINING_DOMAIN_VALIDATION} with load_best_model_at_end, else {LAST_STEP}.",
            "choices": list(SELECTION_RULES),
        },
    )
    weight_averaging_start_step: int | None = field(
        default=None,
        metadata={
            "help": "Trajectory weight averaging: a uniform mean of the weights of every step from this one on, "
            "evaluated beside the live model as eval_wa_* (paper: 300). Unset: off."
        },
    )
    weight_averaging_every: int = field(
        default=1, metadata={"help": "Add the weights to the average every this many steps (paper: 1)."}
    )
    weight_averaging_device: str | None = field(
        default=None,
        metadata={
            "help": "Device of the weight average (e.g. 'cpu' to spare accelerator memory); default: the model's."
        },
    )
    weight_averaging_bn_batches: int = field(
        default=50,
        metadata={
            "help": "With BatchNorm that trains (freeze_batchnorm=False): training batches that re-estimate the "
            "statistics of the average before it is evaluated. Frozen BatchNorm needs none."
        },
    )
    ensemble_start_step: int | None = field(
        default=None,
        metadata={
            "help": "Trajectory ensemble: sum the live model's logits at every evaluation from this step on and "
            "report the ensemble as eval_ens_* (paper: 300). Unset: off."
        },
    )
    divergence_factor: float | None = field(
        default=10.0,
        metadata={
            "help": "Stop training as diverged when the mean training loss of the last 10 steps exceeds this many "
            "times its reference: the first step's loss (since the start or resume), and at least ln(classes), "
            "chance's loss (a finite blow-up; a loss that is not finite always stops it). A run that "
            "learns lowers its loss, so this never trips it. Unset: only non-finite losses stop training."
        },
    )

    def __post_init__(self):
        if self.fp16 and self.bf16:
            raise ValueError(
                "fp16 and bf16 are both set: choose one mixed precision (bf16 also runs on CPU)."
            )
        if self.bf16 and not self.use_cpu and not torch.accelerator.is_available():
            # transformers refuses bf16 without a GPU unless use_cpu is set; with no accelerator the run is on the CPU
            # anyway, where bf16 autocast works (faster than fp32 only on CPUs with AVX512-BF16 or AMX: below).
            self.use_cpu = True
        if self.bf16 and (self.use_cpu or not torch.accelerator.is_available()) and not _native_cpu_bf16():
            _warn_emulated_bf16()
        if self.use_cpu or not torch.accelerator.is_available():
            self.dataloader_pin_memory = (
                False  # pinned memory serves copies to an accelerator; torch warns without one
            )
        if self.oracle_selection:
            warnings.warn(
                f"oracle_selection is deprecated: use selection_strategy={ORACLE!r}",
                FutureWarning,
                stacklevel=2,
            )
            if self.selection_strategy not in (None, ORACLE):
                raise ValueError(
                    f"oracle_selection=True and selection_strategy={self.selection_strategy!r} contradict each "
                    "other: give selection_strategy alone."
                )
            self.selection_strategy = ORACLE  # nothing reads oracle_selection after this: one setting
        if self.selection_strategy is None:
            self.selection_strategy = TRAINING_DOMAIN_VALIDATION if self.load_best_model_at_end else LAST_STEP
        rule = selection_rule(self.selection_strategy)
        if self.load_best_model_at_end and not rule.selects_checkpoint:
            raise ValueError(
                f"selection_strategy={LAST_STEP!r} keeps the last model: unset load_best_model_at_end, or select "
                f"with {TRAINING_DOMAIN_VALIDATION!r}."
            )
        if not self.load_best_model_at_end and rule.selects_checkpoint:
            raise ValueError(
                f"selection_strategy={self.selection_strategy!r} selects a checkpoint: set load_best_model_at_end "
                f"(with matching eval and save steps) so that the saved model is the selected one, or use {LAST_STEP!r}."
            )
        if self.metric_for_best_model is None and self.load_best_model_at_end:
            self.metric_for_best_model = metric_key(rule.group, prefix="")
            self.greater_is_better = True
        if (
            self.ddp_find_unused_parameters is None
            and self.ddp_static_graph is None
            and self.gradient_accumulation_steps == 1
        ):
            # Under DDP the graph is the same every step: DDP finds the parameters without a gradient (an unused
            # pooler, say) once, in the first step, instead of searching the graph every step and warning when none
            # is found. (A static graph does not support gradient accumulation: there transformers' default stays.)
            self.ddp_find_unused_parameters = False
            self.ddp_static_graph = True
        super().__post_init__()
        problems = self._range_problems()
        if problems:
            raise ValueError(f"{'; '.join(problems)}.")
        self._check_metric_for_best_model()

    def _range_problems(self) -> list[str]:
        """Every number out of its range, one message each (all of them, not the first)."""
        problems = []
        positive = (
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "weight_averaging_every",
            "weight_averaging_bn_batches",
        )
        for name in positive:
            if getattr(self, name) < 1:
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.per_domain_batch_size is not None and self.per_domain_batch_size < 1:
            problems.append(
                f"per_domain_batch_size must be a positive integer, got {self.per_domain_batch_size}"
            )
        for name in ("learning_rate", "weight_decay", "seed"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            problems.append(
                f"max_steps must be a positive number of optimizer steps (or -1: num_train_epochs), got {self.max_steps}"
            )
        if self.classifier_lr_multiplier <= 0:
            problems.append(f"classifier_lr_multiplier must be > 0, got {self.classifier_lr_multiplier}")
        if self.divergence_factor is not None and not self.divergence_factor > 1:
            problems.append(f"divergence_factor must be > 1 or unset, got {self.divergence_factor}")
        if not 0 < self.lr_gamma <= 1:
            problems.append(f"lr_gamma must be in (0, 1], got {self.lr_gamma}")
        if list(self.lr_milestones) != sorted(set(self.lr_milestones)) or any(
            m <= 0 for m in self.lr_milestones
        ):
            problems.append(f"lr_milestones must be increasing positive steps, got {self.lr_milestones}")
        for name in ("weight_averaging_start_step", "ensemble_start_step"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0 (or unset), got {getattr(self, name)}")
        return problems

    def _check_metric_for_best_model(self) -> None:
        """Refuses a checkpoint metric that reads the held-out domains or a method the checkpoints do not hold."""
        name = self.metric_for_best_model or ""
        metric = parse_metric_key(name if name.startswith("eval_") else f"eval_{name}")
        if metric is None:
            return
        if metric.method != "live":
            raise ValueError(
                f"metric_for_best_model={name!r}: checkpoints hold the live model; the weight average and the "
                "ensemble are selected from the evaluation log (hf_bigdrop.selection)."
            )
        if metric.group in ("test", "known"):
            raise ValueError(
                f"metric_for_best_model={name!r} selects on the held-out domains' accuracy. Select on "
                "'val_accuracy' (training-domain validation), or on 'oracle_accuracy' with "
                f"selection_strategy={ORACLE!r} (a validation part of the held-out domains, DomainBed's oracle)."
            )
        if metric.group == "oracle" and not selection_rule(self.selection_strategy).reads_held_out_domains:
            raise ValueError(
                f"metric_for_best_model={name!r} reads held-out domains; that is oracle selection. Set "
                f"selection_strategy={ORACLE!r} to do it on purpose, or select on 'val_accuracy'."
            )


__all__ = ["BigDropTrainingArguments"]
