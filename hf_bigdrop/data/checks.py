"""Checks of a loaded dataset: unreadable image files, and classes that differ from the registry's."""

from __future__ import annotations

import io
import logging

import datasets
import numpy as np
from PIL import Image as PILImage

from .registry import DomainDatasetInfo, normalize_name
from .splitting import arrow_column

__all__ = ["check_classes", "drop_or_raise_unreadable", "unreadable_reason"]

logger = logging.getLogger(__name__)


def check_classes(dataset: datasets.Dataset, info: DomainDatasetInfo | None) -> None:
    """Warns when the classes of a registered dataset are not the ones its registry entry lists."""
    if info is None or info.classes is None:
        return
    found = dataset.features["label"].names
    if sorted(map(normalize_name, found)) != sorted(map(normalize_name, info.classes)):
        logger.warning(
            "%s: the data has %d classes %s..., the registry lists %d %s...",
            info.name,
            len(found),
            found[:5],
            len(info.classes),
            list(info.classes[:5]),
        )


def unreadable_reason(entry: dict | None) -> str | None:
    """Why an Arrow image entry `{"bytes", "path"}` cannot be opened, or None when it can."""
    if entry is None:
        return "missing image"
    data, path = entry.get("bytes"), entry.get("path")
    try:
        with PILImage.open(io.BytesIO(data) if data is not None else path) as image:
            image.verify()
    except Exception as err:  # PIL raises many types for bad files
        return f"{type(err).__name__}: {err}"
    return None


def drop_or_raise_unreadable(dataset: datasets.Dataset, *, skip: bool) -> datasets.Dataset:
    """Opens every image once (header and structure check, no full decode).

    Args:
        dataset (`datasets.Dataset`): A dataset with an `image` column.
        skip (`bool`): Drop the unreadable images (their count is logged) instead of raising.

    Returns:
        `datasets.Dataset`: `dataset`, without its unreadable images when `skip` is set.

    Raises:
        ValueError: On the first unreadable image, when `skip` is not set (the message names the file).
    """
    bad: list[int] = []
    offset = 0
    for chunk in arrow_column(dataset, "image").chunks:
        for i, entry in enumerate(chunk.to_pylist()):
            reason = unreadable_reason(entry)
            if reason is None:
                continue
            if not skip:
                where = entry.get("path") if entry else None
                raise ValueError(
                    f"Unreadable or corrupt image file {where or f'at row {offset + i}'!r}: {reason}. "
                    "Remove or fix it, or pass skip_corrupt_images=True to skip such files."
                )
            bad.append(offset + i)
        offset += len(chunk)
    if not bad:
        return dataset
    logger.warning("Skipped %d unreadable or corrupt image file(s) (skip_corrupt_images=True).", len(bad))
    keep = np.setdiff1d(np.arange(len(dataset)), np.asarray(bad))
    return dataset.select(keep.tolist())
