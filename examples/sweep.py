#!/usr/bin/env python
"""A grid of `run_ood.py` jobs (dropout rates, learning rates, weight decays, seeds, held-out domains), their soups
and run ensembles, and one table of every method: mean ± std over seeds per held-out domain.

Usage:

    python examples/sweep.py examples/configs/sweep_digits.yaml                    # run (or continue) and collect
    python examples/sweep.py examples/configs/sweep_digits.yaml --print-commands   # for any other scheduler
    python examples/sweep.py examples/configs/sweep_digits.yaml --launcher slurm   # one Slurm job per run (submitit)
    python examples/sweep.py examples/configs/sweep_digits.yaml --collect-only --report docs/results.md

The sweep file (YAML):

    config: examples/configs/digits.yaml      # the run_ood.py recipe every job starts from
    output_dir: runs/sweep_digits
    arguments: {max_steps: 800}             # optional: fixed overrides of the recipe
    grid:                                   # every combination is one job (one run_ood.py call)
      test_domains: [mnist, mnist_m, optdigits, typeface]
      dropout_rate: [0.0, 0.5, 0.9]
      seed: [0, 1, 2]
    combine: true                           # soups and run ensemble of the seeds of each setting
    slurm: {timeout_min: 60, gpus_per_node: 1}   # optional: submitit parameters

Each job runs `python examples/run_ood.py <config> --<key> <value> ...` (under Slurm: `accelerate launch ...`),
exactly the command `--print-commands` prints, in `<output_dir>/<held-out>/<setting>/seed<seed>`. A re-run skips
finished jobs (their `results.json` exists) and resumes killed ones from their last checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from hf_bigdrop.metrics import mean_domain_accuracy
from hf_bigdrop.results import METHOD_TITLES, RESULTS_FILE, RunResults

EXAMPLES = Path(__file__).resolve().parent
RUNNER = EXAMPLES / "run_ood.py"
COMBINER = EXAMPLES / "combine_runs.py"
LAUNCHERS = ("local", "slurm")


@dataclass
class Sweep:
    """A parsed sweep file (see the module docstring)."""

    config: str
    output_dir: Path
    grid: dict[str, list]
    arguments: dict = field(default_factory=dict)
    combine: bool = True
    slurm: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Sweep:
        values = yaml.safe_load(Path(path).read_text()) or {}
        unknown = sorted(set(values) - {"config", "output_dir", "grid", "arguments", "combine", "slurm"})
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown} in {path}; valid: config, output_dir, grid, arguments, combine, slurm"
            )
        for required in ("config", "output_dir", "grid"):
            if required not in values:
                raise ValueError(f"{path} needs {required!r}")
        grid = {key: value if isinstance(value, list) else [value] for key, value in values["grid"].items()}
        for key in ("test_domains", "seed"):
            if key not in grid:
                raise ValueError(
                    f"the grid of {path} needs {key!r} (held-out domains and seeds are the table's axes)"
                )
        for key in ("output_dir", "resume_from_checkpoint"):
            if key in grid or key in values.get("arguments", {}):
                raise ValueError(f"{key!r} is the sweep's to set, not the grid's")
        return cls(
            config=values["config"],
            output_dir=Path(values["output_dir"]),
            grid=grid,
            arguments=values.get("arguments") or {},
            combine=bool(values.get("combine", True)),
            slurm=values.get("slurm") or {},
        )


@dataclass
class Job:
    """One run_ood.py call: a held-out domain, a setting (the other grid values) and a seed."""

    test_domain: str
    setting: dict
    seed: int
    output_dir: Path

    @property
    def finished(self) -> bool:
        return (self.output_dir / RESULTS_FILE).exists()

    @property
    def started(self) -> bool:
        return any(self.output_dir.glob("checkpoint-*"))

    def command(self, sweep: Sweep, accelerate: bool = False) -> list[str]:
        values = {**sweep.arguments, **self.setting, "test_domains": self.test_domain, "seed": self.seed}
        flags = []
        for key, value in values.items():
            flags += (
                [f"--{key}", *(str(v) for v in value)]
                if isinstance(value, list)
                else [f"--{key}", str(value)]
            )
        flags += ["--output_dir", str(self.output_dir)]
        if self.started and not self.finished:
            flags += ["--resume_from_checkpoint", "True"]
        launcher = ["accelerate", "launch"] if accelerate else [sys.executable]
        return [*launcher, str(RUNNER), sweep.config, *flags]


def setting_name(setting: dict) -> str:
    """A folder name for a setting, e.g. `dropout_rate=0.9,learning_rate=0.0001`."""
    return ",".join(f"{key}={value}" for key, value in setting.items()) or "default"


def expand(sweep: Sweep) -> list[Job]:
    """Every job of the grid, in a stable order (held-out domain, setting, seed)."""
    others = {key: values for key, values in sweep.grid.items() if key not in ("test_domains", "seed")}
    jobs = []
    for domain in sweep.grid["test_domains"]:
        for combination in itertools.product(*others.values()):
            setting = dict(zip(others, combination))
            for seed in sweep.grid["seed"]:
                folder = sweep.output_dir / str(domain) / setting_name(setting) / f"seed{seed}"
                jobs.append(Job(str(domain), setting, int(seed), folder))
    return jobs


def combinations(sweep: Sweep, jobs: list[Job]) -> dict[Path, list[Job]]:
    """Seed groups to combine (soups, run ensemble): one per held-out domain and setting, with > 1 seed."""
    groups: dict[Path, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.output_dir.parent / "combined", []).append(job)
    return {folder: group for folder, group in groups.items() if len(group) > 1} if sweep.combine else {}


def combine_command(folder: Path, group: list[Job]) -> list[str]:
    return [
        sys.executable,
        str(COMBINER),
        *(str(job.output_dir) for job in group),
        "--output_dir",
        str(folder),
    ]


def run_local(commands: list[list[str]]) -> list[str]:
    """Runs commands one after the other; returns the failed ones (as strings)."""
    failed = []
    for command in commands:
        print("+", " ".join(command), flush=True)
        if subprocess.run(command).returncode != 0:
            failed.append(" ".join(command))
    return failed


def run_slurm(
    commands: list[list[str]], folder: Path, parameters: dict, cluster: str | None = None
) -> list[str]:
    """Submits one job per command through submitit (`pip install hf_bigdrop[slurm]`), waits, returns failures."""
    try:
        import submitit
    except ImportError as error:
        raise ImportError("--launcher slurm needs submitit: pip install 'hf_bigdrop[slurm]'") from error
    executor = submitit.AutoExecutor(folder=str(folder / "slurm_logs"), cluster=cluster)
    executor.update_parameters(**parameters)
    jobs = [executor.submit(submitit.helpers.CommandFunction(command)) for command in commands]
    failed = []
    for job, command in zip(jobs, commands):
        try:
            job.result()
        except Exception as error:  # noqa: BLE001 - every failure is reported, the sweep goes on
            print(f"job {job.job_id} failed: {error}", file=sys.stderr)
            failed.append(" ".join(command))
    return failed


# ---------------------------------------------------------------------------------------------------------------
# The table


@dataclass
class Row:
    """One line of the table: a setting and a method, with its o.o.d. accuracy per held-out domain and seed."""

    setting: str
    method: str
    by_domain: dict[str, dict[int | None, float]] = field(default_factory=dict)


def _row_title(setting: dict, varying: list[str], method: str) -> str:
    parts = [
        f"p={setting[key]}" if key == "dropout_rate" else f"{key.replace('_', ' ')} {setting[key]}"
        for key in varying
    ]
    return (
        f"{METHOD_TITLES.get(method, method)} ({', '.join(parts)})"
        if parts
        else METHOD_TITLES.get(method, method)
    )


def collect(sweep: Sweep, jobs: list[Job]) -> tuple[list[Row], list[str], dict]:
    """Reads every finished run and combination; returns the rows, the held-out domains and wall-time totals."""
    domains = [str(d) for d in sweep.grid["test_domains"]]
    varying = [
        key for key, values in sweep.grid.items() if key not in ("test_domains", "seed") and len(values) > 1
    ]
    rows: dict[tuple[str, str], Row] = {}
    order: dict[str, tuple] = {}  # row title -> (setting's position in the grid, method's position)
    wall = {"runs": 0.0, "combinations": 0.0, "finished": 0, "jobs": len(jobs)}

    def add(setting: dict, results: RunResults, seed: int | None) -> None:
        for method, record in results.methods.items():
            title = _row_title(setting, varying, method)
            row = rows.setdefault((title, method), Row(title, method))
            method_rank = list(METHOD_TITLES).index(method) if method in METHOD_TITLES else len(METHOD_TITLES)
            order[title] = (*(sweep.grid[key].index(setting[key]) for key in varying), method_rank)
            for domain, accuracy in record.test_accuracy.items():
                row.by_domain.setdefault(domain, {})[seed] = accuracy

    for job in jobs:
        if job.finished:
            results = RunResults.load(job.output_dir)
            add(job.setting, results, job.seed)
            wall["runs"] += results.wall_time_s
            wall["finished"] += 1
    for folder, group in combinations(sweep, jobs).items():
        if (folder / RESULTS_FILE).exists():
            results = RunResults.load(folder)
            add(group[0].setting, results, None)
            wall["combinations"] += results.wall_time_s
    return sorted(rows.values(), key=lambda row: order[row.setting]), domains, wall


def summarize(values: list[float], error: str) -> tuple[float, float, int]:
    """Mean, spread and n of accuracies; spread is the sample std (ddof 1) or DomainBed's standard error."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan"), 0
    array = np.asarray(values, dtype=float)
    if error == "sem":  # DomainBed: np.std (ddof 0) / sqrt(n)
        spread = float(array.std() / math.sqrt(n))
    else:
        spread = float(array.std(ddof=1)) if n > 1 else float("nan")
    return float(array.mean()), spread, n


def table_cells(row: Row, domains: list[str], error: str) -> list[tuple[float, float, int]]:
    """Per held-out domain, then the average: (mean, spread, n). The average is taken per seed over the domains
    (seeds that finished every domain), then summarised over seeds."""
    cells = [summarize(list(row.by_domain.get(domain, {}).values()), error) for domain in domains]
    seeds = set.intersection(*(set(row.by_domain.get(d, {})) for d in domains)) if domains else set()
    averages = [
        mean_domain_accuracy(row.by_domain[d][seed] for d in domains) for seed in sorted(seeds, key=str)
    ]
    return [*cells, summarize(averages, error)]


def _cell(mean: float, spread: float, n: int) -> str:
    if n == 0:
        return "–"
    if spread != spread:
        return f"{100 * mean:.1f} (n={n})"
    return f"{100 * mean:.1f} ± {100 * spread:.1f} (n={n})"


def markdown_table(rows: list[Row], domains: list[str], error: str) -> str:
    lines = [
        "| method | " + " | ".join(f"held out {d}" for d in domains) + " | average |",
        "|---|" + "---|" * (len(domains) + 1),
    ]
    for row in rows:
        lines.append(
            f"| {row.setting} | " + " | ".join(_cell(*c) for c in table_cells(row, domains, error)) + " |"
        )
    return "\n".join(lines)


def write_csv(rows: list[Row], domains: list[str], error: str, path: Path) -> None:
    spread = "sem" if error == "sem" else "std"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "held_out", "mean", spread, "n"])
        for row in rows:
            for domain, (mean, value, n) in zip([*domains, "average"], table_cells(row, domains, error)):
                writer.writerow([row.setting, domain, f"{mean:.6f}", f"{value:.6f}", n])


def plot(rows: list[Row], domains: list[str], error: str, path: Path) -> None:
    """Average o.o.d. accuracy per method, with error bars (std or standard error over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    averages = [table_cells(row, domains, error)[-1] for row in rows]
    figure, axis = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
    positions = np.arange(len(rows))
    means = [100 * m if n else np.nan for m, _, n in averages]
    spreads = [100 * s if s == s else 0.0 for _, s, _ in averages]
    axis.barh(positions, means, xerr=spreads, capsize=3, color="tab:blue", alpha=0.8)
    axis.set_yticks(positions, [row.setting for row in rows], fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel(f"o.o.d. accuracy (%), average over held-out domains; error bars: {error}")
    finite = [m for m in means if m == m]
    if finite:
        axis.set_xlim(max(0.0, min(finite) - 10), min(100.0, max(finite) + 10))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def report(sweep: Sweep, jobs: list[Job], error: str, report_path: Path | None, name: str = "sweep") -> str:
    """Writes table.md, table.csv and accuracy.png into the sweep's output_dir (and the table into report_path,
    between the markers of `name`)."""
    rows, domains, wall = collect(sweep, jobs)
    table = markdown_table(rows, domains, error)
    spread = (
        "standard error (DomainBed: std with ddof 0 / sqrt(n))" if error == "sem" else "sample std (ddof 1)"
    )
    text = (
        f"O.o.d. accuracy (%) of each method, per held-out domain and averaged over held-out domains: mean ± "
        f"{spread} over seeds, n = number of seeds (a combination of the seeds counts once).\n\n{table}\n\n"
        f"{wall['finished']} of {wall['jobs']} runs finished; wall time of the runs {wall['runs'] / 3600:.2f} h, "
        f"of the soups and run ensembles {wall['combinations'] / 3600:.2f} h.\n"
    )
    sweep.output_dir.mkdir(parents=True, exist_ok=True)
    (sweep.output_dir / "table.md").write_text(text)
    write_csv(rows, domains, error, sweep.output_dir / "table.csv")
    if rows:
        plot(rows, domains, error, sweep.output_dir / "accuracy.png")
    if report_path is not None:
        replace_between_markers(report_path, text, name)
    return text


def table_markers(name: str) -> tuple[str, str]:
    """The comments around a sweep's table in a report file; `name` is the sweep file's stem, so one page can hold
    the tables of several sweeps."""
    return f"<!-- sweep-table:start {name} -->", f"<!-- sweep-table:end {name} -->"


def replace_between_markers(path: Path, text: str, name: str) -> None:
    """Puts `text` between the markers of sweep `name` in `path`, keeping the rest of the file."""
    start, end = table_markers(name)
    document = path.read_text()
    if start not in document or end not in document:
        raise ValueError(f"{path} needs the markers {start} and {end} around the table's place")
    head, rest = document.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}{end}{tail}")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="the sweep file (YAML)")
    parser.add_argument(
        "--launcher", choices=LAUNCHERS, default="local", help="local: one job after the other"
    )
    parser.add_argument("--print-commands", action="store_true", help="print the jobs' commands and stop")
    parser.add_argument(
        "--collect-only", action="store_true", help="only collect finished runs into the table"
    )
    parser.add_argument(
        "--error", choices=("std", "sem"), default="std", help="spread over seeds in the table"
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="also put the table between this sweep's markers in this file: <!-- sweep-table:start NAME --> and "
        "<!-- sweep-table:end NAME -->, NAME the sweep file's name without .yaml",
    )
    args = parser.parse_args(argv)
    try:
        sweep = Sweep.load(args.sweep)
    except (OSError, ValueError) as error:
        parser.exit(2, f"sweep.py: error: {error}\n")
    jobs = expand(sweep)
    slurm = args.launcher == "slurm"
    if args.print_commands:
        for job in jobs:
            if not job.finished:
                print(" ".join(job.command(sweep, accelerate=slurm)))
        for folder, group in combinations(sweep, jobs).items():
            if not (folder / RESULTS_FILE).exists():
                print(" ".join(combine_command(folder, group)))
        return ""
    failed: list[str] = []
    if not args.collect_only:
        start = time.time()
        todo = [job for job in jobs if not job.finished]
        print(
            f"{len(jobs) - len(todo)} of {len(jobs)} jobs already finished; running {len(todo)}", flush=True
        )
        commands = [job.command(sweep, accelerate=slurm) for job in todo]
        failed = run_slurm(commands, sweep.output_dir, sweep.slurm) if slurm else run_local(commands)
        ready = {f: g for f, g in combinations(sweep, jobs).items() if all(job.finished for job in g)}
        combine = [combine_command(f, g) for f, g in ready.items() if not (f / RESULTS_FILE).exists()]
        failed += run_local(combine)
        print(f"sweep ran for {(time.time() - start) / 3600:.2f} h", flush=True)
    text = report(sweep, jobs, args.error, args.report, name=Path(args.sweep).stem)
    print(text)
    if failed:
        print("failed:\n" + "\n".join(failed), file=sys.stderr)
        raise SystemExit(1)
    return text


if __name__ == "__main__":
    main()
