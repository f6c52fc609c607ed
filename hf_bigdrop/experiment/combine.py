"""Soups and ensembles of finished runs (e.g. the seeds of one recipe), evaluated like a run, written like a run.

`combine_runs(run_dirs, output_dir)` writes to `output_dir`:

- the greedy soup as a normal checkpoint (model-soups' recipe: runs sorted by training-domain validation accuracy,
  each kept only if it strictly improves the soup's training-domain validation accuracy);
- `uniform_soup/`, the uniform soup as a normal checkpoint;
- `results.json` in the format of a run's, with one record per method (`greedy_soup`, `uniform_soup`,
  `run_ensemble`: the mean of the runs' logits), and a model card.

Every model is evaluated on the first run's splits (its seed): when the runs differ in seed, some of those validation
examples were training examples of the other runs, so the soups' validation accuracy (and the greedy choice) is
optimistic; the held-out domains are unaffected.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import AutoImageProcessor

from ..backbones import load_backbone_image_processor
from ..checkpoints import safetensors_problem
from ..metric_keys import domain_accuracies, metric_key, parse_eval_set_name
from ..modelcard import write_model_card
from ..results import COMBINATION_METHODS, RESULTS_FILE, MethodResults, RunResults
from ..soups import check_compatible_runs, ensemble_runs, greedy_soup, uniform_soup
from ..training_args import BigDropTrainingArguments
from .arguments import DataArguments, UsageError
from .checks import output_folder_problems
from .outputs import prepare_output_dir, write_atomically
from .runner import build_trainer, load_splits

__all__ = ["UNIFORM_SOUP_FOLDER", "check_combination", "combine_runs"]

logger = logging.getLogger(__name__)

# Where the uniform soup goes inside the combination's folder (the greedy soup is the folder's own model).
UNIFORM_SOUP_FOLDER = "uniform_soup"


class _Evaluator:
    """Evaluates any model on the per-domain sets of the first run's splits, as its trainer did."""

    def __init__(self, first: RunResults, output_dir: Path, batch_size: int):
        self.data = DataArguments(**first.arguments["data"])
        self.splits = load_splits(self.data, first.seed)
        self.image_processor = load_backbone_image_processor(first.backbone)
        self.args = BigDropTrainingArguments(
            output_dir=str(output_dir),
            per_device_eval_batch_size=batch_size,
            report_to=[],
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
        )

    def _trainer(self, model):
        return build_trainer(model, self.splits, self.image_processor, self.data, self.args)

    def evaluate(self, model) -> MethodResults:
        accuracy = domain_accuracies(self._trainer(model).evaluate())
        return MethodResults(
            None,
            accuracy.get("val", {}),
            accuracy.get("test", {}),
            accuracy.get("oracle", {}),
            fit_accuracy=accuracy.get("fit", {}),
            known_accuracy=accuracy.get("known", {}),
        )

    def validation_accuracy(self, model) -> float:
        """The mean training-domain validation accuracy: the only thing the greedy soup may look at."""
        trainer = self._trainer(model)
        validation = {
            name: data for name, data in trainer.eval_dataset.items() if parse_eval_set_name(name)[0] == "val"
        }
        return trainer.evaluate(eval_dataset=validation)[metric_key("val")]


def check_combination(
    run_dirs: list[str | os.PathLike], output_dir: Path, methods, overwrite: bool = False
) -> list[Path]:
    """Refuses, before any work, a combination that cannot be made: unknown methods, runs that cannot be combined
    (`check_compatible_runs`), an output folder that is one of the runs (it would overwrite that run's model), or,
    without `overwrite`, an output folder that already holds anything (another run, an earlier combination).

    Returns:
        `list[Path]`: the runs' folders.

    Raises:
        `UsageError`: the first problem, in one line.
    """
    unknown = sorted(set(methods) - set(COMBINATION_METHODS))
    if unknown:
        raise UsageError(f"unknown method(s) {unknown}; choose among {list(COMBINATION_METHODS)}")
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"--output_dir {str(output_dir)!r} is a file, not a folder")
    for problem in output_folder_problems(output_dir, "--output_dir"):
        raise UsageError(problem)
    try:
        folders = check_compatible_runs(run_dirs)
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(" ".join(str(error).split())) from None
    for folder in folders:
        weights = folder / "model.safetensors"
        if weights.is_file():
            problem = safetensors_problem(weights)
        elif (folder / "model.safetensors.index.json").is_file():
            problem = None  # sharded weights: checked as they load
        else:
            problem = (
                "holds no model weights (model.safetensors): a run that finished keeps its selected model"
            )
        if problem is not None:
            raise UsageError(f"run {str(folder)!r}: {problem}")
    target = output_dir.resolve()
    for folder in folders:
        if folder.resolve() == target or folder.resolve() in target.parents:
            raise UsageError(
                f"--output_dir {str(output_dir)!r} is (or is inside) the run {str(folder)!r}: writing the "
                "combination there would overwrite that run's model; choose another folder"
            )
    if not overwrite and output_dir.is_dir() and any(output_dir.iterdir()):
        what = "a finished run" if (output_dir / RESULTS_FILE).is_file() else "files"
        raise UsageError(
            f"--output_dir {str(output_dir)!r} already holds {what}: choose an empty or new folder, or pass "
            "--overwrite_output_dir to replace what is there"
        )
    return folders


def combine_runs(
    run_dirs: list[str | os.PathLike],
    output_dir: str | os.PathLike,
    methods=COMBINATION_METHODS,
    batch_size: int = 64,
    overwrite: bool = False,
) -> RunResults:
    """Builds, evaluates and saves the requested combinations of finished runs; returns their results.

    Args:
        run_dirs (`list[str | os.PathLike]`): output folders of finished runs that share dataset, backbone, classes
            and domains.
        output_dir (`str | os.PathLike`): where the combination goes (never one of the runs).
        methods (*optional*): some of `greedy_soup`, `uniform_soup`, `run_ensemble` (default: all).
        batch_size (`int`, *optional*, defaults to `64`): evaluation batch size.
        overwrite (`bool`, *optional*, defaults to `False`): replace what `output_dir` holds; without it a folder
            that holds anything is refused (nothing a user made is deleted unasked).

    Raises:
        `UsageError`: see `check_combination`.
    """
    start = time.time()
    output_dir = Path(output_dir)
    folders = check_combination(run_dirs, output_dir, methods, overwrite)
    runs = [RunResults.load(folder) for folder in folders]
    first = runs[0]
    output_dir.mkdir(parents=True, exist_ok=True)
    prepare_output_dir(output_dir, checkpoint=None)  # an earlier combination's outputs go first
    shutil.rmtree(output_dir / UNIFORM_SOUP_FOLDER, ignore_errors=True)
    evaluator = _Evaluator(first, output_dir, batch_size)
    processor = AutoImageProcessor.from_pretrained(folders[0])
    records: dict[str, MethodResults] = {}
    if "greedy_soup" in methods:
        soup, kept = greedy_soup(folders, evaluator.validation_accuracy)
        logger.info("greedy soup keeps %d of %d runs: %s", len(kept), len(folders), [str(k) for k in kept])
        records["greedy_soup"] = evaluator.evaluate(soup)
        soup.save_pretrained(output_dir)
        processor.save_pretrained(output_dir)
    if "uniform_soup" in methods:
        soup = uniform_soup(folders)
        records["uniform_soup"] = evaluator.evaluate(soup)
        soup.save_pretrained(output_dir / UNIFORM_SOUP_FOLDER)
        processor.save_pretrained(output_dir / UNIFORM_SOUP_FOLDER)
    if "run_ensemble" in methods:
        records["run_ensemble"] = evaluator.evaluate(ensemble_runs(folders))
    results = RunResults(
        dataset=first.dataset,
        train_domains=first.train_domains,
        test_domains=first.test_domains,
        seed=None,
        backbone=first.backbone,
        dropout_rate=first.dropout_rate,
        methods=records,
        primary_method=next(m for m in COMBINATION_METHODS if m in records),
        selection=first.selection,
        freeze_batchnorm=first.freeze_batchnorm,
        optimizer=first.optimizer,
        learning_rate=first.learning_rate,
        max_steps=first.max_steps,
        holdout_fraction=first.holdout_fraction,
        backbone_license=first.backbone_license,
        members=[str(folder) for folder in folders],
        wall_time_s=time.time() - start,
        arguments={
            "combine": {"runs": [str(f) for f in folders], "methods": list(methods)},
            **first.arguments,
        },
        versions=first.versions,
    )
    if "uniform_soup" in records:
        only_uniform = {
            "methods": {"uniform_soup": records["uniform_soup"]},
            "primary_method": "uniform_soup",
        }
        uniform = RunResults(**{**asdict(results), **only_uniform})
        write_model_card(uniform, output_dir / UNIFORM_SOUP_FOLDER)
        write_atomically(uniform, output_dir / UNIFORM_SOUP_FOLDER)
    if results.primary_method != "run_ensemble":  # the folder holds a soup: it gets a card like any model
        write_model_card(results, output_dir)
    write_atomically(results, output_dir)  # the combination's finished marker, last
    return results
