"""Figures of experiments (matplotlib, drawn to PNG files): accuracy per method, learning curves of a sweep's
methods, and the curves of runs side by side."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..metric_keys import metric_key
from ..results import RunResults
from ..tables import method_title

__all__ = ["plot_average_accuracy", "plot_learning_curves", "plot_run_curves", "plot_validation_curves"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(plt, figure, axis, path: Path, title: str) -> None:
    """Titles, grids and saves a one-axis figure."""
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_average_accuracy(titles: list[str], cells: list, path: Path, spread: str) -> None:
    """Average held-out accuracy per method (horizontal bars) with error bars (`cells`: `collect.Cell`s)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 0.35 * len(titles) + 1.5))
    positions = np.arange(len(titles))
    means = [100 * cell.mean if cell.n else np.nan for cell in cells]
    spreads = [100 * cell.spread if cell.spread == cell.spread else 0.0 for cell in cells]
    axis.barh(positions, means, xerr=spreads, capsize=3, color="tab:blue", alpha=0.8)
    axis.set_yticks(positions, titles, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel(f"o.o.d. accuracy (%), average over held-out domains; error bars: {spread}")
    finite = [m for m in means if m == m]
    if finite:
        axis.set_xlim(max(0.0, min(finite) - 10), min(100.0, max(finite) + 10))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# The panels of `plot_learning_curves`, left to right: curve key -> title.
_LEARNING_PANELS = {
    "fit": "fit: training split, dropout off",
    "validation": "mean training-domain validation",
    "test": "mean held-out (o.o.d.)",
}


def plot_learning_curves(curves: Mapping[tuple, dict], path: Path, title: str) -> None:
    """Mean fit (when measured), training-domain validation and held-out accuracy against steps, one panel each, one
    line per method, shaded ± std over seeds (`collect.learning_curves`)."""
    plt = _pyplot()
    panels = [which for which in _LEARNING_PANELS if all(which in curve for curve in curves.values())]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), sharex=True, squeeze=False)
    axes = axes[0]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, ((method_setting, method), curve) in enumerate(curves.items()):
        label = method_title(method, dict(method_setting).get("dropout_rate"))
        style = "-" if method == "live" else "--"
        for axis, which in zip(axes, panels):
            mean, std = curve[which]
            axis.plot(curve["steps"], mean, style, color=colours[index % len(colours)], label=label)
            if std is not None:
                axis.fill_between(
                    curve["steps"], mean - std, mean + std, color=colours[index % len(colours)], alpha=0.15
                )
    axes[0].set_ylabel("accuracy (%)")
    for axis, which in zip(axes, panels):
        axis.set_title(_LEARNING_PANELS[which])
        axis.set_xlabel("optimizer step")
        axis.grid(alpha=0.3)
    axes[-1].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_run_curves(runs: Mapping[str, RunResults], path: Path, title: str) -> None:
    """Training-domain validation (solid) and o.o.d. (dashed) accuracy against steps, one colour per run, the selected
    step shaded."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.2))
    validation, held_out = metric_key("val"), metric_key("test")
    for (name, results), colour in zip(runs.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        by_step: dict[int, dict] = {}
        for entry in results.history:
            by_step.setdefault(entry["step"], {}).update(entry)
        steps = [
            step for step in sorted(by_step) if validation in by_step[step] and held_out in by_step[step]
        ]
        for key, style, part in ((validation, "-o", "validation"), (held_out, "--s", "o.o.d.")):
            axis.plot(
                steps, [100 * by_step[s][key] for s in steps], style, color=colour, label=f"{name}, {part}"
            )
        if results.selected_step in steps:
            axis.axvline(results.selected_step, color=colour, alpha=0.25, linewidth=3)
    axis.set_xlabel("optimizer step (shaded: selected checkpoint)")
    axis.set_ylabel("accuracy (%)")
    _finish(plt, figure, axis, path, title)


def plot_validation_curves(
    curves: Mapping[str, Mapping[int, float]],
    smoothed: Mapping[str, Mapping[int, float]],
    path: Path,
    title: str,
    budget: int | None = None,
    smoothed_fit: Mapping[str, Mapping[int, float]] | None = None,
) -> None:
    """Training-domain validation accuracy against steps (dots), smoothed (lines), one colour per method, the budget
    marked, and with `smoothed_fit` each method's smoothed fit (dashed): the only curves a budget pilot shows
    (held-out domains are not drawn)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, curve), colour in zip(curves.items(), colours):
        steps = sorted(curve)
        axis.plot(steps, [100 * curve[s] for s in steps], "o", color=colour, alpha=0.4, markersize=3)
        steps = sorted(smoothed[name])
        axis.plot(
            steps, [100 * smoothed[name][s] for s in steps], "-", color=colour, label=f"{name} (smoothed)"
        )
        fit = (smoothed_fit or {}).get(name)
        if fit:
            steps = sorted(fit)
            axis.plot(
                steps, [100 * fit[s] for s in steps], "--", color=colour, label=f"{name}: fit (smoothed)"
            )
    if budget is not None:
        axis.axvline(budget, color="black", linestyle=":", label=f"budget: {budget} steps")
    axis.set_xlabel("optimizer step (constant learning rate)")
    axis.set_ylabel("mean training-domain validation (and fit) accuracy (%)")
    _finish(plt, figure, axis, path, title)
