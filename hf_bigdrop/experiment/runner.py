"""One o.o.d. experiment, from its arguments to a finished output folder: the stages wired together.

`run_experiments` checks every argument first (`check_experiment_arguments`, the resume policy), then, per held-out
domain set: loads the DomainBed splits (`load_splits`), builds the model around the pretrained backbone and a
`BigDropTrainer` that evaluates every domain separately (`build_trainer`), trains (resuming if asked), turns what the
trainer selected into a `RunResults` and writes the output folder (`write_run_outputs`: the selected model and its
image processor, the model card, `results.json` last), then pushes it once to the Hub if asked.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from functools import partial
from pathlib import Path

import datasets
import numpy as np
from transformers import TrainerCallback, ViTImageProcessor
from transformers.trainer_utils import set_seed

from ..backbones import load_backbone_image_processor
from ..data import (
    DomainCollator,
    apply_transforms,
    domain_ids,
    domain_names,
    evaluation_preprocessing,
    load_domain_dataset,
)
from ..data.preprocessed import decode_for_training, preprocess_for_evaluation
from ..data.resolving import registered_dataset
from ..evaluation import per_domain_eval_sets
from ..lora import add_lora, is_lora_model, merge_lora, save_adapter
from ..metrics import make_compute_metrics
from ..modelcard import write_model_card
from ..modeling_bigdrop import BigDropForImageClassification
from ..results import RunResults
from ..training import BigDropTrainer, checkpoint_files
from ..training_args import BigDropTrainingArguments
from .arguments import DataArguments, ExperimentArguments, UsageError
from .checks import check_experiment_arguments
from .outputs import (
    ADAPTER_FOLDER,
    RESUME_LATEST,
    check_resumed_arguments,
    checkpoint_to_resume,
    is_finished,
    leaves_folder,
    output_dir_lock,
    prepare_output_dir,
    push_output_dir,
    write_atomically,
)

__all__ = [
    "build_trainer",
    "held_out_domain_sets",
    "inference_processor",
    "load_splits",
    "run_experiment",
    "run_experiments",
    "training_image_size",
    "write_run_outputs",
]

logger = logging.getLogger(__name__)

# Seconds the run had spent before the checkpoint was written (a resumed run adds them to its own).
WALL_TIME_FILE = "wall_time.json"


def load_splits(data: DataArguments, seed: int) -> datasets.DatasetDict:
    """The DomainBed splits of `data.dataset` (train / validation / test, maybe test_validation). An embedded benchmark
    built offline is built at `data.image_size` when it is set (rendered at the size it trains at, not resized)."""
    info = registered_dataset(data.dataset) if data.data_dir is None else None
    built = info is not None and info.builder is not None
    return load_domain_dataset(
        data.dataset,
        test_domains=data.test_domains,
        holdout_fraction=data.holdout_fraction,
        test_holdout_fraction=data.test_holdout_fraction,
        seed=seed,
        data_dir=data.data_dir,
        domain_column=data.domain_column,
        max_per_domain=data.max_per_domain,
        test_group_fraction=data.test_group_fraction,
        image_size=data.image_size if built else None,
    )


def training_image_size(data: DataArguments) -> int | None:
    """The input size: `data.image_size`, else the registered size of an embedded benchmark (trained at the size it
    is stored at, not upsampled to 224 px), else `None` (the backbone processor's)."""
    info = registered_dataset(data.dataset)
    return data.image_size or (info.default_image_size if info is not None else None)


def inference_processor(image_processor, image_size: int | None) -> ViTImageProcessor:
    """A standard image processor that reproduces the evaluation transform (resize, normalise): saved with the model,
    it makes `pipeline("image-classification", model=output_dir)` see images exactly as evaluation did. The model's
    config records the same (`BigDropConfig.preprocessing`), so any later `save_pretrained` writes it again."""
    return ViTImageProcessor(**evaluation_preprocessing(image_processor, image_size))


def build_trainer(
    model: BigDropForImageClassification,
    splits: datasets.DatasetDict,
    image_processor,
    data: DataArguments,
    training_args: BigDropTrainingArguments,
) -> BigDropTrainer:
    """A `BigDropTrainer` on the training split, evaluating every domain separately (`per_domain_eval_sets`)."""
    image_size = training_image_size(data)
    transforms = {"recipe": data.augmentation, "image_size": image_size}
    # The evaluation transform is deterministic: with `preprocess_eval_images`, done once, not at every evaluation.
    evaluation = (
        preprocess_for_evaluation if data.preprocess_eval_images else partial(apply_transforms, train=False)
    )
    eval_sets = {
        name: evaluation(dataset, image_processor, **transforms)
        for name, dataset in per_domain_eval_sets(splits, data.fit_examples_per_domain).items()
    }
    train = (
        decode_for_training(splits["train"], image_processor, **transforms)
        if data.decode_train_images
        else None
    )
    if train is None:  # not asked for, or too large to keep in memory: decoded at every access
        train = apply_transforms(splits["train"], image_processor, train=True, **transforms)
    return BigDropTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=eval_sets,
        data_collator=DomainCollator(),
        compute_metrics=make_compute_metrics(),
        processing_class=inference_processor(image_processor, image_size),
    )


class _WallClock(TrainerCallback):
    """Writes into every checkpoint how long the run has taken so far, so that a resumed run reports the whole."""

    def __init__(self, start: float, before: float):
        self.start, self.before = start, before

    def elapsed(self) -> float:
        return self.before + time.time() - self.start

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if args.should_save and folder.is_dir():
            (folder / WALL_TIME_FILE).write_text(json.dumps({"seconds": self.elapsed()}))


def _seconds_before(checkpoint: str | None) -> float:
    path = Path(checkpoint) / WALL_TIME_FILE if checkpoint else None
    if path is None or not path.is_file():
        return 0.0
    try:
        return float(json.loads(path.read_text())["seconds"])
    except (ValueError, KeyError, TypeError):
        return 0.0


def run_experiment(
    arguments: ExperimentArguments,
    *,
    checkpoint: str | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> RunResults:
    """Trains one model with `arguments.data.test_domains` held out and writes its output folder.

    Args:
        arguments (`ExperimentArguments`): checked arguments (`check_experiment_arguments`).
        checkpoint (`str | None`, *optional*): the checkpoint to resume from (`checkpoint_to_resume`).
        callbacks (`Sequence[TrainerCallback]`, *optional*): further callbacks of the run's Trainer (e.g. a timer:
            `benchmarks/run_throughput.py`).

    Raises:
        `UsageError`: another run is writing into the same `output_dir` (the folder is locked for the run's
            lifetime: `outputs.output_dir_lock`).
    """
    locked = (
        output_dir_lock(arguments.training.output_dir) if arguments.training.should_save else nullcontext()
    )
    with locked:
        return _train_and_write(arguments, checkpoint, callbacks)


def _train_and_write(
    arguments: ExperimentArguments, checkpoint: str | None, callbacks: Sequence[TrainerCallback]
) -> RunResults:
    """`run_experiment`'s work, with the output folder locked."""
    start = time.time()
    training = arguments.training
    set_seed(training.seed)
    if training.should_save:
        prepare_output_dir(training.output_dir, checkpoint, arguments)
    with training.main_process_first(desc="preparing data and backbone"):
        splits = load_splits(arguments.data, training.seed)
        image_processor = load_backbone_image_processor(arguments.model.backbone)
    class_names = splits["train"].features["label"].names
    train_domains, test_domains = _domains_in(splits["train"]), _domains_in(splits["test"])
    logger.info("training domains %s, held out %s, %d classes", train_domains, test_domains, len(class_names))

    model = BigDropForImageClassification.from_backbone(
        arguments.model.backbone,  # its own name (an embedded one too) is the model's name_or_path, peft's base
        num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        backbone_name_or_path=arguments.model.backbone,
        preprocessing=evaluation_preprocessing(image_processor, training_image_size(arguments.data)),
        **arguments.model.config_kwargs(),
    )
    lora = arguments.model.lora_kwargs()
    if lora is not None:  # adapters in the backbone, the head trained in full (hf_bigdrop.lora)
        model = add_lora(model, **lora)
    trainer = build_trainer(model, splits, image_processor, arguments.data, training)
    clock = _WallClock(start, _seconds_before(checkpoint))
    trainer.add_callback(clock)
    for callback in callbacks:
        trainer.add_callback(callback)
    trainer.train(resume_from_checkpoint=checkpoint)
    if not trainer.select_models():  # never evaluated during training (eval_strategy "no"): the last model
        trainer.evaluate()
    results = RunResults.from_trainer(
        trainer,
        dataset=arguments.data.dataset,
        backbone=arguments.model.backbone,
        train_domains=train_domains,
        test_domains=test_domains,
        arguments=arguments.as_dict(),
        wall_time_s=clock.elapsed(),
    )
    write_run_outputs(trainer, results)
    return results


def write_run_outputs(trainer: BigDropTrainer, results: RunResults) -> None:
    """Writes the selected model (with its code and image processor; a LoRA model merged, its adapter in `adapter/`)
    and the model card, then `results.json` last (atomically: the finished marker); with `push_to_hub`, then pushes
    the folder once."""
    args = trainer.args
    if is_lora_model(trainer.model):
        # The adapter (with the trained head) in `adapter/`, and the merged model as the folder's BigDrop
        # checkpoint: pipeline, trust_remote_code, soups and combinations read it like any run's.
        if trainer.is_world_process_zero():
            save_adapter(trainer.model, Path(args.output_dir) / ADAPTER_FOLDER)
        trainer.model = merge_lora(trainer.model)
    # `_internal_call`: the Trainer pushes on a user's `save_model`; the push comes once, below, after results.json.
    trainer.save_model(args.output_dir, _internal_call=True)
    if trainer.is_world_process_zero():
        # The repository the push goes to, as the Trainer resolved it (`<user>/<output_dir's name>` without
        # --hub_model_id); not pushed: the card's snippet loads the folder.
        model_id = getattr(trainer, "hub_model_id", None) if args.push_to_hub else args.hub_model_id
        write_model_card(results, args.output_dir, model_id=model_id)
        write_atomically(results, args.output_dir)
    if args.push_to_hub:  # the Trainer pushed nothing before (`hub_strategy="end"`, checks.py)
        held_out = ", ".join(results.test_domains)
        push_output_dir(trainer, f"hf_bigdrop: {results.dataset}, held out {held_out}")


def folder_name(name: str, what: str) -> str:
    """`name` (read from data: a domain) if it can name a folder inside another one, else a `UsageError`: a name from
    data never writes outside its run's folder."""
    if leaves_folder(name):
        raise UsageError(
            f"the {what} name {name!r} cannot name a folder inside --output_dir (it is empty, '.', '..' or holds a "
            "path separator): rename it in the data"
        )
    return name


def held_out_domain_sets(arguments: ExperimentArguments) -> list[list[str]]:
    """The held-out domain set of each run: `test_domains`, or with `all` each domain in turn."""
    data = arguments.data
    if not data.leave_one_domain_out:
        return [list(data.test_domains)]
    info = registered_dataset(data.dataset) if data.data_dir is None else None
    if info is not None:
        return [[domain.name] for domain in info.domains]
    with arguments.training.main_process_first():
        probe = load_domain_dataset(
            data.dataset, test_domains=[], data_dir=data.data_dir, domain_column=data.domain_column
        )
    return [[domain] for domain in domain_names(probe["train"])]


def run_experiments(arguments: ExperimentArguments) -> list[RunResults]:
    """Checks the arguments, then runs one experiment, or one per held-out domain with `test_domains` = `all` (each
    in a sub-folder of `output_dir` named after it, and its own Hub repository).

    Raises:
        `UsageError`: a bad argument, found before any data or model is loaded.
    """
    check_experiment_arguments(arguments)
    training = arguments.training
    required = tuple(checkpoint_files(training))
    if not arguments.data.leave_one_domain_out:
        checkpoint = checkpoint_to_resume(
            training.output_dir, training.resume_from_checkpoint, arguments.run, required_files=required
        )
        check_resumed_arguments(checkpoint, arguments)
        _every_process_decided(training)
        return [run_experiment(arguments, checkpoint=checkpoint)]

    resuming = training.resume_from_checkpoint in RESUME_LATEST
    jobs = []
    for domains in held_out_domain_sets(arguments):
        folder = os.path.join(training.output_dir, folder_name(domains[0], "domain"))
        hub_id = f"{training.hub_model_id or Path(training.output_dir).name}-{domains[0]}"
        job_training = copy.copy(
            training
        )  # not `replace`: TrainingArguments must not run __post_init__ twice
        job_training.output_dir, job_training.hub_model_id = folder, hub_id if training.push_to_hub else None
        job = replace(arguments, data=replace(arguments.data, test_domains=domains), training=job_training)
        if resuming and is_finished(folder):
            jobs.append((job, None, True))
            continue
        checkpoint = checkpoint_to_resume(
            folder,
            training.resume_from_checkpoint,
            arguments.run,
            required_files=required,
            missing_ok=resuming,
        )
        check_resumed_arguments(checkpoint, job)
        jobs.append((job, checkpoint, False))
    _every_process_decided(training)
    runs = []
    for job, checkpoint, finished in jobs:
        if finished:
            logger.info(
                "held-out %s finished before the run stopped: keeping its results", job.data.test_domains
            )
            runs.append(RunResults.load(job.training.output_dir))
        else:
            runs.append(run_experiment(job, checkpoint=checkpoint))
    return runs


def _every_process_decided(training: BigDropTrainingArguments) -> None:
    """Waits until every process has read the output folder (what to resume, whether an earlier run is there): the
    main process then starts writing into it (`arguments.json`), which the others must not mistake for an earlier
    run. A no-op in one process."""
    if training.world_size > 1:  # `world_size` sets up the devices, and with them `distributed_state`
        training.distributed_state.wait_for_everyone()


def _domains_in(split: datasets.Dataset) -> list[str]:
    names = domain_names(split)
    return sorted(names[i] for i in np.unique(domain_ids(split)))
