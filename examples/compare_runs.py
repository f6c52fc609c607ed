#!/usr/bin/env python
"""Prints a side-by-side table of finished runs (their results.json): per-domain validation and o.o.d. accuracy.

Usage: python examples/compare_runs.py runs/demo/erm runs/demo/bigdrop [--output runs/demo/comparison.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hf_bigdrop.results import RunResults, comparison_table


def column_title(results: RunResults) -> str:
    method = "ERM" if results.dropout_rate == 0 else "very large dropout"
    return f"{method} (p={results.dropout_rate:g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="output_dir of each run (or its results.json)")
    parser.add_argument("--output", help="also write the table (markdown) to this file")
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


if __name__ == "__main__":
    main()
