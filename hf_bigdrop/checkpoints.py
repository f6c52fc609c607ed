"""Whether a Trainer checkpoint is complete: every file a resume needs is there and readable.

A checkpoint is written file by file; a run killed while writing one leaves a folder that `get_last_checkpoint`
would happily return. `checkpoint_problem` says what is missing or damaged in a folder, and
`last_complete_checkpoint` finds the newest folder without a problem (the Trainer state is written after the weights,
the optimizer and, with `BigDropTrainer`, the weight average and the trajectory ensemble, so a folder that has it
and passes the checks is whole).
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

from safetensors import safe_open

__all__ = [
    "TRAINER_STATE_FILE",
    "ResumeError",
    "checkpoint_problem",
    "last_complete_checkpoint",
    "resume_checkpoint",
    "safetensors_problem",
]

logger = logging.getLogger(__name__)

TRAINER_STATE_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# The model's weights: one file, an index of shards, or (a LoRA run, `hf_bigdrop.lora`) the adapter with the head.
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file cannot be read in full (a truncated file ends before its last tensor), or None."""
    try:
        with safe_open(str(path), framework="pt"):
            pass
        with path.open("rb") as raw:
            header_size = int.from_bytes(raw.read(8), "little")
            header = json.loads(raw.read(header_size))
    except Exception as error:  # safetensors raises its own error types
        return f"{path.name} is damaged ({type(error).__name__}: {error})"
    end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    if path.stat().st_size < 8 + header_size + end:
        return f"{path.name} is truncated"
    return None


def _torch_file_problem(path: Path) -> str | None:
    """Why a file written by `torch.save` (a zip archive) is damaged, or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        return f"{path.name} is damaged ({error})"
    return None


def checkpoint_problem(folder: str | os.PathLike, required: Iterable[str] = ()) -> str | None:
    """What keeps a checkpoint folder from being resumed, in a few words naming the file, or `None` if it is whole.

    Args:
        folder (`str | os.PathLike`): a `checkpoint-<step>` folder.
        required (`Iterable[str]`, *optional*): further files it must hold (e.g. `weight_average.safetensors`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder} is not a folder"
    state = folder / TRAINER_STATE_FILE
    if not state.is_file():
        return f"{TRAINER_STATE_FILE} is missing (the checkpoint was not finished)"
    try:
        json.loads(state.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return f"{TRAINER_STATE_FILE} is damaged ({error})"
    weights = [folder / name for name in _WEIGHTS if (folder / name).is_file()]
    if not weights:
        return "the model weights (model.safetensors) are missing"
    files = [*weights, *(folder / name for name in required)]
    if weights[0].name.endswith(".index.json"):
        index = json.loads(weights[0].read_text())
        files += [folder / shard for shard in sorted(set(index.get("weight_map", {}).values()))]
    for path in files:
        if not path.is_file():
            return f"{path.name} is missing"
        problem = safetensors_problem(path) if path.suffix == ".safetensors" else None
        if path.suffix in (".pt", ".bin"):
            problem = _torch_file_problem(path)
        if problem is not None:
            return problem
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        path = folder / name
        if path.is_file():
            problem = _torch_file_problem(path)
            if problem is not None:
                return problem
    return None


def last_complete_checkpoint(output_dir: str | os.PathLike, required: Iterable[str] = ()) -> str | None:
    """The newest `checkpoint-<step>` folder of `output_dir` that `checkpoint_problem` finds whole, or `None`.

    Newer folders that are incomplete or damaged are skipped, each with a warning that names what is wrong.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    steps = sorted(
        (int(match.group(1)), path)
        for path in output_dir.iterdir()
        if path.is_dir() and (match := _CHECKPOINT.match(path.name))
    )
    required = tuple(required)
    for _, path in reversed(steps):
        problem = checkpoint_problem(path, required)
        if problem is None:
            return str(path)
        logger.warning("Not resuming from %s: %s; trying the previous checkpoint.", path, problem)
    return None


class ResumeError(ValueError):
    """A run cannot resume as asked: no complete checkpoint, or the one named is incomplete or damaged."""


def resume_checkpoint(
    output_dir: str | os.PathLike, checkpoint: str | os.PathLike | bool, required: Iterable[str] = ()
) -> str:
    """The checkpoint to resume from: with `True` the newest complete one of `output_dir`, else `checkpoint` itself,
    which must be complete. The one rule (and wording) of the trainer and the runner.

    Raises:
        `ResumeError`: no complete checkpoint in `output_dir`, or `checkpoint` incomplete or damaged (the message
            names the missing or damaged file).
    """
    required = tuple(required)
    if checkpoint is True:
        latest = last_complete_checkpoint(output_dir, required)
        if latest is None:
            raise ResumeError(f"cannot resume: no complete checkpoint-* folder in {output_dir}")
        return latest
    problem = checkpoint_problem(checkpoint, required)
    if problem is not None:
        raise ResumeError(f"cannot resume from {checkpoint}: {problem}")
    return str(checkpoint)
