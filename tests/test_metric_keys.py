"""One builder and one parser for every evaluation metric key."""

from __future__ import annotations

import pytest

from hf_bigdrop.metric_keys import (
    MetricKey,
    domain_accuracies,
    eval_set_name,
    method_prefix,
    metric_key,
    parse_eval_set_name,
    parse_metric_key,
    read_accuracies,
)


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("eval_val_photo_accuracy", MetricKey("val", "photo")),
        ("eval_val_accuracy", MetricKey("val")),
        ("eval_test_worst_accuracy", MetricKey("test", None, "worst_accuracy")),
        ("eval_wa_val_art_painting_accuracy", MetricKey("val", "art_painting", method="trajectory_wa")),
        (
            "eval_ens_test_openmoji-line_accuracy",
            MetricKey("test", "openmoji-line", method="trajectory_ensemble"),
        ),
        ("eval_oracle_real_world_loss", MetricKey("oracle", "real_world", "loss")),
        (
            "eval_wa_test_sketch_samples_per_second",
            MetricKey("test", "sketch", "samples_per_second", "trajectory_wa"),
        ),
    ],
)
def test_parse_inverts_build(key, parsed):
    assert parse_metric_key(key) == parsed
    assert str(parsed) == key
    assert metric_key(parsed.group, parsed.domain, parsed.statistic, method=parsed.method) == key


@pytest.mark.parametrize(
    "key",
    ["epoch", "eval_loss", "eval_runtime", "loss", "eval_train_photo_accuracy", "eval_val", "eval_val_"],
)
def test_other_keys_are_not_metric_keys(key):
    assert parse_metric_key(key) is None


def test_prefixes_and_set_names():
    assert metric_key("val", prefix="") == "val_accuracy"
    assert parse_metric_key("val_accuracy", prefix="") == MetricKey("val", prefix="")
    assert parse_metric_key("eval_val_accuracy", prefix="") is None  # 'eval' is not a group
    assert metric_key("test", "b", prefix="test") == "test_test_b_accuracy"
    assert method_prefix("live") == "eval" and method_prefix("trajectory_wa") == "eval_wa"
    assert method_prefix("trajectory_ensemble", "test") == "test_ens"
    assert eval_set_name("val", "art_painting") == "val_art_painting"
    assert parse_eval_set_name("oracle_real_world") == ("oracle", "real_world")
    assert parse_eval_set_name("photo") is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"group": "train"}, "unknown evaluation group 'train'.*'val', 'test', 'oracle'"),
        ({"group": "val", "method": "soup"}, "unknown method 'soup'.*'trajectory_wa'"),
        ({"group": "val", "statistic": "loss"}, "unknown statistic 'loss' for a summary"),
        ({"group": "val", "domain": "a", "statistic": "worst_accuracy"}, "for a domain"),
    ],
)
def test_bad_names_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        metric_key(**kwargs)


def test_reading_accuracies_per_method():
    metrics = {
        "eval_val_a_accuracy": 0.5,
        "eval_val_a_loss": 2.0,
        "eval_wa_val_a_accuracy": 0.6,
        "eval_val_accuracy": 0.5,
        "eval_val_worst_accuracy": 0.5,
        "epoch": 1.0,
    }
    assert read_accuracies(metrics) == {("val", "a"): 0.5, ("val", None): 0.5}
    assert domain_accuracies(metrics, "trajectory_wa") == {"val": {"a": 0.6}}
