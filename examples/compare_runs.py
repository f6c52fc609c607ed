#!/usr/bin/env python
"""Prints a side-by-side table of finished runs (their results.json): per-domain validation and o.o.d. accuracy.

Usage: python examples/compare_runs.py runs/demo/erm runs/demo/bigdrop [--output comparison.md] [--plot curves.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hf_bigdrop.metric_keys import metric_key
from hf_bigdrop.results import METHOD_TITLES, RunResults, comparison_table


def column_title(results: RunResults) -> str:
    method = METHOD_TITLES.get(results.primary_method, results.primary_method)
    return f"{method} (p={results.dropout_rate:g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="output_dir of each run (or its results.json)")
    parser.add_argument("--output", help="also write the table (markdown) to this file")
    parser.add_argument(
        "--plot", help="also draw the runs' accuracy curves (validation, o.o.d.) into this PNG"
    )
    args = parser.parse_args()
    try:
        runs = [RunResults.load(path) for path in args.runs]
    except FileNotFoundError as error:
        parser.exit(2, f"compare_runs.py: error: {error}\n")
    titles = [column_title(r) for r in runs]
    if len(set(titles)) < len(titles):
        titles = [f"{t} [{Path(p).name}]" for t, p in zip(titles, args.runs)]
    first = runs[0]
    heading = (
        f"{first.dataset}: trained on {', '.join(first.train_domains)}; held out {', '.join(first.test_domains)} "
        f"(seed {first.seed}); accuracy in %"
    )
    table = comparison_table(dict(zip(titles, runs)))
    print(f"\n{heading}\n\n{table}\n")
    if args.output:
        Path(args.output).write_text(f"{heading}\n\n{table}\n")
    if args.plot:
        plot_curves(
            dict(zip(titles, runs)),
            Path(args.plot),
            f"{first.dataset}, held out {', '.join(first.test_domains)}",
        )
        print(f"accuracy curves: {args.plot}")


def plot_curves(runs: dict[str, RunResults], path: Path, title: str) -> None:
    """Training-domain validation (solid) and o.o.d. (dashed) accuracy against steps, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.2))
    for (name, results), colour in zip(runs.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        validation, held_out = metric_key("val"), metric_key("test")
        entries = [e for e in results.history if validation in e and held_out in e]
        steps = [e["step"] for e in entries]
        for key, style, part in ((validation, "-o", "validation"), (held_out, "--s", "o.o.d.")):
            values = [100 * e[key] for e in entries]
            axis.plot(steps, values, style, color=colour, label=f"{name}, {part}")
        if results.selected_step in steps:
            axis.axvline(results.selected_step, color=colour, alpha=0.25, linewidth=3)
    axis.set_xlabel("optimizer step (shaded: selected checkpoint)")
    axis.set_ylabel("accuracy (%)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
