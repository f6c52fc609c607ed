"""DomainBed's per-domain splits, seeded by `(seed, domain name)`, and the domain columns they read.

Splits are index selections of one Arrow table: nothing is decoded or copied.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import datasets
import numpy as np
import pyarrow as pa

__all__ = [
    "arrow_column",
    "domain_ids",
    "domain_names",
    "domain_rng",
    "carve_groups",
    "split_domain_indices",
    "split_group_indices",
]


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


def carve_groups(
    groups: np.ndarray,
    labels: np.ndarray,
    fractions: Sequence[float],
    seed: int,
    purpose: str = "group-split",
) -> list[set[str]]:
    """Carves each class's groups (e.g. emoji) into disjoint held-out sets, one per fraction, seeded by `(seed, class)`.

    Each class's `n` groups are shuffled once; the first set takes `floor(n * fractions[0])` of them, the next takes
    `floor(m * fractions[1])` of the `m` groups left, and so on (DomainBed's rounding), so every set keeps the classes'
    proportions of groups. The choice does not depend on the domain: a group held out is held out in every domain.
    With one fraction this is the train / validation split of a grouped dataset; `load_domain_dataset` carves the
    test groups first, then the validation groups from those left.

    Args:
        groups (`np.ndarray`): The group of every example (strings).
        labels (`np.ndarray`): The class of every example; a group must belong to one class.
        fractions (`Sequence[float]`): Fraction of each class's remaining groups that each set takes, in order.
        seed (`int`): Split seed.
        purpose (`str`, *optional*, defaults to `"group-split"`): Mixed into the seed, so that independent carvings
            (e.g. the held-out domain's oracle part) do not repeat each other.

    Returns:
        `list[set[str]]`: One set of groups per fraction.

    Raises:
        ValueError: If a group holds examples of several classes (the message names one).
    """
    classes_of: dict[str, set[int]] = {}
    for group, label in zip(groups.tolist(), labels.tolist()):
        classes_of.setdefault(str(group), set()).add(int(label))
    mixed = sorted(group for group, classes in classes_of.items() if len(classes) > 1)
    if mixed:
        raise ValueError(
            f"Group {mixed[0]!r} holds examples of several classes {sorted(classes_of[mixed[0]])} "
            f"({len(mixed)} such group(s)); a group must belong to one class to be split as a whole."
        )
    carved: list[set[str]] = [set() for _ in fractions]
    for label in sorted({next(iter(classes)) for classes in classes_of.values()}):
        members = np.array(sorted(g for g, classes in classes_of.items() if label in classes), dtype=object)
        left = domain_rng(seed, f"class-{label}", purpose).permutation(members).tolist()
        for held, fraction in zip(carved, fractions):
            count = int(len(left) * fraction)
            held.update(left[:count])
            left = left[count:]
    return carved


def split_group_indices(
    indices: np.ndarray, groups: np.ndarray, held: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Splits one domain's example indices by group: examples of a `held` group go to the held-out part.

    Args:
        indices (`np.ndarray`): Indices of the domain's examples.
        groups (`np.ndarray`): The group of every example of the dataset (indexed by `indices`).
        held (`set[str]`): The held-out groups (`carve_groups`).

    Returns:
        `tuple[np.ndarray, np.ndarray]`: Sorted kept indices and sorted held-out indices.
    """
    indices = np.asarray(indices, dtype=np.int64)
    is_held = np.fromiter((str(g) in held for g in groups[indices]), dtype=bool, count=len(indices))
    return np.sort(indices[~is_held]), np.sort(indices[is_held])


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
