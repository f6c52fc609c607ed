#!/usr/bin/env python
"""The redundant-features experiment: where and why very large dropout keeps weak features that a shift needs.

Two scales (`--scale`), each with its own arguments (`--scale pretrained --help`).

*linear*: one strong feature and eight weak ones all predict a binary label, either as independent evidence or as
noisier copies of the strong one (the `shared_noises` knob). A logistic-regression head (`nn.Dropout(p)` on its
inputs, then a zero-initialised `nn.Linear`, as in `BigDropForImageClassification`) is trained with the same
optimiser and budget for every dropout rate p, and with L2 weight decay at p=0, over several seeds. Then the strong
feature stops carrying the label (it is redrawn from its own distribution, independent of everything else).
Measured: accuracy under that shift, in distribution and on the weak features alone, and the weak features' share
of the head's margin, beside two rules computed from the distribution (the Bayes rule; each feature fitted alone).

*pretrained*: `BigDropForImageClassification` around a pretrained backbone (the embedded ImageNet
EfficientNet-Lite0) is fine-tuned on the embedded `styles` photos (one style held out) with a planted cue: a
coloured frame whose colour is the image's class colour in a chosen share of the training images (the
`cue_agreements` knob; 0 = grey frames, no cue). Measured at the best training-domain validation checkpoint of
each budget: accuracy with the cue as trained, removed (grey) and flipped (another class's colour), on validation
and on the held-out style; a linear probe of the fine-tuned features for the class without the cue; how many
penultimate units hold 90% of the head.

See docs/redundant_features.md.

    python examples/redundant_features.py              # linear, about 40 s of CPU time (one thread)
    python examples/redundant_features.py --seeds 0 1 2 --shared_noises 1 --output_dir runs/redundant_only
    python examples/redundant_features.py --scale pretrained --device cuda --workers 6 --cpu_threads 2

Writes to `output_dir`: `results.csv` (one row per run and budget), `results.md` (mean ± std over seeds) and
`redundant_features.png` (linear) or `redundant_features_pretrained.png` (pretrained).
"""

from __future__ import annotations

import csv
import itertools
import math
import statistics
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import HfArgumentParser

METRICS = ("in_distribution", "shifted", "weak_only", "weak_share")
METRIC_TITLES = {
    "in_distribution": "in distribution",
    "shifted": "strong feature shuffled (o.o.d.)",
    "weak_only": "weak features alone",
    "weak_share": "weak features' share of the margin",
}


def _check_positive(values: dict[str, float]) -> None:
    bad = {name: value for name, value in values.items() if not value > 0}
    if bad:
        raise ValueError(f"these arguments must be > 0: {bad}")


def _check_budgets(budgets: list[int]) -> None:
    if not budgets or min(budgets) < 1:
        raise ValueError(f"budgets={budgets} must be a non-empty list of step counts >= 1")


@dataclass
class ExperimentArguments:
    """What to run and where to write it."""

    scale: str = field(
        default="linear",
        metadata={
            "help": "Which experiment: linear (logistic regression on synthetic features) or pretrained "
            "(fine-tuning a pretrained backbone on the styles photos with a planted colour cue)."
        },
    )
    output_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where the CSV, Markdown table and figure go (default: runs/redundant_features for linear, "
            "runs/redundant_features_pretrained for pretrained)."
        },
    )
    seeds: list[int] | None = field(
        default=None,
        metadata={"help": "One run per seed and setting (default: linear 0 1 2 3 4, pretrained 0 1 2)."},
    )
    dropout_rates: list[float] | None = field(
        default=None,
        metadata={
            "help": "Dropout rates on the head's inputs; 0 = plain training (ERM). Default: linear 0 0.25 0.5 "
            "0.75 0.9 0.95, pretrained 0 0.5 0.9."
        },
    )

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"scale={self.scale!r} is not one of {sorted(SCALES)}")
        if self.output_dir is None:
            self.output_dir = SCALES[self.scale].output_dir
        if self.seeds is None:
            self.seeds = list(SCALES[self.scale].seeds)
        if self.dropout_rates is None:
            self.dropout_rates = list(SCALES[self.scale].dropout_rates)
        bad = [p for p in self.dropout_rates if not 0 <= p < 1]
        if bad:
            raise ValueError(f"dropout_rates {bad} are outside [0, 1)")
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one seed")


@dataclass
class LinearArguments:
    """The linear case: synthetic features, logistic regression, SGD."""

    num_weak: int = field(default=8, metadata={"help": "Number of weak features."})
    strong_margin: float = field(
        default=2.0, metadata={"help": "Mean of the strong feature times the label (±1)."}
    )
    strong_noise: float = field(
        default=0.25, metadata={"help": "Standard deviation of the strong feature's own noise."}
    )
    shared_noises: list[float] = field(
        default_factory=lambda: [0.0, 1.0],
        metadata={
            "help": "The knob, one regime each: standard deviation of a label-independent noise that the strong "
            "feature carries whole and each weak feature carries scaled by weak_margin / strong_margin. At 0 the "
            "features are independent given the label (each weak feature adds evidence of its own); above 0 the "
            "weak features are noisier copies of the strong one (redundant: given the strong one they add little)."
        },
    )
    weak_margin: float = field(
        default=0.5, metadata={"help": "Mean of each weak feature times the label (±1)."}
    )
    weak_noise: float = field(default=1.0, metadata={"help": "Standard deviation of each weak feature."})
    num_train: int = field(default=1000, metadata={"help": "Training examples (a fixed sample per seed)."})
    num_test: int = field(default=20000, metadata={"help": "Test examples per evaluation set."})
    batch_size: int = field(default=32, metadata={"help": "Examples per SGD step."})
    learning_rate: float = field(
        default=0.1,
        metadata={"help": "SGD learning rate; x0.1 for the second half of the budget (paper's schedule)."},
    )
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum."})
    budgets: list[int] = field(
        default_factory=lambda: [500, 2000],
        metadata={"help": "Training budgets in SGD steps (one run each)."},
    )
    weight_decays: list[float] = field(
        default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0],
        metadata={"help": "L2 weight decay values (on the weights, not the bias) run at p=0 for comparison."},
    )

    def __post_init__(self):
        positive = {
            "num_weak": self.num_weak,
            "strong_margin": self.strong_margin,
            "weak_margin": self.weak_margin,
            "strong_noise": self.strong_noise,
            "weak_noise": self.weak_noise,
            "num_train": self.num_train,
            "num_test": self.num_test,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
        }
        _check_positive(positive)
        _check_budgets(self.budgets)
        if not self.shared_noises or min(self.shared_noises) < 0:
            raise ValueError(f"shared_noises={self.shared_noises} must be a non-empty list of values >= 0")
        if any(wd < 0 for wd in self.weight_decays):
            raise ValueError(f"weight_decays={self.weight_decays} must be >= 0")


# ----------------------------------------------------------------------------------------------- linear case
def sample_features(
    args: LinearArguments, num: int, generator: torch.Generator, *, shared_noise: float, strong: str = "label"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws `num` examples: column 0 is the strong feature, columns 1.. the weak ones; labels are 0/1.

    With `y = ±1`, a shared noise `s ~ N(0, shared_noise²)` and independent unit noises `e`:
    strong `= strong_margin·y + s + strong_noise·e`, weak `= weak_margin·y + (weak_margin / strong_margin)·s +
    weak_noise·e`. With `shared_noise = 0` every feature is independent evidence about the label; above 0 the weak
    features are scaled, noisier copies of the strong one.

    Args:
        args (`LinearArguments`): margins and noise levels.
        num (`int`): number of examples.
        generator (`torch.Generator`): the random source (seeded by the caller).
        shared_noise (`float`): standard deviation of the noise the weak features share with the strong one.
        strong (`str`, *optional*, defaults to `"label"`): `"label"`: the training distribution;
            `"shuffled"`: the strong feature is drawn with a fresh random sign and a fresh shared noise (its own
            distribution, nothing in common with the label or the weak features: the shift);
            `"zero"`: it is 0 (the weak features alone).
    """
    if strong not in ("label", "shuffled", "zero"):
        raise ValueError(f"strong={strong!r} is not one of ['label', 'shuffled', 'zero']")
    labels = torch.randint(0, 2, (num,), generator=generator)
    sign = 2.0 * labels - 1.0
    shared = shared_noise * torch.randn(num, generator=generator)
    noise = torch.randn(num, 1 + args.num_weak, generator=generator)
    weak = args.weak_margin * sign[:, None] + (args.weak_margin / args.strong_margin) * shared[:, None]
    weak = weak + args.weak_noise * noise[:, 1:]
    if strong == "zero":
        return torch.cat([torch.zeros(num, 1), weak], dim=1), labels
    if strong == "shuffled":
        sign = 2.0 * torch.randint(0, 2, (num,), generator=generator) - 1.0
        shared = shared_noise * torch.randn(num, generator=generator)
    strong_value = args.strong_margin * sign + shared + args.strong_noise * noise[:, 0]
    return torch.cat([strong_value[:, None], weak], dim=1), labels


def build_head(num_features: int, dropout_rate: float) -> nn.Sequential:
    """Inverted dropout on the features, then a zero-initialised linear layer with one logit."""
    linear = nn.Linear(num_features, 1)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(nn.Dropout(dropout_rate), linear)


@torch.no_grad()
def measure(
    head: nn.Sequential, test_sets: dict[str, tuple[torch.Tensor, torch.Tensor]], args: LinearArguments
) -> dict[str, float]:
    """Accuracy (%) on every test set, and the weak features' share (%) of the head's mean margin.

    The margin share is `m_weak / (m_weak + m_strong)` with `m_weak = weak_margin * sum(w_weak)` and
    `m_strong = strong_margin * w_strong`: how much of the mean label-aligned logit the weak features supply. It,
    not the share of |w|, decides who wins when the strong feature disagrees with the weak ones, because the
    features have different scales.
    """
    head.eval()
    results = {}
    for name, (features, labels) in test_sets.items():
        predictions = (head(features).squeeze(1) > 0).long()
        results[name] = 100.0 * (predictions == labels).float().mean().item()
    weight = head[1].weight.squeeze(0)
    weak = args.weak_margin * weight[1:].sum().item()
    total = weak + args.strong_margin * weight[0].item()
    results["weak_share"] = 100.0 * weak / total if total != 0 else float("nan")
    head.train()
    return results


def make_data(
    args: LinearArguments, *, shared_noise: float, seed: int
) -> tuple[tuple[torch.Tensor, torch.Tensor], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """The training sample and the three test sets (in distribution, strong feature shuffled, weak ones alone)."""
    data = torch.Generator().manual_seed(seed)
    train = sample_features(args, args.num_train, data, shared_noise=shared_noise)
    test_sets = {
        shift: sample_features(args, args.num_test, data, shared_noise=shared_noise, strong=strong)
        for shift, strong in (("in_distribution", "label"), ("shifted", "shuffled"), ("weak_only", "zero"))
    }
    return train, test_sets


def reference_head(args: LinearArguments, *, shared_noise: float, rule: str) -> nn.Sequential:
    """A linear rule computed from the training distribution, with no training.

    The features are Gaussian given the label with means `±mu` and a shared covariance `Sigma`.

    Args:
        args (`LinearArguments`): margins and noise levels.
        shared_noise (`float`): the regime.
        rule (`str`): `"bayes"`: the Bayes-optimal rule, weight `2 Sigma^-1 mu` (LDA), the best head in
            distribution; `"each_alone"`: every feature's weight fitted as if it were the only input,
            `2 mu_j / Sigma_jj`, the rule that dropout approaches as p -> 1 (then almost every training example
            shows the head a single feature, and the loss separates into one logistic fit per feature).
    """
    ratio = args.weak_margin / args.strong_margin
    mean = torch.tensor([args.strong_margin] + [args.weak_margin] * args.num_weak, dtype=torch.float64)
    loading = torch.tensor([1.0] + [ratio] * args.num_weak, dtype=torch.float64)
    own = torch.tensor([args.strong_noise**2] + [args.weak_noise**2] * args.num_weak, dtype=torch.float64)
    covariance = torch.diag(own) + shared_noise**2 * torch.outer(loading, loading)
    if rule == "bayes":
        weight = 2 * torch.linalg.solve(covariance, mean)
    elif rule == "each_alone":
        weight = 2 * mean / covariance.diagonal()
    else:
        raise ValueError(f"rule={rule!r} is not one of {sorted(REFERENCE_RULES)}")
    head = build_head(1 + args.num_weak, 0.0)
    with torch.no_grad():
        head[1].weight.copy_(weight.float()[None])
    return head


REFERENCE_RULES = {
    "bayes": "Bayes rule of the training distribution",
    "each_alone": "each feature fitted alone (dropout's p -> 1 limit)",
}


def train_linear(
    args: LinearArguments,
    *,
    shared_noise: float,
    seed: int,
    dropout_rate: float,
    steps: int,
    weight_decay: float = 0.0,
) -> dict[str, float]:
    """One seeded run of `steps` SGD steps (learning rate x0.1 after half of them); returns its measurements.

    The seed fixes the training sample, the test samples, the batches and the dropout masks, so two calls with the
    same arguments give the same numbers, and different dropout rates with one seed see the same data.
    """
    (train_x, train_y), test_sets = make_data(args, shared_noise=shared_noise, seed=seed)
    torch.manual_seed(seed)  # dropout masks
    batches = torch.Generator().manual_seed(seed + 1)
    head = build_head(1 + args.num_weak, dropout_rate)
    linear = head[1]
    optimizer = torch.optim.SGD(
        [
            {"params": [linear.weight], "weight_decay": weight_decay},
            {"params": [linear.bias], "weight_decay": 0.0},
        ],
        lr=args.learning_rate,
        momentum=args.momentum,
    )
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[steps // 2], gamma=0.1)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(steps):
        index = torch.randint(0, args.num_train, (args.batch_size,), generator=batches)
        loss = loss_fn(head(train_x[index]).squeeze(1), train_y[index].float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return measure(head, test_sets, args)


def run_linear(experiment: ExperimentArguments, args: LinearArguments) -> list[dict]:
    """For every shared noise: every dropout rate (no weight decay) and every weight decay (p = 0), for every seed
    and every budget, one row per run; and the reference rules measured on each seed's test sets (`steps` 0)."""
    settings = [("dropout", p, 0.0) for p in experiment.dropout_rates]
    settings += [("weight_decay", 0.0, wd) for wd in args.weight_decays]
    rows = []
    for noise in args.shared_noises:
        for rule, seed in itertools.product(REFERENCE_RULES, experiment.seeds):
            head = reference_head(args, shared_noise=noise, rule=rule)
            row = {"shared_noise": noise, "steps": 0, "regulariser": rule, "dropout_rate": 0.0}
            row |= {"weight_decay": 0.0, "seed": seed}
            rows.append(row | measure(head, make_data(args, shared_noise=noise, seed=seed)[1], args))
        for steps in sorted(set(args.budgets)):
            for (regulariser, p, wd), seed in itertools.product(settings, experiment.seeds):
                row = {"shared_noise": noise, "steps": steps, "regulariser": regulariser, "dropout_rate": p}
                row |= {"weight_decay": wd, "seed": seed}
                run = train_linear(
                    args, shared_noise=noise, seed=seed, dropout_rate=p, steps=steps, weight_decay=wd
                )
                rows.append(row | run)
    return rows


# ------------------------------------------------------------------------------------------ tables and figure
SETTING_KEYS = ("shared_noise", "regulariser", "dropout_rate", "weight_decay", "steps")


def summarise(
    rows: list[dict],
    keys: tuple[str, ...] = SETTING_KEYS,
    metrics: tuple[str, ...] = METRICS,
    order: tuple[str, ...] = ("shared_noise", "steps", "regulariser", "dropout_rate", "weight_decay"),
) -> list[dict]:
    """Mean and standard deviation (ddof 1; 0 for a single seed) over seeds, per setting (`keys`) and budget,
    sorted by `order`."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in keys), []).append(row)
    summary = []
    for key, group in groups.items():
        entry = dict(zip(keys, key)) | {"seeds": len(group)}
        for metric in metrics:
            values = [row[metric] for row in group]
            if any(math.isnan(value) for value in values):  # not measured for this setting
                entry[metric] = entry[f"{metric}_std"] = math.nan
                continue
            entry[metric] = statistics.fmean(values)
            entry[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary.append(entry)
    return sorted(summary, key=lambda e: tuple(e[key] for key in order))


def markdown_table(summary: list[dict]) -> str:
    """One line per (strong noise, budget, setting): the four measurements as mean ± std over seeds."""
    titles = " | ".join(METRIC_TITLES[m] for m in METRICS)
    lines = [f"| shared noise | steps | setting | {titles} |", "|" + "---:|" * (3 + len(METRICS))]
    for entry in summary:
        if entry["regulariser"] in REFERENCE_RULES:
            setting = REFERENCE_RULES[entry["regulariser"]]
        elif entry["regulariser"] == "dropout":
            setting = f"dropout p={entry['dropout_rate']:g}"
        else:
            setting = f"L2 {entry['weight_decay']:g}, p=0"
        cells = " | ".join(f"{entry[m]:.1f} ± {entry[f'{m}_std']:.1f}" for m in METRICS)
        steps = entry["steps"] or "no training"
        lines.append(f"| {entry['shared_noise']:g} | {steps} | {setting} | {cells} |")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_rate_curve(axis, curve: list[dict], metric: str, colour, label: str) -> None:
    """One curve of a summary metric against the dropout rate, with its std over seeds as error bars."""
    axis.errorbar(
        [e["dropout_rate"] for e in curve],
        [e[metric] for e in curve],
        yerr=[e[f"{metric}_std"] for e in curve],
        marker="o",
        capsize=3,
        color=colour,
        label=label,
    )


def plot(summary: list[dict], path: Path, title: str) -> None:
    """One column per shared noise: o.o.d. accuracy (top) and the weak features' margin share (bottom) against the
    dropout rate, one line per budget (± std over seeds); L2 at p=0 and the longest budget as dashed horizontal
    lines, the reference rules (Bayes, each feature alone) dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noises = sorted({e["shared_noise"] for e in summary})
    budgets = sorted({e["steps"] for e in summary if e["steps"]})
    figure, axes = plt.subplots(
        2, len(noises), figsize=(5.2 * len(noises), 8), squeeze=False, sharex=True, sharey="row"
    )
    colours = plt.cm.viridis([0.1 + 0.75 * i / max(1, len(budgets) - 1) for i in range(len(budgets))])
    decays = sorted({e["weight_decay"] for e in summary if e["regulariser"] == "weight_decay"})
    greys = plt.cm.Greys([0.4 + 0.5 * i / max(1, len(decays) - 1) for i in range(len(decays))])
    for column, noise in enumerate(noises):
        for row, metric in enumerate(("shifted", "weak_share")):
            axis = axes[row, column]
            for steps, colour in zip(budgets, colours):
                curve = [
                    e
                    for e in summary
                    if (e["shared_noise"], e["steps"], e["regulariser"]) == (noise, steps, "dropout")
                ]
                plot_rate_curve(axis, curve, metric, colour, f"dropout, {steps} steps")
            for decay, grey in zip(decays, greys):
                (entry,) = [
                    e
                    for e in summary
                    if (e["shared_noise"], e["steps"], e["regulariser"], e["weight_decay"])
                    == (noise, budgets[-1], "weight_decay", decay)
                ]
                axis.axhline(
                    entry[metric], ls="--", lw=1, color=grey, label=f"p=0, L2 {decay:g}, {budgets[-1]} steps"
                )
            for rule, colour in zip(REFERENCE_RULES, ("tab:red", "tab:orange")):
                (entry,) = [e for e in summary if (e["shared_noise"], e["regulariser"]) == (noise, rule)]
                axis.axhline(entry[metric], ls=":", lw=1.5, color=colour, label=REFERENCE_RULES[rule])
            axis.grid(alpha=0.3)
        axes[0, column].set_title(
            f"shared noise {noise:g}" + (" (independent features)" if noise == 0 else " (redundant features)")
        )
        axes[0, column].set_ylabel("o.o.d. accuracy, strong feature shuffled (%)")
        axes[1, column].set_ylabel("weak features' share of the margin (%)")
        axes[1, column].set_xlabel("dropout rate p")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report_linear(
    experiment: ExperimentArguments, args: LinearArguments, rows: list[dict]
) -> tuple[str, list[dict]]:
    """Writes `results.csv`, `results.md` and the figure into `experiment.output_dir`; returns the printed text
    (heading and table) and the summary (mean ± std over seeds per setting)."""
    summary = summarise(rows)
    output_dir = Path(experiment.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    heading = (
        f"Redundant features, linear scale: 1 strong feature (margin {args.strong_margin:g}, own noise "
        f"{args.strong_noise:g}), {args.num_weak} weak ones (margin {args.weak_margin:g}, own noise "
        f"{args.weak_noise:g}), shared noise {', '.join(f'{n:g}' for n in args.shared_noises)}; "
        f"{args.num_train} training examples, SGD lr {args.learning_rate:g} (x0.1 at half) momentum "
        f"{args.momentum:g}, batch {args.batch_size}; seeds {experiment.seeds}; accuracy and margin share in %, "
        "mean ± std over seeds (ddof 1)."
    )
    table = markdown_table(summary)
    write_csv(rows, output_dir / "results.csv")
    (output_dir / "results.md").write_text(f"{heading}\n\n{table}\n\nArguments: {asdict(args)}\n")
    plot(summary, output_dir / "redundant_features.png", heading.split(";")[0])
    return f"{heading}\n\n{table}", summary


# ------------------------------------------------------------------------------------------- pretrained case
PRETRAINED_METRICS = (
    "validation",
    "validation_no_cue",
    "validation_flipped",
    "flipped_follows_cue",
    "ood",
    "ood_no_cue",
    "probe_validation",
    "probe_ood",
    "head_units",
)
PRETRAINED_TITLES = {
    "validation": "validation, cue as trained",
    "validation_no_cue": "validation, cue removed",
    "validation_flipped": "validation, cue flipped",
    "flipped_follows_cue": "cue flipped: predicts the cue's class",
    "ood": "held-out style, cue as trained",
    "ood_no_cue": "held-out style, cue removed (o.o.d.)",
    "probe_validation": "probe on features, validation (no cue)",
    "probe_ood": "probe on features, held-out style (no cue)",
    "head_units": "units holding 90% of the head",
}
PRETRAINED_KEYS = ("cue_agreement", "steps", "setting", "dropout_rate")
# Grey frame: the cue removed (the border stays, its colour says nothing).
NO_CUE = -1


@dataclass
class PretrainedArguments:
    """The pretrained case: fine-tuning a pretrained backbone on the `styles` photos with a planted colour cue."""

    backbone: str = field(
        default="embedded:efficientnet-lite0",
        metadata={
            "help": "Pretrained backbone (embedded name, local folder or Hub id) for BigDropForImageClassification."
        },
    )
    test_domain: str = field(
        default="sketch", metadata={"help": "The held-out style of `styles` (the style shift)."}
    )
    image_size: int = field(default=64, metadata={"help": "Side of the stored `styles` images, in pixels."})
    examples_per_class: int = field(
        default=100,
        metadata={"help": "`styles` crops per class and style (its builder's examples_per_class)."},
    )
    max_per_domain: int | None = field(
        default=None, metadata={"help": "Keep at most this many images per style (quick runs); default all."}
    )
    cue_agreements: list[float] = field(
        default_factory=lambda: [0.0, 0.8, 0.9],
        metadata={
            "help": "The knob, one setting each: fraction of training images whose coloured frame has their own "
            "class's colour (the others get another class's colour, drawn uniformly). 0 = no cue: every frame "
            "is grey (the control)."
        },
    )
    cue_width: int = field(default=4, metadata={"help": "Width of the coloured frame, in pixels."})
    budgets: list[int] = field(
        default_factory=lambda: [300, 1000],
        metadata={
            "help": "Training budgets in steps. The learning rate is constant, so a shorter budget is the start "
            "of the longest run: one run per setting, the best checkpoint within each budget is measured."
        },
    )
    eval_steps: int = field(
        default=50, metadata={"help": "Training-domain validation (cue as trained) every this many steps."}
    )
    per_domain_batch_size: int = field(default=16, metadata={"help": "Images per training style a step."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate of the backbone."})
    classifier_lr_multiplier: float = field(
        default=10.0, metadata={"help": "The classifier's learning rate is this times learning_rate."}
    )
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay."})
    probe_l2: float = field(
        default=1e-3,
        metadata={"help": "L2 penalty of the linear probe (logistic regression on standardised features)."},
    )
    probe_steps: int = field(default=100, metadata={"help": "L-BFGS iterations of the linear probe."})
    device: str = field(default="cpu", metadata={"help": "Where to train: cpu, cuda, cuda:1, ..."})
    workers: int = field(
        default=1,
        metadata={
            "help": "Runs at a time, each in its own process (several fit one GPU: these runs are small)."
        },
    )
    cpu_threads: int = field(
        default=1,
        metadata={"help": "torch CPU threads of each run (on a busy CPU, one thread per run was fastest)."},
    )
    channels_last: bool = field(
        default=True, metadata={"help": "channels_last memory format (faster convolutions)."}
    )

    def __post_init__(self):
        bad = [a for a in self.cue_agreements if not 0 <= a <= 1]
        if bad or not self.cue_agreements:
            raise ValueError(
                f"cue_agreements={self.cue_agreements} must be a non-empty list of values in [0, 1]"
            )
        _check_budgets(self.budgets)
        positive = {
            "image_size": self.image_size,
            "examples_per_class": self.examples_per_class,
            "eval_steps": self.eval_steps,
            "per_domain_batch_size": self.per_domain_batch_size,
            "learning_rate": self.learning_rate,
            "classifier_lr_multiplier": self.classifier_lr_multiplier,
            "probe_steps": self.probe_steps,
            "workers": self.workers,
            "cpu_threads": self.cpu_threads,
        }
        _check_positive(positive)
        if not 0 < 2 * self.cue_width < self.image_size:
            raise ValueError(
                f"cue_width={self.cue_width} must be >= 1 and leave part of a {self.image_size}-px image"
            )
        torch.device(self.device)  # raises on a malformed device string


@dataclass
class StyleImages:
    """The `styles` splits decoded once: uint8 images `(N, 3, H, W)`, labels and style ids, per split."""

    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    num_classes: int
    train_domains: torch.Tensor  # style id of every training image (domain-balanced batches)
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_style_images(args: PretrainedArguments) -> StyleImages:
    """Builds (first use) and loads `styles` with `args.test_domain` held out, split with seed 0 (every run sees the
    same split; the run's seed draws the cue, the batches, the augmentation and the dropout masks)."""
    import numpy as np
    from transformers import AutoImageProcessor

    from hf_bigdrop.backbones import resolve_backbone_name
    from hf_bigdrop.data import image_spec_from_processor, load_domain_dataset

    splits = load_domain_dataset(
        "styles",
        test_domains=[args.test_domain],
        image_size=args.image_size,
        builder_kwargs={"examples_per_class": args.examples_per_class},
        max_per_domain=args.max_per_domain,
        seed=0,
    )
    tensors = {}
    for name in ("train", "validation", "test"):
        split = splits[name]
        images = np.stack([np.asarray(image.convert("RGB")) for image in split["image"]])
        tensors[name] = (
            torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
            torch.tensor(split["label"]),
        )
    spec = image_spec_from_processor(
        AutoImageProcessor.from_pretrained(resolve_backbone_name(args.backbone)), args.image_size
    )
    return StyleImages(
        splits=tensors,
        num_classes=splits["train"].features["label"].num_classes,
        train_domains=torch.tensor(splits["train"]["domain"]),
        mean=tuple(spec.mean),
        std=tuple(spec.std),
    )


def cue_palette(num_classes: int) -> torch.Tensor:
    """One saturated colour per class (hues evenly spaced), then grey for "no cue": uint8 `(num_classes + 1, 3)`."""
    import colorsys

    colours = [colorsys.hsv_to_rgb(k / num_classes, 1.0, 1.0) for k in range(num_classes)] + [(0.5, 0.5, 0.5)]
    return torch.tensor([[round(255 * c) for c in colour] for colour in colours], dtype=torch.uint8)


def draw_cues(
    labels: torch.Tensor, agreement: float, num_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """The class whose colour each image's frame gets (`NO_CUE`: grey).

    Exactly `round(agreement * N)` images, chosen at random, get their own class; every other image gets a class
    drawn uniformly among the other classes. `agreement = 0` means no cue at all (every frame grey).
    """
    if agreement == 0:
        return torch.full_like(labels, NO_CUE)
    num = len(labels)
    agree = torch.zeros(num, dtype=torch.bool)
    agree[torch.randperm(num, generator=generator)[: round(agreement * num)]] = True
    other = (labels + torch.randint(1, num_classes, (num,), generator=generator)) % num_classes
    return torch.where(agree, labels, other)


def flipped_cues(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Every frame has the colour of another class (drawn uniformly): the cue always lies."""
    return (labels + torch.randint(1, num_classes, labels.shape, generator=generator)) % num_classes


def with_frames(images: torch.Tensor, cues: torch.Tensor, palette: torch.Tensor, width: int) -> torch.Tensor:
    """Paints a `width`-pixel frame of colour `palette[cue]` (`NO_CUE`: grey) around every image."""
    height, side = images.shape[-2:]
    border = torch.ones(height, side, dtype=torch.bool, device=images.device)
    border[width:-width, width:-width] = False
    colours = palette.to(images.device, images.dtype)[cues.to(images.device)][:, :, None, None]
    return torch.where(border, colours, images)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-image random resized crop (area 70-100%, aspect 3/4-4/3) and horizontal flip, batched on the device.

    The parameters come from a CPU generator, so a seed gives the same crops on every device.
    """
    num = images.shape[0]
    area = 0.7 + 0.3 * torch.rand(num, generator=generator)
    aspect = torch.exp((torch.rand(num, generator=generator) * 2 - 1) * math.log(4 / 3))
    scale_x = torch.sqrt(area * aspect).clamp(max=1.0)
    scale_y = torch.sqrt(area / aspect).clamp(max=1.0)
    shift_x = (torch.rand(num, generator=generator) * 2 - 1) * (1 - scale_x)
    shift_y = (torch.rand(num, generator=generator) * 2 - 1) * (1 - scale_y)
    flip = torch.where(torch.rand(num, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(num, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = scale_x * flip, shift_x
    theta[:, 1, 1], theta[:, 1, 2] = scale_y, shift_y
    theta = theta.to(images.device)
    grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return nn.functional.grid_sample(
        images, grid, mode="bilinear", padding_mode="border", align_corners=False
    )


class PretrainedRun:
    """One fine-tuning run (a cue agreement, a dropout rate, a seed) and its measurements.

    Every image goes through the same path: uint8 -> (augmentation, training only) -> coloured frame -> scaled to
    [0, 1] and normalised with the backbone's mean and std -> channels_last.
    """

    def __init__(self, args: PretrainedArguments, data: StyleImages, *, cue_agreement: float, seed: int):
        self.args, self.data, self.seed = args, data, seed
        self.device = torch.device(args.device)
        self.palette = cue_palette(data.num_classes)
        self.mean = torch.tensor(data.mean, device=self.device)[None, :, None, None]
        self.std = torch.tensor(data.std, device=self.device)[None, :, None, None]
        cues = torch.Generator().manual_seed(seed)
        train_labels, val_labels, test_labels = (data.splits[n][1] for n in ("train", "validation", "test"))
        self.train_cues = draw_cues(train_labels, cue_agreement, data.num_classes, cues)
        # what each split is measured with: the cue as trained, removed (grey), flipped (another class's colour)
        self.conditions = {
            ("validation", "as_trained"): draw_cues(val_labels, cue_agreement, data.num_classes, cues),
            ("validation", "no_cue"): torch.full_like(val_labels, NO_CUE),
            ("validation", "flipped"): flipped_cues(val_labels, data.num_classes, cues),
            ("test", "as_trained"): draw_cues(test_labels, cue_agreement, data.num_classes, cues),
            ("test", "no_cue"): torch.full_like(test_labels, NO_CUE),
            ("train", "no_cue"): torch.full_like(train_labels, NO_CUE),
        }
        self.images = {name: images.to(self.device) for name, (images, _) in data.splits.items()}
        self.labels = {name: labels.to(self.device) for name, (_, labels) in data.splits.items()}

    def pixels(self, images: torch.Tensor, cues: torch.Tensor, generator: torch.Generator | None = None):
        images = images.float()
        if generator is not None:
            images = augment(images, generator)
        images = with_frames(images, cues, self.palette, self.args.cue_width) / 255.0
        images = (images - self.mean) / self.std
        return images.contiguous(memory_format=torch.channels_last) if self.args.channels_last else images

    @torch.no_grad()
    def features(
        self, model: nn.Module, split: str, cues: torch.Tensor, batch_size: int = 500
    ) -> torch.Tensor:
        """Pooled penultimate features (before dropout) of a whole split, in eval mode."""
        chunks = []
        for start in range(0, len(cues), batch_size):
            pixels = self.pixels(
                self.images[split][start : start + batch_size], cues[start : start + batch_size]
            )
            chunks.append(model.extract_features(pixels)[0].float())
        return torch.cat(chunks)

    def accuracy(self, model: nn.Module, split: str, condition: str) -> float:
        logits = model.classifier(self.features(model, split, self.conditions[split, condition]))
        return 100.0 * (logits.argmax(1) == self.labels[split]).float().mean().item()

    def batches(self, generator: torch.Generator) -> torch.Tensor:
        """Indices of one domain-balanced training batch: `per_domain_batch_size` from every training style."""
        domains = self.data.train_domains
        chunks = []
        for domain in torch.unique(domains):
            members = torch.nonzero(domains == domain).squeeze(1)
            pick = torch.randint(0, len(members), (self.args.per_domain_batch_size,), generator=generator)
            chunks.append(members[pick])
        return torch.cat(chunks)

    def train(self, model: nn.Module) -> list[dict]:
        """Fine-tunes `model` for the longest budget; returns one row of measurements per budget, each of the best
        checkpoint on training-domain validation (cue as trained) among those within the budget."""
        args = self.args
        torch.manual_seed(self.seed)  # dropout masks
        batches = torch.Generator().manual_seed(self.seed + 1)
        augmentation = torch.Generator().manual_seed(self.seed + 2)
        head_ids = {id(p) for p in model.classifier.parameters()}
        backbone = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
        optimizer = torch.optim.AdamW(
            [
                {"params": backbone, "lr": args.learning_rate},
                {
                    "params": list(model.classifier.parameters()),
                    "lr": args.learning_rate * args.classifier_lr_multiplier,
                },
            ],
            weight_decay=args.weight_decay,
        )
        loss_fn = nn.CrossEntropyLoss()
        labels = self.labels["train"]
        best = (-1.0, 0, None)  # validation accuracy, step, state
        rows = []
        model.train()
        for step in range(1, max(args.budgets) + 1):
            index = self.batches(batches)
            pixels = self.pixels(
                self.images["train"][index.to(self.device)], self.train_cues[index], augmentation
            )
            loss = loss_fn(model(pixel_values=pixels).logits, labels[index.to(self.device)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % args.eval_steps == 0 or step in args.budgets:
                model.eval()
                accuracy = self.accuracy(model, "validation", "as_trained")
                model.train()
                if accuracy > best[0]:
                    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    best = (accuracy, step, state)
            if step in args.budgets:
                current = {k: v.detach().clone() for k, v in model.state_dict().items()}
                model.load_state_dict(best[2])
                rows.append({"steps": step, "selected_step": best[1]} | self.measure(model))
                model.load_state_dict(current)
                model.train()
        return rows

    @torch.no_grad()
    def head_units(self, model: nn.Module, features: torch.Tensor, share: float = 0.9) -> int:
        """How many penultimate units hold `share` of the head's logit variance, `sum_j var_j * |W_j|^2` with the
        head's weights centred over classes (a constant added to every class's weight changes no prediction)."""
        weight = model.classifier.weight.float()
        weight = weight - weight.mean(0, keepdim=True)
        energy = features.var(0) * weight.square().sum(0)
        cumulative = torch.cumsum(torch.sort(energy, descending=True).values, 0)
        return int(torch.searchsorted(cumulative, share * cumulative[-1]).item()) + 1

    def probe(self, model: nn.Module) -> dict[str, float]:
        """A linear probe of the (fine-tuned) features for the class, the cue removed: multinomial logistic
        regression on standardised training features (L-BFGS, L2 `probe_l2`), measured on validation and on
        the held-out style, both without the cue."""
        features = {
            s: self.features(model, s, self.conditions[s, "no_cue"]) for s in ("train", "validation", "test")
        }
        mean, std = features["train"].mean(0), features["train"].std(0) + 1e-6
        standard = {s: (f - mean) / std for s, f in features.items()}
        with torch.enable_grad():
            linear = nn.Linear(standard["train"].shape[1], self.data.num_classes).to(self.device)
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)
            optimizer = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=self.args.probe_steps)

            def closure():
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(linear(standard["train"]), self.labels["train"])
                loss = loss + self.args.probe_l2 * linear.weight.square().sum()
                loss.backward()
                return loss

            optimizer.step(closure)
        with torch.no_grad():
            return {
                f"probe_{name}": 100.0
                * (linear(standard[split]).argmax(1) == self.labels[split]).float().mean().item()
                for name, split in (("validation", "validation"), ("ood", "test"))
            }

    @torch.no_grad()
    def measure(self, model: nn.Module) -> dict[str, float]:
        """Every measurement of one checkpoint (eval mode: no dropout, frozen batch-norm statistics)."""
        model.eval()
        flipped = self.conditions["validation", "flipped"]
        logits = model.classifier(self.features(model, "validation", flipped))
        no_cue = self.features(model, "validation", self.conditions["validation", "no_cue"])
        return {
            "validation": self.accuracy(model, "validation", "as_trained"),
            "validation_no_cue": self.accuracy(model, "validation", "no_cue"),
            "validation_flipped": 100.0
            * (logits.argmax(1) == self.labels["validation"]).float().mean().item(),
            "flipped_follows_cue": 100.0 * (logits.argmax(1).cpu() == flipped).float().mean().item(),
            "ood": self.accuracy(model, "test", "as_trained"),
            "ood_no_cue": self.accuracy(model, "test", "no_cue"),
            "head_units": float(self.head_units(model, no_cue)),
        } | self.probe(model)


_BACKBONES: dict[tuple[str, int], nn.Module] = {}  # per process: the pretrained model, loaded once


def pretrained_model(args: PretrainedArguments, num_classes: int, dropout_rate: float) -> nn.Module:
    """A fresh copy of `BigDropForImageClassification` around the pretrained backbone (zero-initialised head,
    frozen batch-norm statistics: the library's defaults), with dropout rate `dropout_rate`, on `args.device`."""
    import copy

    from hf_bigdrop import BigDropForImageClassification

    key = (args.backbone, num_classes)
    if key not in _BACKBONES:
        _BACKBONES[key] = BigDropForImageClassification.from_backbone(
            args.backbone, num_labels=num_classes, dropout_rate=0.0
        )
    model = copy.deepcopy(_BACKBONES[key])
    model.dropout.p = model.config.dropout_rate = dropout_rate
    model.to(args.device)
    return model.to(memory_format=torch.channels_last) if args.channels_last else model


def train_pretrained(
    args: PretrainedArguments, data: StyleImages, *, cue_agreement: float, dropout_rate: float, seed: int
) -> list[dict]:
    """One seeded fine-tuning run; one row per budget. Same arguments give the same numbers on CPU."""
    start = time.perf_counter()
    run = PretrainedRun(args, data, cue_agreement=cue_agreement, seed=seed)
    rows = run.train(pretrained_model(args, data.num_classes, dropout_rate))
    setting = {
        "cue_agreement": cue_agreement,
        "setting": "fine-tuned",
        "dropout_rate": dropout_rate,
        "seed": seed,
    }
    seconds = time.perf_counter() - start
    return [setting | row | {"seconds": seconds} for row in rows]


def probe_pretrained(
    args: PretrainedArguments, data: StyleImages, *, cue_agreement: float, seed: int
) -> dict:
    """The reference with no fine-tuning: the pretrained features' probe and the zero head's measurements."""
    run = PretrainedRun(args, data, cue_agreement=cue_agreement, seed=seed)
    row = {
        "cue_agreement": cue_agreement,
        "setting": "pretrained features",
        "dropout_rate": 0.0,
        "seed": seed,
    }
    measured = run.probe(pretrained_model(args, data.num_classes, 0.0))
    head = {metric: math.nan for metric in PRETRAINED_METRICS if metric not in measured}  # no head trained
    return row | {"steps": 0, "selected_step": 0} | head | measured | {"seconds": 0.0}


_WORKER: dict[str, Any] = {}


def _start_worker(args: PretrainedArguments, data: StyleImages, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(args=args, data=data)


def _run_job(job: tuple[float, float, int]) -> list[dict]:
    cue_agreement, dropout_rate, seed = job
    return train_pretrained(
        _WORKER["args"], _WORKER["data"], cue_agreement=cue_agreement, dropout_rate=dropout_rate, seed=seed
    )


def run_pretrained(experiment: ExperimentArguments, args: PretrainedArguments) -> list[dict]:
    """Every (cue agreement, dropout rate, seed): one fine-tuning run, measured at every budget; plus the
    pretrained features' reference per (cue agreement, seed). `args.workers` runs at a time."""
    data = load_style_images(args)
    jobs = list(itertools.product(args.cue_agreements, experiment.dropout_rates, experiment.seeds))
    if args.workers == 1:
        _start_worker(args, data, args.cpu_threads)
        results = map(_run_job, jobs)
    else:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(
            args.workers, initializer=_start_worker, initargs=(args, data, args.cpu_threads)
        )
        results = pool.imap(_run_job, jobs)
    rows = []
    for job, job_rows in zip(jobs, results):
        rows += job_rows
        last = job_rows[-1]
        print(
            f"cue {job[0]:g}, p={job[1]:g}, seed {job[2]}: {last['steps']} steps in {last['seconds']:.1f} s, "
            f"o.o.d. no cue {last['ood_no_cue']:.1f}%",
            flush=True,
        )
    if args.workers > 1:
        pool.close()
        pool.join()
    for cue_agreement, seed in itertools.product(args.cue_agreements, experiment.seeds):
        rows.append(probe_pretrained(args, data, cue_agreement=cue_agreement, seed=seed))
    return rows


def pretrained_table(summary: list[dict]) -> str:
    """One line per (cue agreement, budget, setting): every measurement as mean ± std over seeds."""
    titles = " | ".join(PRETRAINED_TITLES[m] for m in PRETRAINED_METRICS)
    lines = [f"| cue agreement | steps | setting | {titles} |", "|" + "---:|" * (3 + len(PRETRAINED_METRICS))]
    for entry in summary:
        setting = entry["setting"] if entry["steps"] == 0 else f"p={entry['dropout_rate']:g}"
        cells = " | ".join(
            "—" if math.isnan(entry[m]) else f"{entry[m]:.1f} ± {entry[f'{m}_std']:.1f}"
            for m in PRETRAINED_METRICS
        )
        steps = entry["steps"] or "no training"
        cue = f"{entry['cue_agreement']:g}" if entry["cue_agreement"] else "no cue"
        lines.append(f"| {cue} | {steps} | {setting} | {cells} |")
    return "\n".join(lines)


def plot_pretrained(summary: list[dict], path: Path, title: str) -> None:
    """One column per cue agreement: o.o.d. accuracy (held-out style, cue removed; top), validation accuracy with
    the cue flipped (middle) and the probe of the fine-tuned features on the held-out style (bottom) against the
    dropout rate, one line per budget (± std over seeds); the pretrained features' probe dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cues = sorted({e["cue_agreement"] for e in summary})
    budgets = sorted({e["steps"] for e in summary if e["steps"]})
    metrics = ("ood_no_cue", "validation_flipped", "probe_ood")
    figure, axes = plt.subplots(
        len(metrics),
        len(cues),
        figsize=(max(8.0, 4.6 * len(cues)), 10),
        squeeze=False,
        sharex=True,
        sharey="row",
    )
    colours = plt.cm.viridis([0.1 + 0.75 * i / max(1, len(budgets) - 1) for i in range(len(budgets))])
    for column, cue in enumerate(cues):
        for row, metric in enumerate(metrics):
            axis = axes[row, column]
            for steps, colour in zip(budgets, colours):
                curve = [e for e in summary if (e["cue_agreement"], e["steps"]) == (cue, steps)]
                plot_rate_curve(axis, curve, metric, colour, f"fine-tuned, {steps} steps")
            (reference,) = [e for e in summary if (e["cue_agreement"], e["steps"]) == (cue, 0)]
            if metric == "probe_ood":
                axis.axhline(
                    reference[metric], ls=":", color="tab:red", label="probe of the pretrained features"
                )
            axis.grid(alpha=0.3)
            axis.set_ylabel(f"{PRETRAINED_TITLES[metric]} (%)", fontsize=8)
        axes[0, column].set_title(f"cue agreement {cue:g}" if cue else "no cue (control)")
        axes[-1, column].set_xlabel("dropout rate p")
    handles, labels = axes[-1, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    figure.suptitle(textwrap.fill(title, 120), fontsize=8)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report_pretrained(
    experiment: ExperimentArguments, args: PretrainedArguments, rows: list[dict]
) -> tuple[str, list[dict]]:
    """Writes `results.csv`, `results.md` and the figure into `experiment.output_dir`; returns the printed text
    and the summary (mean ± std over seeds per setting)."""
    summary = summarise(rows, PRETRAINED_KEYS, PRETRAINED_METRICS, ("cue_agreement", "steps", "dropout_rate"))
    output_dir = Path(experiment.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    heading = (
        f"Redundant features, pretrained scale: {args.backbone} fine-tuned on styles at {args.image_size} px, "
        f"{args.test_domain} held out, a {args.cue_width}-px frame in a class colour that agrees with the label "
        f"in {', '.join(f'{a:g}' for a in args.cue_agreements)} of training images (0 = grey, no cue); AdamW "
        f"{args.learning_rate:g} (head x{args.classifier_lr_multiplier:g}), constant, {args.per_domain_batch_size} "
        f"images per style a step; best training-domain validation checkpoint within each budget; seeds "
        f"{experiment.seeds}; accuracies in %, mean ± std over seeds (ddof 1)."
    )
    table = pretrained_table(summary)
    write_csv(rows, output_dir / "results.csv")
    (output_dir / "results.md").write_text(f"{heading}\n\n{table}\n\nArguments: {asdict(args)}\n")
    plot_pretrained(summary, output_dir / "redundant_features_pretrained.png", heading.split(";")[0])
    return f"{heading}\n\n{table}", summary


@dataclass(frozen=True)
class Scale:
    """One scale of the experiment: its arguments (a dataclass for `HfArgumentParser`), the runs (one row per run
    and measurement) and the report (files written, printed text, summary)."""

    arguments: type
    run: Callable[[ExperimentArguments, Any], list[dict]]
    report: Callable[[ExperimentArguments, Any, list[dict]], tuple[str, list[dict]]]
    seeds: tuple[int, ...]
    dropout_rates: tuple[float, ...]
    output_dir: str


SCALES = {
    "linear": Scale(
        LinearArguments,
        run_linear,
        report_linear,
        (0, 1, 2, 3, 4),
        (0.0, 0.25, 0.5, 0.75, 0.9, 0.95),
        "runs/redundant_features",
    ),
    "pretrained": Scale(
        PretrainedArguments,
        run_pretrained,
        report_pretrained,
        (0, 1, 2),
        (0.0, 0.5, 0.9),
        "runs/redundant_features_pretrained",
    ),
}


def main(argv: list[str] | None = None) -> list[dict]:
    """Parses the arguments of the chosen scale, runs it and writes its report; returns its summary.

    Each scale has its own arguments (`--scale pretrained --help` lists the pretrained scale's)."""
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    chosen = argparse.ArgumentParser(add_help=False)
    chosen.add_argument("--scale", default=ExperimentArguments.scale)
    name = chosen.parse_known_args(argv)[0].scale
    if name not in SCALES:
        raise ValueError(f"scale={name!r} is not one of {sorted(SCALES)}")
    scale = SCALES[name]
    experiment, args = HfArgumentParser([ExperimentArguments, scale.arguments]).parse_args_into_dataclasses(
        args=argv
    )
    threads = torch.get_num_threads()
    if name == "linear":
        torch.set_num_threads(1)  # tiny tensors: threads cost more than they save
    start = time.perf_counter()
    try:
        rows = scale.run(experiment, args)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    text, summary = scale.report(experiment, args, rows)
    print(f"\n{text}\n\n{len(rows)} measurements in {seconds:.1f} s; written to {experiment.output_dir}/")
    return summary


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:  # a bad argument: one line that names it, not a traceback
        sys.exit(f"redundant_features.py: error: {error}")
