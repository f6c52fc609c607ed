"""A sweep: a grid of experiments (held-out domains x methods x hyperparameters x seeds), its file's schema and its
jobs, checked whole before the first job. `launchers.py` runs them (here, `--jobs N` at once, under Slurm, or by any
scheduler from the printed commands); `collect.py` reads what they found.

The sweep file (YAML):

    config: examples/configs/digits.yaml     # the recipe every job starts from
    output_dir: runs/sweep_digits
    arguments: {max_steps: 800}             # optional: fixed overrides of the recipe
    grid:                                   # every combination is one job
      test_domains: [mnist, mnist_m, optdigits, typeface]
      dropout_rate: [0.0, 0.9]
      learning_rate: [0.0001, 0.0003]       # a hyperparameter: selected per method (hf_bigdrop.experiment.collect)
      seed: [0, 1, 2]
    method_keys: [dropout_rate]             # optional: the grid keys that tell methods apart (default)
    combine: true                           # soups and run ensemble of the seeds of each method's selected runs
    slurm: {timeout_min: 60, gpus_per_node: 1}   # optional: submitit parameters

Grid keys other than `test_domains`, `seed` and the `method_keys` are hyperparameters: the collection picks, for each
method, held-out domain and seed, the setting with the best training-domain validation accuracy (DomainBed).

Each job runs `python -m hf_bigdrop.experiment run <config> --<key> <value> ...` in
`<output_dir>/<held-out>/<setting>/seed<seed>`. A job is finished when its `results.json` exists *and* records the
job's own values; a killed job resumes from its newest complete checkpoint; any other job (re)starts afresh.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoints import last_complete_checkpoint
from ..results import RESULTS_FILE, RunResults
from ..training import checkpoint_files
from .arguments import (
    UsageError,
    argument_names,
    changed_arguments,
    parse_experiment_arguments,
    read_mapping,
    read_recipe,
    unknown_names,
)
from .checks import check_experiment_arguments
from .outputs import leaves_folder, recorded_arguments

__all__ = ["Job", "Sweep", "setting_name"]

SWEEP_KEYS = ("config", "output_dir", "grid", "arguments", "method_keys", "combine", "slurm")
# The grid key that tells methods apart when a sweep file names none.
DEFAULT_METHOD_KEYS = ("dropout_rate",)
# Grid keys that are the table's axes, never hyperparameters.
AXES = ("test_domains", "seed")
# Arguments that the sweep sets for each job.
_SWEEP_OWNED = ("output_dir", "resume_from_checkpoint", "overwrite_output_dir")


@dataclass
class Sweep:
    """A sweep file's schema (see the module docstring): the dataclass checks its own values, every problem at once.

    Args:
        config (`Path`): the recipe every job starts from.
        output_dir (`Path`): the sweep's folder; each job runs in `<output_dir>/<held-out>/<setting>/seed<seed>`.
        grid (`dict[str, list]`): argument names and the values to sweep (a single value is a list of one); must
            hold `test_domains` and `seed`.
        arguments (`dict`, *optional*): fixed overrides of the recipe.
        method_keys (`tuple[str, ...]`, *optional*): the grid keys that tell methods
            apart (unset: `("dropout_rate",)`); the other keys are hyperparameters. Given, each must be a grid key.
        combine (`bool`, *optional*, defaults to `True`): make the soups and run ensemble of each method's seeds.
        slurm (`dict`, *optional*): submitit parameters.
        source (`str`, *optional*): where the values came from, for messages.

    Raises:
        `UsageError`: every problem of the values, in one line naming the file.
    """

    config: Path
    output_dir: Path
    grid: dict[str, list]
    arguments: dict = field(default_factory=dict)
    method_keys: tuple[str, ...] | None = None
    combine: bool = True
    slurm: dict = field(default_factory=dict)
    source: str = field(default="the sweep", repr=False, compare=False)

    def __post_init__(self):
        problems = []
        given_method_keys = self.method_keys is not None
        for name, default in (("arguments", {}), ("slurm", {}), ("method_keys", DEFAULT_METHOD_KEYS)):
            if getattr(self, name) is None:  # unset, or `key:` with no value in YAML
                setattr(self, name, default)
        for name, kind in (
            ("grid", dict),
            ("arguments", dict),
            ("slurm", dict),
            ("method_keys", (list, tuple)),
        ):
            if not isinstance(getattr(self, name), kind):
                problems.append(f"{name!r} must be a {'mapping' if kind is dict else 'list'}")
        if not isinstance(self.combine, bool):
            problems.append(f"'combine' must be true or false, got {self.combine!r}")
        if problems:  # the checks below read these values
            raise UsageError(f"{self.source}: {'; '.join(problems)}")
        self.config, self.output_dir = Path(self.config), Path(self.output_dir)
        self.grid = {key: value if isinstance(value, list) else [value] for key, value in self.grid.items()}
        self.method_keys = tuple(self.method_keys or DEFAULT_METHOD_KEYS)
        for key in AXES:
            if not self.grid.get(key):
                problems.append(f"the grid needs {key!r} (held-out domains and seeds are the table's axes)")
        for key, choices in self.grid.items():
            if not choices:
                problems.append(f"grid key {key!r} has no values")
            # Grid values name the jobs' folders (`timm/resnet50` makes a sub-folder): none may leave the sweep's.
            for value in choices:
                if leaves_folder(str(value), subfolders=True):
                    problems.append(
                        f"grid key {key!r} has the value {value!r}, which cannot name a folder inside the sweep's "
                        "output_dir (empty, absolute, or with a '.' or '..' part)"
                    )
            # The same value under two spellings (`0` and `"0"`, `0.0001` and `"1e-4"`) is the same run.
            if len(set(map(_normalised, choices))) < len(choices):
                problems.append(f"grid key {key!r} repeats a value: {choices}")
        owned = [key for key in _SWEEP_OWNED if key in self.grid or key in self.arguments]
        if owned:
            problems.append(f"{owned} are the sweep's to set, not the grid's or the arguments'")
        overlap = sorted(set(self.grid) & set(self.arguments))
        if overlap:
            problems.append(f"{overlap} in both 'grid' and 'arguments': give each in one place")
        axes = [key for key in self.method_keys if key in AXES]
        if axes:
            problems.append(f"method_keys cannot hold {axes} (the table's axes)")
        unknown = [key for key in self.method_keys if key not in self.grid and key not in AXES]
        if unknown and given_method_keys:
            problems.append(
                f"method_keys {unknown} are not grid keys; the grid's keys are {sorted(self.grid)}"
            )
        if problems:
            raise UsageError(f"{self.source}: {'; '.join(problems)}")

    @property
    def hyperparameters(self) -> list[str]:
        """The grid keys selected over per method (neither an axis nor a method key)."""
        return [key for key in self.grid if key not in (*AXES, *self.method_keys)]

    @classmethod
    def load(cls, path: str | os.PathLike) -> Sweep:
        """Reads a sweep file (YAML or JSON, a key given twice refused as in recipes) into the checked schema (not
        yet its jobs: see `check`).

        Raises:
            `UsageError`: the file's problems, in one line naming the file.
        """
        values = read_mapping(path, "sweep file")
        where = f"sweep file {str(path)!r}"
        unknown = sorted(set(values) - set(SWEEP_KEYS))
        missing = [key for key in ("config", "output_dir", "grid") if key not in values]
        problems = [f"needs {key!r}" for key in missing]
        if unknown:
            problems.insert(
                0, f"unknown key(s) {unknown_names(unknown, SWEEP_KEYS)}; valid: {', '.join(SWEEP_KEYS)}"
            )
        if problems:
            raise UsageError(f"{where}: {'; '.join(problems)}")
        return cls(**values, source=where)

    def jobs(self) -> list[Job]:
        """Every job of the grid, in a stable order (held-out domain, setting in grid order, seed)."""
        others = {key: values for key, values in self.grid.items() if key not in AXES}
        jobs = []
        for domain in self.grid["test_domains"]:
            for combination in itertools.product(*others.values()):
                setting = dict(zip(others, combination))
                for seed in self.grid["seed"]:
                    folder = self.output_dir / str(domain) / setting_name(setting) / f"seed{seed}"
                    jobs.append(Job(self, str(domain), setting, int(seed), folder))
        return jobs

    def check(self, rerun_changed: bool = False) -> list[Job]:
        """Checks every job's arguments (recipe, grid values, domains, backbone) before the first job runs, and that
        no job's folder holds a run of other arguments (the recipe, the sweep file or its grid changed since).

        Args:
            rerun_changed (`bool`, *optional*, defaults to `False`): accept jobs whose folder holds a run of other
                arguments (they run again, replacing it).

        Returns:
            `list[Job]`: the jobs.

        Raises:
            `UsageError`: the first bad job, named by its folder; or the jobs whose folder holds another run.
        """
        read_recipe(self.config)  # a missing or invalid recipe is named once, not once per job
        known = argument_names()
        unknown = sorted((set(self.grid) | set(self.arguments) | set(self.method_keys)) - known)
        if unknown:
            raise UsageError(
                f"unknown argument(s) {unknown_names(unknown, known)} in the sweep's grid, arguments or method_keys"
            )
        jobs = self.jobs()
        for job in jobs:
            try:
                check_experiment_arguments(parse_experiment_arguments(job.argv(resume=False)))
            except UsageError as error:
                raise UsageError(f"job {job.output_dir}: {error}") from None
        changed = [(job, changes) for job in jobs if (changes := job.changes())]
        if changed and not rerun_changed:
            job, changes = changed[0]
            others = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
            raise UsageError(
                f"{job.output_dir}{others} hold(s) a run of other arguments than the sweep's now "
                f"({'; '.join(changes[:4])}): the recipe, the sweep file or its grid changed since. Pass "
                "--rerun-changed to run those jobs again (their runs are replaced), or give the sweep another "
                "output_dir"
            )
        return jobs


def setting_name(setting: dict) -> str:
    """A folder name for a setting, e.g. `dropout_rate=0.9,learning_rate=0.0001`."""
    return ",".join(f"{key}={value}" for key, value in setting.items()) or "default"


def _normalised(value: object) -> str:
    """A grid value as the run will read it: numbers (and strings that are numbers) by value, the rest as JSON."""
    if isinstance(value, bool):
        return json.dumps(value)
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return json.dumps(value)


@dataclass
class Job:
    """One experiment of a sweep: a held-out domain, a setting (the other grid values) and a seed."""

    sweep: Sweep
    test_domain: str
    setting: dict
    seed: int
    output_dir: Path

    def values(self) -> dict:
        """Every argument the job sets on top of the recipe."""
        return {**self.sweep.arguments, **self.setting, "test_domains": self.test_domain, "seed": self.seed}

    def _recorded(self) -> tuple[RunResults | None, dict | None]:
        """The finished run in the job's folder (if its `results.json` reads), and the arguments the run there
        recorded: at its end (`results.json`) or, for a run killed on its way, when it started (`arguments.json`)."""
        results = None
        if (self.output_dir / RESULTS_FILE).is_file():
            with contextlib.suppress(ValueError):  # a damaged results.json: the job runs again
                results = RunResults.load(self.output_dir)
        return results, results.arguments if results is not None else recorded_arguments(self.output_dir)

    def changes(self) -> list[str]:
        """How the run in the job's folder (finished or killed) differs from what the job would run now: its grid
        values, the sweep's arguments and the recipe's content (all but `OPERATIONAL_ARGUMENTS`), each as
        `name recorded -> wanted`; empty when they agree, or when the folder holds no run that recorded them."""
        _, recorded = self._recorded()
        if recorded is None:
            return []
        return changed_arguments(recorded, {**read_recipe(self.sweep.config), **self.values()})

    def results(self) -> RunResults | None:
        """The job's results if it finished with the values it would run with now; `None` if it has not finished,
        or if the folder holds results of other values (another setting, or a recipe changed since: `changes`)."""
        results, recorded = self._recorded()
        if results is None or changed_arguments(
            recorded, {**read_recipe(self.sweep.config), **self.values()}
        ):
            return None
        return results

    @property
    def finished(self) -> bool:
        return self.results() is not None

    def checkpoint(self) -> str | None:
        """The checkpoint the job resumes from: the newest complete one, holding the averaging state its arguments
        need, of a run with the job's values (`None` if there is none: the job starts over)."""
        if self.changes():
            return None
        training = parse_experiment_arguments(self.argv(resume=False)).training
        return last_complete_checkpoint(self.output_dir, checkpoint_files(training))

    def argv(self, resume: bool | None = None) -> list[str]:
        """The experiment's command line: the recipe, the job's values, its folder, and how to treat the folder.

        Args:
            resume (`bool | None`, *optional*): resume from the newest complete checkpoint; default: when there is
                one the job can resume (`checkpoint`). Otherwise the job starts over (`--overwrite_output_dir`).
        """
        flags = [str(self.sweep.config)]
        for key, value in self.values().items():
            items = value if isinstance(value, list) else [value]
            flags += [f"--{key}", *(json.dumps(v) if isinstance(v, dict) else str(v) for v in items)]
        flags += ["--output_dir", str(self.output_dir)]
        if resume is None:
            resume = self.checkpoint() is not None
        flags += ["--resume_from_checkpoint", "True"] if resume else ["--overwrite_output_dir", "True"]
        return flags

    def command(self, accelerate: bool = False) -> list[str]:
        """The job's whole command: `python -m hf_bigdrop.experiment run ...` (or `accelerate launch -m ...`)."""
        launcher = ["accelerate", "launch", "-m"] if accelerate else [sys.executable, "-m"]
        return [*launcher, "hf_bigdrop.experiment", "run", *self.argv()]
