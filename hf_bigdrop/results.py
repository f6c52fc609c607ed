"""The results of one o.o.d. run (`results.json`), per method, and the tables that show runs.

A method is named the same way everywhere (`METHODS`): the run's live model is `live` whatever its dropout rate (a
field of the run), its trajectory baselines `trajectory_wa` and `trajectory_ensemble`, combinations of finished runs
`uniform_soup`, `greedy_soup` and `run_ensemble`. Titles ("ERM", "dropout (p=0.9)") are chosen only when a table is
drawn (`hf_bigdrop.tables.method_title`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .hub import backbone_license
from .metrics import mean_domain_accuracy
from .selection import TRAINING_DOMAIN_VALIDATION, TRAJECTORY_METHODS, Selection

RESULTS_FILE = "results.json"
# Every method a results file can hold: along one run (`TRAJECTORY_METHODS`), then combinations of finished runs.
COMBINATION_METHODS = ("greedy_soup", "uniform_soup", "run_ensemble")
METHODS = (*TRAJECTORY_METHODS, *COMBINATION_METHODS)


@dataclass
class MethodResults:
    """The model one method selected in a run, and its accuracy (fractions in [0, 1], keyed by domain name).

    Args:
        selected_step (`int | None`): the optimizer step of the selected evaluation (`None` for soups and
            ensembles of finished runs).
        validation_accuracy (`dict[str, float]`): per training domain, on its validation split (in distribution).
        test_accuracy (`dict[str, float]`): per held-out domain (out of distribution).
        oracle_accuracy (`dict[str, float]`): per held-out domain on its validation part (oracle selection only).
        fit_accuracy (`dict[str, float]`): per training domain, on a fixed sample of its training split with dropout
            off (how well the model fits its training data), when the run measured it.
        known_accuracy (`dict[str, float]`): per held-out domain, on the groups training saw (a grouped dataset's
            diagnostic of recognising known instances in a new domain; never the o.o.d. result).
    """

    selected_step: int | None
    validation_accuracy: dict[str, float]
    test_accuracy: dict[str, float]
    oracle_accuracy: dict[str, float] = field(default_factory=dict)
    fit_accuracy: dict[str, float] = field(default_factory=dict)
    known_accuracy: dict[str, float] = field(default_factory=dict)

    @property
    def mean_validation_accuracy(self) -> float:
        return mean_domain_accuracy(self.validation_accuracy.values())

    @property
    def mean_test_accuracy(self) -> float:
        return mean_domain_accuracy(self.test_accuracy.values())

    @property
    def mean_fit_accuracy(self) -> float | None:
        """The mean fit over training domains, or `None` when the run did not measure it."""
        return mean_domain_accuracy(self.fit_accuracy.values()) if self.fit_accuracy else None

    @property
    def mean_known_accuracy(self) -> float | None:
        """The mean known-instance diagnostic over held-out domains, or `None` when the run did not measure it."""
        return mean_domain_accuracy(self.known_accuracy.values()) if self.known_accuracy else None

    @property
    def accuracy_by_group(self) -> dict[str, dict[str, float]]:
        """Group -> domain -> accuracy, as `Selection.accuracy` holds it (what a selection rule scores)."""
        return {
            "val": self.validation_accuracy,
            "test": self.test_accuracy,
            "oracle": self.oracle_accuracy,
            "fit": self.fit_accuracy,
            "known": self.known_accuracy,
        }

    @classmethod
    def from_selection(cls, selection: Selection) -> MethodResults:
        """The record of a `hf_bigdrop.selection.Selection`."""
        return cls(
            selected_step=selection.step,
            validation_accuracy=dict(selection.accuracy.get("val", {})),
            test_accuracy=dict(selection.accuracy.get("test", {})),
            oracle_accuracy=dict(selection.accuracy.get("oracle", {})),
            fit_accuracy=dict(selection.accuracy.get("fit", {})),
            known_accuracy=dict(selection.accuracy.get("known", {})),
        )


@dataclass
class RunResults:
    """What one run (one dataset, one set of held-out domains, one seed) measured, per method.

    A run's `methods` hold its live model (`live`, the model saved in its output_dir) and, when they
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
        methods (`dict[str, MethodResults]`): method name (one of `METHODS`) -> its selected model's accuracy.
        primary_method (`str`): the method whose model the output_dir holds (default: `live`).
        selection (`str`): the selection strategy (a name of `hf_bigdrop.selection.SELECTION_RULES`).
        freeze_batchnorm (`bool`): whether BatchNorm statistics stayed as pretrained.
        optimizer (`str`): the optimizer (`TrainingArguments.optim`).
        learning_rate (`float | None`): the base learning rate.
        max_steps (`int | None`): the number of optimizer steps.
        holdout_fraction (`float | None`): the validation fraction of each training domain (`None`: not recorded).
        backbone_license (`str | None`): the licence of the backbone's weights where known
            (`hf_bigdrop.hub.backbone_license`), which the model's licence follows.
        members (`list[str]`): for a combination, the output_dirs of the runs it combines.
        wall_time_s (`float`): wall-clock seconds of the run.
        arguments (`dict`): every argument of the run.
        versions (`dict[str, str]`): library versions.
        history (`list[dict]`): the evaluation and training-loss entries of the training log.
    """

    dataset: str
    train_domains: list[str]
    test_domains: list[str]
    seed: int | None
    backbone: str
    dropout_rate: float
    methods: dict[str, MethodResults]
    primary_method: str = ""
    selection: str = TRAINING_DOMAIN_VALIDATION
    freeze_batchnorm: bool = True
    optimizer: str = ""
    learning_rate: float | None = None
    max_steps: int | None = None
    holdout_fraction: float | None = None
    backbone_license: str | None = None
    members: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    arguments: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self):
        self.primary_method = self.primary_method or "live"
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; the methods are {list(METHODS)}")
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
        """Reads `results.json` (or the folder that holds it).

        Raises:
            `FileNotFoundError`: no such file.
            `ValueError`: a file that is not a complete `results.json` of this format (the message names it).
        """
        path = Path(path)
        if path.is_dir():
            path = path / RESULTS_FILE
        if not path.exists():
            raise FileNotFoundError(f"No {RESULTS_FILE} at {path}: is it the output_dir of a finished run?")
        try:
            payload = json.loads(path.read_text())
            methods = {}
            for name, record in payload.pop("methods").items():
                record.pop("mean_validation_accuracy", None)
                record.pop("mean_test_accuracy", None)
                methods[name] = MethodResults(**record)
            return cls(**payload, methods=methods)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                f"{path} is not a readable {RESULTS_FILE} ({type(error).__name__}: {error})"
            ) from None

    @classmethod
    def from_trainer(
        cls,
        trainer,
        *,
        dataset: str,
        backbone: str,
        train_domains: list[str],
        test_domains: list[str],
        arguments: dict[str, Any],
        wall_time_s: float,
    ) -> RunResults:
        """The record of a trained run: what `trainer.select_models()` selected per method, and how the run was set
        up (the model's config gives the dropout rate and the BatchNorm policy)."""
        config = trainer.model.config
        args = trainer.args
        return cls(
            dataset=dataset,
            train_domains=train_domains,
            test_domains=test_domains,
            seed=args.seed,
            backbone=backbone,
            dropout_rate=float(config.dropout_rate),
            methods={
                method: MethodResults.from_selection(selection)
                for method, selection in trainer.select_models().items()
            },
            selection=args.selection_strategy,
            freeze_batchnorm=bool(config.freeze_batchnorm),
            optimizer=str(getattr(args.optim, "value", args.optim)),
            learning_rate=args.learning_rate,
            max_steps=trainer.state.max_steps,
            holdout_fraction=arguments.get("data", {}).get(
                "holdout_fraction"
            ),  # as recorded, never a default
            backbone_license=backbone_license(backbone, getattr(config, "backbone_config", None)),
            wall_time_s=wall_time_s,
            arguments=arguments,
            versions=library_versions(),
            history=[
                entry for entry in trainer.state.log_history if any(k.startswith("eval_") for k in entry)
            ],
        )


def library_versions() -> dict[str, str]:
    """The versions of Python and of the libraries a result depends on."""
    import sys

    import accelerate
    import datasets
    import timm
    import torch
    import transformers

    from . import __version__

    modules = (torch, transformers, datasets, accelerate, timm)
    return {
        "python": sys.version.split()[0],
        "hf_bigdrop": __version__,
        **{module.__name__: module.__version__ for module in modules},
    }


__all__ = [
    "COMBINATION_METHODS",
    "METHODS",
    "RESULTS_FILE",
    "TRAJECTORY_METHODS",
    "MethodResults",
    "RunResults",
    "library_versions",
]
