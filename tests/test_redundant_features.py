"""examples/redundant_features.py: a small, deterministic version of the linear experiment."""

from __future__ import annotations

import csv

import pytest
import torch
from helpers import REPO, load_example

redundant_features = load_example("redundant_features")
SMALL = dict(num_train=500, num_test=4000, budgets=[300])


@pytest.fixture(autouse=True)
def _one_thread():
    # a 9-input linear model: a second thread only adds contention (10x slower on 2 busy cores)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run(shared_noise: float, dropout_rate: float, **overrides) -> dict[str, float]:
    args = redundant_features.LinearArguments(**(SMALL | overrides))
    return redundant_features.train_linear(
        args, shared_noise=shared_noise, seed=0, dropout_rate=dropout_rate, steps=args.budgets[0]
    )


def test_same_seed_same_numbers():
    assert _run(1.0, 0.5) == _run(1.0, 0.5)


def test_dropout_moves_weight_to_redundant_weak_features_and_survives_the_shift():
    erm, dropout = _run(1.0, 0.0), _run(1.0, 0.5)
    assert dropout["weak_share"] > erm["weak_share"] + 10
    assert dropout["shifted"] > erm["shifted"] + 3
    assert dropout["weak_only"] > erm["weak_only"]


def test_dropout_does_not_help_when_weak_features_are_independent_evidence():
    # the measured null of the independent regime: the weak features' share falls at large p, nothing is gained
    erm, dropout = _run(0.0, 0.0), _run(0.0, 0.9)
    assert dropout["weak_share"] < erm["weak_share"]
    assert dropout["shifted"] <= erm["shifted"] + 1


def test_bayes_rule_of_independent_features_weighs_each_by_margin_over_variance():
    args = redundant_features.LinearArguments(strong_noise=0.5, weak_noise=2.0)
    expected = torch.tensor([2 * 2.0 / 0.25] + [2 * 0.5 / 4.0] * args.num_weak)
    for rule in ("bayes", "each_alone"):  # independent features: fitting each alone is the joint optimum
        weight = redundant_features.reference_head(args, shared_noise=0.0, rule=rule)[1].weight.squeeze(0)
        torch.testing.assert_close(weight, expected)


def test_with_redundant_features_fitting_each_alone_leans_on_the_weak_ones():
    args = redundant_features.LinearArguments(**SMALL)
    _, test_sets = redundant_features.make_data(args, shared_noise=1.0, seed=0)
    share = {
        rule: redundant_features.measure(
            redundant_features.reference_head(args, shared_noise=1.0, rule=rule), test_sets, args
        )["weak_share"]
        for rule in ("bayes", "each_alone")
    }
    # margins (strong vs weak group): Bayes 2 x 64 vs 8 x 0.5 x 1 -> 3%; each alone 2 x 3.76 vs 8 x 0.5 x 0.94 -> 33%
    assert share["bayes"] == pytest.approx(100 * 4 / 132, abs=0.1)
    assert share["each_alone"] == pytest.approx(100 / 3, abs=0.1)


def test_main_writes_table_csv_and_figure(tmp_path):
    argv = ["--output_dir", str(tmp_path), "--seeds", "0", "1", "--dropout_rates", "0", "0.9"]
    argv += ["--budgets", "40", "--weight_decays", "0.1", "--num_test", "500", "--num_train", "100"]
    summary = redundant_features.main(argv)
    # 2 regimes x (2 dropout rates + 1 weight decay + 2 reference rules), each averaged over the 2 seeds
    assert len(summary) == 10 and all(entry["seeds"] == 2 for entry in summary)
    with (tmp_path / "results.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 20
    assert "| shared noise | steps | setting |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "redundant_features.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dropout_rates", "0", "1.0"], "outside"),
        (["--scale", "resnet"], "not one of"),
        (["--shared_noises", "-1"], "shared_noises"),
    ],
)
def test_bad_arguments_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        redundant_features.main(argv)


# ------------------------------------------------------------------------------------------- pretrained scale
NUM_CLASSES = 11


def _style_images(size: int = 32, per_class: int = 3) -> object:
    """Synthetic stand-in for the `styles` splits: random uint8 images, 3 training styles, 11 classes."""
    generator = torch.Generator().manual_seed(0)

    def split(num: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.randint(0, 256, (num, 3, size, size), dtype=torch.uint8, generator=generator)
        return images, torch.arange(num) % NUM_CLASSES

    train = split(3 * NUM_CLASSES * per_class)
    return redundant_features.StyleImages(
        splits={"train": train, "validation": split(NUM_CLASSES * 2), "test": split(NUM_CLASSES * 2)},
        num_classes=NUM_CLASSES,
        train_domains=torch.arange(len(train[1])) % 3,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    from tiny_models import save_classifier

    folder = tmp_path_factory.mktemp("tiny-timm")
    save_classifier("timm", folder)
    return str(folder)


def _pretrained_args(backbone: str, **overrides) -> object:
    values = dict(backbone=backbone, image_size=32, budgets=[2, 4], eval_steps=2, per_domain_batch_size=2)
    return redundant_features.PretrainedArguments(**(values | overrides))


@pytest.mark.parametrize("agreement", [0.8, 0.9, 1.0])
def test_cue_agrees_with_the_label_in_exactly_the_asked_share(agreement):
    labels = torch.arange(1000) % NUM_CLASSES
    cues = redundant_features.draw_cues(labels, agreement, NUM_CLASSES, torch.Generator().manual_seed(0))
    assert (cues == labels).sum().item() == round(agreement * 1000)
    assert cues.min() >= 0 and cues.max() < NUM_CLASSES
    disagreeing = cues[cues != labels]
    if len(disagreeing):  # the wrong colours cover the other classes, not one favourite
        assert len(torch.unique(disagreeing)) == NUM_CLASSES


def test_no_cue_is_grey_and_flipped_cue_always_lies():
    labels = torch.arange(500) % NUM_CLASSES
    generator = torch.Generator().manual_seed(0)
    assert (
        redundant_features.draw_cues(labels, 0.0, NUM_CLASSES, generator) == redundant_features.NO_CUE
    ).all()
    assert (redundant_features.flipped_cues(labels, NUM_CLASSES, generator) != labels).all()


def test_frames_paint_the_border_only():
    images = torch.full((2, 3, 16, 16), 7.0)
    palette = redundant_features.cue_palette(NUM_CLASSES)
    assert (
        palette.shape == (NUM_CLASSES + 1, 3) and len({tuple(c) for c in palette.tolist()}) == NUM_CLASSES + 1
    )
    framed = redundant_features.with_frames(images, torch.tensor([3, redundant_features.NO_CUE]), palette, 2)
    assert framed.shape == images.shape
    assert (framed[:, :, 2:-2, 2:-2] == 7).all()
    assert (framed[0, :, :2, :] == palette[3].float()[:, None, None]).all()
    assert (framed[1, :, :, -2:] == 128).all()  # grey: the cue removed


def test_augmentation_keeps_shapes_and_follows_its_seed():
    images = torch.rand(4, 3, 16, 16) * 255

    def augmented(seed: int) -> torch.Tensor:
        return redundant_features.augment(images, torch.Generator().manual_seed(seed))

    assert augmented(0).shape == images.shape
    torch.testing.assert_close(augmented(0), augmented(0))
    assert not torch.equal(augmented(0), augmented(1))


def test_head_units_counts_the_units_that_carry_the_head(tiny_backbone):
    args = _pretrained_args(tiny_backbone)
    model = redundant_features.pretrained_model(args, NUM_CLASSES, 0.0)
    run = redundant_features.PretrainedRun(args, _style_images(), cue_agreement=0.8, seed=0)
    features = torch.randn(200, model.num_features)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.weight[0, :3] = torch.tensor([10.0, 10.0, 10.0])
    assert run.head_units(model, features) == 3
    with torch.no_grad():
        model.classifier.weight[:, :] = 1.0  # the same weight for every class changes no prediction
        model.classifier.weight[0, 5] = 2.0
    assert run.head_units(model, features) == 1


def test_pretrained_run_is_deterministic_and_measures_every_budget(tiny_backbone):
    args, data = _pretrained_args(tiny_backbone), _style_images()

    def rows():
        result = redundant_features.train_pretrained(args, data, cue_agreement=0.8, dropout_rate=0.9, seed=0)
        return [{k: v for k, v in row.items() if k != "seconds"} for row in result]

    first = rows()
    assert first == rows()
    assert [row["steps"] for row in first] == [2, 4]
    assert all(0 < row["selected_step"] <= row["steps"] for row in first)
    assert all(0 <= row[m] <= 100 for row in first for m in redundant_features.PRETRAINED_METRICS[:-1])
    assert all(1 <= row["head_units"] <= 1280 for row in first)


def test_pretrained_scale_writes_table_csv_and_figure(tmp_path, tiny_backbone, monkeypatch):
    monkeypatch.setattr(redundant_features, "load_style_images", lambda args: _style_images())
    argv = ["--scale", "pretrained", "--output_dir", str(tmp_path), "--backbone", tiny_backbone]
    argv += ["--seeds", "0", "1", "--dropout_rates", "0", "0.9", "--cue_agreements", "0", "0.8"]
    argv += ["--budgets", "2", "3", "--eval_steps", "2", "--per_domain_batch_size", "2", "--image_size", "32"]
    summary = redundant_features.main(argv)
    # 2 cue settings x (2 rates x 2 budgets + the pretrained features' probe), each averaged over the 2 seeds
    assert len(summary) == 10 and all(entry["seeds"] == 2 for entry in summary)
    with (tmp_path / "results.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 20
    assert "| cue agreement | steps | setting |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "redundant_features_pretrained.png").stat().st_size > 10_000


@pytest.mark.slow
def test_runs_in_worker_processes_give_the_same_numbers(tiny_backbone, monkeypatch):
    # spawned workers import the example by name, as they do when it runs as a script
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    monkeypatch.setattr(redundant_features, "load_style_images", lambda args: _style_images())
    experiment = redundant_features.ExperimentArguments(
        scale="pretrained", seeds=[0], dropout_rates=[0.0, 0.9]
    )
    rows = {}
    for workers in (1, 2):
        args = _pretrained_args(tiny_backbone, cue_agreements=[0.8], budgets=[2], workers=workers)
        result = redundant_features.run_pretrained(experiment, args)
        rows[workers] = [{k: v for k, v in row.items() if k != "seconds"} for row in result]
    assert len(rows[1]) == 3 and rows[1] == rows[2]


@pytest.mark.slow
def test_style_images_are_decoded_once_as_uint8(tmp_path, tiny_backbone, monkeypatch):
    monkeypatch.setenv("HF_BIGDROP_CACHE", str(tmp_path))
    args = _pretrained_args(tiny_backbone, image_size=16, examples_per_class=1)
    data = redundant_features.load_style_images(args)
    images, labels = data.splits["train"]
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 16, 16)
    assert data.num_classes == NUM_CLASSES and len(labels) == len(data.train_domains) == 27  # 3 styles x 9
    assert len(data.splits["validation"][1]) == 6  # floor(11 x 0.2) per training style
    assert len(data.splits["test"][1]) == NUM_CLASSES  # sketch held out
    assert len(data.mean) == len(data.std) == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cue_agreements", "1.5"], "cue_agreements"),
        (["--budgets", "0"], "budgets"),
        (["--cue_width", "40"], "cue_width"),
    ],
)
def test_bad_pretrained_arguments_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        redundant_features.main(["--scale", "pretrained"] + argv)
