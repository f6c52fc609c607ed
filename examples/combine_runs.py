#!/usr/bin/env python
"""Soups and ensembles of finished runs (e.g. the seeds of one recipe), evaluated like a run.

    python examples/combine_runs.py runs/p0.9-seed0 runs/p0.9-seed1 runs/p0.9-seed2 --output_dir runs/p0.9-combined

The runs must share dataset, backbone, label set and held-out domains; the output folder must not be one of them.
Writes the greedy soup (the folder's model), the uniform soup (`uniform_soup/`), `results.json` with the greedy soup,
the uniform soup and the ensemble of the runs, and a model card. The same as `hf-bigdrop combine`; the logic is
`hf_bigdrop.experiment.combine.combine_runs`.
"""

from hf_bigdrop.experiment.cli import main

if __name__ == "__main__":
    main(command="combine")
