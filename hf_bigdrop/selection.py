"""Model selection, one rule for every method: which evaluation step a method reports.

`BigDropTrainer` logs, at each evaluation, per-domain accuracies of the live model (`eval_<group>_<domain>_accuracy`),
of the trajectory weight average (`eval_wa_...`) and of the trajectory ensemble (`eval_ens_...`). A strategy picks
one step per method from that log:

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

# Evaluation group -> the `load_domain_dataset` split its per-domain sets come from. Evaluation sets are named
# `<group>_<domain>`, and each group is summarised over its domains: `val`, the validation split of the training
# domains (DomainBed's training-domain validation); `test`, the held-out domains (out of distribution); `oracle`, a
# validation split of the held-out domains (oracle selection only).
EVAL_GROUPS = {"val": "validation", "test": "test", "oracle": "test_validation"}

TRAINING_DOMAIN_VALIDATION = "training_domain_validation"
ORACLE = "oracle"
LAST_STEP = "last_step"
# Strategy -> the group whose mean accuracy it maximises (None: the last evaluation).
SELECTION_STRATEGIES: dict[str, str | None] = {
    TRAINING_DOMAIN_VALIDATION: "val",
    ORACLE: "oracle",
    LAST_STEP: None,
}

# The methods evaluated along one trajectory -> the prefix of their evaluation keys.
TRAJECTORY_METHODS = {"live": "eval", "trajectory_wa": "eval_wa", "trajectory_ensemble": "eval_ens"}


@dataclass
class Selection:
    """The step a strategy selected for one method, and that method's per-domain accuracies there.

    Args:
        method (`str`): a key of `TRAJECTORY_METHODS` (`live`, `trajectory_wa`, `trajectory_ensemble`).
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


def evaluations_by_step(log_history: Iterable[Mapping], prefix: str = "eval") -> dict[int, dict[str, float]]:
    """One method's evaluation metrics per step, from a Trainer's `log_history` (entries of one step merged).

    Args:
        log_history (`Iterable[Mapping]`): `trainer.state.log_history` (or a run's `history`).
        prefix (`str`, defaults to `"eval"`): the method's key prefix (see `TRAJECTORY_METHODS`); only keys
            `<prefix>_<group>_...` with a group of `EVAL_GROUPS` are kept, so `eval` does not take `eval_wa_...`.
    """
    by_step: dict[int, dict[str, float]] = {}
    head = f"{prefix}_"
    for entry in log_history:
        if "step" not in entry:
            continue
        for key, value in entry.items():
            if key.startswith(head) and key[len(head) :].split("_", 1)[0] in EVAL_GROUPS:
                by_step.setdefault(int(entry["step"]), {})[key[len(head) :]] = value
    return by_step


def domain_accuracies(metrics: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Group -> domain -> accuracy, from one step's metrics without their prefix (`val_photo_accuracy`, ...)."""
    accuracy: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        group, _, rest = key.partition("_")
        if group in EVAL_GROUPS and rest.endswith("_accuracy") and rest != "worst_accuracy":
            accuracy.setdefault(group, {})[rest.removesuffix("_accuracy")] = float(value)
    return accuracy


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
    by_step = evaluations_by_step(log_history, TRAJECTORY_METHODS[method])
    if not by_step:
        return None
    if group is None:
        step = max(by_step)
    else:
        key = f"{group}_accuracy"
        scored = [(step, metrics[key]) for step, metrics in sorted(by_step.items()) if key in metrics]
        if not scored:
            raise ValueError(
                f"selection strategy {strategy!r} reads {key!r}, which no evaluation of {method!r} logged"
                + (" (oracle selection needs test_holdout_fraction)" if group == "oracle" else "")
            )
        # `max` keeps the first of equal values: a later step must be strictly better, like the Trainer's checkpoint.
        step, _ = max(scored, key=lambda scored_step: scored_step[1])
    return Selection(method, strategy, step, domain_accuracies(by_step[step]))


def select_all(
    log_history: Iterable[Mapping], strategy: str = TRAINING_DOMAIN_VALIDATION
) -> dict[str, Selection]:
    """`select` for every method of `TRAJECTORY_METHODS` that the log holds."""
    history = list(log_history)
    selections = {method: select(history, strategy, method) for method in TRAJECTORY_METHODS}
    return {method: selection for method, selection in selections.items() if selection is not None}


__all__ = [
    "EVAL_GROUPS",
    "LAST_STEP",
    "ORACLE",
    "SELECTION_STRATEGIES",
    "TRAINING_DOMAIN_VALIDATION",
    "TRAJECTORY_METHODS",
    "Selection",
    "check_strategy",
    "domain_accuracies",
    "evaluations_by_step",
    "select",
    "select_all",
]
