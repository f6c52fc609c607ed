"""Paired differences between two methods of a sweep (`hf_bigdrop.experiment.paired`), and in the sweep's report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_bigdrop.experiment.collect import Row, SweepResults
from hf_bigdrop.experiment.paired import paired_difference

ERM = {"a": {0: 0.50, 1: 0.60, 2: 0.55, None: 0.7}, "b": {0: 0.40, 1: 0.42}}
DROPOUT = {"a": {0: 0.52, 1: 0.61, 2: 0.58, None: 0.9}, "b": {0: 0.41, 1: 0.47, 2: 0.99}}


def test_pairs_are_matched_by_domain_and_seed():
    difference = paired_difference(DROPOUT, ERM, ["a", "b"])
    # Seed 2 of b has no ERM run and the combinations (seed None) are not seeds: left out.
    assert [(d, s) for d, s, _ in difference.pairs] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
    values = np.array([0.02, 0.01, 0.03, 0.01, 0.05])
    assert [v for *_, v in difference.pairs] == pytest.approx(values)
    assert difference.mean == pytest.approx(values.mean())
    # The 95% t-interval with 4 degrees of freedom: t = 2.776.
    half = 2.7764451 * values.std(ddof=1) / math.sqrt(5)
    assert difference.interval == pytest.approx((values.mean() - half, values.mean() + half), rel=1e-6)
    table = difference.table("dropout (p=0.9)", "ERM")
    assert "| a | 2 | +3.0 |" in table and "| **mean** | n = 5 | **+2.4** (95%: +0.3 to +4.5) |" in table


def test_too_few_pairs_give_no_interval_and_bad_levels_are_refused():
    one = paired_difference({"a": {0: 0.6}}, {"a": {0: 0.5}}, ["a"])
    assert one.n == 1 and one.mean == pytest.approx(0.1) and all(math.isnan(x) for x in one.interval)
    with pytest.raises(ValueError, match="confidence must be in"):
        paired_difference(DROPOUT, ERM, ["a"], confidence=95)


def test_a_sweep_report_pairs_each_dropout_rate_with_erm():
    rows = [
        Row((("dropout_rate", 0.0),), "live", ERM, {}),
        Row((("dropout_rate", 0.9),), "live", DROPOUT, {}),
        Row((("dropout_rate", 0.9),), "trajectory_wa", DROPOUT, {}),
    ]
    results = SweepResults(None, ["a", "b"], rows, [], "training_domain_validation", 10, 10, 0.0, 0.0)
    [(treatment, control, difference)] = results.paired_differences()
    assert (treatment, control, difference.n) == ("dropout (p=0.9)", "ERM", 5)
    assert results.paired_differences("trajectory_wa") == []  # no ERM weight average to pair it with
