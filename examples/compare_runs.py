#!/usr/bin/env python
"""Prints a side-by-side table of finished runs (their results.json): per-domain validation and o.o.d. accuracy.

    python examples/compare_runs.py runs/demo/erm runs/demo/bigdrop --output comparison.md --plot curves.png

The same as `hf-bigdrop compare`.
"""

from hf_bigdrop.experiment.cli import main

if __name__ == "__main__":
    main(command="compare")
