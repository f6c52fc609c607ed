"""examples/redundant_features_pretrained.py: the planted colour cue, and a tiny run on the library's path."""

from __future__ import annotations

import csv
import math

import datasets
import numpy as np
import pytest
import torch
from helpers import load_example
from PIL import Image

from hf_bigdrop.data import STYLES_CLASSES, STYLES_DOMAINS

experiment = load_example("redundant_features_pretrained")
NUM_CLASSES = len(STYLES_CLASSES)
SIZE = 16


def _split(domains: list[str], per_class: int, seed: int) -> datasets.Dataset:
    """Random 16-px images of the 11 `styles` classes, `per_class` per class and domain."""
    rng = np.random.default_rng(seed)
    rows = [
        (label, STYLES_DOMAINS.index(d))
        for d in domains
        for label in range(NUM_CLASSES)
        for _ in range(per_class)
    ]
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=list(STYLES_CLASSES)),
            "domain": datasets.ClassLabel(names=list(STYLES_DOMAINS)),
        }
    )
    return datasets.Dataset.from_dict(
        {
            "image": [Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)) for _ in rows],
            "label": [label for label, _ in rows],
            "domain": [domain for _, domain in rows],
        },
        features=features,
    )


def _splits() -> datasets.DatasetDict:
    """A stand-in for `styles` with sketch held out: 3 training styles, 11 classes."""
    training = ["photo", "cartoon", "painting"]
    return datasets.DatasetDict(
        train=_split(training, 3, 0), validation=_split(training, 1, 1), test=_split(["sketch"], 2, 2)
    )


@pytest.fixture(scope="module")
def splits() -> datasets.DatasetDict:
    return _splits()


def _args(backbone, tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path),
        backbone=str(backbone),
        image_size=SIZE,
        cue_width=2,
        seeds=[0],
        dropout_rates=[0.9],
        cue_agreements=[0.8],
        max_steps=4,
        eval_steps=2,
        per_domain_batch_size=2,
        learning_rate=1e-3,
        probe_steps=5,
        use_cpu=True,
    )
    return experiment.CueArguments(**(values | overrides))


def _frame_classes(dataset: datasets.Dataset, colours: torch.Tensor) -> torch.Tensor:
    """The palette row nearest to every image's frame (its four corners agree), read from the pixels."""
    pixels = torch.stack([dataset[i]["pixel_values"] for i in range(len(dataset))])
    corners = pixels[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]  # (N, 3, 4)
    assert torch.allclose(corners, corners[:, :, :1].expand_as(corners))
    distances = torch.cdist(corners[:, :, 0], colours)
    return distances.argmin(1)


@pytest.mark.parametrize("agreement", [0.8, 0.9, 1.0])
def test_cue_agrees_with_the_label_in_exactly_the_asked_share(agreement):
    labels = torch.arange(1000) % NUM_CLASSES
    cues = experiment.draw_cues(labels, agreement, NUM_CLASSES, torch.Generator().manual_seed(0))
    assert (cues == labels).sum().item() == round(agreement * 1000)
    assert cues.min() >= 0 and cues.max() < NUM_CLASSES
    disagreeing = cues[cues != labels]
    if len(disagreeing):  # the wrong colours cover the other classes, not one favourite
        assert len(torch.unique(disagreeing)) == NUM_CLASSES


def test_no_cue_is_grey_and_flipped_cue_always_lies():
    labels = torch.arange(500) % NUM_CLASSES
    generator = torch.Generator().manual_seed(0)
    assert (experiment.draw_cues(labels, 0.0, NUM_CLASSES, generator) == experiment.NO_CUE).all()
    assert (experiment.flipped_cues(labels, NUM_CLASSES, generator) != labels).all()
    palette = experiment.cue_palette(NUM_CLASSES)
    assert (
        palette.shape == (NUM_CLASSES + 1, 3) and len({tuple(c) for c in palette.tolist()}) == NUM_CLASSES + 1
    )
    assert palette[experiment.NO_CUE].tolist() == [128, 128, 128]


def test_frame_paints_the_border_only():
    pixels = torch.full((3, 8, 8), 7.0)
    framed = experiment.paint_frame(pixels, torch.tensor([1.0, 2.0, 3.0]), 2)
    assert (framed[:, 2:-2, 2:-2] == 7).all() and (pixels == 7).all()
    for border in (framed[:, :2, :], framed[:, -2:, :], framed[:, :, :2], framed[:, :, -2:]):
        assert (border == torch.tensor([1.0, 2.0, 3.0])[:, None, None]).all()


def test_the_cue_is_fixed_by_the_seed(splits):
    def cues(seed):
        return experiment.cue_columns(splits, 0.8, seed)["train", "as_trained"]["cue"]

    assert cues(0) == cues(0) and cues(0) != cues(1)


@pytest.mark.parametrize("agreement", [0.0, 0.8])
def test_training_images_carry_the_right_colour_in_the_right_share(backbone, tmp_path, splits, agreement):
    # through the whole training pipeline (augmentation, then the frame): read the colours back from the pixels
    run = experiment.Run(_args(backbone, tmp_path), splits, cue_agreement=agreement, seed=0)
    trainer = run.trainer(run.model(0.9), str(tmp_path / "run"))
    train = trainer.train_dataset
    palette = run.frame["palette"]
    colours = (palette.float() / 255 - torch.tensor(run.frame["mean"])) / torch.tensor(run.frame["std"])
    found = _frame_classes(train, colours)
    untransformed = run.conditions["train", "as_trained"]
    labels, cues = torch.tensor(list(untransformed["label"])), list(untransformed["cue"])
    assert found.tolist() == [c % (NUM_CLASSES + 1) for c in cues]
    if agreement == 0:
        assert (found == NUM_CLASSES).all()  # grey everywhere
    else:
        assert (found == labels).sum().item() == round(agreement * len(labels))
    validation = run.conditions["validation", "as_trained"]
    expected = {name: [] for name in trainer.eval_dataset}
    for domain, cue in zip(validation["domain"], validation["cue"]):
        expected[f"val_{STYLES_DOMAINS[domain]}"].append(cue % (NUM_CLASSES + 1))
    for name, dataset in trainer.eval_dataset.items():  # selection reads validation with the cue as trained
        assert _frame_classes(dataset, colours).tolist() == expected[name]


def test_measured_conditions_remove_and_flip_the_cue(backbone, tmp_path, splits):
    run = experiment.Run(_args(backbone, tmp_path), splits, cue_agreement=0.8, seed=0)
    colours = (run.frame["palette"].float() / 255 - torch.tensor(run.frame["mean"])) / torch.tensor(
        run.frame["std"]
    )
    labels = torch.tensor(splits["validation"]["label"])
    assert (_frame_classes(run.evaluation_set("validation", "no_cue"), colours) == NUM_CLASSES).all()
    flipped = _frame_classes(run.evaluation_set("validation", "flipped"), colours)
    assert (flipped != labels).all() and (flipped < NUM_CLASSES).all()


def test_head_units_counts_the_units_that_carry_the_head():
    classifier = torch.nn.Linear(10, NUM_CLASSES)
    features = torch.randn(200, 10)
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.weight[0, :3] = 10.0
    assert experiment.head_units(classifier, features) == 3
    with torch.no_grad():
        classifier.weight[:, :] = 1.0  # the same weight for every class changes no prediction
        classifier.weight[0, 5] = 2.0
    assert experiment.head_units(classifier, features) == 1


def test_tiny_grid_end_to_end_same_seed_same_numbers(backbone, tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "load_splits", lambda args: _splits())
    argv = ["--backbone", str(backbone), "--image_size", str(SIZE), "--cue_width", "2", "--seeds", "0"]
    argv += [
        "--dropout_rates",
        "0.9",
        "--max_steps",
        "4",
        "--eval_steps",
        "2",
        "--per_domain_batch_size",
        "2",
    ]
    argv += ["--probe_steps", "5", "--use_cpu", "true"]

    def rows(folder, cues):
        experiment.main(argv + ["--output_dir", str(folder), "--cue_agreements", *cues])
        with (folder / "results.csv").open() as handle:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]

    first = rows(tmp_path / "a", ["0", "0.8"])
    assert len(first) == 3  # 2 cue agreements, and the pretrained features' probe
    assert rows(tmp_path / "b", ["0.8"])[0] == first[1]  # the same run again: the same numbers
    for row in first[:2]:
        assert row["steps"] == "4" and int(row["selected_step"]) in (2, 4)
        for metric in experiment.METRICS[:-1]:
            assert 0 <= float(row[metric]) <= 100
        assert float(row["head_units"]) >= 1
    assert first[2]["setting"] == "pretrained features" and math.isnan(float(first[2]["validation"]))
    assert "| cue agreement | setting |" in (tmp_path / "a" / "results.md").read_text()
    run = tmp_path / "a" / "runs" / "cue0.8_p0.9_seed0"
    assert (run / "measurements.json").is_file() and (run / "trainer_state.json").is_file()
    assert not list(run.glob("checkpoint-*"))  # removed once measured


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cue_agreements", "1.5"], r"cue_agreements=\[1.5\] must be .* in \[0, 1\]"),
        (["--dropout_rates", "0", "1.0"], r"dropout_rates=.*in \[0, 1\)"),
        (["--test_domain", "mnist"], r"test_domain='mnist' is not one of \['photo', 'sketch'"),
        (
            ["--lr_scheduler_type", "cosine"],
            r"lr_scheduler_type='cosine' is not one of \['linear', 'constant'\]",
        ),
        (["--cue_width", "40"], "cue_width=40"),
        (["--eval_steps", "500"], "eval_steps=500 must be <= max_steps=300"),
        (["--max_steps", "0"], "must be > 0.*max_steps"),
    ],
)
def test_bad_arguments_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        experiment.main(argv)
