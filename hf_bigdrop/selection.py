"""Model selection, one rule for every method: which evaluation step a method reports.

`BigDropTrainer` logs, at each evaluation, per-domain accuracies of the live model, of the trajectory weight average
and of the trajectory ensemble (their keys: `hf_bigdrop.metric_keys`). A strategy picks one step per method from that
log:

- `training_domain_validation` (default, DomainBed's training-domain validation): the best mean validation accuracy
  of the training domains (`eval_val_accuracy`); the first best step is kept (a later step must strictly improve);
- `oracle` (DomainBed's test-domain oracle, opt-in): the best mean accuracy on a validation part of the held-out
  domains (`eval_oracle_accuracy`, which needs `test_holdout_fraction`);
- `last_step`: the last evaluation.

Held-out domains' test accuracy never chooses anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .metric_keys import METHOD_TAGS, accuracies_by_step, nest_by_group

TRAINING_DOMAIN_VALIDATION = "training_domain_validation"
ORACLE = "oracle"
LAST_STEP = "last_step"
# Strategy -> the group whose mean accuracy it maximises (None: the last evaluation).
SELECTION_STRATEGIES: dict[str, str | None] = {
    TRAINING_DOMAIN_VALIDATION: "val",
    ORACLE: "oracle",
    LAST_STEP: None,
}

# The methods evaluated along one trajectory (the live model, its weight average, its ensemble).
TRAJECTORY_METHODS = tuple(METHOD_TAGS)


@dataclass
class Selection:
    """The step a strategy selected for one method, and that method's per-domain accuracies there.

    Args:
        method (`str`): one of `TRAJECTORY_METHODS` (`live`, `trajectory_wa`, `trajectory_ensemble`).
        strategy (`str`): a key of `SELECTION_STRATEGIES`.
        step (`int`): the optimizer step of the selected evaluation.
        accuracy (`dict[str, dict[str, float]]`): group (`val`, `test`, `oracle`) -> domain -> accuracy.
    """

    method: str
    strategy: str
    step: int
    accuracy: dict[str, dict[str, float]]


def check_strategy(strategy: str) -> str:
    """Returns `strategy` if it is a known one, else raises a `ValueError` listing the valid ones."""
    if strategy not in SELECTION_STRATEGIES:
        raise ValueError(
            f"unknown selection strategy {strategy!r}; choose one of {list(SELECTION_STRATEGIES)}"
        )
    return strategy


def select(
    log_history: Iterable[Mapping], strategy: str = TRAINING_DOMAIN_VALIDATION, method: str = "live"
) -> Selection | None:
    """The step `strategy` selects for `method` from an evaluation log (`None` if the method was never evaluated).

    Raises:
        `ValueError`: an unknown strategy or method, or `oracle` on a log without oracle evaluations.
    """
    group = SELECTION_STRATEGIES[check_strategy(strategy)]
    if method not in TRAJECTORY_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(TRAJECTORY_METHODS)}")
    by_step = accuracies_by_step(log_history, method)
    if not by_step:
        return None
    if group is None:
        step = max(by_step)
    else:
        scored = [
            (step, values[(group, None)])
            for step, values in sorted(by_step.items())
            if (group, None) in values
        ]
        if not scored:
            raise ValueError(
                f"selection strategy {strategy!r} reads the mean {group!r} accuracy, which no evaluation of "
                f"{method!r} logged"
                + (" (oracle selection needs test_holdout_fraction)" if group == "oracle" else "")
            )
        # `max` keeps the first of equal values: a later step must be strictly better, like the Trainer's checkpoint.
        step, _ = max(scored, key=lambda scored_step: scored_step[1])
    return Selection(method, strategy, step, nest_by_group(by_step[step]))


def select_all(
    log_history: Iterable[Mapping], strategy: str = TRAINING_DOMAIN_VALIDATION
) -> dict[str, Selection]:
    """`select` for every method of `TRAJECTORY_METHODS` that the log holds."""
    history = list(log_history)
    selections = {method: select(history, strategy, method) for method in TRAJECTORY_METHODS}
    return {method: selection for method, selection in selections.items() if selection is not None}


__all__ = [
    "LAST_STEP",
    "ORACLE",
    "SELECTION_STRATEGIES",
    "TRAINING_DOMAIN_VALIDATION",
    "TRAJECTORY_METHODS",
    "Selection",
    "check_strategy",
    "select",
    "select_all",
]
