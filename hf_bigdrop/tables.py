"""Every table this library prints or writes (a run's, runs side by side, a sweep's, the model card's), drawn by one
renderer, and the one place where a method's name becomes a title.

Methods are named by `hf_bigdrop.results` (`live`, `trajectory_wa`, `trajectory_ensemble`, `uniform_soup`,
`greedy_soup`, `run_ensemble`) and carry their dropout rate as a field; `method_title` turns the pair into what a
reader sees ("ERM", "dropout (p=0.9)", "trajectory weight average (p=0.9)").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["METHOD_TITLES", "mean_spread_cell", "markdown_table", "method_title", "percent"]

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
