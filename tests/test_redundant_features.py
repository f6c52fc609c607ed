"""examples/redundant_features.py: a small, deterministic version of the linear experiment."""

from __future__ import annotations

import csv

import pytest
import torch
from helpers import load_example

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
        (["--shared_noises", "-1"], "shared_noises"),
    ],
)
def test_bad_arguments_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        redundant_features.main(argv)
