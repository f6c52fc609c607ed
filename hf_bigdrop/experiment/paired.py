"""Paired differences between two methods of a sweep: one per held-out domain and seed, and their mean with a
t-interval.

Two methods run on the same held-out domain with the same seed share the split, the test images and the batches'
order, so their difference in held-out accuracy is paired: its spread over (domain, seed) pairs is far smaller than
either method's spread over seeds, and the interval of its mean is the honest answer to "does one beat the other?".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..tables import markdown_table

__all__ = ["PairedDifference", "paired_difference"]


@dataclass(frozen=True)
class PairedDifference:
    """The paired differences `treatment - control` (accuracies as fractions) and their summary.

    Args:
        pairs (`tuple[tuple[str, int, float], ...]`): `(held-out domain, seed, difference)` for every pair both
            methods finished.
        confidence (`float`): the confidence level of the interval (e.g. 0.95).
    """

    pairs: tuple[tuple[str, int, float], ...]
    confidence: float = 0.95

    @property
    def n(self) -> int:
        return len(self.pairs)

    @property
    def mean(self) -> float:
        return float(np.mean([d for *_, d in self.pairs])) if self.pairs else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        """The t-interval of the mean difference over the pairs (`nan` with fewer than two pairs)."""
        if self.n < 2:
            return (math.nan, math.nan)
        values = np.asarray([d for *_, d in self.pairs], dtype=float)
        half = stats.t.ppf(0.5 + self.confidence / 2, self.n - 1) * values.std(ddof=1) / math.sqrt(self.n)
        return (self.mean - half, self.mean + half)

    def table(self, treatment: str, control: str) -> str:
        """The pairs, then the mean and its interval, in points of accuracy, as Markdown."""
        rows = [[domain, str(seed), f"{100 * d:+.1f}"] for domain, seed, d in self.pairs]
        low, high = self.interval
        level = f"{100 * self.confidence:g}%"
        rows.append(
            [
                "**mean**",
                f"n = {self.n}",
                f"**{100 * self.mean:+.1f}** ({level}: {100 * low:+.1f} to {100 * high:+.1f})",
            ]
        )
        return markdown_table(["held out", "seed", f"{treatment} - {control} (points)"], rows)


def paired_difference(
    treatment: Mapping[str, Mapping[int | None, float]],
    control: Mapping[str, Mapping[int | None, float]],
    domains: Sequence[str],
    confidence: float = 0.95,
) -> PairedDifference:
    """Pairs two methods' held-out accuracies by (held-out domain, seed) and takes `treatment - control`.

    Args:
        treatment (`Mapping[str, Mapping[int | None, float]]`): held-out domain -> seed -> accuracy (a `Row.test` of
            `hf_bigdrop.experiment.collect`); the `None` seed (a combination of seeds) is left out.
        control (`Mapping[str, Mapping[int | None, float]]`): the same for the method compared against.
        domains (`Sequence[str]`): the held-out domains, in the order the pairs are listed.
        confidence (`float`, *optional*, defaults to `0.95`): the interval's confidence level, in (0, 1).

    Returns:
        `PairedDifference`: one pair per domain and seed that both methods have.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    pairs = []
    for domain in domains:
        ours, theirs = treatment.get(domain, {}), control.get(domain, {})
        for seed in sorted(seed for seed in ours if seed is not None and seed in theirs):
            pairs.append((domain, seed, float(ours[seed]) - float(theirs[seed])))
    return PairedDifference(tuple(pairs), confidence)
