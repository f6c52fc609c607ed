"""The embedded offline benchmark `styles`: natural colour photos seen in four styles, in the spirit of PACS
(photo, art painting, cartoon, sketch), built from images that pip packages ship (no network).

Classes: the 11 natural colour photographs that scikit-image (`skimage.data`), scikit-learn
(`load_sample_images`) and matplotlib (`sample_data`) ship, one class per photo (`STYLES_CLASSES`),
each resized to about 512 x 512 pixels of area (aspect kept) so that crops of all photos are equally sharp.
An example is a random crop of its class's photo: area (a fraction of the photo's), aspect ratio and position
are drawn from a seeded generator; near-uniform crops (a patch of sky, the black border of `retina`) are
drawn again. Each domain draws its own crops, then renders them in its style:

- `photo`: the crop as it is;
- `sketch`: dark edges on white (inverted Sobel gradient magnitude of the smoothed grey image), grey;
- `cartoon`: flat colours (median filter, 4 to 6 colours, small regions removed by a mode filter) with dark
  outlines between colour regions and stronger saturation;
- `painting`: smoothed into blotches (Gaussian then mode filter), hue shifted by a random angle (up to 36
  degrees either way), saturation raised, a warm varnish tint and a faint brush grain.

Every crop is resized to twice the output size, rendered, then resized to the output size. The build is
deterministic: the same arguments give byte-identical PNG images and Parquet file (for the same versions of
the packages above, Pillow and pyarrow). Each (domain, class) pair has its own generator, seeded by
`(seed, domain, class)`, so a build with more examples per class starts with the same images as one with
fewer.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from ..cache import build_once
from .embedded import embedded_dataset_dir, write_image_table

__all__ = [
    "STYLES_CLASSES",
    "STYLES_DOMAINS",
    "STYLES_VERSION",
    "StylesBuild",
    "build_styles",
    "ensure_styles",
    "stylize",
    "styles_cache_dir",
]

# Bump when the generated data changes; it is part of the cache folder name.
STYLES_VERSION = "1.0.0"
# Domain (style) names in id order of the `domain` column.
STYLES_DOMAINS = ("photo", "sketch", "cartoon", "painting")
# Class names (one per photograph) in label order.
STYLES_CLASSES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle",
    "china",
    "flower",
    "grace_hopper",
)
_MISSING_EXTRA = (
    "The embedded 'styles' benchmark needs the optional packages scikit-learn, scikit-image and matplotlib: "
    "pip install 'hf-bigdrop[offline]'."
)
# Every photo is resized to about this many pixels (512 x 512) before it is cropped.
PHOTO_AREA = 512 * 512
# A crop whose grey levels (0-1) have a smaller standard deviation than this is drawn again.
_MIN_CROP_STD = 0.05
_MAX_CROP_DRAWS = 1000
# Sobel magnitude (grey levels in [0, 1]) below which a `sketch` edge is never drawn fully black.
_SKETCH_EDGE_FLOOR = 0.08
# The warm tint that the `painting` style blends in (an old varnish).
_VARNISH = (235, 205, 150)
# Aspect ratios (width / height) of the crops are drawn log-uniformly in [1 / _MAX_ASPECT, _MAX_ASPECT].
_MAX_ASPECT = 4 / 3


def _photo(name: str) -> np.ndarray:
    """One bundled photograph as an RGB uint8 array, as shipped."""
    try:
        import skimage.data
        from matplotlib import cbook
        from sklearn.datasets import load_sample_image
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(_MISSING_EXTRA) from err
    if name == "motorcycle":
        image = skimage.data.stereo_motorcycle()[0]  # the left view only: the right one is the same scene
    elif name in ("china", "flower"):
        image = load_sample_image(f"{name}.jpg")
    elif name == "grace_hopper":
        with cbook.get_sample_data("grace_hopper.jpg") as handle:
            image = np.asarray(Image.open(handle).convert("RGB"))
    else:
        image = getattr(skimage.data, name)()
    return np.ascontiguousarray(np.asarray(image)[..., :3], dtype=np.uint8)


def _photo_at_common_area(name: str) -> np.ndarray:
    """The photograph resized (Lanczos, aspect kept) to about `PHOTO_AREA` pixels.

    The photos ship at 300 to 1411 pixels a side: without this, a crop of the same fraction of the area would be
    sharp in a large photo and blurry in a small one, and the blur alone would tell the classes apart.
    """
    photo = _photo(name)
    height, width = photo.shape[:2]
    scale = float(np.sqrt(PHOTO_AREA / (height * width)))
    size = (round(width * scale), round(height * scale))
    return np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS))


def _rng(seed: int, domain: str, class_name: str) -> np.random.Generator:
    return np.random.default_rng(
        [int(seed), zlib.crc32(domain.encode("utf-8")), zlib.crc32(class_name.encode("utf-8"))]
    )


def _grey(image: np.ndarray) -> np.ndarray:
    """Luma in [0, 1] (ITU-R 601, as Pillow's `convert("L")`)."""
    return image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32) / 255.0


def _random_crop(
    photo: np.ndarray, rng: np.random.Generator, crop_area: tuple[float, float], photo_name: str
) -> np.ndarray:
    """A crop of random area fraction, aspect ratio and position that is not near-uniform."""
    height, width = photo.shape[:2]
    for _ in range(_MAX_CROP_DRAWS):
        area = rng.uniform(*crop_area) * height * width
        aspect = float(np.exp(rng.uniform(-np.log(_MAX_ASPECT), np.log(_MAX_ASPECT))))
        w = min(width, max(2, round(np.sqrt(area * aspect))))
        h = min(height, max(2, round(np.sqrt(area / aspect))))
        y, x = int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1))
        crop = photo[y : y + h, x : x + w]
        if _grey(crop).std() >= _MIN_CROP_STD:
            return crop
    raise RuntimeError(  # pragma: no cover - every bundled photo has enough texture
        f"No crop of {photo_name!r} with grey-level std >= {_MIN_CROP_STD} in {_MAX_CROP_DRAWS} draws."
    )


def _sketch(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from skimage.filters import gaussian, sobel

    edges = sobel(gaussian(_grey(image), sigma=1.0))
    # Strong edges of the crop become black; the floor keeps faint texture (JPEG noise) of a flat crop light.
    edges = np.clip(edges / max(float(np.percentile(edges, 98)), _SKETCH_EDGE_FLOOR), 0.0, 1.0)
    paper = np.round(255.0 * (1.0 - edges) ** 1.5).astype(np.uint8)
    return np.repeat(paper[..., None], 3, axis=-1)


def _cartoon(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from skimage.segmentation import find_boundaries

    smooth = Image.fromarray(image).filter(ImageFilter.MedianFilter(7))
    colours = int(rng.integers(4, 7))
    flat = smooth.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    flat = flat.filter(ImageFilter.ModeFilter(7))  # removes specks: only large flat regions remain
    coloured = np.array(ImageEnhance.Color(flat.convert("RGB")).enhance(1.8))
    coloured[find_boundaries(np.asarray(flat), mode="inner")] = 20  # dark outlines
    return coloured


def _painting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from skimage.filters import gaussian

    blotchy = Image.fromarray(image).filter(ImageFilter.GaussianBlur(1)).filter(ImageFilter.ModeFilter(9))
    hsv = np.array(blotchy.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(rng.uniform(-0.1, 0.1) * 256)) % 256  # hue shift
    painted = ImageEnhance.Color(Image.fromarray(hsv, mode="HSV").convert("RGB")).enhance(1.5)
    painted = Image.blend(painted, Image.new("RGB", painted.size, _VARNISH), 0.15)
    # Canvas and brush grain: noise smoothed more along the rows than across them.
    grain = gaussian(rng.standard_normal(image.shape[:2]), sigma=(0.6, 2.5))
    grain = 1.0 + 0.06 * grain / max(float(grain.std()), 1e-6)
    return np.clip(np.asarray(painted, dtype=np.float32) * grain[..., None], 0, 255).astype(np.uint8)


# How each style renders an RGB uint8 image. Data, not an if/else chain.
_STYLES: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "photo": lambda image, rng: image,
    "sketch": _sketch,
    "cartoon": _cartoon,
    "painting": _painting,
}


def stylize(image: np.ndarray, style: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """Renders an RGB image in one of the styles of the `styles` benchmark.

    Args:
        image (`np.ndarray`): RGB uint8 image, `(height, width, 3)`.
        style (`str`): One of `STYLES_DOMAINS`.
        rng (`np.random.Generator | None`, *optional*, defaults to `None`): Draws the style's random parts
            (number of cartoon colours, painting hue shift and grain); default: seeded with 0.

    Returns:
        `np.ndarray`: The rendered RGB uint8 image, same size.

    Raises:
        ValueError: If `style` is not a style of the benchmark (the message lists them).
    """
    if style not in _STYLES:
        raise ValueError(f"Unknown style {style!r}. Valid styles: {', '.join(map(repr, STYLES_DOMAINS))}.")
    return _STYLES[style](
        np.ascontiguousarray(image[..., :3], dtype=np.uint8), rng or np.random.default_rng(0)
    )


# Defaults of the benchmark (see docs/styles.md for how they were chosen).
DEFAULT_IMAGE_SIZE = 64
DEFAULT_EXAMPLES_PER_CLASS = 100
DEFAULT_CROP_AREA = (0.0025, 0.01)


@dataclass(frozen=True)
class StylesBuild:
    """The parameters of a `styles` build (those of `ensure_styles` but the cache root), checked on creation; they
    name the build's cache folder (`variant`).

    Args:
        image_size (`int`, *optional*, defaults to `64`): Side of the square RGB images (16 to 512).
        examples_per_class (`int`, *optional*, defaults to `100`): Crops per class and per domain.
        crop_area (`tuple[float, float]`, *optional*, defaults to `(0.0025, 0.01)`): Range of a crop's area as a
            fraction of its photo's area (drawn uniformly).
        seed (`int`, *optional*, defaults to `0`): Seed of the crops and of the styles' random parts.

    Raises:
        ValueError: If an argument is out of range.
    """

    image_size: int = DEFAULT_IMAGE_SIZE
    examples_per_class: int = DEFAULT_EXAMPLES_PER_CLASS
    crop_area: tuple[float, float] = DEFAULT_CROP_AREA
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "crop_area", (float(self.crop_area[0]), float(self.crop_area[1])))
        if not 16 <= int(self.image_size) <= 512:
            raise ValueError(f"image_size must be between 16 and 512 for 'styles', got {self.image_size!r}.")
        if int(self.examples_per_class) < 1:
            raise ValueError(
                f"examples_per_class must be a positive integer, got {self.examples_per_class!r}."
            )
        low, high = self.crop_area
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(
                f"crop_area must be (min, max) fractions of the photo's area with 0 < min <= max <= 1, "
                f"got {self.crop_area!r}."
            )

    @property
    def variant(self) -> str:
        """The cache folder's name: `<version>_<size>px_<n>pc_area<min>-<max>_seed<seed>`."""
        low, high = self.crop_area
        return (
            f"{STYLES_VERSION}_{int(self.image_size)}px_{int(self.examples_per_class)}pc_area{low:g}-{high:g}_"
            f"seed{self.seed}"
        )


def build_styles(output_dir: str | os.PathLike, **options) -> Path:
    """Builds the `styles` benchmark into `output_dir` (laid out like a Hub dataset repository).

    Args:
        output_dir (`str | os.PathLike`): Folder to create; `data/train-00000-of-00001.parquet` is written
            inside it.
        **options: The build's parameters, `StylesBuild`'s fields (`image_size`, `examples_per_class`,
            `crop_area`, `seed`).

    Returns:
        `Path`: The Parquet file written.

    Raises:
        ValueError: If an argument is out of range.
        ImportError: If the packages of the `offline` extra are missing.
    """
    build = StylesBuild(**options)
    image_size, examples_per_class, crop_area, seed = (
        build.image_size,
        build.examples_per_class,
        build.crop_area,
        build.seed,
    )
    size, render = int(image_size), 2 * int(image_size)
    photos = {name: _photo_at_common_area(name) for name in STYLES_CLASSES}
    images, labels, domain_ids = [], [], []
    for domain_id, domain in enumerate(STYLES_DOMAINS):
        for label, name in enumerate(STYLES_CLASSES):
            rng = _rng(seed, domain, name)
            for _ in range(int(examples_per_class)):
                crop = Image.fromarray(_random_crop(photos[name], rng, crop_area, name))
                crop = np.asarray(crop.resize((render, render), Image.Resampling.LANCZOS))
                styled = Image.fromarray(_STYLES[domain](crop, rng))
                images.append(np.asarray(styled.resize((size, size), Image.Resampling.LANCZOS)))
                labels.append(label)
                domain_ids.append(domain_id)
    return write_image_table(output_dir, images, labels, domain_ids, STYLES_CLASSES, STYLES_DOMAINS)


def styles_cache_dir(cache_dir: str | os.PathLike | None = None, **options) -> Path:
    """Where the `styles` benchmark built with these parameters (`StylesBuild`'s fields, as `ensure_styles` takes
    them) is cached.

    Returns:
        `Path`: `<cache root>/datasets/styles/<StylesBuild.variant>`.
    """
    return embedded_dataset_dir("styles", StylesBuild(**options).variant, cache_dir)


def ensure_styles(
    image_size: int = DEFAULT_IMAGE_SIZE,
    examples_per_class: int = DEFAULT_EXAMPLES_PER_CLASS,
    crop_area: tuple[float, float] = DEFAULT_CROP_AREA,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Returns the cached `styles` folder, building it first if needed (atomically, once across processes).

    Args:
        image_size (`int`, *optional*, defaults to `64`): Side of the square RGB images (16 to 512).
        examples_per_class (`int`, *optional*, defaults to `100`): Crops per class and per domain.
        crop_area (`tuple[float, float]`, *optional*, defaults to `(0.0025, 0.01)`): Range of a crop's area as a
            fraction of its photo's area.
        seed (`int`, *optional*, defaults to `0`): Seed of the build.
        cache_dir (`str | os.PathLike | None`, *optional*, defaults to `None`): Cache root (see
            `styles_cache_dir`).

    Returns:
        `Path`: The folder, laid out like a Hub dataset repository.

    Raises:
        ValueError: If an argument is out of range.
    """
    options = asdict(StylesBuild(image_size, examples_per_class, crop_area, seed))  # checked, no folder yet
    return build_once(
        styles_cache_dir(cache_dir, **options),
        lambda folder: build_styles(folder, **options),
        description=f"the embedded 'styles' benchmark ({image_size}px, {examples_per_class} per class)",
    )
