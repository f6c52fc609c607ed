#!/usr/bin/env python
"""The redundant-features experiment, linear case: where and why very large dropout keeps weak features.

One strong feature and eight weak ones all predict a binary label, either as independent evidence or as noisier
copies of the strong one (the `shared_noises` knob). A logistic-regression head (`nn.Dropout(p)` on its inputs, then
a zero-initialised `nn.Linear`, as in `BigDropForImageClassification`) is trained with the same optimiser and budget
for every dropout rate p, and with L2 weight decay at p=0, over several seeds. Then the strong feature stops carrying
the label (it is redrawn from its own distribution, independent of everything else). Measured: accuracy under that
shift, in distribution and on the weak features alone, and the weak features' share of the head's margin, beside two
rules computed from the distribution (the Bayes rule; each feature fitted alone).

The same question at the scale of a pretrained network (a planted colour cue, fine-tuned on the library's training
path) is `examples/redundant_features_pretrained.py`. See docs/redundant_features.md.

    python examples/redundant_features.py              # about 40 s of CPU time (one thread)
    python examples/redundant_features.py --seeds 0 1 2 --shared_noises 1 --output_dir runs/redundant_only

Writes to `output_dir`: `results.csv` (one row per run and budget), `results.md` (mean ± std over seeds) and
`redundant_features.png`.
"""

from __future__ import annotations

import csv
import itertools
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import HfArgumentParser

from hf_bigdrop.experiment.collect import summarize
from hf_bigdrop.tables import markdown_table, mean_std_text

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

    output_dir: str = field(
        default="runs/redundant_features",
        metadata={"help": "Where the CSV, Markdown table and figure go."},
    )
    seeds: list[int] = field(
        default_factory=lambda: [0, 1, 2, 3, 4], metadata={"help": "One run per seed and setting."}
    )
    dropout_rates: list[float] = field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 0.9, 0.95],
        metadata={"help": "Dropout rates on the head's inputs; 0 = plain training (ERM)."},
    )

    def __post_init__(self):
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
    """Mean and standard deviation (ddof 1; undefined, NaN, for a single seed) over seeds, per setting (`keys`) and budget,
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
            cell = summarize(values)  # the library's rule: the std of one seed is undefined (NaN), not 0
            entry[metric], entry[f"{metric}_std"] = cell.mean, cell.spread
        summary.append(entry)
    return sorted(summary, key=lambda e: tuple(e[key] for key in order))


def summary_table(summary: list[dict]) -> str:
    """One line per (strong noise, budget, setting): the four measurements as mean ± std over seeds."""
    rows = []
    for entry in summary:
        if entry["regulariser"] in REFERENCE_RULES:
            setting = REFERENCE_RULES[entry["regulariser"]]
        elif entry["regulariser"] == "dropout":
            setting = f"dropout p={entry['dropout_rate']:g}"
        else:
            setting = f"L2 {entry['weight_decay']:g}, p=0"
        cells = [mean_std_text(entry[m], entry[f"{m}_std"]) for m in METRICS]
        rows.append([f"{entry['shared_noise']:g}", entry["steps"] or "no training", setting, *cells])
    return markdown_table(["shared noise", "steps", "setting", *(METRIC_TITLES[m] for m in METRICS)], rows)


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
    table = summary_table(summary)
    write_csv(rows, output_dir / "results.csv")
    (output_dir / "results.md").write_text(f"{heading}\n\n{table}\n\nArguments: {asdict(args)}\n")
    plot(summary, output_dir / "redundant_features.png", heading.split(";")[0])
    return f"{heading}\n\n{table}", summary


def main(argv: list[str] | None = None) -> list[dict]:
    """Parses the arguments, runs every setting and writes the report; returns the summary."""
    argv = sys.argv[1:] if argv is None else argv
    experiment, args = HfArgumentParser([ExperimentArguments, LinearArguments]).parse_args_into_dataclasses(
        args=argv
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads cost more than they save
    start = time.perf_counter()
    try:
        rows = run_linear(experiment, args)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    text, summary = report_linear(experiment, args, rows)
    print(f"\n{text}\n\n{len(rows)} measurements in {seconds:.1f} s; written to {experiment.output_dir}/")
    return summary


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:  # a bad argument: one line that names it, not a traceback
        sys.exit(f"redundant_features.py: error: {error}")
