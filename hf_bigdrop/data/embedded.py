"""What the embedded offline benchmarks (`digits`, `styles`, `emoji`) share: where they are cached and how their
images are written.

A benchmark's builder writes a folder laid out like a Hub dataset repository,
`data/train-00000-of-00001.parquet` with `image` (PNG bytes), `label` and `domain` (both
`ClassLabel`) columns, which `hf_bigdrop.data.load_domain_dataset` loads through the same code path as
a Hub id. PNG encoding and Parquet writing are deterministic, so a seeded builder gives byte-identical files.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from ..cache import default_cache_root

__all__ = ["embedded_dataset_dir", "write_image_table"]

# The one data file of a built benchmark, relative to its folder.
DATA_FILE = Path("data") / "train-00000-of-00001.parquet"


def embedded_dataset_dir(name: str, variant: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where one variant (version, size, ...) of an embedded benchmark is cached.

    Args:
        name (`str`): The benchmark, e.g. `"digits"`.
        variant (`str`): Folder name that identifies the build (its version and parameters).
        cache_dir (`str | os.PathLike | None`, *optional*, defaults to `None`): Cache root; defaults to
            `hf_bigdrop.cache.default_cache_root` (`$HF_BIGDROP_CACHE`, else `$HF_HOME/hf_bigdrop`).

    Returns:
        `Path`: `<cache root>/datasets/<name>/<variant>`.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    return root / "datasets" / name / variant


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def write_image_table(
    output_dir: str | os.PathLike,
    images: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[int],
    domains: Sequence[int],
    class_names: Sequence[str],
    domain_names: Sequence[str],
    extra_columns: dict[str, Sequence[str]] | None = None,
) -> Path:
    """Writes RGB images with their labels and domains as a Hub-like Parquet file (PNG-encoded images).

    Args:
        output_dir (`str | os.PathLike`): Folder of the benchmark; the file is written at
            `data/train-00000-of-00001.parquet` inside it.
        images (`Sequence[np.ndarray] | np.ndarray`): uint8 images of shape `(height, width, 3)`.
        labels (`Sequence[int]`): Class id of each image.
        domains (`Sequence[int]`): Domain id of each image.
        class_names (`Sequence[str]`): Class names in label order.
        domain_names (`Sequence[str]`): Domain names in id order.
        extra_columns (`dict[str, Sequence[str]] | None`, *optional*, defaults to `None`): Further string columns,
            one value per image (e.g. `emoji`, the group whose examples a split keeps together).

    Returns:
        `Path`: The Parquet file written.
    """
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=list(class_names)),
            "domain": datasets.ClassLabel(names=list(domain_names)),
            **{name: datasets.Value("string") for name in extra_columns or {}},
        }
    )
    table = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": _png_bytes(image), "path": None} for image in images],
            "label": [int(v) for v in labels],
            "domain": [int(v) for v in domains],
            **{name: [str(v) for v in values] for name, values in (extra_columns or {}).items()},
        },
        features=features,
    )
    target = Path(output_dir) / DATA_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(str(target))
    return target
