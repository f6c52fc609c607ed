"""A sweep's results rendered: the Markdown tables with what they show, the CSV, and the files and figures a sweep
leaves in its folder. Reads `collect.SweepResults`; selects and aggregates nothing itself."""

from __future__ import annotations

import csv
from pathlib import Path

from ..selection import selection_rule
from ..tables import markdown_table
from .collect import SPREADS, SweepResults, learning_curves

__all__ = [
    "results_table",
    "selection_table",
    "sweep_report",
    "validation_table",
    "write_csv",
    "write_sweep_report",
]


def results_table(results: SweepResults, spread: str = "std") -> str:
    """Held-out accuracy (%) per method: per held-out domain and averaged, mean ± spread (n = seeds)."""
    header = ["method", *(f"held out {d}" for d in results.domains), "average"]
    rows = [[row.title, *map(str, row.cells(results.domains, spread))] for row in results.rows]
    return markdown_table(header, rows)


def validation_table(results: SweepResults, spread: str = "std") -> str:
    """Mean training-domain validation accuracy (%) of the same selections, per held-out domain."""
    header = ["method", *(f"held out {d}" for d in results.domains), "average"]
    rows = [
        [row.title, *map(str, row.cells(results.domains, spread, which="validation"))]
        for row in results.rows
        if row.validation
    ]
    return markdown_table(header, rows)


def selection_table(results: SweepResults) -> str:
    """Which setting of the hyperparameters each selection picked, and at which step (empty: no hyperparameters)."""
    if not results.sweep.hyperparameters:
        return ""
    by_row: dict[tuple, dict[str, list[str]]] = {}
    for choice in sorted(results.selected, key=lambda c: c.seed):
        picked = ", ".join(f"{k}={v}" for k, v in choice.hyperparameters)
        cell = f"seed {choice.seed}: {picked} (step {choice.record.selected_step}, of {choice.candidates})"
        by_row.setdefault((choice.method_setting, choice.method), {}).setdefault(choice.domain, []).append(
            cell
        )
    rows = []
    for row in results.rows:
        cells = by_row.get((row.method_setting, row.method))
        if cells is not None:
            rows.append([row.title, *("<br>".join(cells.get(d, [])) or "–" for d in results.domains)])
    return markdown_table(["method", *(f"held out {d}" for d in results.domains)], rows)


def sweep_report(results: SweepResults, spread: str = "std") -> str:
    """The tables with what they show, as Markdown."""
    rule = selection_rule(results.selection)
    criterion = rule.criterion
    oracle = (
        " **Oracle selection: the held-out domain chose the setting.**" if rule.reads_held_out_domains else ""
    )
    hyper = results.sweep.hyperparameters
    selection = (
        f"For each method, held-out domain and seed, the setting of {', '.join(hyper)} with the best {criterion} "
        f"was selected (DomainBed); the table below the first says which.{oracle}"
        if hyper
        else ""
    )
    text = (
        f"O.o.d. accuracy (%) of each method, per held-out domain and averaged over held-out domains: mean ± "
        f"{SPREADS[spread]} over seeds, n = number of seeds (a combination of the seeds counts once). "
        f"{selection}\n\n{results_table(results, spread)}\n\n"
        f"{results.finished} of {results.jobs} runs finished; wall time of the runs {results.wall_time_runs / 3600:.2f} h, "
        f"of the soups and run ensembles {results.wall_time_combinations / 3600:.2f} h.\n"
    )
    chosen = selection_table(results)
    if chosen:
        text += f"\nSettings selected ({criterion}):\n\n{chosen}\n"
    for treatment, control, difference in results.paired_differences():
        if difference.n:
            text += (
                f"\nPaired difference of the selected models, {treatment} - {control}, per held-out domain and "
                f"seed (the same split, test images and batches), with the mean's "
                f"{100 * difference.confidence:g}% t-interval over the pairs:\n\n"
                f"{difference.table(treatment, control)}\n"
            )
    return text


def write_csv(results: SweepResults, path: Path, spread: str = "std") -> None:
    """The table's cells, one line per method and held-out domain (and `average`)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "held_out", "mean", spread, "n"])
        for row in results.rows:
            for domain, cell in zip([*results.domains, "average"], row.cells(results.domains, spread)):
                writer.writerow([row.title, domain, f"{cell.mean:.6f}", f"{cell.spread:.6f}", cell.n])


def write_sweep_report(results: SweepResults, spread: str = "std") -> str:
    """Writes `table.md`, `table.csv`, `accuracy.png` (average per method) and `curves.png` (learning curves of the
    live models and their weight averages) into the sweep's output folder. Returns the report."""
    from .plots import plot_average_accuracy, plot_learning_curves

    folder = results.sweep.output_dir
    folder.mkdir(parents=True, exist_ok=True)
    text = sweep_report(results, spread)
    (folder / "table.md").write_text(text)
    write_csv(results, folder / "table.csv", spread)
    if results.rows:
        averages = [row.cells(results.domains, spread)[-1] for row in results.rows]
        plot_average_accuracy([row.title for row in results.rows], averages, folder / "accuracy.png", spread)
        curves = learning_curves(results.selected, methods=("live", "trajectory_wa"))
        if curves:
            title = (
                f"{', '.join(results.domains)} held out in turn: mean over held-out domains, ± std over seeds"
            )
            plot_learning_curves(curves, folder / "curves.png", title)
    return text
