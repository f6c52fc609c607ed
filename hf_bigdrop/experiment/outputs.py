"""What an experiment leaves in its output folder, and what it does with an earlier run's.

A finished run's folder holds its selected model (weights, code for `trust_remote_code`, image processor; for a LoRA
run, the merged model and its adapter in `adapter/`), its model card and, written last and atomically,
`results.json`: the marker that the run finished. The resume policy:

- a new run never mixes with an earlier one: a folder holding an earlier run (checkpoints or results) is refused
  unless the run resumes it (`--resume_from_checkpoint`) or starts over (`--overwrite_output_dir`, which removes the
  earlier run's checkpoints and outputs first);
- a run that starts (or resumes) removes the finished marker first, so a run killed before its end never leaves a
  folder that looks finished;
- resuming "the latest" checkpoint takes the newest *complete* one (`hf_bigdrop.checkpoints`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..checkpoints import ResumeError, resume_checkpoint
from ..results import RESULTS_FILE, RunResults
from .arguments import ExperimentArguments, RunArguments, UsageError, changed_arguments

__all__ = [
    "ADAPTER_FOLDER",
    "ARGUMENTS_FILE",
    "RESUME_LATEST",
    "check_resumed_arguments",
    "checkpoint_to_resume",
    "earlier_run_files",
    "is_finished",
    "leaves_folder",
    "output_dir_lock",
    "prepare_output_dir",
    "push_output_dir",
    "recorded_arguments",
    "write_atomically",
]

logger = logging.getLogger(__name__)

# Values of --resume_from_checkpoint that mean "the newest complete checkpoint in output_dir".
RESUME_LATEST = ("True", "true", "last")
# Where a LoRA run keeps its adapter (and trained head) beside the merged model.
ADAPTER_FOLDER = "adapter"
# The arguments a run started with (`ExperimentArguments.as_dict`), written when it starts afresh: a checkpoint of the
# folder resumes only under the same arguments (`check_resumed_arguments`).
ARGUMENTS_FILE = "arguments.json"
# What a run writes besides its checkpoints (removed by --overwrite_output_dir).
_OUTPUT_FILES = (
    ADAPTER_FOLDER,
    ARGUMENTS_FILE,
    RESULTS_FILE,
    "README.md",
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "preprocessor_config.json",
    "training_args.bin",
    "configuration_bigdrop.py",
    "modeling_bigdrop.py",
    "pooling_bigdrop.py",
)


def is_finished(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a finished run (its `results.json`, written last)."""
    return (Path(folder) / RESULTS_FILE).is_file()


def earlier_run_files(folder: str | os.PathLike) -> list[Path]:
    """The checkpoints and outputs of an earlier run in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("checkpoint-*")) + [
        folder / name for name in _OUTPUT_FILES if (folder / name).exists()
    ]


def checkpoint_to_resume(
    output_dir: str | os.PathLike,
    resume_from_checkpoint: str | None,
    run_args: RunArguments,
    *,
    required_files: tuple[str, ...] = (),
    missing_ok: bool = False,
) -> str | None:
    """The checkpoint a run resumes from (`None`: start afresh), by the policy of this module.

    Args:
        output_dir (`str | os.PathLike`): the run's folder.
        resume_from_checkpoint (`str | None`): a checkpoint folder, a value of `RESUME_LATEST`, or `None`.
        run_args (`RunArguments`): `overwrite_output_dir` allows starting over a folder with an earlier run.
        required_files (`tuple[str, ...]`, *optional*): files every checkpoint of this run holds (the averaging
            state), without which it is incomplete.
        missing_ok (`bool`, *optional*, defaults to `False`): with `RESUME_LATEST` and no checkpoint, start afresh
            (a leave-one-domain-out job that had not started when the run was killed).

    Raises:
        `UsageError`: resuming with no complete checkpoint, an explicit checkpoint that is incomplete or damaged,
            or an earlier run in the folder with neither resuming nor `overwrite_output_dir`.
    """
    if resume_from_checkpoint is not None:
        latest = resume_from_checkpoint in RESUME_LATEST
        try:
            return resume_checkpoint(output_dir, True if latest else resume_from_checkpoint, required_files)
        except ResumeError as error:
            if latest and missing_ok:  # no complete checkpoint: the job starts afresh
                return None
            raise UsageError(f"--resume_from_checkpoint: {error}") from None
    earlier = earlier_run_files(output_dir)
    if earlier and not run_args.overwrite_output_dir:
        raise UsageError(
            f"{output_dir} holds an earlier run ({earlier[0].name}, ...): pass --resume_from_checkpoint True to "
            "continue it, --overwrite_output_dir to start over, or another output_dir"
        )
    return None


def recorded_arguments(folder: str | os.PathLike) -> dict | None:
    """The arguments the run in `folder` started with (its `arguments.json`), or `None` if it wrote none (an earlier
    version recorded them only at the end, in `results.json`) or the file is damaged."""
    try:
        recorded = json.loads((Path(folder) / ARGUMENTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def check_resumed_arguments(checkpoint: str | None, arguments: ExperimentArguments) -> None:
    """Refuses to resume a checkpoint under arguments other than those its run started with (all but the
    operational ones: `arguments.OPERATIONAL_ARGUMENTS`), which would mix two runs into one; nothing to check when
    starting afresh or when the run recorded no arguments.

    Raises:
        `UsageError`: naming each changed argument, and the two ways on.
    """
    if checkpoint is None:
        return
    recorded = recorded_arguments(Path(checkpoint).parent)
    if recorded is None:
        return
    changes = changed_arguments(recorded, arguments.flat_dict())
    if changes:
        raise UsageError(
            f"cannot resume {checkpoint}: its run started with other arguments ({'; '.join(changes)}); resume with "
            "the arguments it started with, or start over with --overwrite_output_dir"
        )


def prepare_output_dir(
    output_dir: str | os.PathLike, checkpoint: str | None, arguments: ExperimentArguments | None = None
) -> None:
    """Makes `output_dir` ready for a run that resumes from `checkpoint` (or starts afresh if `None`).

    The finished marker goes first, always: until the run ends, the folder does not look finished. Starting afresh
    also removes an earlier run's checkpoints and outputs (the caller has checked that it may), then records
    `arguments` (`arguments.json`).
    """
    folder = Path(output_dir)
    (folder / RESULTS_FILE).unlink(missing_ok=True)
    if checkpoint is None:
        for path in earlier_run_files(folder):
            logger.info("Removing %s of an earlier run (--overwrite_output_dir).", path)
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        if arguments is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / ARGUMENTS_FILE).write_text(json.dumps(arguments.as_dict(), indent=2) + "\n")


def write_atomically(results: RunResults, folder: str | os.PathLike) -> Path:
    """Writes `results.json` into `folder` all at once (a temporary file renamed into place): a reader sees the
    whole file or none."""
    folder = Path(folder)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".results-") as scratch:
        written = results.save(scratch)
        target = folder / RESULTS_FILE
        os.replace(written, target)
    return target


def push_output_dir(trainer, commit_message: str) -> None:
    """Uploads a finished run's `output_dir` to its Hub repository, in one commit, from the main process.

    Everything else in the folder was written before (the model, its code and image processor, the card,
    `results.json` last); unlike `Trainer.push_to_hub`, this writes nothing more after `results.json` (the Trainer's
    saves the model again first). Checkpoints and hidden or `_`-prefixed files stay local, as the Trainer's push does.

    Args:
        trainer (`transformers.Trainer`): the run's trainer, made with `push_to_hub` (its `hub_model_id` is the
            repository it created).
        commit_message (`str`): the commit's message.
    """
    from huggingface_hub import HfApi

    if not trainer.is_world_process_zero():
        return
    if trainer.hub_model_id is None:
        trainer.init_hf_repo()
    args = trainer.args
    HfApi().upload_folder(
        repo_id=trainer.hub_model_id,
        folder_path=args.output_dir,
        commit_message=commit_message,
        token=args.hub_token,
        revision=args.hub_revision,
        ignore_patterns=["_*", ".*", "checkpoint-*"],
    )


# The lock file a run holds in its output folder while it writes there (hidden: never pushed, never an output).
LOCK_FILE = ".hf_bigdrop.lock"


@contextlib.contextmanager
def output_dir_lock(output_dir: str | os.PathLike):
    """Holds an exclusive lock on `output_dir` for a run's lifetime: a second run into the same folder is refused in
    one line instead of writing over the first. The lock is the operating system's (`filelock`), so a run that is
    killed releases it with its process: a lock file left behind is never stale.

    Raises:
        `UsageError`: another process holds the folder.
    """
    from filelock import FileLock, Timeout

    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UsageError(
            f"--output_dir {str(folder)!r} is being written by another run: wait for it to end, or choose another "
            "folder"
        ) from None
    try:
        yield folder / LOCK_FILE
    finally:
        lock.release()


def leaves_folder(name: str, *, subfolders: bool = False) -> bool:
    """Whether `name`, read from data or a sweep's grid and joined to a folder, could name something outside it: empty,
    absolute, with a `.` or `..` part or a NUL, or, unless `subfolders` (`timm/resnet50` as a sub-folder), with any
    path separator. The one rule for names the runner and the sweep turn into folders.
    """
    parts = name.replace("\\", "/").split("/")
    if len(parts) > 1 and not subfolders:
        return True
    return (
        not name or "\0" in name or name.startswith(("/", "\\")) or any(p in ("", ".", "..") for p in parts)
    )
