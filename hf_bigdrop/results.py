"""The results of one o.o.d. run (`results.json`) and the tables that compare runs."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .metrics import mean_domain_accuracy
from .selection import Selection

RESULTS_FILE = "results.json"


# Method name -> how tables title it. `erm` / `dropout` is a run's live model (dropout 0 / > 0).
METHOD_TITLES = {
    "erm": "ERM",
    "dropout": "dropout",
    "trajectory_wa": "trajectory weight average",
    "trajectory_ensemble": "trajectory ensemble",
    "uniform_soup": "uniform soup",
    "greedy_soup": "greedy soup",
    "run_ensemble": "ensemble of runs",
}


@dataclass
class MethodResults:
    """The model one method selected in a run, and its accuracy (fractions in [0, 1], keyed by domain name).

    Args:
        selected_step (`int | None`): the optimizer step of the selected evaluation (`None` for soups and
            ensembles of finished runs).
        validation_accuracy (`dict[str, float]`): per training domain, on its validation split (in distribution).
        test_accuracy (`dict[str, float]`): per held-out domain (out of distribution).
        oracle_accuracy (`dict[str, float]`): per held-out domain on its validation part (oracle selection only).
    """

    selected_step: int | None
    validation_accuracy: dict[str, float]
    test_accuracy: dict[str, float]
    oracle_accuracy: dict[str, float] = field(default_factory=dict)

    @property
    def mean_validation_accuracy(self) -> float:
        return mean_domain_accuracy(self.validation_accuracy.values())

    @property
    def mean_test_accuracy(self) -> float:
        return mean_domain_accuracy(self.test_accuracy.values())

    @classmethod
    def from_selection(cls, selection: Selection) -> MethodResults:
        """The record of a `hf_bigdrop.selection.Selection`."""
        return cls(
            selected_step=selection.step,
            validation_accuracy=dict(selection.accuracy.get("val", {})),
            test_accuracy=dict(selection.accuracy.get("test", {})),
            oracle_accuracy=dict(selection.accuracy.get("oracle", {})),
        )


def live_method_name(dropout_rate: float) -> str:
    """`erm` for dropout 0, else `dropout`: the name of a run's live model in `RunResults.methods`."""
    return "erm" if dropout_rate == 0 else "dropout"


@dataclass
class RunResults:
    """What one run (one dataset, one set of held-out domains, one seed) measured, per method.

    A run's `methods` hold its live model (`erm` or `dropout`, the model saved in its output_dir) and, when they
    were switched on, its trajectory weight average (`trajectory_wa`) and trajectory ensemble
    (`trajectory_ensemble`), each at the step the run's selection strategy chose. A combination of finished runs
    (`examples/combine_runs.py`) holds soups and run ensembles in the same format.

    Args:
        dataset (`str`): dataset name or path.
        train_domains (`list[str]`): the training domains.
        test_domains (`list[str]`): the held-out (o.o.d.) domains.
        seed (`int | None`): the run's seed (splits, sampling, initialisation); `None` for a combination of runs.
        backbone (`str`): where the backbone weights came from.
        dropout_rate (`float`): the dropout rate on the penultimate features.
        methods (`dict[str, MethodResults]`): method name (see `METHOD_TITLES`) -> its selected model's accuracy.
        primary_method (`str`): the method whose model the output_dir holds (default: the live model's name).
        selection (`str`): the selection strategy (`hf_bigdrop.selection.SELECTION_STRATEGIES`).
        freeze_batchnorm (`bool`): whether BatchNorm statistics stayed as pretrained.
        optimizer (`str`): the optimizer (`TrainingArguments.optim`).
        learning_rate (`float | None`): the base learning rate.
        max_steps (`int | None`): the number of optimizer steps.
        holdout_fraction (`float`): the validation fraction of each training domain.
        members (`list[str]`): for a combination, the output_dirs of the runs it combines.
        wall_time_s (`float`): wall-clock seconds of the run.
        arguments (`dict`): every argument of the run.
        versions (`dict[str, str]`): library versions.
        history (`list[dict]`): evaluation entries of the training log.
    """

    dataset: str
    train_domains: list[str]
    test_domains: list[str]
    seed: int | None
    backbone: str
    dropout_rate: float
    methods: dict[str, MethodResults]
    primary_method: str = ""
    selection: str = "training_domain_validation"
    freeze_batchnorm: bool = True
    optimizer: str = ""
    learning_rate: float | None = None
    max_steps: int | None = None
    holdout_fraction: float = 0.2
    members: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    arguments: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self):
        self.primary_method = self.primary_method or live_method_name(self.dropout_rate)
        if self.primary_method not in self.methods:
            raise ValueError(
                f"primary_method {self.primary_method!r} is not among the methods {list(self.methods)}"
            )

    @property
    def primary(self) -> MethodResults:
        """The record of the model that the output_dir holds."""
        return self.methods[self.primary_method]

    @property
    def validation_accuracy(self) -> dict[str, float]:
        return self.primary.validation_accuracy

    @property
    def test_accuracy(self) -> dict[str, float]:
        return self.primary.test_accuracy

    @property
    def oracle_accuracy(self) -> dict[str, float]:
        return self.primary.oracle_accuracy

    @property
    def selected_step(self) -> int | None:
        return self.primary.selected_step

    @property
    def mean_validation_accuracy(self) -> float:
        return self.primary.mean_validation_accuracy

    @property
    def mean_test_accuracy(self) -> float:
        return self.primary.mean_test_accuracy

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / RESULTS_FILE
        payload = asdict(self)
        for name, method in self.methods.items():
            payload["methods"][name]["mean_validation_accuracy"] = method.mean_validation_accuracy
            payload["methods"][name]["mean_test_accuracy"] = method.mean_test_accuracy
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
        if "methods" not in payload:  # written before per-method records: one live model, flat fields
            payload = _from_single_method_format(payload)
        methods = {}
        for name, record in payload.pop("methods").items():
            record.pop("mean_validation_accuracy", None)
            record.pop("mean_test_accuracy", None)
            methods[name] = MethodResults(**record)
        return cls(**payload, methods=methods)


def _from_single_method_format(payload: dict) -> dict:
    live = {key: payload.pop(key, {}) for key in ("validation_accuracy", "test_accuracy", "oracle_accuracy")}
    metric = payload.pop("selection_metric", "eval_val_accuracy")
    for key in ("mean_validation_accuracy", "mean_test_accuracy"):
        payload.pop(key, None)
    payload["selection"] = {"last step": "last_step", "eval_oracle_accuracy": "oracle"}.get(
        metric, "training_domain_validation"
    )
    payload["methods"] = {
        live_method_name(payload["dropout_rate"]): {
            "selected_step": payload.pop("selected_step", None),
            **live,
        }
    }
    return payload


def _method_order(method: str) -> int:
    return list(METHOD_TITLES).index(method) if method in METHOD_TITLES else len(METHOD_TITLES)


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
    for method in sorted(
        {m for r in runs.values() for m in r.methods if m != r.primary_method}, key=_method_order
    ):
        records = [r.methods.get(method) for r in runs.values()]
        row(
            f"{METHOD_TITLES.get(method, method)}: mean o.o.d.", [m and m.mean_test_accuracy for m in records]
        )
    lines.append("| wall time (s) | " + " | ".join(f"{r.wall_time_s:.0f}" for r in runs.values()) + " |")
    return "\n".join(lines)


__all__ = [
    "METHOD_TITLES",
    "RESULTS_FILE",
    "MethodResults",
    "RunResults",
    "comparison_table",
    "domain_table",
    "live_method_name",
]
