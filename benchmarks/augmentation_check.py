#!/usr/bin/env python
"""Two values of one grid key of a finished sweep, paired by seed: does the treatment train as well as the control?

For every other setting of the sweep (e.g. each dropout rate) and every measure of the selected live model (fit:
training accuracy with dropout off; training-domain validation; held-out accuracy; the run's wall time), prints the
paired differences `treatment - control` over the seeds, their mean and 95% t-interval:

    python benchmarks/augmentation_check.py examples/configs/sweep_styles_augmentation.yaml \\
        [--key augmentation --treatment domainbed_batched --control domainbed]

The sweep file states the rule its comparison is judged by; this script prints the figures the rule reads and the
held-out accuracies beside them, and decides nothing.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict

from hf_bigdrop.experiment.paired import paired_difference
from hf_bigdrop.experiment.sweep import Sweep
from hf_bigdrop.results import RunResults
from hf_bigdrop.tables import markdown_table

# Measure name -> (its value in a run, the factor it is printed with): accuracies of the selected live model are
# fractions printed in points; the wall time is printed in seconds.
MEASURES = {
    "fit (dropout off)": (lambda r: r.primary.mean_fit_accuracy, 100),
    "training-domain validation": (lambda r: r.primary.mean_validation_accuracy, 100),
    "held out": (lambda r: r.primary.mean_test_accuracy, 100),
    "wall time (s)": (lambda r: r.wall_time_s, 1),
}


def paired_runs(
    sweep: Sweep, key: str, treatment: str, control: str
) -> dict[tuple, dict[str, dict[int, RunResults]]]:
    """The finished runs of `treatment` and `control`, grouped by the rest of their setting (held-out domain and the
    other grid values): `{rest: {"treatment": {seed: results}, "control": {seed: results}}}`."""
    groups: dict[tuple, dict[str, dict[int, RunResults]]] = defaultdict(
        lambda: {"treatment": {}, "control": {}}
    )
    values = {str(treatment): "treatment", str(control): "control"}
    for job in sweep.jobs():
        side = values.get(str(job.setting.get(key)))
        results = job.results()
        if side is None or results is None:
            continue
        rest = (job.test_domain, *sorted((k, v) for k, v in job.setting.items() if k != key))
        groups[rest][side][job.seed] = results
    return dict(groups)


def comparison_rows(runs: dict[str, dict[int, RunResults]]) -> list[list[str]]:
    """One row per measure: treatment and control means, the paired difference's mean and interval, and n."""
    rows = []
    for name, (value, scale) in MEASURES.items():
        measured = {side: {seed: value(r) for seed, r in by_seed.items()} for side, by_seed in runs.items()}
        sides = {
            side: {s: v for s, v in by_seed.items() if v is not None} for side, by_seed in measured.items()
        }
        difference = paired_difference({"": sides["treatment"]}, {"": sides["control"]}, [""])
        if difference.n == 0:
            continue
        low, high = difference.interval
        paired = [seed for _, seed, _ in difference.pairs]
        rows.append(
            [
                name,
                f"{scale * sum(sides['treatment'][s] for s in paired) / len(paired):.1f}",
                f"{scale * sum(sides['control'][s] for s in paired) / len(paired):.1f}",
                f"{scale * difference.mean:+.1f}"
                + ("" if math.isnan(low) else f" ({scale * low:+.1f} to {scale * high:+.1f})"),
                str(difference.n),
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", help="the sweep file")
    parser.add_argument("--key", default="augmentation", help="the grid key whose two values are compared")
    parser.add_argument("--treatment", default="domainbed_batched")
    parser.add_argument("--control", default="domainbed")
    args = parser.parse_args(argv)
    sweep = Sweep.load(args.sweep)
    choices = [str(value) for value in sweep.grid.get(args.key, [])]
    unknown = [value for value in (args.treatment, args.control) if value not in choices]
    if unknown:
        raise SystemExit(
            f"augmentation_check.py: {args.key}={unknown[0]!r} is not in the sweep's grid; its values: {choices}"
        )
    groups = {
        rest: runs
        for rest, runs in paired_runs(sweep, args.key, args.treatment, args.control).items()
        if set(runs["treatment"]) & set(runs["control"])
    }
    if not groups:
        raise SystemExit(
            f"augmentation_check.py: no seed finished with both {args.key}={args.treatment!r} and "
            f"{args.control!r} in {sweep.output_dir}"
        )
    for rest, runs in groups.items():
        held_out, *others = rest
        title = ", ".join([f"held out {held_out}", *(f"{k}={v}" for k, v in others)])
        print(f"\n### {title}\n")
        headers = [
            "measure (selected live model)",
            args.treatment,
            args.control,
            "paired difference (95%)",
            "n",
        ]
        print(markdown_table(headers, comparison_rows(runs)))


if __name__ == "__main__":
    main()
