"""`check_experiment_arguments`: everything about an experiment's arguments that can be judged before any data or
model is loaded, each problem a `UsageError` in one line that names the value and the valid choices."""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from ..backbones import EMBEDDED_BACKBONES, is_embedded_backbone, resolve_backbone_name
from ..configuration_bigdrop import BigDropConfig
from ..data import RECIPES, list_datasets
from ..data.checks import unreadable_reason
from ..data.loading import sampling_problems
from ..data.registry import get_dataset_info, held_out_domains
from ..data.resolving import LAYOUT, local_kind, registered_dataset
from ..data.sources import scan_folder
from ..lora import LORA_EXTRA_HINT, add_lora, lora_argument_problems
from ..modeling_bigdrop import BigDropForImageClassification
from ..names import is_hub_id
from ..selection import LAST_STEP, selection_rule
from .arguments import ExperimentArguments, UsageError
from .outputs import RESUME_LATEST

__all__ = ["check_experiment_arguments", "joined_problems", "output_folder_problems"]


def check_experiment_arguments(arguments: ExperimentArguments) -> None:
    """Refuses, before any work, an experiment whose arguments cannot give a meaningful result.

    Checked: the backbone can be loaded (offline too) and is what its name says (a known embedded name, a folder
    with a `config.json`); LoRA's arguments, that peft is installed and that the targets exist in the backbone (on a
    weightless, meta-device build of the model); the dataset is known, reachable (a registered dataset without a
    Hub copy needs `--data_dir`; offline, a Hub dataset must be cached), a local folder in DomainBed's layout with
    readable images (a sample), and its held-out domains exist and leave one to train on; options apply to the
    dataset (`data_dir`, `image_size`); validation exists for the selection; the augmentation recipe, the trajectory
    methods' start steps, mixed precision on this machine, the weight average's device; the output folder (not a
    file, not under one, writable), the checkpoint to resume and, with `push_to_hub`, that a push can happen and
    happens once (`hub_strategy="end"`). Numbers out of range are the dataclasses' own checks (`__post_init__`).

    Raises:
        `UsageError`: every problem found, in one line (the checks that build on a value run once it passed).
    """
    backbone = list(_backbone_problems(arguments.model.backbone))
    problems = [
        *backbone,
        *_lora_problems(arguments, backbone_loads=not backbone),
        *_data_problems(arguments),
        *_training_problems(arguments),
        *_output_problems(arguments),
    ]
    if problems:
        raise UsageError(joined_problems(problems))


def joined_problems(problems: list[str]) -> str:
    """One line for one problem or several: `2 problems: (1) ...; (2) ...`."""
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems: " + "; ".join(
        f"({i}) {problem.rstrip('.')}" for i, problem in enumerate(problems, 1)
    )


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _backbone_problems(name: str) -> Iterator[str]:
    from huggingface_hub import try_to_load_from_cache

    if is_embedded_backbone(name):
        if name not in EMBEDDED_BACKBONES:
            yield f"unknown embedded backbone {name!r}; the embedded backbones are {', '.join(sorted(EMBEDDED_BACKBONES))}"
        return
    if Path(name).exists():
        if not (Path(name) / "config.json").is_file():
            yield (
                f"backbone folder {name!r} holds no config.json: give a folder written by save_pretrained, an "
                "embedded backbone (embedded:efficientnet-lite0) or a Hub id"
            )
        return
    if not is_hub_id(name):
        yield (
            f"backbone {name!r} is not a local folder, an embedded backbone (embedded:efficientnet-lite0) or a Hub "
            "id (owner/name)"
        )
    elif _offline() and not isinstance(try_to_load_from_cache(name, "config.json"), str):
        yield (
            f"backbone {name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it: "
            "download it once with network, pass a local folder, or use embedded:efficientnet-lite0"
        )


def _lora_problems(arguments: ExperimentArguments, backbone_loads: bool) -> Iterator[str]:
    """LoRA's arguments; their targets on the backbone only when it loads (`backbone_loads`: no backbone problem)."""
    model = arguments.model
    if model.lora_r < 0:
        yield f"--lora_r must be >= 0 (0: full fine-tuning, no LoRA), got {model.lora_r}"
        return
    if not model.lora_r:
        given = [
            f"--{name} {getattr(model, name)}"
            for name, unset in (("lora_alpha", None), ("lora_dropout", 0.0))
            if getattr(model, name) != unset
        ]
        if given:
            yield (
                f"{' and '.join(given)} without --lora_r would be ignored (full fine-tuning): set --lora_r (e.g. 8), "
                "or leave them out"
            )
        return
    if importlib.util.find_spec("peft") is None:
        yield f"--lora_r needs the peft package: {LORA_EXTRA_HINT}"
        return
    lora = arguments.model.lora_kwargs()
    problems = lora_argument_problems(**lora, freeze_backbone=model.freeze_backbone)
    yield from problems
    if not problems and backbone_loads:
        yield from _lora_target_problems(arguments)


def _lora_target_problems(arguments: ExperimentArguments) -> Iterator[str]:
    """Adds the adapters to a weightless (meta-device) build of the model: the targets and the BatchNorm rule are
    judged by `add_lora` itself, on the backbone's own module names, before any weight or image is loaded."""
    from transformers import AutoConfig

    source = resolve_backbone_name(arguments.model.backbone)
    try:
        backbone_config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:  # a repository that cannot be reached or read
        yield f"backbone {arguments.model.backbone!r}: {' '.join(str(error).split())}"
        return
    config = BigDropConfig(backbone_config=backbone_config, num_labels=2, **arguments.model.config_kwargs())
    with torch.device("meta"):
        model = BigDropForImageClassification(config)
    try:
        add_lora(model, **arguments.model.lora_kwargs())
    except ValueError as error:
        yield " ".join(str(error).split())


def _data_problems(arguments: ExperimentArguments) -> Iterator[str]:
    data = arguments.data
    info = registered_dataset(data.dataset)
    local = Path(data.dataset) if info is None and Path(data.dataset).is_dir() else None
    if info is None and local is None and not is_hub_id(data.dataset):
        yield (
            f"unknown dataset {data.dataset!r}: not a registered dataset ({', '.join(list_datasets())}), not an "
            "existing folder, and not a Hub dataset id (owner/name)"
        )
        return
    if info is None and data.data_dir is not None:
        yield (
            f"--data_dir is only for registered datasets ({', '.join(list_datasets())}); {data.dataset!r} is not one: "
            "leave --data_dir out"
        )
    elif info is not None and info.builder is not None:
        if data.data_dir is not None:
            yield f"--data_dir {data.data_dir!r} does not apply to {info.name!r}, a benchmark built offline: leave it out"
    elif info is not None and data.data_dir is not None:
        if Path(data.data_dir).is_dir():
            local = Path(data.data_dir)
        else:
            yield f"--data_dir {data.data_dir!r} is not a folder"
    elif info is not None and info.hub_id is None:
        yield (
            f"{info.name} has no public Hugging Face Hub dataset: download it ({info.url}) and pass its folder, "
            f"laid out as DomainBed's {LAYOUT}, with --data_dir"
        )
    elif local is None and _offline():
        hub_id = info.hub_id if info is not None else data.dataset
        if not _hub_dataset_cached(hub_id):
            yield (
                f"dataset {hub_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it: "
                f"download it once with network{', or pass a local copy with --data_dir' if info else ''}"
            )
    # A local folder read once: how it loads and, for a DomainBed folder, its domains and problems.
    kind, folder_domains, folder_problems = (
        _local_summary(str(local.resolve()), info.name if info is not None else None)
        if local is not None
        else (None, None, ())
    )
    all_domains = "all" in [domain.lower() for domain in data.test_domains]
    if all_domains and not data.leave_one_domain_out:
        yield f"--test_domains 'all' holds each domain out in turn: give it alone, not {data.test_domains}"
    if data.image_size is not None and data.image_size < 1:
        yield f"--image_size must be a positive number of pixels, got {data.image_size}"
    yield from (
        f"--{problem}"
        for problem in sampling_problems(
            holdout_fraction=data.holdout_fraction,
            test_holdout_fraction=data.test_holdout_fraction,
            test_group_fraction=data.test_group_fraction,
            max_per_domain=data.max_per_domain,
        )  # the seed is the training arguments' to judge
    )
    if data.augmentation not in RECIPES:
        yield f"unknown --augmentation {data.augmentation!r}; choose one of {sorted(RECIPES)}"
    domains = None
    if kind == "folder":
        yield from folder_problems
        if folder_domains is None:
            return
        domains = folder_domains
    elif info is not None:
        domains = info.domain_names
    if domains is not None and not all_domains:
        try:
            held_out_domains(data.test_domains, domains, info)
        except ValueError as error:
            message = " ".join(str(error).split())
            yield (
                f"{message} Or 'all' to hold each domain out in turn"
                if "Unknown domain" in message
                else message
            )


# How many images of a local folder are opened before any work (one per domain and class, up to this many).
UNREADABLE_SAMPLE = 256


@functools.lru_cache(maxsize=16)
def _local_summary(folder: str, dataset: str | None) -> tuple[str, list[str] | None, tuple[str, ...]]:
    """A local folder read once per process (a sweep checks many jobs on one folder): how it loads (`local_kind`),
    and for a DomainBed folder its domains (`None` when its layout is wrong) and the problems of its layout and of a
    sample of its images."""
    kind = local_kind(Path(folder))
    if kind != "folder":
        return kind, None, ()
    try:
        layout = scan_folder(folder, get_dataset_info(dataset) if dataset else None)
    except ValueError as error:
        return kind, None, (" ".join(str(error).split()),)
    return kind, layout.domains, tuple(_unreadable_sample(layout))


def _unreadable_sample(layout) -> Iterator[str]:
    """Opens the first image of each domain and class (up to `UNREADABLE_SAMPLE`) as the loader opens every image
    (`data.checks.unreadable_reason`): a folder of unreadable files is refused before any work."""
    for path in [files[0] for files in layout.files.values() if files][:UNREADABLE_SAMPLE]:
        reason = unreadable_reason({"bytes": None, "path": path})
        if reason is not None:
            yield f"unreadable image {path!r} ({reason}): remove or fix it, or the folder's others"
            return


def _hub_dataset_cached(hub_id: str) -> bool:
    """Whether a Hub dataset can load offline: its files in the Hub cache, or its Arrow copy in `datasets`' cache."""
    import datasets
    from datasets.naming import camelcase_to_snakecase
    from huggingface_hub import constants

    owner, _, name = hub_id.partition("/")
    hub = Path(constants.HF_HUB_CACHE) / f"datasets--{hub_id.replace('/', '--')}"
    # `datasets` names its Arrow copy `<owner>___<name in snake case>` (OfficeHome: office_home).
    arrow = Path(datasets.config.HF_DATASETS_CACHE) / f"{owner}___{camelcase_to_snakecase(name)}"
    return hub.is_dir() or arrow.is_dir()


def _training_problems(arguments: ExperimentArguments) -> Iterator[str]:
    args, data = arguments.training, arguments.data
    rule = selection_rule(args.selection_strategy)
    if rule.selects_checkpoint and data.holdout_fraction == 0:
        yield (
            f"--holdout_fraction 0 leaves no validation split for selection_strategy={args.selection_strategy!r}: "
            f"use e.g. 0.2, or --selection_strategy {LAST_STEP} without --load_best_model_at_end"
        )
    if rule.reads_held_out_domains and data.test_holdout_fraction is None:
        yield (
            f"--selection_strategy {args.selection_strategy} selects on a validation part of the held-out domains: "
            "set --test_holdout_fraction (DomainBed uses 0.2)"
        )
    late = [
        f"--{name} {getattr(args, name)}"
        for name in ("weight_averaging_start_step", "ensemble_start_step")
        if getattr(args, name) is not None and 0 < args.max_steps < getattr(args, name)
    ]
    if late:
        yield (
            f"{' and '.join(late)} {'is' if len(late) == 1 else 'are'} beyond --max_steps {args.max_steps}: the "
            "method would never start; give an earlier step, or switch it off with 'none'"
        )
    if args.ensemble_start_step is not None and args.eval_strategy == "no":
        yield "--ensemble_start_step sums the logits of evaluations: set --eval_strategy steps"
    on_cuda = torch.cuda.is_available() and not args.use_cpu
    for name in ("fp16", "fp16_full_eval"):
        if getattr(args, name) and not on_cuda:
            yield f"--{name} needs a CUDA GPU; on CPU use --bf16 (mixed precision) or leave it out"
    if args.weight_averaging_device is not None:
        try:
            torch.device(args.weight_averaging_device)
        except RuntimeError:
            yield f"--weight_averaging_device {args.weight_averaging_device!r} is not a device; e.g. 'cpu' or 'cuda:0'"


def _output_problems(arguments: ExperimentArguments) -> Iterator[str]:
    args = arguments.training
    output = Path(args.output_dir)
    if output.exists() and not output.is_dir():
        yield f"--output_dir {args.output_dir!r} is a file, not a folder"
    elif args.should_save:
        yield from output_folder_problems(output, "--output_dir")
    checkpoint = args.resume_from_checkpoint
    if checkpoint is not None and checkpoint not in RESUME_LATEST and not Path(checkpoint).is_dir():
        yield (
            f"--resume_from_checkpoint {checkpoint!r} is not a checkpoint folder; give one, or 'True' for the latest "
            "checkpoint in --output_dir"
        )
    if args.push_to_hub:
        yield from _hub_problems(args.hub_strategy, args.hub_token)


def output_folder_problems(folder: Path, what: str) -> Iterator[str]:
    """A folder that cannot be made or written: under a file, or its nearest existing parent not writable."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        yield f"{what} {str(folder)!r} is under {str(existing)!r}, a file"
    elif not os.access(existing, os.W_OK | os.X_OK):
        yield f"{what} {str(folder)!r} cannot be written: {str(existing)!r} is not writable"


def _hub_problems(strategy, token: str | None) -> Iterator[str]:
    """The runner pushes its output folder once, after `results.json`: the Trainer must not push checkpoints; and a
    push needs the network and a token."""
    from huggingface_hub import get_token

    value = getattr(strategy, "value", strategy)
    if value != "end":
        yield (
            f"--hub_strategy {value!r} pushes while training; the runner pushes its output folder once, after "
            "the model, its card and results.json are written: use 'end' (the runner's default)"
        )
    if _offline():
        yield "--push_to_hub cannot push with HF_HUB_OFFLINE=1: unset it, or leave --push_to_hub out"
    elif token is None and get_token() is None:
        yield "--push_to_hub needs a Hugging Face token: run `hf auth login`, or pass --hub_token"
