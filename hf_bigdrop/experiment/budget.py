"""The budget rule: how many steps a comparison trains, fixed from training data alone (validation and fit).

A pilot sweep trains each method for a long budget at a constant learning rate, evaluating regularly. Only its mean
training-domain validation accuracy `v(s)` is read, and, with `fit_threshold`, its fit `f(s)` (accuracy on a fixed
sample of the training split with dropout off); never a held-out domain's:

- smoothed over `window` evaluations, `V(s) = mean(v(s - (window - 1) * every), ..., v(s))`;
- a method has *plateaued* at a checkpoint step `s` (a multiple of `span`, at least `first`) when
  `V(s) - V(s - span) < threshold`;
- with `fit_threshold`, a method has also to *fit* there: its fit smoothed the same way, `F(s)`, at least the
  threshold (e.g. 0.99);
- the budget is the first such `s` at which every method has plateaued (and fits) at once (the pilot's last step if
  there is none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..metric_keys import accuracies_by_step
from ..results import RunResults

__all__ = ["BudgetRule", "fit_curve", "validation_curve"]


def _curve(results: RunResults, group: str, method: str) -> dict[int, float]:
    return {
        step: values[(group, None)]
        for step, values in accuracies_by_step(results.history, method).items()
        if (group, None) in values
    }


def validation_curve(results: RunResults, method: str = "live") -> dict[int, float]:
    """Step -> mean training-domain validation accuracy of one method of a run (held-out domains are not read)."""
    return _curve(results, "val", method)


def fit_curve(results: RunResults, method: str = "live") -> dict[int, float]:
    """Step -> mean fit of one method of a run: accuracy on the fixed training sample with dropout off (`eval_fit_*`;
    empty if the run did not measure it)."""
    return _curve(results, "fit", method)


@dataclass
class BudgetRule:
    """The rule's parameters (accuracies as fractions); the defaults are the ones `docs/results.md` fixed.

    Args:
        window (`int`, defaults to 3): evaluations averaged into `V(s)`.
        span (`int`, defaults to 1000): steps over which the gain is measured; the budget is a multiple of it.
        threshold (`float`, defaults to 0.005): a gain below this (half a point) is a plateau.
        first (`int`, defaults to 2000): the shortest budget considered.
        fit_threshold (`float | None`, defaults to `None`): the smoothed fit `F(s)` every method must reach at the
            budget; `None`: validation alone decides.
    """

    window: int = 3
    span: int = 1000
    threshold: float = 0.005
    first: int = 2000
    fit_threshold: float | None = None
    # Filled by `apply`: method -> step -> V(s), and method -> step -> F(s).
    smoothed: dict[str, dict[int, float]] = field(default_factory=dict)
    smoothed_fit: dict[str, dict[int, float]] = field(default_factory=dict)

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

    def fits(self, name: str, step: int) -> bool:
        """Whether method `name` fits its training data at `step` (always, without `fit_threshold`)."""
        if self.fit_threshold is None:
            return True
        return self.smoothed_fit.get(name, {}).get(step, float("-inf")) >= self.fit_threshold

    def apply(
        self,
        curves: Mapping[str, Mapping[int, float]],
        fit_curves: Mapping[str, Mapping[int, float]] | None = None,
    ) -> tuple[int, bool]:
        """The budget for methods with these validation curves (method -> step -> accuracy) and, with
        `fit_threshold`, these fit curves (the same methods).

        Returns:
            `tuple[int, bool]`: the budget, and whether every method had plateaued (and fit) there (`False`: the
            pilot's last step, some method still improving or not fitting).

        Raises:
            ValueError: With `fit_threshold`, when a method has no fit curve.
        """
        fit_curves = dict(fit_curves or {})
        if self.fit_threshold is not None:
            missing = sorted(name for name in curves if not fit_curves.get(name))
            if missing:
                raise ValueError(
                    f"the rule needs each method's fit (eval_fit_accuracy); none for {missing}: run the pilot with "
                    "--fit_examples_per_domain > 0"
                )
        self.smoothed = {name: self.smooth(curve) for name, curve in curves.items()}
        self.smoothed_fit = {name: self.smooth(curve) for name, curve in fit_curves.items()}
        steps = sorted(set.intersection(*(set(self.checkpoints(v)) for v in self.smoothed.values())))
        for step in steps:
            if all(
                self.has_plateaued(smoothed, step) and self.fits(name, step)
                for name, smoothed in self.smoothed.items()
            ):
                return step, True
        return min(max(curve) for curve in curves.values()), False

    def table(self, steps: Sequence[int] | None = None) -> str:
        """`V(s)` (%) of each method at the checkpoint steps, and its gain over the previous span, as Markdown."""
        from ..tables import markdown_table

        names = list(self.smoothed)
        common = sorted(set.intersection(*(set(v) for v in self.smoothed.values())))
        steps = [s for s in (steps or common) if s % self.span == 0 and s in common]
        rows = []
        fit_names = [name for name in names if name in self.smoothed_fit]
        for step in steps:
            cells = [str(step)]
            for name in names:
                value = self.smoothed[name][step]
                before = self.smoothed[name].get(step - self.span)
                gain = "" if before is None else f" ({100 * (value - before):+.1f})"
                cells.append(f"{100 * value:.1f}{gain}")
            for name in fit_names:
                value = self.smoothed_fit[name].get(step)
                cells.append("" if value is None else f"{100 * value:.1f}")
            rows.append(cells)
        headers = [f"V(s) {name} (gain over {self.span} steps)" for name in names]
        return markdown_table(["step", *headers, *(f"F(s) {name}" for name in fit_names)], rows)
