"""Loading each kind of source as one `datasets.Dataset` with `image`, `label` and `domain` columns (and the group
column, when the source has one: see `LoadOptions.group_column`).

A `Source` (see `resolving.py`) names its kind; `LOADERS` maps each kind to its loader:

- `"builder"`: a benchmark built offline by its registry entry's builder (once, then cached), then loaded
  like a Hub-like folder;
- `"hub"`: a Hub dataset id or a local folder of data files, through `datasets.load_dataset`;
- `"folder"`: a local folder in DomainBed's layout `root/<domain>/<class>/<image>`, as image paths decoded
  lazily.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .registry import DomainDatasetInfo
from .resolving import LAYOUT, Source
from .splitting import arrow_column

__all__ = ["IMAGE_EXTENSIONS", "LOADERS", "FolderLayout", "LoadOptions", "scan_folder"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
"""File extensions (lower-case) that count as images in a local DomainBed folder."""


@dataclass(frozen=True)
class LoadOptions:
    """The arguments of `load_domain_dataset` that tell the loaders how to read a source."""

    split: str | None
    cache_dir: str | None
    image_column: str | None
    label_column: str | None
    domain_column: str | None
    group_column: str | None
    domain_level: int
    image_size: int | None
    builder_kwargs: dict
    load_kwargs: dict


def _load_builder(source: Source, options: LoadOptions) -> datasets.Dataset:
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
    return _load_hub(Source("hub", str(folder), info), options)


def _load_hub(source: Source, options: LoadOptions) -> datasets.Dataset:
    """A Hub dataset id or a local folder of data files, through `datasets.load_dataset`."""
    loaded = datasets.load_dataset(
        source.location, split=options.split, cache_dir=options.cache_dir, **options.load_kwargs
    )
    if isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.concatenate_datasets([loaded[k] for k in sorted(loaded)])
    info = source.info
    image_col = options.image_column or (info.image_column if info else "image")
    label_col = options.label_column or (info.label_column if info else "label")
    domain_col = options.domain_column or (info.domain_column if info else "domain")
    group_col = options.group_column or (info.group_column if info else None)
    columns = list(loaded.column_names)
    for what, col in (
        ("image_column", image_col),
        ("label_column", label_col),
        ("domain_column", domain_col),
        *((("group_column", group_col),) if group_col else ()),
    ):
        if col not in columns:
            raise ValueError(
                f"{source.location!r} has no column {col!r} ({what}); its columns are {columns}. "
                f"Pass {what}=... to name it."
            )
    groups = [group_col] if group_col and group_col not in (image_col, label_col, domain_col) else []
    loaded = loaded.select_columns([image_col, label_col, domain_col, *groups])
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
    return loaded.select_columns(["image", "label", "domain", *groups])


def _encode_domain_column(
    dataset: datasets.Dataset, column: str, info: DomainDatasetInfo | None
) -> datasets.Dataset:
    """Turns the domain column into a `domain` ClassLabel without rewriting the image column."""
    feature = dataset.features[column]
    if isinstance(feature, datasets.ClassLabel):
        return dataset.rename_column(column, "domain") if column != "domain" else dataset
    values = arrow_column(dataset, column).cast(pa.string())
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


@dataclass(frozen=True)
class FolderLayout:
    """What a local DomainBed folder holds, read from its listing alone (no image opened).

    Args:
        root (`Path`): the folder.
        domains (`list[str]`): its domains, in the registry's order for a registered dataset, else sorted.
        classes (`list[str]`): its classes, sorted.
        files (`dict[tuple[str, str], list[str]]`): the image paths of each (domain, class), sorted.
    """

    root: Path
    domains: list[str]
    classes: list[str]
    files: dict[tuple[str, str], list[str]]


def scan_folder(
    location: str | Path, info: DomainDatasetInfo | None = None, domain_level: int = 0
) -> FolderLayout:
    """Reads the layout of a local DomainBed folder (`root/<domain>/<class>/<image>`, or `root/<class>/<domain>/...`
    with `domain_level=1`) from its listing: cheap enough to check a folder before any work.

    Raises:
        ValueError: a folder that does not match the layout, a domain without images, or a class without images in
            any domain (the message names the folder and the image extensions).
    """
    root = Path(location).resolve()
    outer = _visible_subdirs(root)
    if not outer:
        raise ValueError(
            f"Local folder {str(root)!r} does not match the DomainBed layout {LAYOUT}: it has no sub-folders "
            f"(and no Parquet/Arrow files to load as a Hub-like dataset)."
        )
    files: dict[tuple[str, str], list[str]] = {}
    for first in outer:
        inner = _visible_subdirs(first)
        stray = sorted(
            p.name for p in first.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not inner:
            detail = f"it holds images directly ({stray[0]!r}, ...)" if stray else "it has no sub-folders"
            raise ValueError(
                f"Local folder {str(root)!r} does not match the DomainBed layout {LAYOUT}: {str(first)!r} should "
                f"hold one folder per {'class' if domain_level == 0 else 'domain'}, but {detail}."
            )
        for second in inner:
            found = sorted(
                str(p) for p in second.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            key = (first.name, second.name) if domain_level == 0 else (second.name, first.name)
            files.setdefault(key, []).extend(found)
    domains = _order_domains(sorted({d for d, _ in files}), info)
    classes = sorted({c for _, c in files})
    for domain in domains:
        if not any(files.get((domain, c)) for c in classes):
            raise ValueError(
                f"Domain {domain!r} in {str(root)!r} has no images (empty domain; image extensions: "
                f"{', '.join(IMAGE_EXTENSIONS)})."
            )
    for cls in classes:
        if not any(files.get((domain, cls)) for domain in domains):
            raise ValueError(
                f"Class {cls!r} in {str(root)!r} has no images in any domain (empty class folders; image "
                f"extensions: {', '.join(IMAGE_EXTENSIONS)}): remove its folders or add its images."
            )
    return FolderLayout(root, domains, classes, files)


def _load_folder(source: Source, options: LoadOptions) -> datasets.Dataset:
    """A local DomainBed folder (`root/<domain>/<class>/<image>`) as a lazily decoded Dataset of paths."""
    layout = scan_folder(source.location, source.info, options.domain_level)
    domains, classes, entries = layout.domains, layout.classes, layout.files
    for cls in classes:
        empty = [domain for domain in domains if not entries.get((domain, cls))]
        if empty:
            logger.warning(
                "Class %r has no images in domain(s) %s of %s: those domains never show it.",
                cls,
                empty,
                layout.root,
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


LOADERS: dict[str, Callable[[Source, LoadOptions], datasets.Dataset]] = {
    "builder": _load_builder,
    "hub": _load_hub,
    "folder": _load_folder,
}
"""How each kind of `Source` is loaded. Data, not an if/else chain."""
