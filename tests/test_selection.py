"""Model selection strategies, applied alike to the live model, the weight average and the ensemble."""

from __future__ import annotations

import math

import pytest
from helpers import make_args

from hf_bigdrop.metric_keys import accuracies_by_step
from hf_bigdrop.selection import SELECTION_RULES, across_runs, select, select_all, selection_rule

# Three evaluations, logged the way BigDropTrainer logs them: one entry per set, then the group means.
HISTORY = [
    {"loss": 1.0, "step": 1},
    {"eval_val_a_accuracy": 0.5, "eval_wa_val_a_accuracy": 0.4, "step": 1},
    {"eval_test_b_accuracy": 0.9, "eval_oracle_b_accuracy": 0.2, "step": 1},
    {"eval_val_accuracy": 0.5, "eval_wa_val_accuracy": 0.4, "eval_oracle_accuracy": 0.2, "step": 1},
    {"eval_val_a_accuracy": 0.7, "eval_wa_val_a_accuracy": 0.6, "eval_ens_val_a_accuracy": 0.6, "step": 2},
    {"eval_test_b_accuracy": 0.1, "eval_oracle_b_accuracy": 0.8, "step": 2},
    {"eval_val_accuracy": 0.7, "eval_wa_val_accuracy": 0.6, "eval_oracle_accuracy": 0.8, "step": 2},
    {"eval_ens_val_accuracy": 0.6, "step": 2},
    {"eval_val_a_accuracy": 0.7, "eval_wa_val_a_accuracy": 0.9, "eval_ens_val_a_accuracy": 0.7, "step": 3},
    {"eval_test_b_accuracy": 0.3, "eval_oracle_b_accuracy": 0.5, "step": 3},
    {"eval_val_accuracy": 0.7, "eval_wa_val_accuracy": 0.9, "eval_ens_val_accuracy": 0.7, "step": 3},
    {"eval_oracle_accuracy": 0.5, "eval_val_worst_accuracy": 0.7, "step": 3},
]


def test_each_method_reads_only_its_own_keys():
    live = accuracies_by_step(HISTORY)
    assert sorted(live) == [1, 2, 3]
    assert live[2][("val", "a")] == 0.7 and live[3][("val", None)] == 0.7
    assert accuracies_by_step(HISTORY, "trajectory_wa")[3][("val", None)] == 0.9
    # The worst-domain summary is not an accuracy of a domain or the mean.
    assert ("val", "worst") not in live[3] and len(live[3]) == 5


def test_training_domain_validation_keeps_the_first_best_step():
    live = select(HISTORY)
    assert live.step == 2  # step 3 ties at 0.7: a later step must strictly improve
    assert live.accuracy == {"val": {"a": 0.7}, "test": {"b": 0.1}, "oracle": {"b": 0.8}}
    assert select(HISTORY, method="trajectory_wa").step == 3
    assert select(HISTORY, method="trajectory_ensemble").step == 3


def test_oracle_and_last_step():
    assert select(HISTORY, "oracle").step == 2
    assert select(HISTORY, "last_step").step == 3
    assert select(HISTORY, "last_step", method="trajectory_ensemble").accuracy == {"val": {"a": 0.7}}
    no_oracle = [e for e in HISTORY if not any("oracle" in k for k in e)]
    with pytest.raises(ValueError, match="needs test_holdout_fraction"):
        select(no_oracle, "oracle")


def test_unknown_names_and_missing_methods():
    with pytest.raises(ValueError, match=r"unknown selection strategy 'best'.*'last_step'"):
        select(HISTORY, "best")
    with pytest.raises(ValueError, match="unknown method 'soup'"):
        select(HISTORY, method="soup")
    only_live = [{k: v for k, v in e.items() if not k.startswith(("eval_wa", "eval_ens"))} for e in HISTORY]
    assert set(select_all(only_live)) == {"live"}
    assert set(select_all(HISTORY)) == {"live", "trajectory_wa", "trajectory_ensemble"}


def test_training_arguments_derive_and_check_the_strategy(tmp_path):
    steps = dict(eval_strategy="steps", save_strategy="steps")
    assert make_args(tmp_path).selection_strategy == "last_step"
    best = make_args(tmp_path, **steps, load_best_model_at_end=True)
    assert (best.selection_strategy, best.metric_for_best_model) == (
        "training_domain_validation",
        "val_accuracy",
    )
    oracle = make_args(tmp_path, **steps, load_best_model_at_end=True, selection_strategy="oracle")
    assert oracle.metric_for_best_model == "oracle_accuracy"
    with pytest.raises(ValueError, match="selects a checkpoint: set load_best_model_at_end"):
        make_args(tmp_path, selection_strategy="training_domain_validation")
    with pytest.raises(ValueError, match="keeps the last model"):
        make_args(tmp_path, **steps, load_best_model_at_end=True, selection_strategy="last_step")
    with pytest.raises(
        ValueError, match="weight average and the ensemble are selected from the evaluation log"
    ):
        make_args(tmp_path, **steps, load_best_model_at_end=True, metric_for_best_model="wa_val_accuracy")


def test_one_rule_scores_runs_across_hyperparameters():
    """The rule that picks a run's steps also picks a sweep's setting: by the same group, never the test."""
    validation = SELECTION_RULES["training_domain_validation"]
    accuracy = {"val": {"a": 0.5, "b": 0.7}, "test": {"c": 0.9}, "oracle": {"c": 0.2}}
    assert validation.score(accuracy) == pytest.approx(0.6)
    assert SELECTION_RULES["oracle"].score(accuracy) == pytest.approx(0.2)
    assert validation.score({"val": {"a": float("nan")}}) == -math.inf  # never chosen
    with pytest.raises(
        ValueError, match="oracle selection reads the 'oracle' accuracy.*test_holdout_fraction"
    ):
        SELECTION_RULES["oracle"].score({"val": {"a": 0.5}})
    with pytest.raises(ValueError, match="chooses no setting among runs; choose one of"):
        SELECTION_RULES["last_step"].score(accuracy)
    assert across_runs() == ["training_domain_validation", "oracle"]
    with pytest.raises(
        ValueError, match=r"unknown selection strategy 'best'; choose one of \['training_domain"
    ):
        selection_rule("best")
