"""The per-domain accuracy `evaluate` module (loaded by path, offline) and the Trainer compute_metrics."""

from __future__ import annotations

import numpy as np
import pytest

from hf_bigdrop.metrics import (
    PER_DOMAIN_ACCURACY_PATH,
    load_per_domain_accuracy,
    make_compute_metrics,
    mean_domain_accuracy,
    per_domain_accuracy,
    worst_domain_accuracy,
)

PREDICTIONS = [0, 1, 2, 2, 1, 0, 0, 1]
REFERENCES = [0, 1, 1, 2, 1, 1, 0, 0]
DOMAINS = ["art", "art", "art", "photo", "photo", "photo", "photo", "sketch"]
# By hand: art 2/3, photo 3/4, sketch 0/1; overall 5/8.
EXPECTED = {
    "accuracy": 5 / 8,
    "accuracy_art": 2 / 3,
    "accuracy_photo": 3 / 4,
    "accuracy_sketch": 0.0,
    "mean_domain_accuracy": (2 / 3 + 3 / 4 + 0.0) / 3,
    "worst_domain_accuracy": 0.0,
}


def test_function_matches_hand_computation():
    assert per_domain_accuracy(PREDICTIONS, REFERENCES, DOMAINS) == pytest.approx(EXPECTED)
    assert per_domain_accuracy(PREDICTIONS, REFERENCES) == {"accuracy": 5 / 8}


def test_evaluate_module_loaded_by_path(tmp_path):
    assert (PER_DOMAIN_ACCURACY_PATH / "per_domain_accuracy.py").is_file()
    metric = load_per_domain_accuracy(experiment_id="test", cache_dir=str(tmp_path))
    assert metric.compute(predictions=PREDICTIONS, references=REFERENCES, domains=DOMAINS) == pytest.approx(
        EXPECTED
    )
    # Without domains anywhere: the accuracy alone.
    assert metric.compute(predictions=PREDICTIONS, references=REFERENCES) == {"accuracy": 5 / 8}


def test_domains_are_a_feature_added_with_each_batch(tmp_path):
    metric = load_per_domain_accuracy(experiment_id="batches", cache_dir=str(tmp_path))
    whole = metric.compute(predictions=PREDICTIONS, references=REFERENCES, domains=DOMAINS)
    # Two batches that split a domain (photo) between them give the result of one compute over all examples.
    metric.add_batch(predictions=PREDICTIONS[:4], references=REFERENCES[:4], domains=DOMAINS[:4])
    metric.add_batch(predictions=PREDICTIONS[4:], references=REFERENCES[4:], domains=DOMAINS[4:])
    batched = metric.compute()
    assert batched == whole == pytest.approx(EXPECTED)
    # One example at a time, with integer domain ids named at compute.
    ids = [{"art": 0, "photo": 1, "sketch": 2}[d] for d in DOMAINS]
    for p, r, d in zip(PREDICTIONS, REFERENCES, ids):
        metric.add(prediction=p, reference=r, domains=d)
    assert metric.compute(domain_names=["art", "photo", "sketch"]) == pytest.approx(EXPECTED)
    # Plain accuracy over batches without domains.
    metric.add_batch(predictions=PREDICTIONS, references=REFERENCES)
    assert metric.compute() == {"accuracy": 5 / 8}


def test_evaluate_module_refuses_domains_apart_from_their_predictions(tmp_path):
    metric = load_per_domain_accuracy(experiment_id="apart", cache_dir=str(tmp_path))
    metric.add_batch(predictions=PREDICTIONS[:4], references=REFERENCES[:4], domains=DOMAINS[:4])
    with pytest.raises(ValueError, match="`domains` go with their predictions"):
        metric.compute(domains=DOMAINS)
    metric = load_per_domain_accuracy(experiment_id="mixed", cache_dir=str(tmp_path))
    metric.add_batch(predictions=PREDICTIONS[:4], references=REFERENCES[:4])
    with pytest.raises(ValueError, match="some batches came with `domains` and others without"):
        metric.add_batch(predictions=PREDICTIONS[4:], references=REFERENCES[4:], domains=DOMAINS[4:])
    metric = load_per_domain_accuracy(experiment_id="partial", cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="1 of 2 examples have no domain"):
        metric.compute(predictions=[0, 1], references=[0, 1], domains=["art", None])


def test_compute_metrics_plain_and_with_domain_ids():
    logits = np.eye(3)[PREDICTIONS] + 0.1
    compute_metrics = make_compute_metrics(domain_names=["art", "photo", "sketch"])
    assert compute_metrics((logits, np.array(REFERENCES))) == pytest.approx({"accuracy": 5 / 8})
    ids = np.array([{"art": 0, "photo": 1, "sketch": 2}[d] for d in DOMAINS])
    assert compute_metrics(((logits,), (np.array(REFERENCES), ids))) == pytest.approx(EXPECTED)


def test_compute_metrics_with_eval_prediction():
    from transformers import EvalPrediction

    logits = np.eye(3)[PREDICTIONS]
    result = make_compute_metrics()(EvalPrediction(predictions=logits, label_ids=np.array(REFERENCES)))
    assert result == pytest.approx({"accuracy": 5 / 8})


def test_errors():
    with pytest.raises(ValueError, match="differ in length"):
        per_domain_accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="zero examples"):
        per_domain_accuracy([], [])
    with pytest.raises(ValueError, match="domains .* differ in length"):
        per_domain_accuracy([0, 1], [0, 1], ["a"])


def test_mean_and_worst_have_one_definition():
    from hf_bigdrop.evaluation import summarize_domain_metrics
    from hf_bigdrop.results import MethodResults

    accuracy = {"art": 2 / 3, "photo": 3 / 4, "sketch": 0.0}
    mean, worst = mean_domain_accuracy(accuracy.values()), worst_domain_accuracy(accuracy.values())
    assert (mean, worst) == (EXPECTED["mean_domain_accuracy"], EXPECTED["worst_domain_accuracy"])
    # The metric, the Trainer's per-group summary and the run results all give exactly these numbers.
    computed = per_domain_accuracy(PREDICTIONS, REFERENCES, DOMAINS)
    assert (computed["mean_domain_accuracy"], computed["worst_domain_accuracy"]) == (mean, worst)
    summary = summarize_domain_metrics({f"eval_test_{d}_accuracy": a for d, a in accuracy.items()})
    assert summary == {"eval_test_accuracy": mean, "eval_test_worst_accuracy": worst}
    assert MethodResults(None, {}, accuracy).mean_test_accuracy == mean
    assert np.isnan(mean_domain_accuracy([])) and np.isnan(worst_domain_accuracy([]))
    assert np.isnan(MethodResults(None, {}, {}).mean_validation_accuracy)
