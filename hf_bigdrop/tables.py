"""Every table this library prints or writes (a run's, runs side by side, a sweep's, the model card's), drawn by one
renderer, and the one place where a method's name becomes a title.

Methods are named by `hf_bigdrop.results` (`live`, `trajectory_wa`, `trajectory_ensemble`, `uniform_soup`,
`greedy_soup`, `run_ensemble`) and carry their dropout rate as a field; `method_title` turns the pair into what a
reader sees ("ERM", "dropout (p=0.9)", "trajectory weight average (p=0.9)").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the records are drawn here, never built: no import of results at run time
    from .results import RunResults

__all__ = [
    "METHOD_TITLES",
    "comparison_table",
    "domain_table",
    "mean_spread_cell",
    "mean_std_text",
    "markdown_table",
    "method_title",
    "percent",
    "run_title",
]

# Method name -> its title; the live model's title depends on its dropout rate (`method_title`).
METHOD_TITLES = {
    "live": "dropout",
    "trajectory_wa": "trajectory weight average",
    "trajectory_ensemble": "trajectory ensemble",
    "uniform_soup": "uniform soup",
    "greedy_soup": "greedy soup",
    "run_ensemble": "ensemble of runs",
}


def method_title(method: str, dropout_rate: float | None = None, *, with_rate: bool = True) -> str:
    """What a reader sees for a method: "ERM" for the live model without dropout, "dropout (p=0.9)" with it, and
    the baselines with the rate of the runs they are built on ("greedy soup (p=0.9)").

    Args:
        method (`str`): a key of `METHOD_TITLES` (other names are shown as they are).
        dropout_rate (`float | None`, *optional*): the runs' dropout rate.
        with_rate (`bool`, *optional*, defaults to `True`): add "(p=...)" when the rate is known.
    """
    if method == "live" and dropout_rate == 0:
        return "ERM"
    title = METHOD_TITLES.get(method, method)
    return f"{title} (p={dropout_rate:g})" if with_rate and dropout_rate is not None else title


def method_order(method: str) -> int:
    """The position of a method in tables (the live model first, then its trajectory baselines, then combinations)."""
    return list(METHOD_TITLES).index(method) if method in METHOD_TITLES else len(METHOD_TITLES)


def percent(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage (`0.873` -> `87.3`); `–` for a missing or NaN value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.{digits}f}"


def mean_spread_cell(mean: float, spread: float, n: int) -> str:
    """`mean ± spread (n=...)` in percent; without the spread when it is undefined (one value); `–` when n = 0."""
    if n == 0:
        return "–"
    if math.isnan(spread):
        return f"{percent(mean)} (n={n})"
    return f"{percent(mean)} ± {percent(spread)} (n={n})"


def mean_std_text(mean: float, std: float, digits: int = 1) -> str:
    """`mean ± std` of values already in the unit shown; the mean alone when the std is undefined (one seed), `—`
    when there is no mean (not measured)."""
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], *, bold_rows: Sequence[int] = ()
) -> str:
    """A Markdown table: a header, then one line per row (cells converted with `str`).

    Args:
        header (`Sequence[str]`): the column titles.
        rows (`Sequence[Sequence[object]]`): the cells, one sequence per row, as many as the header.
        bold_rows (`Sequence[int]`, *optional*): indices of rows drawn in bold.

    Raises:
        `ValueError`: a row with another number of cells than the header.
    """

    def line(cells: Sequence[str]) -> str:
        return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"

    lines = [line(header), "|" + "---|" * len(header)]
    for index, row in enumerate(rows):
        cells = [str(cell) for cell in row]
        if len(cells) != len(header):
            raise ValueError(f"row {index} has {len(cells)} cells for {len(header)} columns: {cells}")
        if index in bold_rows:
            cells = [f"**{cell}**" if cell else cell for cell in cells]
        lines.append(line(cells))
    return "\n".join(lines)


def domain_table(results: RunResults, method: str | None = None) -> str:
    """A Markdown table of one method of a run (default: its primary one): every domain, its role, its accuracy."""
    record = results.methods[method or results.primary_method]
    rows = [
        [domain, "held out (o.o.d.)", percent(record.test_accuracy.get(domain))]
        for domain in results.test_domains
    ]
    rows += [
        [domain, "training (validation split)", percent(record.validation_accuracy.get(domain))]
        for domain in results.train_domains
    ]
    rows += [
        [domain, "training (fit: training split, dropout off)", percent(record.fit_accuracy[domain])]
        for domain in results.train_domains
        if domain in record.fit_accuracy
    ]
    rows += [
        [domain, "held out, known instances (diagnostic)", percent(record.known_accuracy[domain])]
        for domain in results.test_domains
        if domain in record.known_accuracy
    ]
    bold = len(rows)  # the mean o.o.d. row
    rows += [
        ["mean o.o.d.", "", percent(record.mean_test_accuracy)],
        ["mean training-domain validation", "", percent(record.mean_validation_accuracy)],
    ]
    if record.fit_accuracy:
        rows.append(["mean fit", "", percent(record.mean_fit_accuracy)])
    return markdown_table(["domain", "role", "accuracy (%)"], rows, bold_rows=[bold])


def comparison_table(runs: dict[str, RunResults]) -> str:
    """A Markdown table with one column per run: per-domain validation and o.o.d. accuracy side by side.

    Args:
        runs (`dict[str, RunResults]`): column title -> results; the runs should share dataset and domains.
    """
    first = next(iter(runs.values()))
    rows: list[list[object]] = []
    bold = []

    def row(title: str, values: list[float | None]) -> None:
        rows.append([title, *(percent(value) for value in values)])

    for domain in first.test_domains:
        row(f"o.o.d. {domain}", [r.test_accuracy.get(domain) for r in runs.values()])
    bold.append(len(rows))
    row("mean o.o.d.", [r.mean_test_accuracy for r in runs.values()])
    for domain in first.train_domains:
        row(f"validation {domain}", [r.validation_accuracy.get(domain) for r in runs.values()])
    row("mean validation", [r.mean_validation_accuracy for r in runs.values()])
    if any(r.primary.fit_accuracy for r in runs.values()):
        row("mean fit (training split, dropout off)", [r.primary.mean_fit_accuracy for r in runs.values()])
    if any(r.primary.known_accuracy for r in runs.values()):
        row("held out, known instances (diagnostic)", [r.primary.mean_known_accuracy for r in runs.values()])
    rows.append(["selected step", *(r.selected_step for r in runs.values())])
    others = {m for r in runs.values() for m in r.methods if m != r.primary_method}
    for method in sorted(others, key=method_order):
        records = [r.methods.get(method) for r in runs.values()]
        row(
            f"{method_title(method, with_rate=False)}: mean o.o.d.",
            [m and m.mean_test_accuracy for m in records],
        )
    rows.append(["wall time (s)", *(f"{r.wall_time_s:.0f}" for r in runs.values())])
    return markdown_table(["", *runs], rows, bold_rows=bold)


def run_title(results: RunResults) -> str:
    """The title of a run's primary method: "ERM", "dropout (p=0.9)", "greedy soup (p=0.9)", ..."""
    return method_title(results.primary_method, results.dropout_rate)
