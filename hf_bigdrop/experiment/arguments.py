"""The arguments of an o.o.d. experiment, read from a recipe file and the command line, and checked before any work.

An experiment's arguments are four dataclasses: `ModelArguments` (the network), `DataArguments` (the domains),
`BigDropTrainingArguments` (the Trainer and the paper's protocol) and `RunArguments` (what to do with an earlier run's
output folder). `parse_experiment_arguments` reads them from an optional recipe file (YAML or JSON, the first
argument) and flags, which override the recipe: the recipe's values go through the same command-line parser as the
flags, so a value of the wrong type is refused the same way wherever it was written.

Every problem found there, or by `check_experiment_arguments` (which looks at the dataset, the domains, the backbone,
the output folder and the Hub before anything is loaded), is a `UsageError`: one line naming the bad value and the
valid choices. Anything that goes wrong later, while training, raises with its traceback.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from ..configuration_bigdrop import CLASSIFIER_INIT_CHOICES, POOLING_CHOICES, BigDropConfig
from ..training_args import BigDropTrainingArguments

__all__ = [
    "DataArguments",
    "ExperimentArguments",
    "ModelArguments",
    "RECIPE_SUFFIXES",
    "RunArguments",
    "UsageError",
    "parse_experiment_arguments",
    "read_mapping",
    "read_recipe",
]

RECIPE_SUFFIXES = (".yaml", ".yml", ".json")


class UsageError(Exception):
    """A bad argument or input, found before any data or model is loaded: reported as one line, no traceback."""


@dataclass
class ModelArguments:
    """The network: which pretrained backbone, and how its head is regularised."""

    backbone: str = field(
        default="embedded:efficientnet-lite0",
        metadata={
            "help": "Hub id (e.g. timm/resnet50.tv2_in1k), local folder, or embedded:efficientnet-lite0."
        },
    )
    # The fields below are BigDropConfig arguments, forwarded as they are (the config validates them).
    dropout_rate: float = field(
        default=0.9, metadata={"help": "Dropout on the penultimate features; 0 = ERM."}
    )
    pooling: str = field(
        default="auto", metadata={"help": "How features are pooled.", "choices": list(POOLING_CHOICES)}
    )
    freeze_batchnorm: bool = field(
        default=True, metadata={"help": "Keep BatchNorm statistics as pretrained."}
    )
    freeze_backbone: bool = field(default=False, metadata={"help": "Train the head only (linear probe)."})
    classifier_init: str = field(
        default="zeros",
        metadata={"help": "Initialisation of the linear head.", "choices": list(CLASSIFIER_INIT_CHOICES)},
    )
    # LoRA (`hf_bigdrop.lora`, the `lora` extra): which parameters train, not BigDropConfig arguments.
    lora_r: int = field(
        default=0,
        metadata={
            "help": "LoRA rank: peft adapters in the backbone, the head trained in full, merged at the end; 0 = "
            "full fine-tuning."
        },
    )
    lora_alpha: float | None = field(
        default=None, metadata={"help": "LoRA alpha (updates scaled by alpha / r); default: lora_r."}
    )
    lora_dropout: float = field(
        default=0.0, metadata={"help": "LoRA's own dropout on the adapters' input (not dropout_rate)."}
    )
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["auto"],
        metadata={
            "help": "Backbone layers that get adapters, by name, all-linear, or auto: the backbone family's (linear "
            "layers for ViT-like backbones, pointwise convolutions for convolutional ones; see docs/lora.md)."
        },
    )

    def config_kwargs(self) -> dict:
        """The `BigDropConfig` arguments (every field but `backbone` and the LoRA ones)."""
        return {
            name: value
            for name, value in asdict(self).items()
            if name != "backbone" and not name.startswith("lora_")
        }

    def lora_kwargs(self) -> dict | None:
        """The arguments of `hf_bigdrop.lora.add_lora`, or `None` for full fine-tuning (`lora_r` 0)."""
        if not self.lora_r:
            return None
        return {
            "r": self.lora_r,
            "alpha": self.lora_alpha,
            "dropout": self.lora_dropout,
            "target_modules": list(self.lora_target_modules),
        }


@dataclass
class DataArguments:
    """The domains: which dataset, which domains are held out, and how images are prepared."""

    dataset: str = field(
        default="digits",
        metadata={
            "help": "Registry name (digits, styles, emoji, PACS, VLCS, OfficeHome, TerraIncognita, DomainNet), Hub "
            "id or folder."
        },
    )
    test_domains: list[str] = field(
        default_factory=lambda: ["mnist"],
        metadata={
            "help": "Held-out domain(s), full or DomainBed short names; 'all' = leave each out in turn."
        },
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "Local DomainBed folder of a registry dataset."}
    )
    domain_column: str | None = field(
        default=None, metadata={"help": "Domain column of a Hub/Parquet dataset."}
    )
    holdout_fraction: float = field(
        default=0.2, metadata={"help": "Validation fraction of each training domain."}
    )
    test_holdout_fraction: float | None = field(
        default=None,
        metadata={"help": "Also split held-out domains into test / oracle validation (oracle only)."},
    )
    image_size: int | None = field(
        default=None,
        metadata={
            "help": "Input resolution; default: the dataset's registered image size (the stored size of an "
            "embedded benchmark, e.g. digits 32, styles 64), else the backbone processor's size."
        },
    )
    augmentation: str = field(
        default="domainbed",
        metadata={
            "help": "Training augmentation: domainbed (DomainBed's, image by image on PIL images) | "
            "domainbed_batched (the same, its colour jitter and grey-scale on the batch's tensors, every image its "
            "own draws: faster on CPU) | none."
        },
    )
    max_per_domain: int | None = field(
        default=None, metadata={"help": "Cap examples per domain (quick runs)."}
    )
    test_group_fraction: float | None = field(
        default=None,
        metadata={
            "help": "Grouped datasets (emoji): fraction of each class's groups kept out of training and validation; "
            "the held-out domain's test holds only them. Default 0.25 for a grouped dataset; 0: every group."
        },
    )
    preprocess_eval_images: bool = field(
        default=True,
        metadata={
            "help": "Decode and resize the evaluation images once and keep them in memory (3 x H x W bytes an image: "
            "12 KB at 64 px, 150 KB at 224 px), instead of at every evaluation. False: transform them lazily."
        },
    )
    decode_train_images: bool = field(
        default=True,
        metadata={
            "help": "Decode the training images once and keep them in memory (augmented at every step as before), "
            "unless they would take more than 2 GiB. False: decode them at every access."
        },
    )
    fit_examples_per_domain: int = field(
        default=256,
        metadata={
            "help": "Training examples per domain (a fixed sample) evaluated with dropout off at each evaluation "
            "(eval_fit_*): how well the model fits its training data. 0: off."
        },
    )

    @property
    def leave_one_domain_out(self) -> bool:
        """Whether `test_domains` is `all`: one run per domain, each held out in turn."""
        return [domain.lower() for domain in self.test_domains] == ["all"]


@dataclass
class RunArguments:
    """What the runner does with an `output_dir` that an earlier run left checkpoints in."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start over in an output_dir that holds an earlier run (its checkpoints and results are "
            "removed first); else refuse, unless resuming."
        },
    )


@dataclass
class ExperimentArguments:
    """The four groups of an experiment's arguments, as `parse_experiment_arguments` returns them."""

    model: ModelArguments
    data: DataArguments
    training: BigDropTrainingArguments
    run: RunArguments

    def as_dict(self) -> dict:
        """Every argument, as `results.json` records it."""
        return {
            "model": asdict(self.model),
            "data": asdict(self.data),
            "training": json.loads(self.training.to_json_string()),
            "run": asdict(self.run),
        }

    def flat_dict(self) -> dict:
        """Every argument by its name (the groups of `as_dict` merged: no name is in two groups)."""
        return {key: value for group in self.as_dict().values() for key, value in group.items()}


_DATACLASSES = (ModelArguments, DataArguments, BigDropTrainingArguments, RunArguments)

# Arguments that change how a run goes, not what it computes: a finished run stays finished, and a checkpoint resumes,
# when only these differ (where it is written, logged or pushed, its DataLoader workers, whose batches are seeded, the
# device and the evaluation batch size).
OPERATIONAL_ARGUMENTS = frozenset(
    {
        "output_dir",
        "overwrite_output_dir",
        "resume_from_checkpoint",
        "report_to",
        "logging_steps",
        "log_level",
        "log_level_replica",
        "disable_tqdm",
        "dataloader_num_workers",
        "dataloader_pin_memory",
        "dataloader_persistent_workers",
        "dataloader_prefetch_factor",
        "per_device_eval_batch_size",
        "use_cpu",
        "local_rank",
        "save_total_limit",
        "push_to_hub",
        "hub_model_id",
        "hub_token",
        "hub_strategy",
        "hub_private_repo",
        "run_name",
    }
)


def _same(recorded: object, wanted: object) -> bool:
    """Whether a recorded argument (as JSON keeps it) and a wanted one (a value or a command-line string) agree."""
    if isinstance(wanted, float) or isinstance(recorded, float):
        try:
            return math.isclose(float(recorded), float(wanted), rel_tol=1e-9, abs_tol=0.0)
        except (TypeError, ValueError):
            return False
    if isinstance(recorded, list) and not isinstance(wanted, list):
        return [str(v) for v in recorded] == [str(wanted)]
    if isinstance(recorded, list):
        return [str(v) for v in recorded] == [str(v) for v in wanted]
    return str(recorded) == str(wanted)


def changed_arguments(recorded: dict, wanted: dict) -> list[str]:
    """The arguments of `wanted` (all but `OPERATIONAL_ARGUMENTS`) that a run recorded with another value, or did
    not record, each as `name recorded -> wanted`.

    Args:
        recorded (`dict`): a run's arguments by group, as `ExperimentArguments.as_dict` gives them (`results.json`'s
            `arguments`, `arguments.json`).
        wanted (`dict`): argument names and the values a run would have now (a recipe's and a sweep job's values,
            or `ExperimentArguments.flat_dict`).
    """
    flat = {
        key: value for group in recorded.values() if isinstance(group, dict) for key, value in group.items()
    }
    changes = []
    for key, value in wanted.items():
        if key in OPERATIONAL_ARGUMENTS:
            continue
        if key not in flat:
            changes.append(f"{key} (not recorded) -> {value!r}")
        elif not _same(flat[key], value):
            changes.append(f"{key} {flat[key]!r} -> {value!r}")
    return changes


class _NoDuplicateKeysLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that names a key twice (YAML itself keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise UsageError(f"key {key!r} appears twice (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_mapping(path: str | os.PathLike, kind: str = "recipe") -> dict:
    """The mapping in a YAML or JSON file (a recipe, a sweep file), a key given twice refused.

    Args:
        path (`str | os.PathLike`): the file.
        kind (`str`, *optional*, defaults to `"recipe"`): what the file is, for messages.

    Raises:
        `UsageError`: a missing file, invalid YAML/JSON, a key given twice, an empty file or one that is not a
            mapping (each message names the file).
    """
    path = Path(path)
    where = f"{kind} {str(path)!r}"
    if not path.is_file():
        raise UsageError(f"{where} is not a file")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            values = json.loads(text, object_pairs_hook=_refuse_duplicate_json_keys)
        else:
            values = yaml.load(text, Loader=_NoDuplicateKeysLoader)  # noqa: S506 - a SafeLoader subclass
    except UsageError as error:
        raise UsageError(f"{where}: {error}") from None
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        language = "JSON" if path.suffix == ".json" else "YAML"
        raise UsageError(f"{where} is not valid {language}: {' '.join(str(error).split())}") from None
    if values is None:
        raise UsageError(f"{where} is empty: give it at least one value, or leave it out")
    if not isinstance(values, dict):
        raise UsageError(f"{where} must hold a mapping of names to values")
    return values


def read_recipe(path: str | os.PathLike) -> dict:
    """The mapping of argument names to values in a YAML or JSON recipe file (`read_mapping`).

    Raises:
        `UsageError`: a missing file, invalid YAML/JSON, a key given twice, an empty file or one that is not a
            mapping (each message names the file).
    """
    return read_mapping(path, "recipe")


def _refuse_duplicate_json_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise UsageError(f"key {key!r} appears twice")
    return dict(pairs)


def argument_names() -> set[str]:
    """The names of every experiment argument (the fields of the four dataclasses; a flag is `--` and its name)."""
    return {item.name for dataclass_type in _DATACLASSES for item in fields(dataclass_type)}


def unknown_names(names, valid, prefix: str = "") -> str:
    """Names that are not valid, each with its closest valid name where one is close: `--learning_rat (did you mean
    --learning_rate?)`, joined by commas, for an error message."""
    described = []
    for name in names:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.75)
        described.append(f"{prefix}{name}" + (f" (did you mean {prefix}{close[0]}?)" if close else ""))
    return ", ".join(described)


def _recipe_flags(values: dict, parser: argparse.ArgumentParser) -> tuple[list[str], dict]:
    """Turns recipe values into command-line tokens (checked by argparse like any flag); `null`s become defaults."""
    unknown = sorted(set(values) - argument_names())
    if unknown:
        raise UsageError(
            f"unknown argument(s) {unknown_names(unknown, argument_names())}; `--help` lists the valid ones"
        )
    tokens, nulls = [], {}
    for key, value in values.items():
        if value is None or value == []:  # argparse cannot take an empty list: they become defaults
            nulls[key] = value
        elif isinstance(value, list):
            tokens += [f"--{key}", *(_token(item) for item in value)]
        else:
            tokens += [f"--{key}", _token(value)]
    problems = _recipe_value_problems(values, parser)
    if problems:  # every bad value at once (argparse would stop at the first)
        raise UsageError(f"{'; '.join(problems)} (in recipe {parser.recipe!r})")
    return tokens, nulls


def _recipe_value_problems(values: dict, parser: argparse.ArgumentParser) -> list[str]:
    """Each recipe value that its flag's argparse `type` or `choices` refuses, in argparse's words."""
    actions = {action.dest: action for action in parser._actions}
    problems = []
    for key, value in values.items():
        action = actions.get(key)
        if action is None or value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            token = _token(item)
            try:
                converted = action.type(token) if action.type is not None else token
            except (TypeError, ValueError, argparse.ArgumentTypeError):
                kind = getattr(action.type, "__name__", "")
                problems.append(f"argument --{key}: invalid {kind} value: {token!r}")
                continue
            if action.choices is not None and converted not in action.choices:
                choices = ", ".join(repr(choice) for choice in action.choices)
                problems.append(f"argument --{key}: invalid choice: {token!r} (choose from {choices})")
    return problems


def _token(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


# Words that switch off an optional number from the command line (`--weight_averaging_start_step none`).
NONE_WORDS = ("none", "null")


def _or_none(convert):
    """An argparse `type` that reads `none` / `null` (any case) as `None` and anything else with `convert`."""

    def parse(text: str):
        return None if text.strip().lower() in NONE_WORDS else convert(text)

    parse.__name__ = convert.__name__  # argparse names the type in its "invalid int value" errors
    return parse


class _ExperimentParser(HfArgumentParser):
    """`HfArgumentParser` whose errors name the recipe the values may have come from, and whose optional numbers
    (those whose default is `None`) can be switched off with `none`, as a recipe's `null` does."""

    recipe: str | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for action in self._actions:
            if action.default is None and action.type in (int, float):
                action.type = _or_none(action.type)

    def error(self, message: str):
        where = f" (in recipe {self.recipe!r} or on the command line)" if self.recipe else ""
        raise UsageError(f"{message}{where}")


def parse_experiment_arguments(argv: list[str] | None = None) -> ExperimentArguments:
    """Reads the arguments of an experiment: an optional recipe file, then flags that override it.

    Args:
        argv (`list[str] | None`, *optional*, defaults to `None`): the command line without the program name
            (default: `sys.argv[1:]`); its first item may be a recipe (`.yaml`, `.yml` or `.json`).

    Returns:
        `ExperimentArguments`: the parsed and validated arguments (`--help` prints them all and exits).

    Raises:
        `UsageError`: an unknown or mistyped argument, an invalid recipe, a value that `BigDropConfig` or
            `BigDropTrainingArguments` refuses, or a non-finite number (each in one line).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # No abbreviated flags: `--learning_rat` is a typo to report, not `--learning_rate`.
    parser = _ExperimentParser(_DATACLASSES, description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument(
        "recipe",
        nargs="?",
        metavar="RECIPE",
        help="A YAML or JSON file of argument names and values (e.g. examples/configs/styles.yaml); flags after it "
        "override its values.",
    )
    # The runner pushes its output folder once, at the end (`write_run_outputs`), never a checkpoint on its way.
    parser.set_defaults(hub_strategy="end")
    tokens = []
    if argv and argv[0].endswith(RECIPE_SUFFIXES) and not argv[0].startswith("-"):
        parser.recipe = argv[0]
        tokens, nulls = _recipe_flags(read_recipe(argv[0]), parser)
        parser.set_defaults(**nulls)
        argv = argv[1:]
    _, extra = parser.parse_known_args(tokens + argv)
    flags = [token.split("=")[0][2:] for token in extra if token.startswith("--")]
    if flags:
        raise UsageError(
            f"unknown argument(s) {unknown_names(flags, argument_names(), prefix='--')}; `--help` lists the valid "
            "ones"
        )
    try:
        model, data, training, run, rest = parser.parse_args_into_dataclasses(
            args=tokens + argv, look_for_args_file=False
        )
    except ValueError as error:  # raised by a dataclass's __post_init__ (TrainingArguments' own checks)
        raise UsageError(" ".join(str(error).split())) from None
    if rest.recipe is not None:
        raise UsageError(f"the recipe {rest.recipe!r} must be the first argument, before any flag")
    arguments = ExperimentArguments(model, data, training, run)
    _check_finite(arguments)
    try:
        BigDropConfig(**model.config_kwargs())
    except ValueError as error:
        raise UsageError(" ".join(str(error).split())) from None
    return arguments


def _check_finite(arguments: ExperimentArguments) -> None:
    for group in (arguments.model, arguments.data, arguments.training, arguments.run):
        for item in fields(group):
            value = getattr(group, item.name, None)
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"--{item.name} must be a finite number, got {value!r}")
