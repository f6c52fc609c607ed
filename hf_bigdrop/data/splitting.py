"""DomainBed's per-domain splits, seeded by `(seed, domain name)`, and the domain columns they read.

Splits are index selections of one Arrow table: nothing is decoded or copied.
"""

from __future__ import annotations

import zlib

import datasets
import numpy as np
import pyarrow as pa

__all__ = ["arrow_column", "domain_ids", "domain_names", "domain_rng", "split_domain_indices"]


def split_domain_indices(
    indices: np.ndarray, holdout_fraction: float, seed: int, domain: str
) -> tuple[np.ndarray, np.ndarray]:
    """Splits one domain's example indices into kept / held-out parts, seeded by `(seed, domain)`.

    Args:
        indices (`np.ndarray`): Indices of the domain's examples.
        holdout_fraction (`float`): Fraction held out: `floor(len(indices) * holdout_fraction)` examples.
        seed (`int`): Split seed.
        domain (`str`): Domain name; mixed into the seed with `zlib.crc32` (stable across runs and machines,
            unlike Python's `hash`).

    Returns:
        `tuple[np.ndarray, np.ndarray]`: Sorted kept indices and sorted held-out indices.
    """
    permuted = domain_rng(seed, domain).permutation(np.asarray(indices, dtype=np.int64))
    n_held = int(len(permuted) * holdout_fraction)
    return np.sort(permuted[n_held:]), np.sort(permuted[:n_held])


def domain_names(dataset: datasets.Dataset) -> list[str]:
    """The domain names of a dataset from `load_domain_dataset` (index = domain id).

    Args:
        dataset (`datasets.Dataset`): A split with a `domain` `ClassLabel` column.

    Returns:
        `list[str]`: All domain names, including the held-out ones.
    """
    feature = dataset.features.get("domain")
    if not isinstance(feature, datasets.ClassLabel):
        raise ValueError(f"Expected a 'domain' ClassLabel column, got {feature!r}.")
    return list(feature.names)


def domain_ids(dataset: datasets.Dataset) -> np.ndarray:
    """The domain id of every example, read from the Arrow column (no image is decoded).

    Args:
        dataset (`datasets.Dataset`): A split with a `domain` `ClassLabel` column.

    Returns:
        `np.ndarray`: int64 array of length `len(dataset)`.
    """
    domain_names(dataset)  # validates the column
    return np.asarray(arrow_column(dataset, "domain").to_numpy(), dtype=np.int64)


def domain_rng(seed: int, domain: str, purpose: str = "split") -> np.random.Generator:
    """The random generator of one domain for one purpose (`"split"`, or e.g. `"subsample"`)."""
    key = domain if purpose == "split" else f"{domain}/{purpose}"
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def arrow_column(dataset: datasets.Dataset, name: str) -> pa.ChunkedArray:
    """One column as Arrow (respects an indices mapping; decodes nothing)."""
    table = dataset.select_columns([name]).with_format("arrow")[:]
    return table.column(name)
