"""What a dataset name means: a registry entry, a local folder or a Hub dataset id, and how to load it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..names import is_hub_id
from .registry import DomainDatasetInfo, get_dataset_info, list_datasets

__all__ = ["LAYOUT", "Source", "local_kind", "registered_dataset", "resolve_source"]

LAYOUT = "root/<domain>/<class>/<image>"
"""DomainBed's folder layout of a local dataset."""

# Files that make a local folder "look like a Hub dataset repository" (loaded with `datasets.load_dataset`).
_HUB_DATA_FILE_PATTERNS = ("*.parquet", "*.arrow", "*.jsonl", "*.csv")


@dataclass(frozen=True)
class Source:
    """Where and how to load a dataset.

    Args:
        kind (`str`): How it is loaded: `"builder"` (a benchmark built offline by its registry entry's builder),
            `"hub"` (`datasets.load_dataset` of a Hub id or a folder of data files) or `"folder"` (a local
            folder in DomainBed's layout).
        location (`str`): The registry name, Hub id or folder.
        info (`DomainDatasetInfo | None`): The registry entry, for a registered dataset.
    """

    kind: str
    location: str
    info: DomainDatasetInfo | None


def local_kind(path: Path) -> str:
    """How a local folder loads: `"hub"` when it holds data files (Parquet, Arrow, JSON lines, CSV), else `"folder"`
    (DomainBed's image layout)."""
    has_data_files = any(next(path.rglob(pattern), None) is not None for pattern in _HUB_DATA_FILE_PATTERNS)
    return "hub" if has_data_files else "folder"


def _is_path(name_or_path: str | os.PathLike) -> bool:
    """Whether the user wrote a path (`./PACS`, `/data/PACS`, `~/PACS`, a `Path`) rather than a bare name."""
    if not isinstance(name_or_path, str):
        return True
    return name_or_path.startswith((".", "~", os.sep)) or os.sep in name_or_path.rstrip(os.sep)


def registered_dataset(name_or_path: str | os.PathLike) -> DomainDatasetInfo | None:
    """The registry entry a dataset name means: `None` for a path (`./PACS`) or a name the registry lacks.

    The one rule for "is this the registered dataset?": `resolve_source`, the runner and its checks all ask here.
    """
    return None if _is_path(name_or_path) else get_dataset_info(os.fspath(name_or_path))


def resolve_source(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None) -> Source:
    """Resolves a registered name, a local folder or a Hub dataset id (in that order) to a `Source`.

    A bare registered name (`"PACS"`) means the registry entry even where the working directory holds a folder of
    that name (the common `cd /data; ... --dataset PACS --data_dir PACS`); write a path (`"./PACS"`) to mean the
    folder itself.

    Args:
        name_or_path (`str | os.PathLike`): What the user asked for.
        data_dir (`str | os.PathLike | None`): A local copy of a registered dataset.

    Returns:
        `Source`: Where and how to load it.

    Raises:
        ValueError: For a name that is none of these, a file, a registered dataset that must be downloaded
            first, or a `data_dir` given for an unregistered dataset.
    """
    name = os.fspath(name_or_path)
    info = registered_dataset(name_or_path)
    if info is not None:
        if info.builder is not None:
            return Source("builder", info.name, info)
        if data_dir is not None:
            local = Path(data_dir)
            if not local.is_dir():
                raise ValueError(f"data_dir {os.fspath(data_dir)!r} for {info.name} is not a folder.")
            return Source(local_kind(local), str(local), info)
        if info.hub_id is not None:
            return Source("hub", info.hub_id, info)
        raise ValueError(
            f"{info.name} has no public Hugging Face Hub dataset: download it ({info.url}) and pass its "
            f"folder, laid out as DomainBed's {LAYOUT}, with data_dir=... "
            f"(e.g. load_domain_dataset({info.name!r}, data_dir='/data/{info.name}', test_domains=...))."
        )
    if data_dir is not None:
        raise ValueError(
            f"data_dir is only for registered datasets ({', '.join(list_datasets())}); got {name!r}."
        )
    path = Path(name)
    if path.is_dir():
        return Source(local_kind(path), str(path), None)
    if path.exists():
        raise ValueError(
            f"{name!r} is a file; pass a folder ({LAYOUT} or Parquet files) or a Hub dataset id."
        )
    if is_hub_id(name):
        return Source("hub", name, None)
    raise ValueError(
        f"Unknown dataset {name!r}: not a registered dataset ({', '.join(list_datasets())}), not an existing "
        "local folder, and not a Hub dataset id of the form 'owner/name'."
    )
