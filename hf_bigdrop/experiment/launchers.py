"""Running a sweep's work: its unfinished jobs through a launcher (`LAUNCHERS`: here, `--jobs N` at once, or one
Slurm job each through submitit), then the combinations (soups, run ensemble) of each method's selected runs.
`run_sweep` is what `hf-bigdrop sweep` does between checking the sweep file and writing its report."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .arguments import UsageError
from .collect import collect, pending_combinations
from .sweep import Job, Sweep

__all__ = [
    "LAUNCHERS",
    "Task",
    "job_tasks",
    "launch",
    "launch_local",
    "launch_slurm",
    "pending_commands",
    "run_sweep",
]


@dataclass
class Task:
    """A command to run, with where its output goes and what it is, for the launchers."""

    command: list[str]
    log: Path
    name: str


def _slot_environment(slot: int, jobs: int) -> dict[str, str]:
    """The environment of the `slot`-th of `jobs` concurrent jobs: its share of the CPU cores, and its GPU."""
    environment = dict(os.environ)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    environment.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    gpus = _visible_gpus()
    if gpus:
        environment["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return environment


def _visible_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [gpu for gpu in visible.split(",") if gpu.strip()]
    try:
        import torch

        return [str(index) for index in range(torch.cuda.device_count())]
    except ImportError:  # pragma: no cover - torch is a dependency
        return []


def launch_local(tasks: Sequence[Task], jobs: int = 1, poll_seconds: float = 1.0) -> list[Task]:
    """Runs tasks, `jobs` at a time: on GPUs one slot per GPU in turn (several per GPU when `jobs` is larger), on
    CPUs the cores split between the slots (`OMP_NUM_THREADS`). Each task's output goes to its log file.

    Returns:
        `list[Task]`: the tasks that failed.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs}")
    pending, running, failed = list(tasks), {}, []
    free = list(range(jobs))
    total = len(pending)
    done = 0
    while pending or running:
        while pending and free:
            task, slot = pending.pop(0), free.pop(0)
            task.log.parent.mkdir(parents=True, exist_ok=True)
            handle = task.log.open("w")
            process = subprocess.Popen(
                task.command, stdout=handle, stderr=subprocess.STDOUT, env=_slot_environment(slot, jobs)
            )
            running[process] = (task, slot, handle, time.time())
            print(f"[{done + len(running)}/{total} started] {task.name} (log: {task.log})", flush=True)
        time.sleep(poll_seconds if running else 0)
        for process in [p for p in running if p.poll() is not None]:
            task, slot, handle, started = running.pop(process)
            handle.close()
            free.append(slot)
            done += 1
            status = "finished" if process.returncode == 0 else f"FAILED (exit {process.returncode})"
            print(
                f"[{done}/{total} done] {task.name} {status} in {(time.time() - started) / 60:.1f} min",
                flush=True,
            )
            if process.returncode != 0:
                failed.append(task)
    return failed


def launch_slurm(
    tasks: Sequence[Task], folder: Path, parameters: dict, cluster: str | None = None
) -> list[Task]:
    """Submits one Slurm job per task through submitit (`pip install hf-bigdrop[slurm]`), waits, returns failures."""
    try:
        import submitit
    except ImportError as error:
        raise UsageError("--launcher slurm needs submitit: pip install 'hf-bigdrop[slurm]'") from error
    executor = submitit.AutoExecutor(folder=str(folder / "slurm_logs"), cluster=cluster)
    executor.update_parameters(**parameters)
    submitted = [(executor.submit(submitit.helpers.CommandFunction(task.command)), task) for task in tasks]
    failed = []
    for job, task in submitted:
        try:
            job.result()
        except Exception as error:  # noqa: BLE001 - every failure is reported, the sweep goes on
            print(f"job {job.job_id} ({task.name}) failed: {error}", file=sys.stderr)
            failed.append(task)
    return failed


def job_tasks(jobs: Sequence[Job], accelerate: bool = False) -> list[Task]:
    """The tasks of the jobs that have not finished."""
    return [
        Task(
            job.command(accelerate),
            job.output_dir.with_name(job.output_dir.name + ".log"),
            str(job.output_dir),
        )
        for job in jobs
        if not job.finished
    ]


LAUNCHERS: dict[str, Callable[[Sequence[Task], Sweep, int], list[Task]]] = {
    "local": lambda tasks, sweep, jobs: launch_local(tasks, jobs),
    "slurm": lambda tasks, sweep, jobs: launch_slurm(tasks, sweep.output_dir, sweep.slurm),
}
"""How a sweep's tasks run, by name: each launcher takes the tasks, the sweep and the number of concurrent jobs, and
returns the tasks that failed. Data, not an if/else chain: a new launcher is one entry."""


def launch(tasks: Sequence[Task], sweep: Sweep, launcher: str = "local", jobs: int = 1) -> list[Task]:
    """Runs tasks with a launcher of `LAUNCHERS`; returns the failed ones."""
    if launcher not in LAUNCHERS:
        raise UsageError(f"unknown launcher {launcher!r}; choose one of {list(LAUNCHERS)}")
    return LAUNCHERS[launcher](tasks, sweep, jobs)


def run_sweep(sweep: Sweep, jobs: Sequence[Job], launcher: str = "local", concurrent: int = 1) -> list[Task]:
    """Runs the unfinished jobs, then makes the combinations not yet made (the sweep's own combination folders,
    replaced when their members changed).

    Returns:
        `list[Task]`: the jobs that failed.
    """
    from .combine import combine_runs

    tasks = job_tasks(jobs, accelerate=launcher == "slurm")
    print(f"{len(jobs) - len(tasks)} of {len(jobs)} jobs already finished; running {len(tasks)}", flush=True)
    failed = launch(tasks, sweep, launcher, concurrent)
    for combination in pending_combinations(sweep, collect(sweep).selected):
        combine_runs(list(combination.members), combination.folder, overwrite=True)
    return failed


def pending_commands(sweep: Sweep, jobs: Sequence[Job], launcher: str = "local") -> list[str]:
    """The commands of the unfinished jobs, then of the combinations that their finished runs allow already."""
    commands = [" ".join(task.command) for task in job_tasks(jobs, accelerate=launcher == "slurm")]
    for combination in pending_combinations(sweep, collect(sweep).selected):
        runs = " ".join(str(member) for member in combination.members)
        commands.append(
            f"{sys.executable} -m hf_bigdrop.experiment combine {runs} --output_dir {combination.folder}"
        )
    return commands
