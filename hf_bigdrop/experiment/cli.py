"""The command line of experiments: `hf-bigdrop <command>` (or `python -m hf_bigdrop.experiment <command>`).

- `run RECIPE [--flag value ...]`: one experiment, or one per held-out domain (`--test_domains all`);
- `sweep SWEEP.yaml [--jobs N] [--launcher slurm] [--print-commands] [--collect-only] [--report PAGE.md]`: a grid of
  experiments, then its table;
- `combine RUN [RUN ...] --output_dir DIR`: soups and the ensemble of finished runs;
- `compare RUN [RUN ...] [--output FILE.md] [--plot FILE.png]`: finished runs side by side.

A bad argument ends the command with one line on stderr and exit status 2, before any data or model is loaded;
anything that fails later shows its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ..results import COMBINATION_METHODS, RunResults
from ..tables import comparison_table, domain_table, run_title
from .arguments import UsageError

__all__ = [
    "COMMANDS",
    "console_main",
    "main",
    "run_command",
    "sweep_command",
    "combine_command",
    "compare_command",
]


def _logging(verbose: bool = True, file_bars: bool = False) -> None:
    """The commands' logging: this package's INFO lines (WARNING on processes that do not log); transformers'
    bars for loading and writing weights (one per model load and checkpoint) only when asked for (`file_bars`: the
    run's `--log_level info` or `debug`)."""
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO, datefmt="%H:%M:%S")
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    if not file_bars:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def run_command(argv: list[str]) -> list[RunResults]:
    """`run`: parses a recipe and flags, runs the experiment(s), prints each run's table."""
    from accelerate import PartialState

    from .arguments import parse_experiment_arguments
    from .runner import run_experiments

    arguments = parse_experiment_arguments(argv)
    _logging(arguments.training.should_log, file_bars=arguments.training.log_level in ("debug", "info"))
    runs = run_experiments(arguments)
    if PartialState().is_main_process:  # every process ran the jobs; one prints them
        for results in runs:
            print(f"\n{results.dataset}, held out {', '.join(results.test_domains)}, {run_title(results)}:")
            print(domain_table(results))
        if len(runs) > 1:
            mean = sum(results.mean_test_accuracy for results in runs) / len(runs)
            print(f"\nleave-one-domain-out over {len(runs)} domains: mean o.o.d. accuracy {100 * mean:.1f}%")
    return runs


def sweep_command(argv: list[str]) -> str:
    """`sweep`: checks every job, runs the unfinished ones (and the combinations), then writes the table."""
    from ..selection import TRAINING_DOMAIN_VALIDATION, across_runs
    from .collect import SPREADS, collect
    from .doc_pages import replace_between_markers
    from .launchers import LAUNCHERS, pending_commands, run_sweep
    from .report import write_sweep_report
    from .sweep import Sweep

    parser = argparse.ArgumentParser(
        prog="hf-bigdrop sweep", description="A grid of experiments and its table.", allow_abbrev=False
    )
    parser.add_argument("sweep", help="the sweep file (YAML; see hf_bigdrop.experiment.sweep)")
    parser.add_argument("--jobs", type=int, default=1, help="local launcher: run this many jobs at once")
    parser.add_argument(
        "--launcher", choices=list(LAUNCHERS), default="local", help="local (default) or slurm"
    )
    parser.add_argument(
        "--print-commands", action="store_true", help="print the unfinished jobs' commands, stop"
    )
    parser.add_argument(
        "--collect-only", action="store_true", help="only collect finished runs into the table"
    )
    parser.add_argument(
        "--rerun-changed",
        action="store_true",
        help="run again the jobs whose folder holds a run of other arguments (a recipe or grid changed since), "
        "replacing it; without it the sweep refuses to start",
    )
    parser.add_argument(
        "--selection",
        choices=across_runs(),
        default=TRAINING_DOMAIN_VALIDATION,
        help="the rule that chooses each method's setting among the runs (hf_bigdrop.selection)",
    )
    parser.add_argument(
        "--error", choices=list(SPREADS), default="std", help="spread over seeds in the table"
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="also put the report between this sweep's markers in this page: <!-- sweep-table:start NAME --> and "
        "<!-- sweep-table:end NAME -->, NAME the sweep file's name without .yaml",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise UsageError(f"--jobs must be a positive integer, got {args.jobs}")
    if args.report is not None and not args.report.is_file():
        raise UsageError(f"--report {str(args.report)!r} is not a file")
    sweep = Sweep.load(args.sweep)
    failed = []
    if not args.collect_only:
        jobs = sweep.check(rerun_changed=args.rerun_changed)
        if args.print_commands:
            print("\n".join(pending_commands(sweep, jobs, args.launcher)))
            return ""
        _logging()
        start = time.time()
        failed = run_sweep(sweep, jobs, args.launcher, args.jobs)
        print(f"sweep ran for {(time.time() - start) / 3600:.2f} h", flush=True)
        if failed:
            print("failed (see their logs):\n" + "\n".join(t.name for t in failed), file=sys.stderr)
    text = write_sweep_report(collect(sweep, args.selection), args.error)
    if args.report is not None:
        replace_between_markers(args.report, text, Path(args.sweep).stem)
    print(text)
    if failed:
        raise SystemExit(1)
    return text


def combine_command(argv: list[str]) -> RunResults:
    """`combine`: soups and the ensemble of finished runs, evaluated and saved like a run."""
    from .combine import combine_runs

    parser = argparse.ArgumentParser(
        prog="hf-bigdrop combine", description="Soups and ensembles of finished runs.", allow_abbrev=False
    )
    parser.add_argument("runs", nargs="+", help="output_dir of each finished run")
    parser.add_argument("--output_dir", required=True, help="where the soups and results.json go")
    parser.add_argument(
        "--methods", nargs="+", default=list(COMBINATION_METHODS), choices=COMBINATION_METHODS
    )
    parser.add_argument("--batch_size", type=int, default=64, help="evaluation batch size")
    parser.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help="replace what --output_dir holds (without it, a folder that holds anything is refused)",
    )
    args = parser.parse_args(argv)
    _logging()
    results = combine_runs(
        args.runs, args.output_dir, args.methods, args.batch_size, overwrite=args.overwrite_output_dir
    )
    for name, record in results.methods.items():
        print(
            f"{name}: mean o.o.d. {100 * record.mean_test_accuracy:.1f}%, "
            f"mean validation {100 * record.mean_validation_accuracy:.1f}%"
        )
    return results


def compare_command(argv: list[str]) -> str:
    """`compare`: finished runs side by side (per-domain validation and o.o.d. accuracy), optionally their curves."""
    from .plots import plot_run_curves

    parser = argparse.ArgumentParser(
        prog="hf-bigdrop compare", description="Finished runs side by side.", allow_abbrev=False
    )
    parser.add_argument("runs", nargs="+", help="output_dir of each run (or its results.json)")
    parser.add_argument("--output", type=Path, help="also write the table (Markdown) to this file")
    parser.add_argument("--plot", type=Path, help="also draw the runs' accuracy curves into this PNG")
    args = parser.parse_args(argv)
    for flag, path in (("--output", args.output), ("--plot", args.plot)):
        if path is not None and (path.is_dir() or not path.parent.is_dir()):
            where = "is a folder" if path.is_dir() else f"is in {str(path.parent)!r}, which is not a folder"
            raise UsageError(f"{flag} {str(path)!r} {where}: give a file in an existing folder")
    try:
        runs = [RunResults.load(path) for path in args.runs]
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(" ".join(str(error).split())) from None
    first = runs[0]
    for path, results in zip(args.runs, runs):
        if (results.dataset, results.test_domains) != (first.dataset, first.test_domains):
            raise UsageError(
                f"{path} is {results.dataset} held out {results.test_domains}, not {first.dataset} held out "
                f"{first.test_domains}: only runs of one dataset and held-out domains are compared"
            )
    titles = [run_title(results) for results in runs]
    if len(set(titles)) < len(titles):
        titles = [f"{title} [{Path(path).name}]" for title, path in zip(titles, args.runs)]
    heading = (
        f"{first.dataset}: trained on {', '.join(first.train_domains)}; held out {', '.join(first.test_domains)} "
        f"(seed {first.seed}); accuracy in %"
    )
    text = f"{heading}\n\n{comparison_table(dict(zip(titles, runs)))}\n"
    print(f"\n{text}")
    if args.output:
        args.output.write_text(text)
    if args.plot:
        title = f"{first.dataset}, held out {', '.join(first.test_domains)}"
        plot_run_curves(dict(zip(titles, runs)), args.plot, title)
        print(f"accuracy curves: {args.plot}")
    return text


COMMANDS = {
    "run": run_command,
    "sweep": sweep_command,
    "combine": combine_command,
    "compare": compare_command,
}


def main(argv: list[str] | None = None, command: str | None = None):
    """Runs a command: `command`, or the first argument (`hf-bigdrop run ...`). Usage errors exit with status 2, a
    diverged training with status 1, each as one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if command is None:
        if not argv or argv[0] not in COMMANDS:
            print(__doc__.split("\n\n")[0] + "\n\ncommands: " + ", ".join(COMMANDS), file=sys.stderr)
            raise SystemExit(2)
        command, argv = argv[0], argv[1:]
    from ..training import TrainingDivergedError

    try:
        result = COMMANDS[command](argv)
    except UsageError as error:
        print(f"hf-bigdrop {command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except TrainingDivergedError as error:  # a result of the run, not a bug: said in one line
        print(f"hf-bigdrop {command}: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    if command == "run":
        from accelerate import PartialState

        # Leave together: a process that exits while another still holds the gloo/NCCL connection can abort it.
        PartialState().wait_for_everyone()
    return result


def console_main() -> None:
    """The `hf-bigdrop` console command: `main`, exiting with status 0 when the command succeeds.

    (A console script exits with whatever its function returns, and `main` returns the command's results.)
    """
    main()
