"""`load_domain_dataset`: one call from a dataset name, Hub id or local folder to DomainBed splits.

The call runs four stages, each in its own module:

1. `resolving.py`: what the name means (a registry entry, a local folder or a Hub dataset id);
2. `sources.py`: loading that source as one `datasets.Dataset` with three columns,
   - `image`: `datasets.Image` (decoded lazily, on access),
   - `label`: `datasets.ClassLabel` with the class names,
   - `domain`: `datasets.ClassLabel` with the domain names (ids are global: the same id means the same domain in
     every split);
3. `checks.py`: unreadable images and classes that differ from the registry's;
4. `splitting.py`: each domain split (seeded by `(seed, domain name)`) into `train` / `validation` for the
   training domains and `test` (optionally `test` / `test_validation`) for the held-out domains; a dataset with a
   group column (the emoji of `emoji`'s renders) is split by whole groups instead, the same in every domain, into
   test groups (the held-out domains' `test`: never trained or validated on), validation groups and training groups
   (the held-out domains' `test_known`, a diagnostic). Splits are index selections of the same Arrow table: nothing
   is decoded or copied.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import datasets
import numpy as np

from .checks import check_classes, drop_or_raise_unreadable
from .registry import DATASET_REGISTRY, held_out_domains
from .resolving import LAYOUT, resolve_source
from .sources import LOADERS, LoadOptions
from .splitting import (
    arrow_column,
    carve_groups,
    domain_ids,
    domain_names,
    domain_rng,
    split_domain_indices,
    split_group_indices,
)

__all__ = ["DEFAULT_TEST_GROUP_FRACTION", "load_domain_dataset", "sampling_problems"]

logger = logging.getLogger(__name__)

# Fraction of each class's groups that a grouped dataset (e.g. `emoji`) holds out of training for the o.o.d. test.
DEFAULT_TEST_GROUP_FRACTION = 0.25


def load_domain_dataset(
    name_or_path: str | os.PathLike,
    *,
    test_domains: str | Sequence[str],
    holdout_fraction: float = 0.2,
    seed: int = 0,
    test_holdout_fraction: float | None = None,
    data_dir: str | os.PathLike | None = None,
    domain_column: str | None = None,
    label_column: str | None = None,
    image_column: str | None = None,
    group_column: str | None = None,
    test_group_fraction: float | None = None,
    domain_level: int = 0,
    split: str | None = None,
    max_per_domain: int | None = None,
    image_size: int | None = None,
    builder_kwargs: dict | None = None,
    verify_images: bool = True,
    skip_corrupt_images: bool = False,
    cache_dir: str | os.PathLike | None = None,
    **load_dataset_kwargs,
) -> datasets.DatasetDict:
    """Loads a multi-domain image dataset and splits it with DomainBed's protocol.

    `name_or_path` is resolved in this order:

    1. a registered name (`"PACS"`, `"VLCS"`, `"OfficeHome"`, `"TerraIncognita"`, `"DomainNet"`,
       `"digits"`, `"styles"`, `"emoji"`; case-insensitive): `digits`, `styles` and `emoji` are built offline on first use
       (each by the builder its registry entry names, then cached); the others load from
       `data_dir` when given, else from their public Hub dataset (PACS, OfficeHome), else they raise an
       error that says where to download them. A bare registered name wins over a folder of that name in the
       working directory (`load_domain_dataset("PACS", data_dir="PACS")` from `/data`); write `"./PACS"` to mean
       the folder;
    2. a local folder: when it holds data files (Parquet / Arrow / JSON Lines / CSV) it is loaded with
       `datasets.load_dataset(path)` exactly like a Hub id; otherwise it must follow DomainBed's layout
       `root/<domain>/<class>/<image>`;
    3. a Hub dataset id `"owner/name"`, loaded with `datasets.load_dataset`.

    Args:
        name_or_path (`str | os.PathLike`): Registered name, local folder or Hub dataset id.
        test_domains (`str | Sequence[str]`): Held-out domain(s): full names or DomainBed short names
            (`"S"` for PACS' sketch), case-insensitive.
        holdout_fraction (`float`, *optional*, defaults to `0.2`): Fraction of each training domain that goes
            to `validation` (`floor(n * holdout_fraction)` examples, as in DomainBed).
        seed (`int`, *optional*, defaults to `0`): Split seed. Each domain is shuffled by a generator seeded with
            `(seed, crc32(domain name))`, so a domain's split does not depend on the other domains.
        test_holdout_fraction (`float | None`, *optional*, defaults to `None`): When set, the held-out domains
            are split the same way into `test` and `test_validation` (this fraction), for oracle
            (test-domain validation) model selection.
        data_dir (`str | os.PathLike | None`, *optional*, defaults to `None`): Local copy of a registered
            dataset (DomainBed layout or Hub-like files).
        domain_column (`str | None`, *optional*, defaults to `None`): Column holding the domain in a Hub or
            Hub-like dataset (default: the registry's, else `"domain"`).
        label_column (`str | None`, *optional*, defaults to `None`): Label column, must be a `ClassLabel`
            (default: the registry's, else `"label"`).
        image_column (`str | None`, *optional*, defaults to `None`): Image column (default `"image"`).
        group_column (`str | None`, *optional*, defaults to `None`): Column naming each example's group (default:
            the registry's, e.g. `emoji` for the `emoji` benchmark, else none). With a group column, the
            validation (and `test_validation`) split holds whole groups: `floor(n * holdout_fraction)` of the `n`
            groups of each class, seeded by `(seed, class)`, the same groups in every domain, so that validation
            never sees a group that training saw. The column is kept in every split.
        test_group_fraction (`float | None`, *optional*, defaults to `None`): With a group column, the fraction of
            each class's groups held out of training and validation altogether (carved first, seeded by
            `(seed, class)`): the held-out domains' `test` split holds only these groups, so an o.o.d. test never
            shows an instance (an emoji) that training saw in another domain, and a `test_known` split holds the
            held-out domains' training groups as a diagnostic (known instances, new domain). `None`:
            `DEFAULT_TEST_GROUP_FRACTION` (0.25) for a grouped dataset, 0 otherwise; `0.0`: the held-out domains'
            `test` holds every group.
        domain_level (`int`, *optional*, defaults to `0`): For a local image folder, which folder level is the
            domain: `0` for `root/<domain>/<class>/<image>`, `1` for `root/<class>/<domain>/<image>`.
        split (`str | None`, *optional*, defaults to `None`): Hub split holding the examples (default: the
            registry's; `None` concatenates every split).
        max_per_domain (`int | None`, *optional*, defaults to `None`): Keep at most this many examples per
            domain (a fixed random subset, independent of `seed`), for quick experiments.
        image_size (`int | None`, *optional*, defaults to `None`): For a benchmark built offline (`digits`,
            `styles`), the side of its stored images (default: its registry entry's `default_image_size`).
            Other sources are loaded as stored; the transforms resize them (`apply_transforms(image_size=...)`).
        builder_kwargs (`dict | None`, *optional*, defaults to `None`): Further arguments of a benchmark built
            offline, passed to its builder, e.g. `{"examples_per_class": 200}` for `styles`
            (`hf_bigdrop.data.ensure_styles` lists them).
        verify_images (`bool`, *optional*, defaults to `True`): Open every image once at load time
            (header and structure check, no full decode) to find unreadable files early.
        skip_corrupt_images (`bool`, *optional*, defaults to `False`): Drop unreadable images (the count is
            logged as a warning) instead of raising an error. Requires `verify_images`.
        cache_dir (`str | os.PathLike | None`, *optional*, defaults to `None`): `datasets` cache folder, also the
            root under which a benchmark built offline is cached (default: `$HF_BIGDROP_CACHE`, else
            `$HF_HOME/hf_bigdrop`).
        **load_dataset_kwargs: Passed to `datasets.load_dataset` for Hub and Hub-like sources (`revision`,
            `token`, `name`, ...).

    Returns:
        `datasets.DatasetDict`: `train`, `validation` and `test` (plus `test_validation` when
        `test_holdout_fraction` is set, and `test_known` for a grouped dataset split with test groups), each with
        `image`, `label` (`ClassLabel`) and `domain` (`ClassLabel` of all domain names) columns.

    Raises:
        ValueError: Unknown dataset, unknown or empty domain, every domain held out, a folder that does not
            follow the layout, a label column that is not a `ClassLabel`, an unreadable image, or an
            argument out of range.

    Example:

    ```python
    >>> from hf_bigdrop.data import load_domain_dataset
    >>> splits = load_domain_dataset("digits", test_domains="mnist_m")
    >>> splits["train"].features["domain"].names
    ['mnist', 'mnist_m', 'optdigits', 'typeface']
    ```
    """
    problems = sampling_problems(
        holdout_fraction=holdout_fraction,
        test_holdout_fraction=test_holdout_fraction,
        test_group_fraction=test_group_fraction,
        seed=seed,
        max_per_domain=max_per_domain,
    )
    if problems:
        raise ValueError(f"{'; '.join(problems)}.")
    if domain_level not in (0, 1):
        raise ValueError(
            f"domain_level must be 0 ({LAYOUT}) or 1 (root/<class>/<domain>/<image>), got {domain_level!r}."
        )
    if skip_corrupt_images and not verify_images:
        raise ValueError(
            "skip_corrupt_images=True needs verify_images=True (images are checked at load time)."
        )

    source = resolve_source(name_or_path, data_dir)
    if source.kind != "builder" and (image_size is not None or builder_kwargs):
        built = ", ".join(info.name for info in DATASET_REGISTRY.values() if info.builder is not None)
        raise ValueError(
            f"image_size and builder_kwargs set how a benchmark built offline is made "
            f"({built}); {source.location!r} is loaded as stored. "
            "Resize its images with the transforms instead (apply_transforms(..., image_size=...))."
        )
    options = LoadOptions(
        split=split if split is not None else (source.info.hub_split if source.info else None),
        cache_dir=None if cache_dir is None else str(cache_dir),
        image_column=image_column,
        label_column=label_column,
        domain_column=domain_column,
        group_column=group_column,
        domain_level=domain_level,
        image_size=image_size,
        builder_kwargs=dict(builder_kwargs or {}),
        load_kwargs=load_dataset_kwargs,
    )
    dataset = LOADERS[source.kind](source, options)
    if verify_images:
        dataset = drop_or_raise_unreadable(dataset, skip=skip_corrupt_images)
    check_classes(dataset, source.info)

    names = domain_names(dataset)
    ids = domain_ids(dataset)
    per_domain = {d: np.flatnonzero(ids == i) for i, d in enumerate(names)}
    for name, idx in per_domain.items():
        if len(idx) == 0:
            raise ValueError(f"Domain {name!r} of {source.location!r} has no examples (empty domain).")
    if max_per_domain is not None:
        per_domain = {
            d: np.sort(domain_rng(0, d, "subsample").permutation(idx)[:max_per_domain])
            for d, idx in per_domain.items()
        }

    held_out = held_out_domains(test_domains, names, source.info)
    if not held_out:
        logger.warning("No test domain given: the test split is empty.")
    training = [d for d in names if d not in held_out]

    group = group_column or (source.info.group_column if source.info else None)
    if group is not None and group not in dataset.column_names:
        raise ValueError(
            f"{source.location!r} has no group column {group!r}; its columns are {dataset.column_names}."
        )
    if group is None:
        if test_group_fraction:
            raise ValueError(
                f"test_group_fraction={test_group_fraction!r} holds whole groups out of training, but "
                f"{source.location!r} has no group column: pass group_column=... or leave test_group_fraction unset."
            )
        parts = _split_examples(per_domain, training, held_out, holdout_fraction, test_holdout_fraction, seed)
    else:
        if test_group_fraction is None:
            test_group_fraction = DEFAULT_TEST_GROUP_FRACTION
        parts = _split_groups(
            dataset, group, per_domain, training, held_out, holdout_fraction, test_holdout_fraction,
            test_group_fraction, seed,
        )  # fmt: skip
    return datasets.DatasetDict(
        {
            split_name: dataset.select(np.sort(np.concatenate(chunks or [np.empty(0, np.int64)])).tolist())
            for split_name, chunks in parts.items()
        }
    )


def _split_examples(per_domain, training, held_out, holdout_fraction, test_holdout_fraction, seed):
    """DomainBed's split, example by example: each training domain into train / validation, each held-out domain
    whole into test (or test / test_validation)."""
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    if test_holdout_fraction is not None:
        parts["test_validation"] = []
    for name in training:
        kept, held = split_domain_indices(per_domain[name], holdout_fraction, seed, name)
        parts["train"].append(kept)
        parts["validation"].append(held)
    for name in held_out:
        if test_holdout_fraction is None:
            parts["test"].append(per_domain[name])
        else:
            kept, held = split_domain_indices(per_domain[name], test_holdout_fraction, seed, name)
            parts["test"].append(kept)
            parts["test_validation"].append(held)
    return parts


def _split_groups(
    dataset,
    group,
    per_domain,
    training,
    held_out,
    holdout_fraction,
    test_holdout_fraction,
    test_fraction,
    seed,
):
    """The split of a grouped dataset: whole groups, the same in every domain, carved into test groups (never
    trained on, nor validated on), validation groups and training groups. Training domains give `train` and
    `validation`; held-out domains give `test` (their test groups) and, as a diagnostic, `test_known` (their
    training groups: known instances in a new domain). With `test_fraction=0` a held-out domain's `test` holds every
    group."""
    groups = np.asarray([str(value) for value in arrow_column(dataset, group).to_pylist()], dtype=object)
    labels = np.asarray(arrow_column(dataset, "label").to_numpy(), dtype=np.int64)
    test_groups, validation_groups = carve_groups(groups, labels, (test_fraction, holdout_fraction), seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    if test_fraction:
        parts["test_known"] = []
    if test_holdout_fraction is not None:
        parts["test_validation"] = []
        # The oracle's part of the held-out domains: whole test groups, carved apart from the ones reported.
        keep = np.isin(groups, list(test_groups)) if test_fraction else np.ones(len(groups), dtype=bool)
        (oracle_groups,) = carve_groups(
            groups[keep], labels[keep], (test_holdout_fraction,), seed, "oracle-split"
        )
    for name in training:
        rest, _ = split_group_indices(per_domain[name], groups, test_groups)
        kept, held = split_group_indices(rest, groups, validation_groups)
        parts["train"].append(kept)
        parts["validation"].append(held)
    for name in held_out:
        indices = per_domain[name]
        if test_fraction:
            _, indices = split_group_indices(indices, groups, test_groups)
            known, _ = split_group_indices(per_domain[name], groups, test_groups | validation_groups)
            parts["test_known"].append(known)
        if test_holdout_fraction is None:
            parts["test"].append(indices)
        else:
            kept, held = split_group_indices(indices, groups, oracle_groups)
            parts["test"].append(kept)
            parts["test_validation"].append(held)
    return parts


def sampling_problems(
    *,
    holdout_fraction: float = 0.2,
    test_holdout_fraction: float | None = None,
    test_group_fraction: float | None = None,
    seed: int = 0,
    max_per_domain: int | None = None,
) -> list[str]:
    """What is wrong with `load_domain_dataset`'s sampling arguments, one message each (the one rule, read by the
    loader and by the experiment's checks before any work).

    Returns:
        `list[str]`: the problems, empty when there are none.
    """
    problems = []
    for name, value in (
        ("holdout_fraction", holdout_fraction),
        ("test_holdout_fraction", test_holdout_fraction),
        ("test_group_fraction", test_group_fraction),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0
        ):
            problems.append(f"{name} must be a float in [0, 1), got {value!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        problems.append(f"seed must be a non-negative integer, got {seed!r}")
    if max_per_domain is not None and (
        isinstance(max_per_domain, bool) or not isinstance(max_per_domain, int) or max_per_domain < 1
    ):
        problems.append(f"max_per_domain must be a positive integer or None, got {max_per_domain!r}")
    return problems
