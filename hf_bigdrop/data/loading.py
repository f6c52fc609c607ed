"""``load_domain_dataset``: one call from a dataset name, Hub id or local folder to DomainBed splits.

Every source ends up as one :class:`datasets.Dataset` with three columns,

- ``image``: :class:`datasets.Image` (decoded lazily, on access),
- ``label``: :class:`datasets.ClassLabel` with the class names,
- ``domain``: :class:`datasets.ClassLabel` with the domain names (ids are global: the same id means the same
  domain in every split),

which is then split per domain (seeded by ``(seed, domain name)``) into ``train`` / ``validation`` for the
training domains and ``test`` (optionally ``test`` / ``test_validation``) for the held-out domains. Splits are
index selections of the same Arrow table: nothing is decoded or copied.
"""

from __future__ import annotations

import inspect
import io
import logging
import os
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image as PILImage

from .registry import (
    DATASET_REGISTRY,
    DomainDatasetInfo,
    describe_domains,
    get_dataset_info,
    list_datasets,
    normalize_name,
    resolve_domains,
)

__all__ = ["IMAGE_EXTENSIONS", "domain_ids", "domain_names", "load_domain_dataset", "split_domain_indices"]

logger = logging.getLogger(__name__)

#: File extensions (lower-case) that count as images in a local DomainBed folder.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: Files that make a local folder "look like a Hub dataset repository" (loaded with ``datasets.load_dataset``).
_HUB_DATA_FILE_PATTERNS = ("*.parquet", "*.arrow", "*.jsonl", "*.csv")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LAYOUT = "root/<domain>/<class>/<image>"


@dataclass(frozen=True)
class _Source:
    """Where and how to load the data (the result of resolving ``name_or_path``)."""

    kind: str  # a key of _LOADERS
    location: str
    info: DomainDatasetInfo | None


@dataclass(frozen=True)
class _LoadOptions:
    split: str | None
    cache_dir: str | None
    image_column: str | None
    label_column: str | None
    domain_column: str | None
    domain_level: int
    image_size: int | None
    builder_kwargs: dict
    load_kwargs: dict


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

    ``name_or_path`` is resolved in this order:

    1. a registered name (``"PACS"``, ``"VLCS"``, ``"OfficeHome"``, ``"TerraIncognita"``, ``"DomainNet"``,
       ``"digits"``, ``"styles"``; case-insensitive): ``digits`` and ``styles`` are built offline on first use
       (each by the builder its registry entry names, then cached); the others load from
       ``data_dir`` when given, else from their public Hub dataset (PACS, OfficeHome), else they raise an
       error that says where to download them;
    2. a local folder: when it holds data files (Parquet / Arrow / JSON Lines / CSV) it is loaded with
       ``datasets.load_dataset(path)`` exactly like a Hub id; otherwise it must follow DomainBed's layout
       ``root/<domain>/<class>/<image>``;
    3. a Hub dataset id ``"owner/name"``, loaded with ``datasets.load_dataset``.

    Args:
        name_or_path (`str | os.PathLike`): Registered name, local folder or Hub dataset id.
        test_domains (`str | Sequence[str]`): Held-out domain(s): full names or DomainBed short names
            (``"S"`` for PACS' sketch), case-insensitive.
        holdout_fraction (`float`, *optional*, defaults to `0.2`): Fraction of each training domain that goes
            to ``validation`` (``floor(n * holdout_fraction)`` examples, as in DomainBed).
        seed (`int`, *optional*, defaults to `0`): Split seed. Each domain is shuffled by a generator seeded with
            ``(seed, crc32(domain name))``, so a domain's split does not depend on the other domains.
        test_holdout_fraction (`float | None`, *optional*, defaults to `None`): When set, the held-out domains
            are split the same way into ``test`` and ``test_validation`` (this fraction), for oracle
            (test-domain validation) model selection.
        data_dir (`str | os.PathLike | None`, *optional*, defaults to `None`): Local copy of a registered
            dataset (DomainBed layout or Hub-like files).
        domain_column (`str | None`, *optional*, defaults to `None`): Column holding the domain in a Hub or
            Hub-like dataset (default: the registry's, else ``"domain"``).
        label_column (`str | None`, *optional*, defaults to `None`): Label column, must be a ``ClassLabel``
            (default: the registry's, else ``"label"``).
        image_column (`str | None`, *optional*, defaults to `None`): Image column (default ``"image"``).
        domain_level (`int`, *optional*, defaults to `0`): For a local image folder, which folder level is the
            domain: ``0`` for ``root/<domain>/<class>/<image>``, ``1`` for ``root/<class>/<domain>/<image>``.
        split (`str | None`, *optional*, defaults to `None`): Hub split holding the examples (default: the
            registry's; `None` concatenates every split).
        max_per_domain (`int | None`, *optional*, defaults to `None`): Keep at most this many examples per
            domain (a fixed random subset, independent of ``seed``), for quick experiments.
        image_size (`int | None`, *optional*, defaults to `None`): For a benchmark built offline (``digits``,
            ``styles``), the side of its stored images (default: its registry entry's ``default_image_size``).
            Other sources are loaded as stored; the transforms resize them (``apply_transforms(image_size=...)``).
        builder_kwargs (`dict | None`, *optional*, defaults to `None`): Further arguments of a benchmark built
            offline, passed to its builder, e.g. ``{"examples_per_class": 200}`` for ``styles``
            (:func:`hf_bigdrop.data.ensure_styles` lists them).
        verify_images (`bool`, *optional*, defaults to `True`): Open every image once at load time
            (header and structure check, no full decode) to find unreadable files early.
        skip_corrupt_images (`bool`, *optional*, defaults to `False`): Drop unreadable images (the count is
            logged as a warning) instead of raising an error. Requires ``verify_images``.
        cache_dir (`str | os.PathLike | None`, *optional*, defaults to `None`): `datasets` cache folder, also the
            root under which a benchmark built offline is cached (default: ``$HF_BIGDROP_CACHE``, else
            ``$HF_HOME/hf_bigdrop``).
        **load_dataset_kwargs: Passed to ``datasets.load_dataset`` for Hub and Hub-like sources (``revision``,
            ``token``, ``name``, ...).

    Returns:
        `datasets.DatasetDict`: ``train``, ``validation`` and ``test`` (plus ``test_validation`` when
        ``test_holdout_fraction`` is set), each with ``image``, ``label`` (``ClassLabel``) and ``domain``
        (``ClassLabel`` of all domain names) columns.

    Raises:
        ValueError: Unknown dataset, unknown or empty domain, every domain held out, a folder that does not
            follow the layout, a label column that is not a ``ClassLabel``, an unreadable image, or an
            argument out of range.

    Example:

    ```python
    >>> from hf_bigdrop.data import load_domain_dataset
    >>> splits = load_domain_dataset("digits", test_domains="mnist_m")
    >>> splits["train"].features["domain"].names
    ['mnist', 'mnist_m', 'optdigits', 'typeface']
    ```
    """
    _check_fraction("holdout_fraction", holdout_fraction)
    if test_holdout_fraction is not None:
        _check_fraction("test_holdout_fraction", test_holdout_fraction)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if max_per_domain is not None and (not isinstance(max_per_domain, int) or max_per_domain < 1):
        raise ValueError(f"max_per_domain must be a positive integer or None, got {max_per_domain!r}.")
    if domain_level not in (0, 1):
        raise ValueError(
            f"domain_level must be 0 ({_LAYOUT}) or 1 (root/<class>/<domain>/<image>), got {domain_level!r}."
        )
    if skip_corrupt_images and not verify_images:
        raise ValueError(
            "skip_corrupt_images=True needs verify_images=True (images are checked at load time)."
        )

    source = _resolve_source(name_or_path, data_dir)
    if source.kind != "builder" and (image_size is not None or builder_kwargs):
        raise ValueError(
            f"image_size and builder_kwargs set how a benchmark built offline is made "
            f"({', '.join(i.name for i in _built_datasets())}); {source.location!r} is loaded as stored. "
            "Resize its images with the transforms instead (apply_transforms(..., image_size=...))."
        )
    options = _LoadOptions(
        split=split if split is not None else (source.info.hub_split if source.info else None),
        cache_dir=None if cache_dir is None else str(cache_dir),
        image_column=image_column,
        label_column=label_column,
        domain_column=domain_column,
        domain_level=domain_level,
        image_size=image_size,
        builder_kwargs=dict(builder_kwargs or {}),
        load_kwargs=load_dataset_kwargs,
    )
    dataset = _LOADERS[source.kind](source, options)
    if verify_images:
        dataset = _drop_or_raise_unreadable(dataset, skip=skip_corrupt_images)
    _check_classes(dataset, source.info)

    names = domain_names(dataset)
    ids = domain_ids(dataset)
    per_domain = {d: np.flatnonzero(ids == i) for i, d in enumerate(names)}
    for name, idx in per_domain.items():
        if len(idx) == 0:
            raise ValueError(f"Domain {name!r} of {source.location!r} has no examples (empty domain).")
    if max_per_domain is not None:
        per_domain = {
            d: np.sort(_domain_rng(0, d, "subsample").permutation(idx)[:max_per_domain])
            for d, idx in per_domain.items()
        }

    held_out = resolve_domains(test_domains, names, source.info)
    if not held_out:
        logger.warning("No test domain given: the test split is empty.")
    training = [d for d in names if d not in held_out]
    if not training:
        raise ValueError(
            f"Every domain is held out (test_domains={test_domains!r}): at least one domain must remain for "
            f"training. {describe_domains(names, source.info)}"
        )

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
    return datasets.DatasetDict(
        {
            split_name: dataset.select(np.sort(np.concatenate(chunks or [np.empty(0, np.int64)])).tolist())
            for split_name, chunks in parts.items()
        }
    )


def split_domain_indices(
    indices: np.ndarray, holdout_fraction: float, seed: int, domain: str
) -> tuple[np.ndarray, np.ndarray]:
    """Splits one domain's example indices into kept / held-out parts, seeded by ``(seed, domain)``.

    Args:
        indices (`np.ndarray`): Indices of the domain's examples.
        holdout_fraction (`float`): Fraction held out: ``floor(len(indices) * holdout_fraction)`` examples.
        seed (`int`): Split seed.
        domain (`str`): Domain name; mixed into the seed with ``zlib.crc32`` (stable across runs and machines,
            unlike Python's ``hash``).

    Returns:
        `tuple[np.ndarray, np.ndarray]`: Sorted kept indices and sorted held-out indices.
    """
    permuted = _domain_rng(seed, domain).permutation(np.asarray(indices, dtype=np.int64))
    n_held = int(len(permuted) * holdout_fraction)
    return np.sort(permuted[n_held:]), np.sort(permuted[:n_held])


def domain_names(dataset: datasets.Dataset) -> list[str]:
    """The domain names of a dataset from :func:`load_domain_dataset` (index = domain id).

    Args:
        dataset (`datasets.Dataset`): A split with a ``domain`` ``ClassLabel`` column.

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
        dataset (`datasets.Dataset`): A split with a ``domain`` ``ClassLabel`` column.

    Returns:
        `np.ndarray`: int64 array of length ``len(dataset)``.
    """
    domain_names(dataset)  # validates the column
    return np.asarray(_column(dataset, "domain").to_numpy(), dtype=np.int64)


# ----------------------------------------------------------------------------------------------- internals


def _check_fraction(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a float in [0, 1), got {value!r}.")


def _domain_rng(seed: int, domain: str, purpose: str = "split") -> np.random.Generator:
    key = domain if purpose == "split" else f"{domain}/{purpose}"
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def _column(dataset: datasets.Dataset, name: str) -> pa.ChunkedArray:
    """One column as Arrow (respects an indices mapping; decodes nothing)."""
    table = dataset.select_columns([name]).with_format("arrow")[:]
    return table.column(name)


def _looks_like_hub_folder(path: Path) -> bool:
    return any(next(path.rglob(pattern), None) is not None for pattern in _HUB_DATA_FILE_PATTERNS)


def _resolve_source(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None) -> _Source:
    name = os.fspath(name_or_path)
    info = get_dataset_info(name) if not os.path.isdir(name) else None
    if info is not None:
        if info.builder is not None:
            return _Source("builder", info.name, info)
        if data_dir is not None:
            local = Path(data_dir)
            if not local.is_dir():
                raise ValueError(f"data_dir {os.fspath(data_dir)!r} for {info.name} is not a folder.")
            return _Source("hub" if _looks_like_hub_folder(local) else "folder", str(local), info)
        if info.hub_id is not None:
            return _Source("hub", info.hub_id, info)
        raise ValueError(
            f"{info.name} has no public Hugging Face Hub dataset: download it ({info.url}) and pass its "
            f"folder, laid out as DomainBed's {_LAYOUT}, with data_dir=... "
            f"(e.g. load_domain_dataset({info.name!r}, data_dir='/data/{info.name}', test_domains=...))."
        )
    if data_dir is not None:
        raise ValueError(
            f"data_dir is only for registered datasets ({', '.join(list_datasets())}); got {name!r}."
        )
    path = Path(name)
    if path.is_dir():
        return _Source("hub" if _looks_like_hub_folder(path) else "folder", str(path), None)
    if path.exists():
        raise ValueError(
            f"{name!r} is a file; pass a folder ({_LAYOUT} or Parquet files) or a Hub dataset id."
        )
    if _HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        return _Source("hub", name, None)
    raise ValueError(
        f"Unknown dataset {name!r}: not a registered dataset ({', '.join(list_datasets())}), not an existing "
        "local folder, and not a Hub dataset id of the form 'owner/name'."
    )


def _built_datasets() -> list[DomainDatasetInfo]:
    return [info for info in DATASET_REGISTRY.values() if info.builder is not None]


def _load_builder(source: _Source, options: _LoadOptions) -> datasets.Dataset:
    """A benchmark built offline by its registry entry's builder (once, then cached), loaded like any Hub-like
    folder."""
    info = source.info
    accepted = sorted(set(inspect.signature(info.builder).parameters) - {"cache_dir", "image_size"})
    unknown = sorted(set(options.builder_kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown builder_kwargs {unknown} for {info.name!r}; its builder takes {accepted} "
            "(and image_size as its own argument)."
        )
    image_size = options.image_size if options.image_size is not None else info.default_image_size
    size = {} if image_size is None else {"image_size": image_size}
    folder = info.builder(cache_dir=options.cache_dir, **size, **options.builder_kwargs)
    return _load_hub(_Source("hub", str(folder), info), options)


def _load_hub(source: _Source, options: _LoadOptions) -> datasets.Dataset:
    """A Hub dataset id or a local folder of data files, through ``datasets.load_dataset``."""
    loaded = datasets.load_dataset(
        source.location, split=options.split, cache_dir=options.cache_dir, **options.load_kwargs
    )
    if isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.concatenate_datasets([loaded[k] for k in sorted(loaded)])
    info = source.info
    image_col = options.image_column or (info.image_column if info else "image")
    label_col = options.label_column or (info.label_column if info else "label")
    domain_col = options.domain_column or (info.domain_column if info else "domain")
    columns = list(loaded.column_names)
    for what, col in (
        ("image_column", image_col),
        ("label_column", label_col),
        ("domain_column", domain_col),
    ):
        if col not in columns:
            raise ValueError(
                f"{source.location!r} has no column {col!r} ({what}); its columns are {columns}. "
                f"Pass {what}=... to name it."
            )
    loaded = loaded.select_columns([image_col, label_col, domain_col])
    label_feature = loaded.features[label_col]
    if not isinstance(label_feature, datasets.ClassLabel):
        raise ValueError(
            f"Label column {label_col!r} of {source.location!r} is {label_feature!r}, not a datasets.ClassLabel "
            f"with class names. Convert it first, e.g. dataset.class_encode_column({label_col!r}), and save or "
            "push the result."
        )
    image_feature = loaded.features[image_col]
    if isinstance(image_feature, datasets.Value) and image_feature.dtype in ("string", "large_string"):
        loaded = loaded.cast_column(image_col, datasets.Image())  # a column of file paths
    elif not isinstance(image_feature, datasets.Image):
        raise ValueError(
            f"Image column {image_col!r} of {source.location!r} is {image_feature!r}, not a datasets.Image."
        )
    loaded = _encode_domain_column(loaded, domain_col, info)
    renames = {image_col: "image", label_col: "label"}
    for old, new in renames.items():
        if old != new:
            loaded = loaded.rename_column(old, new)
    return loaded.select_columns(["image", "label", "domain"])


def _encode_domain_column(
    dataset: datasets.Dataset, column: str, info: DomainDatasetInfo | None
) -> datasets.Dataset:
    """Turns the domain column into a ``domain`` ClassLabel without rewriting the image column."""
    feature = dataset.features[column]
    if isinstance(feature, datasets.ClassLabel):
        return dataset.rename_column(column, "domain") if column != "domain" else dataset
    values = _column(dataset, column).cast(pa.string())
    if values.null_count:
        raise ValueError(f"Domain column {column!r} has {values.null_count} missing values.")
    names = _order_domains([str(v) for v in pc.unique(values).to_pylist()], info)
    ids = pc.index_in(values, value_set=pa.array(names, pa.string())).to_numpy(zero_copy_only=False)
    dataset = dataset.remove_columns(column) if column != "domain" else dataset.remove_columns("domain")
    # add_column concatenates a small in-memory column to the (memory-mapped) table: no rewrite.
    return dataset.add_column("domain", ids.astype(np.int64), feature=datasets.ClassLabel(names=names))


def _order_domains(found: list[str], info: DomainDatasetInfo | None) -> list[str]:
    """Registry order for registered datasets (unknown names last, sorted); sorted otherwise."""
    if info is None:
        return sorted(found)

    def rank(name: str) -> tuple[int, str]:
        spec = info.find_domain(name)
        return (info.domains.index(spec) if spec is not None else len(info.domains), name)

    unknown = [d for d in found if info.find_domain(d) is None]
    if unknown:
        logger.warning(
            "Domains %s are not in the %s registry entry %s.", unknown, info.name, info.domain_names
        )
    return sorted(found, key=rank)


def _visible_subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _load_folder(source: _Source, options: _LoadOptions) -> datasets.Dataset:
    """A local DomainBed folder (``root/<domain>/<class>/<image>``) as a lazily decoded Dataset of paths."""
    root = Path(source.location).resolve()
    outer = _visible_subdirs(root)
    if not outer:
        raise ValueError(
            f"Local folder {str(root)!r} does not match the DomainBed layout {_LAYOUT}: it has no sub-folders "
            f"(and no Parquet/Arrow files to load as a Hub-like dataset)."
        )
    # entries[(domain, class)] = sorted image paths
    entries: dict[tuple[str, str], list[str]] = {}
    for first in outer:
        inner = _visible_subdirs(first)
        stray = sorted(
            p.name for p in first.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not inner:
            detail = f"it holds images directly ({stray[0]!r}, ...)" if stray else "it has no sub-folders"
            raise ValueError(
                f"Local folder {str(root)!r} does not match the DomainBed layout {_LAYOUT}: {str(first)!r} should "
                f"hold one folder per {'class' if options.domain_level == 0 else 'domain'}, but {detail}."
            )
        for second in inner:
            files = sorted(
                str(p) for p in second.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            key = (first.name, second.name) if options.domain_level == 0 else (second.name, first.name)
            entries.setdefault(key, []).extend(files)
    domains = _order_domains(sorted({d for d, _ in entries}), source.info)
    classes = sorted({c for _, c in entries})
    for domain in domains:
        if not any(entries.get((domain, c)) for c in classes):
            raise ValueError(
                f"Domain {domain!r} in {str(root)!r} has no images (empty domain; image extensions: "
                f"{', '.join(IMAGE_EXTENSIONS)})."
            )
    images, labels, doms = [], [], []
    for d_id, domain in enumerate(domains):
        for c_id, cls in enumerate(classes):
            files = entries.get((domain, cls), [])
            images += files
            labels += [c_id] * len(files)
            doms += [d_id] * len(files)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=classes),
            "domain": datasets.ClassLabel(names=domains),
        }
    )
    return datasets.Dataset.from_dict({"image": images, "label": labels, "domain": doms}, features=features)


#: How each kind of source is loaded. Data, not an if/else chain.
_LOADERS: dict[str, Callable[[_Source, _LoadOptions], datasets.Dataset]] = {
    "builder": _load_builder,
    "hub": _load_hub,
    "folder": _load_folder,
}


def _check_classes(dataset: datasets.Dataset, info: DomainDatasetInfo | None) -> None:
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


def _unreadable_reason(entry: dict | None) -> str | None:
    """Why an Arrow image entry ``{"bytes", "path"}`` cannot be opened, or None when it can."""
    if entry is None:
        return "missing image"
    data, path = entry.get("bytes"), entry.get("path")
    try:
        with PILImage.open(io.BytesIO(data) if data is not None else path) as image:
            image.verify()
    except Exception as err:  # PIL raises many types for bad files
        return f"{type(err).__name__}: {err}"
    return None


def _drop_or_raise_unreadable(dataset: datasets.Dataset, *, skip: bool) -> datasets.Dataset:
    bad: list[int] = []
    offset = 0
    for chunk in _column(dataset, "image").chunks:
        for i, entry in enumerate(chunk.to_pylist()):
            reason = _unreadable_reason(entry)
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
