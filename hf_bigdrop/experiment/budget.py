"""The budget rule: how many steps a comparison trains, fixed from training-domain validation alone.

A pilot sweep trains each method for a long budget at a constant learning rate, evaluating regularly. Only its mean
training-domain validation accuracy `v(s)` is read (never a held-out domain's):

- smoothed over `window` evaluations, `V(s) = mean(v(s - (window - 1) * every), ..., v(s))`;
- a method has *plateaued* at a checkpoint step `s` (a multiple of `span`, at least `first`) when
  `V(s) - V(s - span) < threshold`;
- the budget is the first such `s` at which every method has plateaued at once (the pilot's last step if there is
  none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..metric_keys import accuracies_by_step
from ..results import RunResults

__all__ = ["BudgetRule", "validation_curve"]


def validation_curve(results: RunResults, method: str = "live") -> dict[int, float]:
    """Step -> mean training-domain validation accuracy of one method of a run (held-out domains are not read)."""
    return {
        step: values[("val", None)]
        for step, values in accuracies_by_step(results.history, method).items()
        if ("val", None) in values
    }


@dataclass
class BudgetRule:
    """The rule's parameters (accuracies as fractions); the defaults are the ones `docs/results.md` fixed.

    Args:
        window (`int`, defaults to 3): evaluations averaged into `V(s)`.
        span (`int`, defaults to 1000): steps over which the gain is measured; the budget is a multiple of it.
        threshold (`float`, defaults to 0.005): a gain below this (half a point) is a plateau.
        first (`int`, defaults to 2000): the shortest budget considered.
    """

    window: int = 3
    span: int = 1000
    threshold: float = 0.005
    first: int = 2000
    # Filled by `apply`: method -> step -> V(s).
    smoothed: dict[str, dict[int, float]] = field(default_factory=dict)

    def smooth(self, curve: Mapping[int, float]) -> dict[int, float]:
        """`V(s)` at every step with `window` evaluations up to it."""
        steps = sorted(curve)
        return {
            steps[i]: float(np.mean([curve[s] for s in steps[i - self.window + 1 : i + 1]]))
            for i in range(self.window - 1, len(steps))
        }

    def has_plateaued(self, smoothed: Mapping[int, float], step: int) -> bool:
        """Whether a smoothed curve gained less than `threshold` over the `span` steps up to `step`."""
        return step - self.span in smoothed and smoothed[step] - smoothed[step - self.span] < self.threshold

    def checkpoints(self, smoothed: Mapping[int, float]) -> list[int]:
        """The steps at which the rule is tested: multiples of `span`, from `first` on, where `V` is known."""
        return [step for step in sorted(smoothed) if step >= self.first and step % self.span == 0]

    def apply(self, curves: Mapping[str, Mapping[int, float]]) -> tuple[int, bool]:
        """The budget for methods with these validation curves (method -> step -> accuracy).

        Returns:
            `tuple[int, bool]`: the budget, and whether every method had plateaued there (`False`: the pilot's last
            step, some method still improving).
        """
        self.smoothed = {name: self.smooth(curve) for name, curve in curves.items()}
        steps = sorted(set.intersection(*(set(self.checkpoints(v)) for v in self.smoothed.values())))
        for step in steps:
            if all(self.has_plateaued(smoothed, step) for smoothed in self.smoothed.values()):
                return step, True
        return min(max(curve) for curve in curves.values()), False

    def table(self, steps: Sequence[int] | None = None) -> str:
        """`V(s)` (%) of each method at the checkpoint steps, and its gain over the previous span, as Markdown."""
        from ..tables import markdown_table

        names = list(self.smoothed)
        common = sorted(set.intersection(*(set(v) for v in self.smoothed.values())))
        steps = [s for s in (steps or common) if s % self.span == 0 and s in common]
        rows = []
        for step in steps:
            cells = [str(step)]
            for name in names:
                value = self.smoothed[name][step]
                before = self.smoothed[name].get(step - self.span)
                gain = "" if before is None else f" ({100 * (value - before):+.1f})"
                cells.append(f"{100 * value:.1f}{gain}")
            rows.append(cells)
        return markdown_table(
            ["step", *(f"V(s) {name} (gain over {self.span} steps)" for name in names)], rows
        )
