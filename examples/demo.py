#!/usr/bin/env python
"""`make demo`: a recipe fine-tuned with ERM (dropout 0) and with very large dropout (0.9), then the two side by side.

    python examples/demo.py examples/configs/styles.yaml --output_dir runs/demo [any runner flag ...]

does, in one Python process, what these three commands do:

    python examples/run_ood.py RECIPE --dropout_rate 0.0 --output_dir runs/demo/erm [flags ...]
    python examples/run_ood.py RECIPE --dropout_rate 0.9 --output_dir runs/demo/bigdrop [flags ...]
    python examples/compare_runs.py runs/demo/erm runs/demo/bigdrop --output runs/demo/comparison.md \\
        --plot runs/demo/curves.png

The runs are the same (each is seeded by its own arguments, whatever ran before it in the process); one process pays
the imports of `transformers`' Trainer and `torch` (about 5 s on 2 CPU cores) once instead of three times. The demo
sets each run's `dropout_rate` and `output_dir`: the recipe's values of those two are replaced.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hf_bigdrop.experiment.cli import main

# The demo's two runs: folder name -> dropout rate.
RUNS = {"erm": "0.0", "bigdrop": "0.9"}


def demo(argv: list[str] | None = None) -> str:
    """Runs the two runs and prints their comparison; returns it (Markdown)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        allow_abbrev=False,
        usage="%(prog)s [RECIPE] [--output_dir DIR] [runner flags ...]",
        epilog="The recipe and every other flag go to each run as to examples/run_ood.py.",
    )
    parser.add_argument("--output_dir", type=Path, default=Path("runs/demo"), help="the demo's folder")
    # Everything but the demo's folder (the recipe first, as the runner wants it) goes to both runs unchanged.
    args, flags = parser.parse_known_args(argv)
    for name, value in (
        ("dropout_rate", " and ".join(RUNS.values())),
        ("output_dir", "its folder's erm and bigdrop"),
    ):
        spellings = (f"--{name}", f"--{name.replace('_', '-')}")
        if any(flag in spellings or flag.startswith(tuple(f"{s}=" for s in spellings)) for flag in flags):
            parser.error(f"the demo sets --{name} of each run itself ({value}); leave it out")
    for name, rate in RUNS.items():
        main([*flags, "--dropout_rate", rate, "--output_dir", str(args.output_dir / name)], "run")
    folders = [str(args.output_dir / name) for name in RUNS]
    outputs = [
        "--output",
        str(args.output_dir / "comparison.md"),
        "--plot",
        str(args.output_dir / "curves.png"),
    ]
    return main([*folders, *outputs], "compare")


if __name__ == "__main__":
    demo()
