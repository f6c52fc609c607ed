"""Model selection: each rule is one object (`SelectionRule`), read by the trainer, the sweep's collection, the model
card and the checks alike.

A rule picks two things, as DomainBed's `SelectionMethod` does:

- **a step in a run**: `BigDropTrainer` logs, at each evaluation, per-domain accuracies of the live model, of the
  trajectory weight average and of the trajectory ensemble (their keys: `hf_bigdrop.metric_keys`); the rule picks one
  evaluation per method (`SelectionRule.select_step`);
- **a setting across runs**: a sweep's runs of one method, held-out domain and seed that differ in their
  hyperparameters; the rule scores each run's record at its selected step (`SelectionRule.score`), and the best wins.

The rules (`SELECTION_RULES`):

- `training_domain_validation` (default, DomainBed's training-domain validation): the best mean validation accuracy
  of the training domains (`eval_val_accuracy`);
- `oracle` (DomainBed's test-domain oracle, opt-in): the best mean accuracy on a validation part of the held-out
  domains (`eval_oracle_accuracy`, which needs `test_holdout_fraction`), never on the test part it reports;
- `last_step`: the last evaluation (it chooses no setting across runs).

The first best is kept (a later step or setting must be strictly better). Held-out domains' test accuracy never
chooses anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .metric_keys import METHOD_TAGS, accuracies_by_step, nest_by_group
from .metrics import mean_domain_accuracy

TRAINING_DOMAIN_VALIDATION = "training_domain_validation"
ORACLE = "oracle"
LAST_STEP = "last_step"

# The methods evaluated along one trajectory (the live model, its weight average, its ensemble).
TRAJECTORY_METHODS = tuple(METHOD_TAGS)


@dataclass
class Selection:
    """The step a rule selected for one method, and that method's per-domain accuracies there.

    Args:
        method (`str`): one of `TRAJECTORY_METHODS` (`live`, `trajectory_wa`, `trajectory_ensemble`).
        strategy (`str`): the rule's name (a key of `SELECTION_RULES`).
        step (`int`): the optimizer step of the selected evaluation.
        accuracy (`dict[str, dict[str, float]]`): group (`val`, `test`, `oracle`, ...) -> domain -> accuracy.
    """

    method: str
    strategy: str
    step: int
    accuracy: dict[str, dict[str, float]]


@dataclass(frozen=True)
class SelectionRule:
    """One model-selection rule.

    Args:
        name (`str`): its name, the value of `--selection_strategy` and of a sweep's `--selection`.
        group (`str | None`): the accuracy group (`hf_bigdrop.metric_keys.EVAL_GROUPS`) whose mean over domains it
            maximises; `None`: the last evaluation.
        criterion (`str`): what it maximises, in words (the sweep's tables).
        card_sentence (`str`): how the model card says what it did.
        requires (`str`, *optional*): what its group needs to be measured at all (an error names it).
    """

    name: str
    group: str | None
    criterion: str
    card_sentence: str
    requires: str = ""

    @property
    def selects_checkpoint(self) -> bool:
        """Whether it chooses among evaluations (`load_best_model_at_end` keeps the chosen checkpoint)."""
        return self.group is not None

    @property
    def reads_held_out_domains(self) -> bool:
        """Whether it reads held-out-domain data (the oracle: optimistic by construction, said in every table)."""
        return self.group == "oracle"

    def select_step(self, log_history: Iterable[Mapping], method: str = "live") -> Selection | None:
        """The evaluation this rule selects for `method` in a run's log (`None` if the method was never evaluated).

        Raises:
            `ValueError`: an unknown method, or a group that no evaluation of the method logged.
        """
        if method not in TRAJECTORY_METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {list(TRAJECTORY_METHODS)}")
        by_step = accuracies_by_step(log_history, method)
        if not by_step:
            return None
        if self.group is None:
            step = max(by_step)
        else:
            scored = [
                (step, values[(self.group, None)])
                for step, values in sorted(by_step.items())
                if (self.group, None) in values
            ]
            if not scored:
                raise ValueError(
                    f"selection strategy {self.name!r} reads the mean {self.group!r} accuracy, which no evaluation "
                    f"of {method!r} logged" + (f" ({self.requires})" if self.requires else "")
                )
            # `max` keeps the first of equal values: a later step must be strictly better, like the Trainer's
            # checkpoint.
            step, _ = max(scored, key=lambda scored_step: scored_step[1])
        return Selection(method, self.name, step, nest_by_group(by_step[step]))

    def check_across_runs(self) -> None:
        """Refuses a rule that chooses no setting among runs (`last_step`).

        Raises:
            `ValueError`: the message names the rules that do.
        """
        if self.group is None:
            raise ValueError(
                f"selection {self.name!r} chooses no setting among runs; choose one of {across_runs()}"
            )

    def score(self, accuracy: Mapping[str, Mapping[str, float]]) -> float:
        """A run's score among the settings of a sweep: the mean over domains of its `group` accuracy at its
        selected step (`-inf` when it is not a number, so such a run is never chosen).

        Args:
            accuracy (`Mapping[str, Mapping[str, float]]`): group -> domain -> accuracy, as `Selection.accuracy`
                (`MethodResults.accuracy_by_group`).

        Raises:
            `ValueError`: a rule that chooses no setting (`last_step`), or a record that did not measure its group.
        """
        self.check_across_runs()
        values = accuracy.get(self.group)
        if not values:
            raise ValueError(
                f"{self.name} selection reads the {self.group!r} accuracy, which this run did not measure"
                + (f" ({self.requires})" if self.requires else "")
            )
        value = mean_domain_accuracy(values.values())
        return -math.inf if math.isnan(value) else value


SELECTION_RULES: dict[str, SelectionRule] = {
    rule.name: rule
    for rule in (
        SelectionRule(
            TRAINING_DOMAIN_VALIDATION,
            "val",
            "mean training-domain validation accuracy",
            "the checkpoint with the best mean training-domain validation accuracy is selected.",
        ),
        SelectionRule(
            ORACLE,
            "oracle",
            "mean accuracy on a validation part of the held-out domains (DomainBed's test-domain oracle, optimistic "
            "by construction; never the reported test part)",
            "the checkpoint is selected on a validation part of the held-out domains (oracle selection).",
            requires="oracle selection needs test_holdout_fraction, e.g. 0.2",
        ),
        SelectionRule(
            LAST_STEP,
            None,
            "the last evaluation",
            "the model of the last step is kept (no checkpoint selection).",
        ),
    )
}


def selection_rule(name: str) -> SelectionRule:
    """The rule called `name`, or a `ValueError` listing the valid names."""
    if name not in SELECTION_RULES:
        raise ValueError(f"unknown selection strategy {name!r}; choose one of {list(SELECTION_RULES)}")
    return SELECTION_RULES[name]


def across_runs() -> list[str]:
    """The names of the rules that choose a setting among runs (a sweep's `--selection`)."""
    return [name for name, rule in SELECTION_RULES.items() if rule.selects_checkpoint]


def select(
    log_history: Iterable[Mapping], strategy: str = TRAINING_DOMAIN_VALIDATION, method: str = "live"
) -> Selection | None:
    """`selection_rule(strategy).select_step(log_history, method)`.

    Raises:
        `ValueError`: an unknown strategy or method, or `oracle` on a log without oracle evaluations.
    """
    return selection_rule(strategy).select_step(log_history, method)


def select_all(
    log_history: Iterable[Mapping], strategy: str = TRAINING_DOMAIN_VALIDATION
) -> dict[str, Selection]:
    """`select` for every method of `TRAJECTORY_METHODS` that the log holds."""
    history = list(log_history)
    rule = selection_rule(strategy)
    selections = {method: rule.select_step(history, method) for method in TRAJECTORY_METHODS}
    return {method: selection for method, selection in selections.items() if selection is not None}


__all__ = [
    "LAST_STEP",
    "ORACLE",
    "SELECTION_RULES",
    "TRAINING_DOMAIN_VALIDATION",
    "TRAJECTORY_METHODS",
    "Selection",
    "SelectionRule",
    "across_runs",
    "select",
    "select_all",
    "selection_rule",
]
