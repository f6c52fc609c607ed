#!/usr/bin/env python
"""A grid of experiments (held-out domains, methods, hyperparameters, seeds), their soups and run ensembles, and one
table of every method, selected per method across hyperparameters on training-domain validation.

    python examples/sweep.py examples/configs/sweep_styles.yaml                  # run (or continue), then collect
    python examples/sweep.py examples/configs/sweep_styles.yaml --jobs 2         # two jobs at once (cores split)
    python examples/sweep.py examples/configs/sweep_styles.yaml --print-commands # for any other scheduler
    python examples/sweep.py examples/configs/sweep_styles.yaml --launcher slurm # one Slurm job per run (submitit)
    python examples/sweep.py examples/configs/sweep_styles.yaml --collect-only --report docs/results.md

Every job is checked before the first starts; a re-run skips finished jobs and resumes killed ones. The sweep file's
format is in `hf_bigdrop.experiment.sweep`, launching there too, the collection in `hf_bigdrop.experiment.collect`.
The same as `hf-bigdrop sweep`.
"""

from hf_bigdrop.experiment.cli import main

if __name__ == "__main__":
    main(command="sweep")
