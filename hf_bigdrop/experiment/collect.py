"""The results of a sweep: its finished runs, selected per method across hyperparameters, as tables and figures.

Selection across hyperparameters, as DomainBed's `collect_results` and the paper do: for each *method* (a value of
the sweep's `method_keys`, e.g. dropout 0 or 0.9, and each baseline built on it: the live model, its trajectory weight
average, its trajectory ensemble), each held-out domain and each seed, the setting of the other grid keys (learning
rate, weight decay, ...) with the best mean training-domain validation accuracy of that method is selected, and that
run's held-out accuracy is reported. The held-out domain never chooses anything; ties go to the first setting in the
grid's order; a setting that did not finish for a seed is simply not a candidate for that seed. Test-domain ("oracle")
selection can be asked for instead, and is then named so in every table.

Soups and run ensembles combine, per method and held-out domain, the seeds' runs selected for the live model
(`combination_plan`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..metric_keys import accuracies_by_step
from ..metrics import mean_domain_accuracy
from ..results import RESULTS_FILE, MethodResults, RunResults
from ..selection import TRAINING_DOMAIN_VALIDATION, selection_rule
from ..tables import mean_spread_cell, method_order, method_title
from .paired import PairedDifference, paired_difference
from .sweep import Job, Sweep, setting_name

__all__ = [
    "Cell",
    "Combination",
    "SPREADS",
    "Selected",
    "SweepResults",
    "collect",
    "combination_plan",
    "learning_curves",
    "pending_combinations",
    "select_per_method",
    "summarize",
]


@dataclass(frozen=True)
class Selected:
    """The run a method got for one held-out domain and seed, and its record.

    Args:
        method_setting (`tuple[tuple[str, object], ...]`): the method keys' values, e.g. `(("dropout_rate", 0.9),)`.
        method (`str`): `live`, `trajectory_wa` or `trajectory_ensemble`.
        domain (`str`): the held-out domain.
        seed (`int`): the seed.
        hyperparameters (`tuple[tuple[str, object], ...]`): the selected values of the other grid keys.
        job (`Job`): the selected run's job.
        record (`MethodResults`): the method's record in that run.
        candidates (`int`): how many finished settings competed.
    """

    method_setting: tuple
    method: str
    domain: str
    seed: int
    hyperparameters: tuple
    job: Job
    record: MethodResults
    candidates: int


def _method_setting(job: Job) -> tuple:
    return tuple((key, job.setting[key]) for key in job.sweep.method_keys if key in job.setting)


def select_per_method(
    finished: Sequence[tuple[Job, RunResults]], selection: str = TRAINING_DOMAIN_VALIDATION
) -> list[Selected]:
    """For each method, held-out domain and seed, the finished run with the best score among its settings.

    Args:
        finished (`Sequence[tuple[Job, RunResults]]`): the sweep's finished jobs with their results, in grid order.
        selection (`str`, *optional*): the rule (`hf_bigdrop.selection.SELECTION_RULES`) that scores each
            candidate run, as it selected its steps: one that chooses among runs (`across_runs()`).

    Returns:
        `list[Selected]`: one per (method setting, method, held-out domain, seed) with at least one finished run.
    """
    rule = selection_rule(selection)
    rule.check_across_runs()  # before reading any run
    groups: dict[tuple, list[tuple[Job, MethodResults]]] = {}
    for job, results in finished:
        for method, record in results.methods.items():
            key = (_method_setting(job), method, job.test_domain, job.seed)
            groups.setdefault(key, []).append((job, record))
    chosen = []
    for (method_setting, method, domain, seed), candidates in groups.items():

        def score(candidate: tuple[Job, MethodResults]) -> float:
            job, record = candidate
            try:
                return rule.score(record.accuracy_by_group)
            except ValueError as error:
                raise ValueError(f"{job.output_dir}: {error}") from None

        job, record = max(
            candidates, key=score
        )  # `max` keeps the first of equal scores: grid order decides ties
        hyperparameters = tuple((k, v) for k, v in job.setting.items() if k not in job.sweep.method_keys)
        chosen.append(
            Selected(method_setting, method, domain, seed, hyperparameters, job, record, len(candidates))
        )
    return chosen


@dataclass(frozen=True)
class Combination:
    """A soup / run ensemble to make: its folder, the method setting it belongs to, and the runs it combines."""

    folder: Path
    method_setting: tuple
    members: tuple[Path, ...]


def combination_plan(sweep: Sweep, selected: Sequence[Selected]) -> list[Combination]:
    """Each soup / run ensemble of the sweep: per method setting and held-out domain, the live model's selected run of
    every seed (at least two seeds), in `<output_dir>/<held-out>/<method setting>/combined`."""
    if not sweep.combine:
        return []
    plan: dict[tuple, list[Path]] = {}
    for choice in sorted(selected, key=lambda c: c.seed):
        if choice.method == "live":
            plan.setdefault((choice.domain, choice.method_setting), []).append(choice.job.output_dir)
    return [
        Combination(
            sweep.output_dir / domain / setting_name(dict(setting)) / "combined", setting, tuple(members)
        )
        for (domain, setting), members in plan.items()
        if len(members) > 1
    ]


def combination_results(folder: Path, members: Sequence[Path]) -> RunResults | None:
    """A combination's results if it exists and combines exactly `members` (else it must be made again)."""
    if not (folder / RESULTS_FILE).is_file():
        return None
    try:
        results = RunResults.load(folder)
    except ValueError:
        return None
    return results if [Path(m) for m in results.members] == [Path(m) for m in members] else None


def pending_combinations(sweep: Sweep, selected: Sequence[Selected]) -> list[Combination]:
    """The combinations of `combination_plan` not yet made with their current members."""
    return [
        combination
        for combination in combination_plan(sweep, selected)
        if combination_results(combination.folder, combination.members) is None
    ]


@dataclass
class Cell:
    """Mean, spread and number of values of one table cell (accuracies as fractions)."""

    mean: float
    spread: float
    n: int

    def __str__(self) -> str:
        return mean_spread_cell(self.mean, self.spread, self.n)


SPREADS = {"std": "sample std (ddof 1)", "sem": "standard error (DomainBed: std with ddof 0 / sqrt(n))"}
"""The spreads over seeds a cell can hold, and what each is."""


def summarize(values: Sequence[float], spread: str = "std") -> Cell:
    """Mean and spread of accuracies over seeds: the sample std (ddof 1), or DomainBed's standard error."""
    if spread not in SPREADS:
        raise ValueError(f"unknown spread {spread!r}; choose one of {list(SPREADS)}")
    n = len(values)
    if n == 0:
        return Cell(math.nan, math.nan, 0)
    array = np.asarray(values, dtype=float)
    if spread == "sem":
        value = float(array.std() / math.sqrt(n))
    else:
        value = float(array.std(ddof=1)) if n > 1 else math.nan
    return Cell(float(array.mean()), value, n)


@dataclass
class Row:
    """One line of the table: a method (its setting and name) with its held-out accuracy per domain and seed (`None`
    for a combination of the seeds), and the validation accuracy of the same selections."""

    method_setting: tuple
    method: str
    test: dict[str, dict[int | None, float]]
    validation: dict[str, dict[int | None, float]]

    @property
    def title(self) -> str:
        rate = dict(self.method_setting).get("dropout_rate")
        others = [
            f"{key.replace('_', ' ')} {value}" for key, value in self.method_setting if key != "dropout_rate"
        ]
        title = method_title(self.method, rate)
        return f"{title}, {', '.join(others)}" if others else title

    def cells(self, domains: Sequence[str], spread: str, which: str = "test") -> list[Cell]:
        """Per held-out domain, then the average over domains taken per seed (seeds that finished every domain)."""
        values = self.test if which == "test" else self.validation
        cells = [summarize(list(values.get(domain, {}).values()), spread) for domain in domains]
        seeds = set.intersection(*(set(values.get(d, {})) for d in domains)) if domains else set()
        averages = [mean_domain_accuracy(values[d][seed] for d in domains) for seed in sorted(seeds, key=str)]
        return [*cells, summarize(averages, spread)]


@dataclass
class SweepResults:
    """What `collect` found: the rows, the selections behind them, and the sweep's wall time."""

    sweep: Sweep
    domains: list[str]
    rows: list[Row]
    selected: list[Selected]
    selection: str
    finished: int
    jobs: int
    wall_time_runs: float
    wall_time_combinations: float

    def paired_differences(self, method: str = "live") -> list[tuple[str, str, PairedDifference]]:
        """For one method (default: the live model), each dropout rate's paired difference with dropout 0 (ERM) at
        the same other method keys: `(treatment title, control title, PairedDifference)`; empty without ERM."""
        rows = [row for row in self.rows if row.method == method]
        found = []
        for control in rows:
            setting = dict(control.method_setting)
            if setting.get("dropout_rate") not in (0, 0.0):
                continue
            others = {k: v for k, v in setting.items() if k != "dropout_rate"}
            for row in rows:
                rest = {k: v for k, v in dict(row.method_setting).items() if k != "dropout_rate"}
                if row is not control and rest == others and "dropout_rate" in dict(row.method_setting):
                    found.append(
                        (row.title, control.title, paired_difference(row.test, control.test, self.domains))
                    )
        return found


def collect(sweep: Sweep, selection: str = TRAINING_DOMAIN_VALIDATION) -> SweepResults:
    """Reads every finished run of the sweep (and the combinations of its selected runs) into rows."""
    jobs = sweep.jobs()
    finished = [(job, results) for job in jobs if (results := job.results()) is not None]
    selected = select_per_method(finished, selection)
    rows: dict[tuple, Row] = {}

    def row_of(method_setting: tuple, method: str) -> Row:
        return rows.setdefault((method_setting, method), Row(method_setting, method, {}, {}))

    for choice in selected:
        row = row_of(choice.method_setting, choice.method)
        for domain, accuracy in choice.record.test_accuracy.items():
            row.test.setdefault(domain, {})[choice.seed] = accuracy
        row.validation.setdefault(choice.domain, {})[choice.seed] = choice.record.mean_validation_accuracy
    combinations = 0.0
    if selection == TRAINING_DOMAIN_VALIDATION:  # combinations are of the runs selected on validation
        for combination in combination_plan(sweep, selected):
            results = combination_results(combination.folder, combination.members)
            if results is None:
                continue
            combinations += results.wall_time_s
            for method, record in results.methods.items():
                row = row_of(combination.method_setting, method)
                for domain, accuracy in record.test_accuracy.items():
                    row.test.setdefault(domain, {})[None] = accuracy
    order = {key: values for key, values in sweep.grid.items()}

    def rank(row: Row) -> tuple:
        return (
            *(order[k].index(v) if v in order.get(k, []) else 0 for k, v in row.method_setting),
            method_order(row.method),
        )

    return SweepResults(
        sweep=sweep,
        domains=[str(d) for d in sweep.grid["test_domains"]],
        rows=sorted(rows.values(), key=rank),
        selected=selected,
        selection=selection,
        finished=len(finished),
        jobs=len(jobs),
        wall_time_runs=sum(results.wall_time_s for _, results in finished),
        wall_time_combinations=combinations,
    )


def learning_curves(selected: Sequence[Selected], methods: Sequence[str] = ("live",)) -> dict[tuple, dict]:
    """Mean fit, training-domain validation and held-out accuracy against steps, per method setting and method:
    each seed's curve averaged over held-out domains, then mean and std over seeds.

    Returns:
        `dict[tuple, dict]`: `(method_setting, method)` -> `{"steps": [...], "validation": (mean, std),
        "test": (mean, std)}` and, when every run measured it, `"fit": (mean, std)` (arrays of percentages), for
        the steps every selected run evaluated.
    """
    runs: dict[tuple, dict[int, list[dict[int, dict]]]] = {}
    for choice in selected:
        if choice.method not in methods:
            continue
        results = RunResults.load(choice.job.output_dir)
        by_step = accuracies_by_step(results.history, choice.method)
        runs.setdefault((choice.method_setting, choice.method), {}).setdefault(choice.seed, []).append(
            by_step
        )
    curves = {}
    for key, seeds in runs.items():
        steps = sorted(
            set.intersection(*(set(run) for runs_of_seed in seeds.values() for run in runs_of_seed))
        )
        every = [run[step] for runs_of_seed in seeds.values() for run in runs_of_seed for step in steps]
        groups = [("validation", "val"), ("test", "test")]
        if every and all(("fit", None) in values for values in every):
            groups.insert(0, ("fit", "fit"))
        per_seed = {which: [] for which, _ in groups}
        for runs_of_seed in seeds.values():
            for which, group in groups:
                per_seed[which].append(
                    [100 * np.mean([run[step][(group, None)] for run in runs_of_seed]) for step in steps]
                )
        curves[key] = {
            "steps": steps,
            **{
                which: (np.mean(values, axis=0), np.std(values, axis=0, ddof=1) if len(values) > 1 else None)
                for which, values in per_seed.items()
            },
        }
    return curves
