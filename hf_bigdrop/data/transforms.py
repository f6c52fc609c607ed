"""Image transforms (DomainBed's recipe) with `torchvision.transforms.v2`, applied lazily with `with_transform`.

Sizes and normalisation come from a `transformers` image processor (`size` / `crop_size` / `image_mean` /
`image_std`, or a `TimmWrapperImageProcessor`'s `data_config`), so the pixels match what the backbone
was pre-trained on. Everything here is picklable, so DataLoader workers decode and augment images in
parallel.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import torch
from PIL import Image as PILImage
from torchvision.transforms import v2

from .batch_colour import BatchColorJitter, BatchRandomGrayscale

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RECIPES",
    "RecipeSteps",
    "DomainBatchTransform",
    "ImageSpec",
    "apply_transforms",
    "build_transforms",
    "evaluation_preprocessing",
    "image_spec_from_processor",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_DEFAULT_SIZE = 224


@dataclass(frozen=True)
class ImageSpec:
    """What the backbone expects.

    Args:
        size (`tuple[int, int]`): Output `(height, width)`.
        mean (`tuple[float, float, float]`): Per-channel normalisation mean.
        std (`tuple[float, float, float]`): Per-channel normalisation standard deviation.
    """

    size: tuple[int, int]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


def _get(obj: Any, key: str) -> Any:
    """Reads `key` from a dict, a `SizeDict` or an object attribute; None when absent."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _size_from(value: Any) -> tuple[int, int] | None:
    """Parses an image processor size: an int, `{"height", "width"}` or `{"shortest_edge"}`."""
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    height, width = _get(value, "height"), _get(value, "width")
    if height and width:
        return (int(height), int(width))
    edge = _get(value, "shortest_edge")
    if edge:
        return (int(edge), int(edge))
    return None


def image_spec_from_processor(
    image_processor: Any = None, image_size: int | Sequence[int] | None = None
) -> ImageSpec:
    """Reads output size, mean and std from a `transformers` image processor.

    Args:
        image_processor (`Any`, *optional*, defaults to `None`): A `transformers` image processor (any class
            with `size` / `crop_size` / `image_mean` / `image_std`, or a `TimmWrapperImageProcessor`
            with `data_config`). `None` gives ImageNet statistics and 224 pixels.
        image_size (`int | Sequence[int] | None`, *optional*, defaults to `None`): Overrides the size
            (an int for square images or `(height, width)`).

    Returns:
        `ImageSpec`: Size, mean and std.
    """
    size: tuple[int, int] | None = None
    mean = std = None
    data_config = _get(image_processor, "data_config")
    if data_config:  # timm: input_size = (channels, height, width)
        input_size = _get(data_config, "input_size")
        if input_size is not None:
            size = (int(input_size[-2]), int(input_size[-1]))
        mean, std = _get(data_config, "mean"), _get(data_config, "std")
    if size is None and image_processor is not None:
        size = (
            _size_from(_get(image_processor, "crop_size"))
            if _get(image_processor, "do_center_crop")
            else None
        )
        size = size or _size_from(_get(image_processor, "size"))
    mean = mean if mean is not None else _get(image_processor, "image_mean")
    std = std if std is not None else _get(image_processor, "image_std")
    if image_size is not None:
        size = _size_from(image_size if isinstance(image_size, int) else tuple(image_size))
        if size is None or min(size) < 1:
            raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}.")
    return ImageSpec(
        size=size or (_DEFAULT_SIZE, _DEFAULT_SIZE),
        mean=tuple(float(m) for m in (mean if mean is not None else IMAGENET_MEAN)),
        std=tuple(float(s) for s in (std if std is not None else IMAGENET_STD)),
    )


def evaluation_preprocessing(
    image_processor: Any = None, image_size: int | Sequence[int] | None = None
) -> dict[str, Any]:
    """The evaluation transform (`build_transforms(train=False)`: resize, scale to [0, 1], normalise) as the
    arguments of a `transformers.ViTImageProcessor`, the format of `BigDropConfig.preprocessing`.

    Args:
        image_processor (`Any`, *optional*, defaults to `None`): Gives size, mean and std (see
            `image_spec_from_processor`).
        image_size (`int | Sequence[int] | None`, *optional*, defaults to `None`): Overrides the processor's size.

    Returns:
        `dict[str, Any]`: `{"size": {"height": h, "width": w}, "image_mean": [...], "image_std": [...]}`.
    """
    spec = image_spec_from_processor(image_processor, image_size)
    return {
        "size": {"height": spec.size[0], "width": spec.size[1]},
        "image_mean": list(spec.mean),
        "image_std": list(spec.std),
    }


class ToRGB(torch.nn.Module):
    """Converts grey-scale (`L`, `I`, `F`), palette (`P`), alpha (`LA`, `RGBA`) and `CMYK` PIL
    images to `RGB`; leaves `RGB` images untouched."""

    def forward(self, image: PILImage.Image) -> PILImage.Image:
        if isinstance(image, PILImage.Image) and image.mode != "RGB":
            if image.mode == "P" and "transparency" in image.info:
                image = image.convert("RGBA")
            if image.mode in ("I", "I;16", "F"):
                image = (
                    image.convert("L") if image.mode == "F" else image.point(lambda v: v / 256).convert("L")
                )
            image = image.convert("RGB")
        return image


@dataclass(frozen=True)
class RecipeSteps:
    """An augmentation recipe's transforms, in two parts.

    Args:
        on_image (`list[Callable]`): PIL image -> PIL image, before the conversion to a tensor.
        on_tensor (`list[Callable]`): after the scaling to [0, 1] and before the normalisation: float tensors in
            [0, 1], each a `(3, H, W)` image or a `(N, 3, H, W)` batch whose images get their own random draws
            (`DomainBatchTransform` runs them once on a batch).
    """

    on_image: list[Callable]
    on_tensor: list[Callable] = field(default_factory=list)


def _resize_only(spec: ImageSpec, train: bool) -> RecipeSteps:
    """No augmentation: resize to the backbone's size (for linear probes and debugging; DomainBed's evaluation)."""
    return RecipeSteps([v2.Resize(spec.size, antialias=True)])


# DomainBed's colour augmentation: the jitter's brightness, contrast, saturation and hue, and the grey-scale chance.
_DOMAINBED_JITTER = (0.3, 0.3, 0.3, 0.3)
_DOMAINBED_GREY = 0.1


def _domainbed_geometry(spec: ImageSpec) -> list[Callable]:
    """DomainBed's crop and flip, on PIL images."""
    return [v2.RandomResizedCrop(spec.size, scale=(0.7, 1.0), antialias=True), v2.RandomHorizontalFlip()]


def _domainbed(spec: ImageSpec, train: bool) -> RecipeSteps:
    """DomainBed's augmentation (train) and resize (eval), every step on PIL images, image by image."""
    if not train:
        return _resize_only(spec, train)
    colour = [v2.ColorJitter(*_DOMAINBED_JITTER), v2.RandomGrayscale(p=_DOMAINBED_GREY)]
    return RecipeSteps([*_domainbed_geometry(spec), *colour])


def _domainbed_batched(spec: ImageSpec, train: bool) -> RecipeSteps:
    """DomainBed's augmentation with its colour steps on the batch's tensors (`BatchColorJitter`,
    `BatchRandomGrayscale`: the same distributions, every image its own draws); crop and flip stay on PIL images."""
    if not train:
        return _resize_only(spec, train)
    colour = [BatchColorJitter(*_DOMAINBED_JITTER), BatchRandomGrayscale(p=_DOMAINBED_GREY)]
    return RecipeSteps(_domainbed_geometry(spec), colour)


# Augmentation recipes: `name -> (spec, train) -> RecipeSteps` (or a plain list: the steps on PIL images).
RECIPES: dict[str, Callable[[ImageSpec, bool], RecipeSteps]] = {
    "domainbed": _domainbed,
    "domainbed_batched": _domainbed_batched,
    "none": _resize_only,
}


def build_transforms(
    image_processor: Any = None,
    train: bool = False,
    recipe: str = "domainbed",
    image_size: int | Sequence[int] | None = None,
) -> v2.Compose:
    """Builds the per-image transform: PIL image (any mode) -> normalised float tensor `(3, H, W)`.

    `recipe="domainbed"`, train: `RandomResizedCrop(size, scale=(0.7, 1.0))`, `RandomHorizontalFlip()`,
    `ColorJitter(0.3, 0.3, 0.3, 0.3)`, `RandomGrayscale(p=0.1)`; eval: `Resize((h, w))`. Both then
    convert to float in [0, 1] and normalise with the processor's mean and std. `recipe="domainbed_batched"` is the
    same augmentation with the colour steps on float tensors after the conversion (`BatchColorJitter`,
    `BatchRandomGrayscale`), which `DomainBatchTransform` runs once on a batch, every image with its own draws.

    Args:
        image_processor (`Any`, *optional*, defaults to `None`): `transformers` image processor giving size,
            mean and std (`None`: 224 pixels, ImageNet statistics).
        train (`bool`, *optional*, defaults to `False`): Training augmentation or evaluation resize.
        recipe (`str`, *optional*, defaults to `"domainbed"`): A key of `RECIPES`
            (`"domainbed"`, `"domainbed_batched"` or `"none"`).
        image_size (`int | Sequence[int] | None`, *optional*, defaults to `None`): Overrides the processor's size.

    Returns:
        `torchvision.transforms.v2.Compose`: A picklable transform.

    Raises:
        ValueError: If `recipe` is unknown.
    """
    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}; valid recipes: {', '.join(sorted(RECIPES))}.")
    spec = image_spec_from_processor(image_processor, image_size)
    steps = RECIPES[recipe](spec, train)
    if not isinstance(steps, RecipeSteps):  # a recipe registered as a list of PIL steps
        steps = RecipeSteps(list(steps))
    return v2.Compose(
        [
            ToRGB(),
            *steps.on_image,
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            *steps.on_tensor,
            v2.Normalize(mean=list(spec.mean), std=list(spec.std)),
        ]
    )


def _open_image(entry: Any) -> PILImage.Image:
    """Decodes one image: a PIL image (already decoded) or an undecoded `{"bytes", "path"}` entry."""
    if isinstance(entry, PILImage.Image):
        return entry
    data, path = entry.get("bytes"), entry.get("path")
    try:
        image = PILImage.open(io.BytesIO(data) if data is not None else path)
        image.load()
    except Exception as err:
        raise ValueError(
            f"Cannot decode image {path or '<embedded bytes>'!r}: {type(err).__name__}: {err}"
        ) from err
    return image


@dataclass
class DomainBatchTransform:
    """The function given to `Dataset.with_transform`: decodes and transforms a batch of examples.

    Input batch (columns of `load_domain_dataset`): `image`, `label`, `domain`.
    Output: `pixel_values` (list of `(3, H, W)` float tensors), `labels` (list of int) and `domain_ids`
    (list of int; dropped by the default collator).

    A `build_transforms` pipeline ends with the scaling to [0, 1], the recipe's steps on tensors (if any) and the
    normalisation: they run once on the batch's stacked uint8 images (when the images share a size) rather than image
    by image. Scaling and normalisation draw nothing at random and are the same element-wise operations, so the pixels
    and the per-image steps' random draws are the same either way; steps on tensors (`recipe="domainbed_batched"`)
    draw for every image of the batch after the per-image steps have drawn.

    Args:
        transform (`Callable`): Per-image transform, e.g. from `build_transforms`.
    """

    transform: Callable

    def __post_init__(self):
        self._per_image, self._per_batch = _split_batchable(self.transform)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        images = [self._per_image(_open_image(entry)) for entry in batch["image"]]
        if self._per_batch is not None and len({tuple(image.shape) for image in images}) == 1:
            images = list(self._per_batch(torch.stack(images)))
        elif self._per_batch is not None:
            images = [self._per_batch(image) for image in images]
        output = {"pixel_values": images}
        if "label" in batch:
            output["labels"] = list(batch["label"])
        if "domain" in batch:
            output["domain_ids"] = list(batch["domain"])
        return output


# The steps that run as well on a batch `(N, 3, H, W)` as on one image: deterministic element-wise ones, and those
# that draw for every image of a batch on its own.
_BATCH_STEPS = (v2.ToDtype, v2.Normalize, BatchColorJitter, BatchRandomGrayscale)


def _split_batchable(transform: Callable) -> tuple[Callable, Callable | None]:
    """A `Compose` made by `build_transforms` (`..., ToImage, ToDtype, [steps on tensors], Normalize`) split into its
    per-image part (up to `ToImage`) and its tail, which runs on a batch; any other transform is per-image only."""
    steps = list(getattr(transform, "transforms", []))
    converted = next((i + 1 for i, step in enumerate(steps) if isinstance(step, v2.ToImage)), None)
    if (
        isinstance(transform, v2.Compose)
        and converted is not None
        and len(steps) >= converted + 2
        and isinstance(steps[converted], v2.ToDtype)
        and isinstance(steps[-1], v2.Normalize)
        and all(isinstance(step, _BATCH_STEPS) for step in steps[converted:])
    ):
        return v2.Compose(steps[:converted]), v2.Compose(steps[converted:])
    return transform, None


def apply_transforms(
    data: datasets.DatasetDict | datasets.Dataset,
    image_processor: Any = None,
    *,
    train: bool | None = None,
    train_splits: Sequence[str] = ("train",),
    recipe: str = "domainbed",
    image_size: int | Sequence[int] | None = None,
) -> datasets.DatasetDict | datasets.Dataset:
    """Sets the lazy DomainBed transforms on a split or on every split (`with_transform`).

    Images are decoded by the transform itself (PIL, straight from the stored bytes or file), in the
    DataLoader worker that needs them; an undecodable file raises an error naming it.

    Args:
        data (`datasets.DatasetDict | datasets.Dataset`): Output of `load_domain_dataset`
            or one of its splits.
        image_processor (`Any`, *optional*, defaults to `None`): Gives size, mean and std.
        train (`bool | None`, *optional*, defaults to `None`): For a single `Dataset`: training augmentation
            or not (default `False`). Ignored for a `DatasetDict`.
        train_splits (`Sequence[str]`, *optional*, defaults to `("train",)`): Splits of a `DatasetDict` that
            get the training augmentation; the others get the evaluation resize.
        recipe (`str`, *optional*, defaults to `"domainbed"`): Augmentation recipe (see `RECIPES`).
        image_size (`int | Sequence[int] | None`, *optional*, defaults to `None`): Overrides the processor's size.

    Returns:
        `datasets.DatasetDict | datasets.Dataset`: The same splits, with the transform set.
    """
    if isinstance(data, datasets.DatasetDict):
        return datasets.DatasetDict(
            {
                name: apply_transforms(
                    split, image_processor, train=name in train_splits, recipe=recipe, image_size=image_size
                )
                for name, split in data.items()
            }
        )
    transform = build_transforms(image_processor, train=bool(train), recipe=recipe, image_size=image_size)
    image_feature = data.features.get("image")
    if isinstance(image_feature, datasets.Image) and image_feature.decode:
        data = data.cast_column("image", datasets.Image(decode=False))
    return data.with_transform(DomainBatchTransform(transform))
