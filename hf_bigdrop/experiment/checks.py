"""`check_experiment_arguments`: everything about an experiment's arguments that can be judged before any data or
model is loaded, each problem a `UsageError` in one line that names the value and the valid choices."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from ..backbones import is_embedded_backbone
from ..data import RECIPES, list_datasets
from ..data.registry import describe_domains
from ..data.resolving import registered_dataset
from ..hub import is_hub_id
from ..lora import LORA_EXTRA_HINT
from ..selection import selection_rule
from .arguments import ExperimentArguments, UsageError
from .outputs import RESUME_LATEST

__all__ = ["check_experiment_arguments"]


def check_experiment_arguments(arguments: ExperimentArguments) -> None:
    """Refuses, before any work, an experiment whose arguments cannot give a meaningful result.

    Checked: the backbone can be loaded (offline too); LoRA's arguments and that peft is installed; the dataset is known and its held-out domains exist; options
    apply to the dataset (`data_dir`, `image_size`); validation exists for the selection; the augmentation recipe,
    the trajectory methods' start steps, mixed precision on this machine, the weight average's device; the output
    folder, the checkpoint to resume and, with `push_to_hub`, that a push can happen and happens once
    (`hub_strategy="end"`).

    Raises:
        `UsageError`: the first problem found.
    """
    _check_backbone(arguments.model.backbone)
    _check_lora(arguments)
    _check_data(arguments)
    _check_training(arguments)
    _check_output(arguments)


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _check_backbone(name: str) -> None:
    from huggingface_hub import try_to_load_from_cache

    if is_embedded_backbone(name) or Path(name).exists():
        return
    if not is_hub_id(name):
        raise UsageError(
            f"backbone {name!r} is not a local folder, an embedded backbone (embedded:efficientnet-lite0) or a Hub "
            "id (owner/name)"
        )
    if _offline() and not isinstance(try_to_load_from_cache(name, "config.json"), str):
        raise UsageError(
            f"backbone {name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it: "
            "download it once with network, pass a local folder, or use embedded:efficientnet-lite0"
        )


def _check_lora(arguments: ExperimentArguments) -> None:
    model = arguments.model
    if model.lora_r < 0:
        raise UsageError(f"--lora_r must be >= 0 (0: full fine-tuning, no LoRA), got {model.lora_r}")
    if not model.lora_r:
        given = [
            f"--{name} {getattr(model, name)}"
            for name, unset in (("lora_alpha", None), ("lora_dropout", 0.0))
            if getattr(model, name) != unset
        ]
        if given:
            raise UsageError(
                f"{' and '.join(given)} without --lora_r would be ignored (full fine-tuning): set --lora_r (e.g. 8), "
                "or leave them out"
            )
        return
    if importlib.util.find_spec("peft") is None:
        raise UsageError(f"--lora_r needs the peft package: {LORA_EXTRA_HINT}")
    if model.lora_alpha is not None and model.lora_alpha <= 0:
        raise UsageError(f"--lora_alpha must be positive (or unset: lora_r), got {model.lora_alpha}")
    if not 0.0 <= model.lora_dropout < 1.0:
        raise UsageError(f"--lora_dropout must be in [0, 1), got {model.lora_dropout}")
    if not model.lora_target_modules:
        raise UsageError(
            "--lora_target_modules is empty: name the backbone layers to adapt, or auto, or all-linear"
        )
    if model.freeze_backbone:
        raise UsageError(
            "--freeze_backbone trains the head alone and --lora_r adapters in the backbone: choose one"
        )
    if not model.freeze_batchnorm:
        raise UsageError(
            "--lora_r keeps the backbone as pretrained, BatchNorm statistics included (they are not part of the "
            "adapter): leave --freeze_batchnorm True"
        )


def _check_data(arguments: ExperimentArguments) -> None:
    data = arguments.data
    info = registered_dataset(data.dataset)
    if info is None and not Path(data.dataset).is_dir() and not is_hub_id(data.dataset):
        raise UsageError(
            f"unknown dataset {data.dataset!r}: not a registered dataset ({', '.join(list_datasets())}), not an "
            "existing folder, and not a Hub dataset id (owner/name)"
        )
    if info is not None and info.builder is not None:
        if data.data_dir is not None:
            raise UsageError(
                f"--data_dir {data.data_dir!r} does not apply to {info.name!r}, a benchmark built offline: leave it out"
            )
    elif data.data_dir is not None and not Path(data.data_dir).is_dir():
        raise UsageError(f"--data_dir {data.data_dir!r} is not a folder")
    if "all" in [domain.lower() for domain in data.test_domains] and not data.leave_one_domain_out:
        raise UsageError(
            f"--test_domains 'all' holds each domain out in turn: give it alone, not {data.test_domains}"
        )
    if info is not None and not data.leave_one_domain_out:
        for domain in data.test_domains:
            if info.find_domain(domain) is None:
                raise UsageError(
                    f"unknown domain {domain!r} in --test_domains for {info.name}; "
                    f"{describe_domains(info.domain_names, info)} Or 'all' to hold each out in turn."
                )
    if data.image_size is not None and data.image_size < 1:
        raise UsageError(f"--image_size must be a positive number of pixels, got {data.image_size}")
    for name in ("holdout_fraction", "test_holdout_fraction"):
        value = getattr(data, name)
        if value is not None and not 0.0 <= value < 1.0:
            raise UsageError(f"--{name} must be in [0, 1), got {value}")
    if data.max_per_domain is not None and data.max_per_domain < 1:
        raise UsageError(f"--max_per_domain must be a positive integer, got {data.max_per_domain}")
    if data.augmentation not in RECIPES:
        raise UsageError(f"unknown --augmentation {data.augmentation!r}; choose one of {sorted(RECIPES)}")


def _check_training(arguments: ExperimentArguments) -> None:
    args, data = arguments.training, arguments.data
    if args.max_steps == 0 or args.max_steps < -1:
        raise UsageError(
            f"--max_steps must be a positive number of optimizer steps (or -1: --num_train_epochs), got {args.max_steps}"
        )
    if args.weight_decay < 0:
        raise UsageError(f"--weight_decay must be >= 0, got {args.weight_decay}")
    rule = selection_rule(args.selection_strategy)
    if rule.selects_checkpoint and data.holdout_fraction == 0:
        raise UsageError(
            f"--holdout_fraction 0 leaves no validation split for selection_strategy={args.selection_strategy!r}: "
            "use e.g. 0.2, or --selection_strategy last_step without --load_best_model_at_end"
        )
    if rule.reads_held_out_domains and data.test_holdout_fraction is None:
        raise UsageError(
            f"--selection_strategy {args.selection_strategy} selects on a validation part of the held-out domains: "
            "set --test_holdout_fraction (DomainBed uses 0.2)"
        )
    late = [
        f"--{name} {getattr(args, name)}"
        for name in ("weight_averaging_start_step", "ensemble_start_step")
        if getattr(args, name) is not None and 0 < args.max_steps < getattr(args, name)
    ]
    if late:
        raise UsageError(
            f"{' and '.join(late)} {'is' if len(late) == 1 else 'are'} beyond --max_steps {args.max_steps}: the "
            "method would never start; give an earlier step, or switch it off with 'none'"
        )
    if args.ensemble_start_step is not None and args.eval_strategy == "no":
        raise UsageError("--ensemble_start_step sums the logits of evaluations: set --eval_strategy steps")
    on_cuda = torch.cuda.is_available() and not args.use_cpu
    for name in ("fp16", "fp16_full_eval"):
        if getattr(args, name) and not on_cuda:
            raise UsageError(
                f"--{name} needs a CUDA GPU; on CPU use --bf16 (mixed precision) or leave it out"
            )
    if args.weight_averaging_device is not None:
        try:
            torch.device(args.weight_averaging_device)
        except RuntimeError:
            raise UsageError(
                f"--weight_averaging_device {args.weight_averaging_device!r} is not a device; e.g. 'cpu' or 'cuda:0'"
            ) from None


def _check_output(arguments: ExperimentArguments) -> None:
    args = arguments.training
    output = Path(args.output_dir)
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output_dir {args.output_dir!r} is a file, not a folder")
    checkpoint = args.resume_from_checkpoint
    if checkpoint is not None and checkpoint not in RESUME_LATEST and not Path(checkpoint).is_dir():
        raise UsageError(
            f"--resume_from_checkpoint {checkpoint!r} is not a checkpoint folder; give one, or 'True' for the latest "
            "checkpoint in --output_dir"
        )
    if args.push_to_hub:
        _check_hub_strategy(args.hub_strategy)
        _check_can_push(args.hub_token)


def _check_hub_strategy(strategy) -> None:
    """The runner pushes its output folder once, after `results.json`: the Trainer must not push checkpoints."""
    value = getattr(strategy, "value", strategy)
    if value != "end":
        raise UsageError(
            f"--hub_strategy {value!r} pushes while training; the runner pushes its output folder once, after "
            "the model, its card and results.json are written: use 'end' (the runner's default)"
        )


def _check_can_push(token: str | None) -> None:
    from huggingface_hub import get_token

    if _offline():
        raise UsageError(
            "--push_to_hub cannot push with HF_HUB_OFFLINE=1: unset it, or leave --push_to_hub out"
        )
    if token is None and get_token() is None:
        raise UsageError("--push_to_hub needs a Hugging Face token: run `hf auth login`, or pass --hub_token")
