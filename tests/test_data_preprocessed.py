"""Evaluation images decoded and resized once (`hf_bigdrop.data.preprocessed`): the same pixels, the same metrics."""

from __future__ import annotations

from functools import partial

import datasets
import pytest
import torch
from helpers import PROCESSOR, colour_dataset, make_args, tiny_flags
from tiny_models import tiny_model

from hf_bigdrop import BigDropTrainer
from hf_bigdrop.data import DomainCollator, apply_transforms
from hf_bigdrop.data.preprocessed import (
    DecodedImages,
    PreprocessedImages,
    decode_for_training,
    preprocess_for_evaluation,
)
from hf_bigdrop.experiment import parse_experiment_arguments, run_experiments
from hf_bigdrop.metrics import make_compute_metrics


def test_the_same_pixels_as_the_lazy_evaluation_transform():
    split = colour_dataset({"art": 5, "photo": 4}, seed=3)
    lazy = apply_transforms(split, PROCESSOR, train=False, image_size=12)
    cached = preprocess_for_evaluation(split, PROCESSOR, image_size=12)
    assert isinstance(cached, PreprocessedImages) and len(cached) == len(split) == 9
    assert cached.pixels.dtype == torch.uint8 and tuple(cached.pixels.shape) == (9, 3, 12, 12)
    for index in range(len(split)):
        expected, got = lazy[index], cached[index]
        assert torch.equal(expected["pixel_values"], got["pixel_values"])  # bitwise
        assert (expected["labels"], expected["domain_ids"]) == (got["labels"], got["domain_ids"])
    batch = cached.__getitems__([8, 0, 3])
    assert [item["labels"] for item in batch] == [split[i]["label"] for i in (8, 0, 3)]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="Unknown recipe 'fancy'"):
        preprocess_for_evaluation(colour_dataset({"art": 2}), PROCESSOR, recipe="fancy")
    with pytest.raises(ValueError, match="pixels must be uint8 of shape"):
        PreprocessedImages(torch.zeros(2, 3, 4, 4), [0, 1], [0, 0], lambda pixels: pixels)


def test_evaluation_metrics_are_unchanged(tmp_path):
    splits = datasets.DatasetDict(
        validation=colour_dataset({"art": 8, "photo": 12}, seed=1),
        test=colour_dataset({"sketch": 10}, seed=2),
    )
    metrics = []
    lazy = partial(apply_transforms, image_processor=PROCESSOR, train=False)
    for prepare in (lazy, partial(preprocess_for_evaluation, image_processor=PROCESSOR)):
        eval_sets = {
            "val_art": prepare(splits["validation"].select(range(8))),
            "test_sketch": prepare(splits["test"]),
        }
        torch.manual_seed(0)
        trainer = BigDropTrainer(
            model=tiny_model(classifier_init="normal"),
            args=make_args(tmp_path, per_device_eval_batch_size=4, dataloader_num_workers=1),
            eval_dataset=eval_sets,
            data_collator=DomainCollator(),
            compute_metrics=make_compute_metrics(),
        )
        if prepare is not lazy:
            assert trainer.get_eval_dataloader("val_art").num_workers == 0  # no worker for a tensor slice
        result = trainer.evaluate()
        metrics.append({k: v for k, v in result.items() if k.endswith(("_accuracy", "_loss"))})
    assert metrics[0] == metrics[1]


@pytest.mark.parametrize("recipe", ["domainbed", "domainbed_batched"])
def test_training_images_decoded_once_give_the_same_batches(recipe):
    split = colour_dataset({"art": 6, "photo": 5}, seed=4)
    lazy = apply_transforms(split, PROCESSOR, train=True, image_size=12, recipe=recipe)
    decoded = decode_for_training(split, PROCESSOR, image_size=12, recipe=recipe)
    assert isinstance(decoded, DecodedImages) and list(decoded.domain_ids) == split["domain"]
    order = [7, 0, 3, 10]
    torch.manual_seed(5)
    expected = lazy.__getitems__(order)
    torch.manual_seed(5)
    got = decoded.__getitems__(order)
    for a, b in zip(expected, got):
        assert torch.equal(a["pixel_values"], b["pixel_values"]) and a["labels"] == b["labels"]
    # Too large to keep: nothing decoded, the caller falls back to decoding at every access.
    assert decode_for_training(split, PROCESSOR, max_bytes=100) is None


@pytest.mark.parametrize("augmentation", ["domainbed", "domainbed_batched"])
def test_a_run_is_the_same_with_and_without_images_kept_in_memory(backbone, tmp_path, augmentation):
    results = {}
    for keep in ("True", "False"):
        flags = [
            "--decode_train_images",
            keep,
            "--preprocess_eval_images",
            keep,
            "--dataloader_num_workers",
            "1",
            "--augmentation",
            augmentation,
        ]
        [run] = run_experiments(parse_experiment_arguments(tiny_flags(backbone, tmp_path / keep, *flags)))
        results[keep] = run
    kept, lazy = results["True"], results["False"]
    assert kept.arguments["data"]["augmentation"] == augmentation
    assert kept.methods == lazy.methods  # the same steps selected, the same accuracies, bit for bit
    curves = [
        [{k: v for k, v in entry.items() if k.endswith(("_accuracy", "_loss"))} for entry in run.history]
        for run in (kept, lazy)
    ]
    # Every evaluation's per-domain losses and accuracies, bit for bit.
    assert curves[0] == curves[1] and any(key.endswith("_loss") for entry in curves[0] for key in entry)


def test_measuring_the_fit_changes_nothing_else(backbone, tmp_path):
    runs = [
        run_experiments(parse_experiment_arguments(tiny_flags(backbone, tmp_path / str(n), *flags)))[0]
        for n, flags in enumerate((["--fit_examples_per_domain", "0"], ["--fit_examples_per_domain", "8"]))
    ]
    without, with_fit = (run.methods["live"] for run in runs)
    assert not without.fit_accuracy and set(with_fit.fit_accuracy) == set(runs[1].train_domains)
    # Evaluation runs on a fork of the random stream: the same training (every evaluation of it), the same model.
    curves = []
    for run in runs:
        by_step: dict[int, dict] = {}
        for entry in run.history:
            kept = {
                k: v
                for k, v in entry.items()
                if k.startswith(("eval_val_", "eval_test_")) and k.endswith(("_accuracy", "_loss"))
            }
            by_step.setdefault(entry["step"], {}).update(kept)
        curves.append(by_step)
    assert curves[0] == curves[1] and sorted(curves[0]) == [3, 6]
    assert (without.selected_step, without.test_accuracy) == (with_fit.selected_step, with_fit.test_accuracy)
