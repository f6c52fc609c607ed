"""The budget rule: a training length fixed from training-domain validation curves alone."""

from __future__ import annotations

import pytest

from hf_bigdrop.experiment.budget import BudgetRule, fit_curve, validation_curve
from hf_bigdrop.results import MethodResults, RunResults


def curve(values: list[float], every: int = 250) -> dict[int, float]:
    return {every * (i + 1): value for i, value in enumerate(values)}


def test_smoothing_and_the_first_step_where_every_method_gained_less_than_half_a_point():
    # Fast: +0.2 points a step of 250 after step 1000; slow: climbs until 3000, then flat.
    fast = curve([0.80, 0.85, 0.88, 0.90] + [0.90 + 0.002 * i for i in range(1, 21)])
    slow = curve([0.60 + 0.03 * i for i in range(12)] + [0.93] * 12)
    rule = BudgetRule()
    assert rule.smooth(curve([0.1, 0.2, 0.3, 0.7])) == pytest.approx({750: 0.2, 1000: 0.4})
    budget, plateaued = rule.apply({"fast": fast, "slow": slow})
    # fast gains 0.8 points over every 1,000 steps: never a plateau (under 0.5), so no budget before the pilot's end.
    assert not rule.has_plateaued(rule.smoothed["fast"], 4000)
    assert (budget, plateaued) == (6000, False)
    flat_fast = curve([0.80, 0.85, 0.88, 0.90] + [0.90] * 20)
    budget, plateaued = rule.apply({"fast": flat_fast, "slow": slow})
    # slow: V(4000) = 93.0 is 3 points above V(3000) = mean(87, 90, 93); V(5000) - V(4000) = 0.
    assert plateaued and budget == 5000
    gains = [rule.smoothed["slow"][s] - rule.smoothed["slow"][s - 1000] for s in (4000, 5000)]
    assert gains == pytest.approx([0.03, 0.0])
    assert "| 4000 | 90.0 (+0.0) | 93.0 (+3.0) |" in rule.table()


def test_with_a_fit_threshold_every_method_must_also_fit():
    flat = curve([0.9] * 24)
    # a fits from the start; b's fit climbs 0.5 points an evaluation of 250 steps, from 90%: F(4000) = 97.0,
    # F(5000) = 99.0 (each the mean of three evaluations).
    fits = {"a": curve([1.0] * 24), "b": curve([min(0.9 + 0.005 * i, 1.0) for i in range(24)])}
    rule = BudgetRule(fit_threshold=0.985)
    assert rule.apply({"a": flat, "b": flat}, fits) == (5000, True)
    assert rule.fits("a", 2000) and not rule.fits("b", 4000) and rule.fits("b", 5000)
    assert "F(s) a" in rule.table() and "| 4000 | 90.0 (+0.0) | 90.0 (+0.0) | 100.0 | 97.0 |" in rule.table()
    # Never fitting: the pilot's last step, and the rule says so.
    never = {"a": fits["a"], "b": curve([0.95] * 24)}
    assert BudgetRule(fit_threshold=0.985).apply({"a": flat, "b": flat}, never) == (6000, False)
    # Without fit curves the rule refuses rather than decide on validation alone.
    with pytest.raises(ValueError, match=r"needs each method's fit .* none for \['b'\]"):
        rule.apply({"a": flat, "b": flat}, {"a": fits["a"]})


def test_the_budget_is_never_shorter_than_first():
    flat = curve([0.9] * 24)
    assert BudgetRule().apply({"a": flat, "b": flat}) == (2000, True)
    assert BudgetRule(first=3000).apply({"a": flat}) == (3000, True)


def test_validation_curve_reads_only_training_domain_validation():
    history = [
        {"step": 250, "eval_val_x_accuracy": 0.5, "eval_val_accuracy": 0.5, "eval_test_accuracy": 0.9},
        {"step": 500, "eval_val_accuracy": 0.6, "eval_wa_val_accuracy": 0.7, "loss": 0.3},
    ]
    results = RunResults(
        "d", ["x"], ["y"], 0, "b", 0.0, {"live": MethodResults(500, {}, {})}, history=history
    )
    assert validation_curve(results) == {250: 0.5, 500: 0.6}
    assert validation_curve(results, "trajectory_wa") == {500: 0.7}
    history.append({"step": 500, "eval_fit_x_accuracy": 0.95, "eval_fit_accuracy": 0.95})
    assert fit_curve(results) == {500: 0.95}
