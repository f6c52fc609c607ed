"""The results of one o.o.d. run (`results.json`) and the tables that compare runs."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"


@dataclass
class RunResults:
    """What one run (one dataset, one set of held-out domains, one seed) measured.

    Accuracies are fractions in [0, 1], keyed by domain name.

    Args:
        dataset (`str`): dataset name or path.
        train_domains (`list[str]`): the training domains.
        test_domains (`list[str]`): the held-out (o.o.d.) domains.
        seed (`int`): the run's seed (splits, sampling, initialisation).
        backbone (`str`): where the backbone weights came from.
        dropout_rate (`float`): the dropout rate on the penultimate features.
        validation_accuracy (`dict[str, float]`): per training domain, on its held-out 20% (in distribution).
        test_accuracy (`dict[str, float]`): per held-out domain (out of distribution).
        selected_step (`int | None`): the optimizer step of the selected checkpoint.
        selection_metric (`str`): the metric that selected it.
        oracle_accuracy (`dict[str, float]`): per held-out domain on its validation part, for oracle selection.
        wall_time_s (`float`): wall-clock seconds of the run.
        arguments (`dict`): every argument of the run.
        versions (`dict[str, str]`): library versions.
        history (`list[dict]`): evaluation entries of the training log.
    """

    dataset: str
    train_domains: list[str]
    test_domains: list[str]
    seed: int
    backbone: str
    dropout_rate: float
    validation_accuracy: dict[str, float]
    test_accuracy: dict[str, float]
    selected_step: int | None = None
    selection_metric: str = "eval_val_accuracy"
    oracle_accuracy: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0
    arguments: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mean_validation_accuracy(self) -> float:
        return _mean(self.validation_accuracy)

    @property
    def mean_test_accuracy(self) -> float:
        return _mean(self.test_accuracy)

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / RESULTS_FILE
        payload = asdict(self)
        payload["mean_validation_accuracy"] = self.mean_validation_accuracy
        payload["mean_test_accuracy"] = self.mean_test_accuracy
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunResults:
        """Reads `results.json` (or the folder that holds it)."""
        path = Path(path)
        if path.is_dir():
            path = path / RESULTS_FILE
        if not path.exists():
            raise FileNotFoundError(f"No {RESULTS_FILE} at {path}: is it the output_dir of a finished run?")
        payload = json.loads(path.read_text())
        payload.pop("mean_validation_accuracy", None)
        payload.pop("mean_test_accuracy", None)
        return cls(**payload)


def _mean(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values) if values else float("nan")


def _percent(value: float | None) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f}"


def domain_table(results: RunResults) -> str:
    """A markdown table of one run: every domain, its role, and its accuracy."""
    lines = ["| domain | role | accuracy (%) |", "|---|---|---|"]
    for domain in results.test_domains:
        lines.append(f"| {domain} | held out (o.o.d.) | {_percent(results.test_accuracy.get(domain))} |")
    for domain in results.train_domains:
        lines.append(
            f"| {domain} | training (validation split) | {_percent(results.validation_accuracy.get(domain))} |"
        )
    lines.append(f"| **mean o.o.d.** | | **{_percent(results.mean_test_accuracy)}** |")
    lines.append(f"| mean training-domain validation | | {_percent(results.mean_validation_accuracy)} |")
    return "\n".join(lines)


def comparison_table(runs: dict[str, RunResults]) -> str:
    """A markdown table with one column per run: per-domain validation and o.o.d. accuracy side by side.

    Args:
        runs (`dict[str, RunResults]`): column title -> results; the runs should share dataset and domains.
    """
    names = list(runs)
    first = runs[names[0]]
    header = "| | " + " | ".join(names) + " |"
    lines = [header, "|---|" + "---|" * len(names)]

    def row(title: str, values: list[float | None], bold: bool = False) -> None:
        cells = [_percent(v) for v in values]
        if bold:
            cells = [f"**{c}**" for c in cells]
            title = f"**{title}**"
        lines.append(f"| {title} | " + " | ".join(cells) + " |")

    for domain in first.test_domains:
        row(f"o.o.d. {domain}", [r.test_accuracy.get(domain) for r in runs.values()])
    row("mean o.o.d.", [r.mean_test_accuracy for r in runs.values()], bold=True)
    for domain in first.train_domains:
        row(f"validation {domain}", [r.validation_accuracy.get(domain) for r in runs.values()])
    row("mean validation", [r.mean_validation_accuracy for r in runs.values()])
    lines.append("| selected step | " + " | ".join(str(r.selected_step) for r in runs.values()) + " |")
    lines.append("| wall time (s) | " + " | ".join(f"{r.wall_time_s:.0f}" for r in runs.values()) + " |")
    return "\n".join(lines)


__all__ = ["RESULTS_FILE", "RunResults", "comparison_table", "domain_table"]
