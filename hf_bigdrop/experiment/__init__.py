"""The o.o.d. experiment as a library: what `examples/run_ood.py`, `examples/sweep.py` and
`examples/combine_runs.py` are thin scripts over.

- `arguments`: the experiment's arguments (`ModelArguments`, `DataArguments`, `RunArguments` beside
  `BigDropTrainingArguments`), read from a recipe file and flags (`parse_experiment_arguments`);
- `checks`: every argument judged before any data or model is loaded (`check_experiment_arguments`);
- `outputs`: what a run leaves in its folder, and the resume policy;
- `runner`: one run, or one per held-out domain (`run_experiments`);
- `combine`: soups and ensembles of finished runs (`combine_runs`);
- `sweep`: a grid of runs, its file's schema and its jobs (`Sweep`, `Job`);
- `launchers`: running a sweep's jobs and combinations (`run_sweep`, `LAUNCHERS`);
- `collect`: the finished runs of a sweep, selected per method across hyperparameters (`collect`, `SweepResults`);
- `report`: those results as Markdown and CSV tables and figures; `doc_pages`: a report's place in a docs page.

Bad arguments raise `UsageError` (one line, before any work); anything that fails later raises with its traceback.
"""

from .arguments import (
    DataArguments,
    ExperimentArguments,
    ModelArguments,
    RunArguments,
    UsageError,
    parse_experiment_arguments,
)
from .checks import check_experiment_arguments
from .runner import build_trainer, load_splits, run_experiment, run_experiments

__all__ = [
    "DataArguments",
    "ExperimentArguments",
    "ModelArguments",
    "RunArguments",
    "UsageError",
    "build_trainer",
    "check_experiment_arguments",
    "load_splits",
    "parse_experiment_arguments",
    "run_experiment",
    "run_experiments",
]
