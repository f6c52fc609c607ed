#!/usr/bin/env python
"""Fine-tune with very large dropout on source domains and measure the held-out domains (DomainBed protocol).

One job = one (dataset, held-out domain set, seed). Examples:

    # no recipe file: the defaults, digits with mnist held out, embedded ImageNet EfficientNet-Lite0
    python examples/run_ood.py --output_dir runs/bigdrop --dropout_rate 0.9

    # a paper recipe, with overrides, on 2 processes
    accelerate launch --multi_gpu --num_processes 2 examples/run_ood.py examples/configs/pacs_bigdrop.yaml \\
        --data_dir /data/domainbed/PACS --test_domains S --output_dir runs/pacs-S

    # leave-one-domain-out over every domain in turn (one sub-folder per held-out domain)
    python examples/run_ood.py --test_domains all --output_dir runs/lodo

Arguments come from four dataclasses (`--help` lists them all), also from a JSON/YAML file given as the first
argument; flags after the file override it. Writes to `output_dir`: the selected model (safetensors + code for
`trust_remote_code`), its image processor, `results.json` and a model card `README.md`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import yaml
from accelerate import PartialState
from transformers import AutoImageProcessor, HfArgumentParser, ViTImageProcessor
from transformers.trainer_utils import get_last_checkpoint, set_seed

from hf_bigdrop import BigDropConfig, BigDropForImageClassification
from hf_bigdrop.backbones import is_embedded_backbone, resolve_backbone_name
from hf_bigdrop.configuration_bigdrop import CLASSIFIER_INIT_CHOICES, POOLING_CHOICES
from hf_bigdrop.data import (
    DomainCollator,
    apply_transforms,
    domain_ids,
    domain_names,
    get_dataset_info,
    image_spec_from_processor,
    load_domain_dataset,
)
from hf_bigdrop.hub import is_hub_id
from hf_bigdrop.metrics import make_compute_metrics
from hf_bigdrop.modelcard import write_model_card
from hf_bigdrop.results import RESULTS_FILE, MethodResults, RunResults, domain_table, live_method_name
from hf_bigdrop.training import BigDropTrainer, BigDropTrainingArguments, per_domain_eval_sets

logger = logging.getLogger("run_ood")


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

    def config_kwargs(self) -> dict:
        """The `BigDropConfig` arguments (every field but `backbone`)."""
        return {name: value for name, value in asdict(self).items() if name != "backbone"}


@dataclass
class DataArguments:
    """The domains: which dataset, which domains are held out, and how images are prepared."""

    dataset: str = field(
        default="digits",
        metadata={
            "help": "Registry name (digits, styles, PACS, VLCS, OfficeHome, TerraIncognita, DomainNet), Hub id "
            "or folder."
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
        default="domainbed", metadata={"help": "Training augmentation: domainbed | none."}
    )
    max_per_domain: int | None = field(
        default=None, metadata={"help": "Cap examples per domain (quick runs)."}
    )


@dataclass
class RunArguments:
    """What the runner does with an `output_dir` that an earlier run left checkpoints in."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start over in an output_dir that holds checkpoints of an earlier run (else refuse)."
        },
    )


class UsageError(Exception):
    """A bad argument or input, reported as one line without a traceback."""


def parse_arguments(
    argv: list[str],
) -> tuple[ModelArguments, DataArguments, BigDropTrainingArguments, RunArguments]:
    """Parses flags, optionally on top of a JSON/YAML file given as the first argument (flags override it)."""
    dataclass_types = (ModelArguments, DataArguments, BigDropTrainingArguments, RunArguments)
    parser = HfArgumentParser(dataclass_types)
    if argv and argv[0].endswith((".json", ".yaml", ".yml")):
        values = _read_config_file(Path(argv[0]))
        known = {f.name for dataclass_type in dataclass_types for f in fields(dataclass_type)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(
                f"unknown key(s) {unknown} in {argv[0]}; `run_ood.py --help` lists the valid ones"
            )
        parser.set_defaults(**values)
        argv = argv[1:]
    model_args, data_args, training_args, run_args = parser.parse_args_into_dataclasses(args=argv)
    check_model_arguments(model_args)
    return model_args, data_args, training_args, run_args


def check_model_arguments(model_args: ModelArguments) -> None:
    """Fails fast, before any data or weights are loaded, on a model argument that `BigDropConfig` refuses.

    A config file's values bypass the command line's `choices`, so the config itself judges them (it names the bad
    value and the valid ones).
    """
    BigDropConfig(**model_args.config_kwargs())


def _read_config_file(path: Path) -> dict:
    if not path.exists():
        raise UsageError(f"config file {str(path)!r} does not exist")
    try:
        values = (yaml.safe_load if path.suffix in (".yaml", ".yml") else json.loads)(path.read_text()) or {}
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise UsageError(
            f"config file {str(path)!r} is not valid {path.suffix[1:].upper()}: {error}"
        ) from None
    if not isinstance(values, dict):
        raise UsageError(f"config file {str(path)!r} must hold a mapping of argument names to values")
    return values


def run_job(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: BigDropTrainingArguments,
    run_args: RunArguments,
    *,
    resume_missing_ok: bool = False,
) -> RunResults:
    """Trains one model with `data_args.test_domains` held out and writes everything to `output_dir`."""
    start = time.time()
    set_seed(training_args.seed)
    check_backbone_reachable(model_args.backbone)
    if training_args.oracle_selection and data_args.test_holdout_fraction is None:
        raise UsageError(
            "--oracle_selection selects on a validation part of the held-out domains: set --test_holdout_fraction "
            "(DomainBed uses 0.2)"
        )
    checkpoint = checkpoint_to_resume(
        training_args, overwrite_output_dir=run_args.overwrite_output_dir, missing_ok=resume_missing_ok
    )
    if checkpoint is None and run_args.overwrite_output_dir and training_args.should_save:
        remove_old_checkpoints(training_args.output_dir)
    with training_args.main_process_first(desc="preparing data and backbone"):
        splits = load_splits(data_args, training_args.seed)
        backbone_path = resolve_backbone_name(model_args.backbone)
        image_processor = AutoImageProcessor.from_pretrained(backbone_path)
    class_names = splits["train"].features["label"].names
    train_domains, test_domains = _domains_in(splits["train"]), _domains_in(splits["test"])
    logger.info("training domains %s, held out %s, %d classes", train_domains, test_domains, len(class_names))

    model = BigDropForImageClassification.from_backbone(
        backbone_path,
        num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        backbone_name_or_path=model_args.backbone,
        **model_args.config_kwargs(),
    )
    trainer = build_trainer(model, splits, image_processor, data_args, training_args)
    trainer.train(resume_from_checkpoint=checkpoint)
    results = collect_results(
        trainer, model_args, data_args, run_args, train_domains, test_domains, time.time() - start
    )
    save_outputs(trainer, results)
    return results


def load_splits(data_args: DataArguments, seed: int):
    """The DomainBed splits of `data_args.dataset` (train / validation / test, maybe test_validation)."""
    return load_domain_dataset(
        data_args.dataset,
        test_domains=data_args.test_domains,
        holdout_fraction=data_args.holdout_fraction,
        test_holdout_fraction=data_args.test_holdout_fraction,
        seed=seed,
        data_dir=data_args.data_dir,
        domain_column=data_args.domain_column,
        max_per_domain=data_args.max_per_domain,
    )


def build_trainer(
    model: BigDropForImageClassification,
    splits,
    image_processor,
    data_args: DataArguments,
    training_args: BigDropTrainingArguments,
) -> BigDropTrainer:
    """A `BigDropTrainer` on the training split, evaluating every domain separately."""
    # Embedded benchmarks are stored small: train at their own size rather than upsample them to 224 px.
    info = get_dataset_info(data_args.dataset)
    image_size = data_args.image_size or (info.default_image_size if info is not None else None)
    transforms = {"recipe": data_args.augmentation, "image_size": image_size}
    eval_sets = {
        name: apply_transforms(dataset, image_processor, train=False, **transforms)
        for name, dataset in per_domain_eval_sets(splits).items()
    }
    # Saved with every checkpoint: the evaluation transform (resize, normalise) as a standard image processor, so
    # that `pipeline("image-classification", model=output_dir)` sees images exactly as evaluation did.
    spec = image_spec_from_processor(image_processor, image_size)
    inference_processor = ViTImageProcessor(
        size={"height": spec.size[0], "width": spec.size[1]},
        image_mean=list(spec.mean),
        image_std=list(spec.std),
    )
    return BigDropTrainer(
        model=model,
        args=training_args,
        train_dataset=apply_transforms(splits["train"], image_processor, train=True, **transforms),
        eval_dataset=eval_sets,
        data_collator=DomainCollator(),
        compute_metrics=make_compute_metrics(),
        processing_class=inference_processor,
    )


def collect_results(
    trainer: BigDropTrainer,
    model_args: ModelArguments,
    data_args: DataArguments,
    run_args: RunArguments,
    train_domains: list[str],
    test_domains: list[str],
    wall_time_s: float,
) -> RunResults:
    """The typed record of a trained run: what the trainer selected per method, and how the run was set up."""
    selections = trainer.select_models()
    # Never evaluated during training (eval_strategy "no"): evaluate the last model.
    if "live" not in selections:
        trainer.evaluate()
        selections = trainer.select_models()
    live = live_method_name(model_args.dropout_rate)
    args = trainer.args
    return RunResults(
        dataset=data_args.dataset,
        train_domains=train_domains,
        test_domains=test_domains,
        seed=args.seed,
        backbone=model_args.backbone,
        dropout_rate=model_args.dropout_rate,
        methods={
            (live if method == "live" else method): MethodResults.from_selection(selection)
            for method, selection in selections.items()
        },
        selection=args.selection_strategy,
        freeze_batchnorm=model_args.freeze_batchnorm,
        optimizer=str(args.optim),
        learning_rate=args.learning_rate,
        max_steps=trainer.state.max_steps,
        holdout_fraction=data_args.holdout_fraction,
        wall_time_s=wall_time_s,
        arguments={
            "model": asdict(model_args),
            "data": asdict(data_args),
            "training": json.loads(args.to_json_string()),
            "run": asdict(run_args),
        },
        versions=_versions(),
        history=[entry for entry in trainer.state.log_history if any(k.startswith("eval_") for k in entry)],
    )


def save_outputs(trainer: BigDropTrainer, results: RunResults) -> None:
    """Writes the selected model, `results.json` and the model card to `output_dir`; pushes them if asked."""
    args = trainer.args
    trainer.save_model(args.output_dir)
    if trainer.is_world_process_zero():
        results.save(args.output_dir)
        write_model_card(results, args.output_dir, model_id=args.hub_model_id)
    if args.push_to_hub:  # the card written above is kept (BigDropTrainer.create_model_card)
        held_out = ", ".join(results.test_domains)
        trainer.push_to_hub(commit_message=f"hf_bigdrop: {results.dataset}, held out {held_out}")


RESUME_LATEST = ("True", "true", "last")


def checkpoint_to_resume(
    args: BigDropTrainingArguments, *, overwrite_output_dir: bool = False, missing_ok: bool = False
) -> str | None:
    """The checkpoint to resume from; refuses to train over an earlier run's checkpoints by accident.

    Args:
        args (`BigDropTrainingArguments`): `resume_from_checkpoint` is a path, or "True" for the latest one.
        overwrite_output_dir (`bool`, defaults to `False`): start afresh even if `output_dir` holds checkpoints
            of an earlier run (`RunArguments.overwrite_output_dir`).
        missing_ok (`bool`, defaults to `False`): with "True" and no checkpoint, start afresh instead of failing
            (a leave-one-domain-out job that had not started when the run was killed).

    Returns:
        `str | None`: the checkpoint folder, or `None` to start afresh (with `overwrite_output_dir`, the earlier
        checkpoints are then the caller's to remove: see `remove_old_checkpoints`).
    """
    checkpoint = args.resume_from_checkpoint
    existing = get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
    if checkpoint in RESUME_LATEST:
        if existing is None and not missing_ok:
            raise UsageError(f"--resume_from_checkpoint: no checkpoint-* folder in {args.output_dir}")
        return existing
    if checkpoint is None and existing is not None and not overwrite_output_dir:
        raise UsageError(
            f"{args.output_dir} holds checkpoints of an earlier run ({Path(existing).name}): pass "
            "--resume_from_checkpoint True to continue it, --overwrite_output_dir to start over, or another output_dir"
        )
    return checkpoint


def remove_old_checkpoints(output_dir: str) -> None:
    """Deletes the `checkpoint-*` folders of an earlier run, so that a new run's checkpoints do not mix with them."""
    for old in Path(output_dir).glob("checkpoint-*"):
        shutil.rmtree(old)


def check_backbone_reachable(name: str) -> None:
    """Fails fast, in one line, when the backbone is a Hub id that offline mode cannot download."""
    from huggingface_hub import constants, try_to_load_from_cache

    if is_embedded_backbone(name) or Path(name).exists() or not constants.HF_HUB_OFFLINE:
        return
    if not is_hub_id(name):
        raise UsageError(
            f"backbone {name!r} is not a local folder, an embedded backbone or a Hub id (owner/name)"
        )
    if not isinstance(try_to_load_from_cache(name, "config.json"), str):
        raise UsageError(
            f"backbone {name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it: "
            "download it once with network, pass a local folder, or use embedded:efficientnet-lite0"
        )


def _domains_in(split) -> list[str]:
    names = domain_names(split)
    return sorted(names[i] for i in np.unique(domain_ids(split)))


def _versions() -> dict[str, str]:
    import accelerate
    import datasets
    import timm
    import torch
    import transformers

    import hf_bigdrop

    modules = (hf_bigdrop, torch, transformers, datasets, accelerate, timm)
    return {"python": sys.version.split()[0], **{m.__name__: m.__version__ for m in modules}}


def main(argv: list[str] | None = None) -> list[RunResults]:
    """Runs one job, or one per held-out domain with `--test_domains all`."""
    model_args, data_args, training_args, run_args = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO, datefmt="%H:%M:%S")
    logging.getLogger().setLevel(logging.INFO if training_args.should_log else logging.WARNING)

    if [d.lower() for d in data_args.test_domains] != ["all"]:
        return [run_job(model_args, data_args, training_args, run_args)]

    # Leave-one-domain-out: one job per domain, each in its own sub-folder (and Hub repository).
    domains = _all_domains(data_args, training_args)
    runs = []
    root, hub_model_id = training_args.output_dir, training_args.hub_model_id
    resuming = training_args.resume_from_checkpoint in RESUME_LATEST
    for domain in domains:
        folder = os.path.join(root, domain)
        if resuming and (Path(folder) / RESULTS_FILE).exists():
            logger.info("held-out %s finished before the run stopped: keeping its results", domain)
            runs.append(RunResults.load(folder))
            continue
        job_data = DataArguments(**{**asdict(data_args), "test_domains": [domain]})
        training_args.output_dir = folder
        if training_args.push_to_hub:
            training_args.hub_model_id = f"{hub_model_id or Path(root).name}-{domain}"
        runs.append(run_job(model_args, job_data, training_args, run_args, resume_missing_ok=resuming))
    training_args.hub_model_id = hub_model_id
    training_args.output_dir = root
    if training_args.should_log:
        mean = sum(r.mean_test_accuracy for r in runs) / len(runs)
        print(f"\nleave-one-domain-out over {len(runs)} domains: mean o.o.d. accuracy {100 * mean:.1f}%")
    return runs


def _all_domains(data_args: DataArguments, training_args: BigDropTrainingArguments) -> list[str]:
    info = get_dataset_info(data_args.dataset) if data_args.data_dir is None else None
    if info is not None:
        return [domain.name for domain in info.domains]
    with training_args.main_process_first():
        probe = load_domain_dataset(
            data_args.dataset,
            test_domains=[],
            data_dir=data_args.data_dir,
            domain_column=data_args.domain_column,
        )
    return domain_names(probe["train"])


def cli() -> None:
    """`main` with bad input reported as one line (set HF_BIGDROP_TRACEBACK=1 for the traceback)."""
    try:
        results = main()
    except (UsageError, ValueError, OSError, ImportError, KeyError) as error:
        if os.environ.get("HF_BIGDROP_TRACEBACK"):
            raise
        print(f"run_ood.py: error: {_one_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    state = PartialState()
    if state.is_main_process:  # every process ran the jobs; one prints them
        for result in results:
            domains = ", ".join(result.test_domains)
            print(f"\n{result.dataset}, held out {domains}, dropout {result.dropout_rate:g}:")
            print(domain_table(result))
    # Leave together: a process that exits while another still holds the gloo/NCCL connection can abort it.
    state.wait_for_everyone()
    state.destroy_process_group()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


if __name__ == "__main__":
    cli()
