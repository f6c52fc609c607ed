#!/usr/bin/env python
"""Soups and ensembles of finished runs (e.g. the seeds of one recipe), evaluated like a run.

Usage:

    python examples/combine_runs.py runs/p0.9-seed0 runs/p0.9-seed1 runs/p0.9-seed2 --output_dir runs/p0.9-combined

The runs must share dataset, backbone, label set and held-out domains. Writes to `output_dir`:

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

import argparse
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from run_ood import DataArguments, build_trainer, load_splits
from transformers import AutoImageProcessor

from hf_bigdrop.backbones import resolve_backbone_name
from hf_bigdrop.metric_keys import domain_accuracies, metric_key, parse_eval_set_name
from hf_bigdrop.modelcard import write_model_card
from hf_bigdrop.results import MethodResults, RunResults
from hf_bigdrop.soups import check_compatible_runs, ensemble_runs, greedy_soup, uniform_soup
from hf_bigdrop.training import BigDropTrainingArguments

logger = logging.getLogger("combine_runs")
METHODS = ("greedy_soup", "uniform_soup", "run_ensemble")


class Evaluator:
    """Evaluates any model on the per-domain sets of the first run's splits, as its trainer did."""

    def __init__(self, first: RunResults, output_dir: Path, batch_size: int):
        self.data_args = DataArguments(**first.arguments["data"])
        self.splits = load_splits(self.data_args, first.seed)
        self.image_processor = AutoImageProcessor.from_pretrained(resolve_backbone_name(first.backbone))
        self.args = BigDropTrainingArguments(
            output_dir=str(output_dir),
            per_device_eval_batch_size=batch_size,
            report_to=[],
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
        )

    def _trainer(self, model):
        return build_trainer(model, self.splits, self.image_processor, self.data_args, self.args)

    def evaluate(self, model) -> MethodResults:
        metrics = self._trainer(model).evaluate()
        accuracy = domain_accuracies(metrics)
        return MethodResults(
            None, accuracy.get("val", {}), accuracy.get("test", {}), accuracy.get("oracle", {})
        )

    def validation_accuracy(self, model) -> float:
        """The mean training-domain validation accuracy: the only thing the greedy soup may look at."""
        trainer = self._trainer(model)
        validation = {
            name: data for name, data in trainer.eval_dataset.items() if parse_eval_set_name(name)[0] == "val"
        }
        return trainer.evaluate(eval_dataset=validation)[metric_key("val")]


def combine(run_dirs: list[str], output_dir: Path, methods=METHODS, batch_size: int = 64) -> RunResults:
    """Builds, evaluates and saves the requested combinations of `run_dirs`; returns their results."""
    start = time.time()
    folders = check_compatible_runs(run_dirs)
    runs = [RunResults.load(folder) for folder in folders]
    first = runs[0]
    output_dir.mkdir(parents=True, exist_ok=True)
    evaluator = Evaluator(first, output_dir, batch_size)
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
        soup.save_pretrained(output_dir / "uniform_soup")
        processor.save_pretrained(output_dir / "uniform_soup")
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
        primary_method=next(m for m in ("greedy_soup", "uniform_soup", "run_ensemble") if m in records),
        selection=first.selection,
        freeze_batchnorm=first.freeze_batchnorm,
        optimizer=first.optimizer,
        learning_rate=first.learning_rate,
        max_steps=first.max_steps,
        holdout_fraction=first.holdout_fraction,
        members=[str(folder) for folder in folders],
        wall_time_s=time.time() - start,
        arguments={
            "combine": {"runs": [str(f) for f in folders], "methods": list(methods)},
            **first.arguments,
        },
        versions=first.versions,
    )
    results.save(output_dir)
    if results.primary_method != "run_ensemble":  # the folder holds a soup: it gets a card like any model
        write_model_card(results, output_dir)
    if "uniform_soup" in records:
        only_uniform = {
            "methods": {"uniform_soup": records["uniform_soup"]},
            "primary_method": "uniform_soup",
        }
        uniform = RunResults(**{**asdict(results), **only_uniform})
        uniform.save(output_dir / "uniform_soup")
        write_model_card(uniform, output_dir / "uniform_soup")
    return results


def main(argv: list[str] | None = None) -> RunResults:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="output_dir of each finished run")
    parser.add_argument("--output_dir", required=True, help="where the soups and results.json go")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--batch_size", type=int, default=64, help="evaluation batch size")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO, datefmt="%H:%M:%S")
    try:
        results = combine(args.runs, Path(args.output_dir), args.methods, args.batch_size)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"combine_runs.py: error: {error}\n")
    for name, record in results.methods.items():
        print(
            f"{name}: mean o.o.d. {100 * record.mean_test_accuracy:.1f}%, "
            f"mean validation {100 * record.mean_validation_accuracy:.1f}%"
        )
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
