"""Splits decoded once and kept in memory, so that a run does not decode (and resize) the same images at every step.

- Evaluation: the evaluation transform is deterministic (`build_transforms(train=False)`: resize, scale to [0, 1],
  normalise), so evaluating the same sets again and again (every `eval_steps`, for the live model and its weight
  average) need not decode and resize every image each time. `PreprocessedImages` runs the transform's deterministic
  part once, keeps the uint8 pixels (3 x H x W bytes an image: 12 KB at 64 px, 150 KB at 224 px), and on access
  scales and normalises a whole batch with the same operations as the per-image transform.
- Training: `DecodedImages` keeps the training split's decoded RGB pixels and runs the random augmentation on access,
  image by image in the same order (so with the same random draws) as `apply_transforms` does on the stored files.

Both give bitwise the same pixels as the lazy transforms (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import datasets
import numpy as np
import torch
from PIL import Image

from .splitting import arrow_column
from .transforms import (
    DomainBatchTransform,
    ToRGB,
    _open_image,
    _split_batchable,
    build_transforms,
    image_spec_from_processor,
)

__all__ = [
    "DECODED_BYTES_LIMIT",
    "DecodedImages",
    "PreprocessedImages",
    "decode_for_training",
    "preprocess_for_evaluation",
]

# The most memory a training split decoded once may take (estimated from its first image); above it, the split is
# decoded at every access as before.
DECODED_BYTES_LIMIT = 2 * 1024**3


class PreprocessedImages(torch.utils.data.Dataset):
    """Evaluation examples whose images were decoded and resized once (`preprocess_for_evaluation`).

    Items are what `DomainBatchTransform` gives (`pixel_values`, `labels`, `domain_ids`), so `DomainCollator` and the
    Trainer read them as before. Batches are read through `__getitems__`: one slice, one scaling and normalisation.

    Args:
        pixels (`torch.Tensor`): uint8 images of shape `(N, 3, H, W)`.
        labels (`Sequence[int]`): the class of each image.
        domain_ids (`Sequence[int]`): the domain of each image.
        normalise (`Callable`): the transform's deterministic tail (scaling to [0, 1], normalisation), applied to a
            batch of uint8 images.
    """

    def __init__(
        self,
        pixels: torch.Tensor,
        labels: Sequence[int],
        domain_ids: Sequence[int],
        normalise: Callable[[torch.Tensor], torch.Tensor],
    ):
        if pixels.dtype != torch.uint8 or pixels.ndim != 4 or pixels.shape[0] != len(labels):
            raise ValueError(
                f"pixels must be uint8 of shape (N, 3, H, W) with one label each; got {pixels.dtype} "
                f"{tuple(pixels.shape)} for {len(labels)} labels"
            )
        self.pixels = pixels
        self.labels = [int(label) for label in labels]
        self.domain_ids = [int(domain) for domain in domain_ids]
        self.normalise = normalise

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        pixels = self.normalise(self.pixels[list(indices)])
        return [
            {"pixel_values": image, "labels": self.labels[i], "domain_ids": self.domain_ids[i]}
            for image, i in zip(pixels, indices)
        ]


def _decoded(dataset: datasets.Dataset) -> Iterator[Image.Image]:
    """Every image of a split, decoded (an undecodable file raises an error naming it), in the split's order."""
    entries = dataset.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))["image"]
    return (_open_image(entry) for entry in entries)


def preprocess_for_evaluation(
    dataset: datasets.Dataset,
    image_processor: Any = None,
    *,
    recipe: str = "domainbed",
    image_size: int | Sequence[int] | None = None,
) -> PreprocessedImages:
    """Decodes and resizes every image of an evaluation split once, as `build_transforms(train=False)` would.

    Args:
        dataset (`datasets.Dataset`): A split of `load_domain_dataset` (`image`, `label`, `domain` columns), without
            a transform set.
        image_processor (`Any`, *optional*, defaults to `None`): Gives size, mean and std (see
            `image_spec_from_processor`).
        recipe (`str`, *optional*, defaults to `"domainbed"`): The augmentation recipe, whose evaluation part is
            applied (`RECIPES`).
        image_size (`int | Sequence[int] | None`, *optional*, defaults to `None`): Overrides the processor's size.

    Returns:
        `PreprocessedImages`: The split in memory, normalised on access.

    Raises:
        ValueError: If `recipe` is unknown, or an image cannot be decoded (the message names it).
    """
    # The evaluation transform of `apply_transforms`, in its two parts: resizing each image, then the batch's scaling
    # and normalisation.
    to_pixels, normalise = _split_batchable(
        build_transforms(image_processor, train=False, recipe=recipe, image_size=image_size)
    )
    spec = image_spec_from_processor(image_processor, image_size)
    pixels = torch.empty((len(dataset), 3, *spec.size), dtype=torch.uint8)
    for i, image in enumerate(_decoded(dataset)):
        pixels[i] = to_pixels(image)
    labels = arrow_column(dataset, "label").to_pylist()
    return PreprocessedImages(pixels, labels, arrow_column(dataset, "domain").to_pylist(), normalise)


class DecodedImages(torch.utils.data.Dataset):
    """A training split decoded once (`decode_for_training`): RGB pixels in memory, augmented on access.

    Items are what `DomainBatchTransform` gives; `__getitems__` augments a batch's images one by one in the order asked
    (the same random draws as the lazy transform), then scales and normalises them together.

    Args:
        images (`list[np.ndarray]`): RGB uint8 arrays `(H, W, 3)`.
        labels (`Sequence[int]`): the class of each image.
        domain_ids (`Sequence[int]`): the domain of each image (`DomainBalancedBatchSampler` reads them).
        transform (`Callable`): the per-image transform, e.g. `build_transforms(..., train=True)`.
    """

    def __init__(self, images: list[np.ndarray], labels: Sequence[int], domain_ids: Sequence[int], transform):
        if not len(images) == len(labels) == len(domain_ids):
            raise ValueError(
                f"one label and one domain per image: {len(images)} images, {len(labels)} labels, "
                f"{len(domain_ids)} domains"
            )
        self.images = images
        self.labels = [int(label) for label in labels]
        self.domain_ids = np.asarray(domain_ids, dtype=np.int64)
        self.batch_transform = DomainBatchTransform(transform)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        batch = {
            "image": [Image.fromarray(self.images[i]) for i in indices],
            "label": [self.labels[i] for i in indices],
            "domain": [int(self.domain_ids[i]) for i in indices],
        }
        output = self.batch_transform(batch)
        return [dict(zip(output, values)) for values in zip(*output.values())]


def decode_for_training(
    dataset: datasets.Dataset,
    image_processor: Any = None,
    *,
    recipe: str = "domainbed",
    image_size: int | Sequence[int] | None = None,
    max_bytes: int = DECODED_BYTES_LIMIT,
) -> DecodedImages | None:
    """Decodes every image of a training split once (in RGB), to be augmented on access like `apply_transforms`.

    Args:
        dataset (`datasets.Dataset`): A split of `load_domain_dataset` (`image`, `label`, `domain` columns), without
            a transform set.
        image_processor (`Any`, *optional*, defaults to `None`): Gives size, mean and std.
        recipe (`str`, *optional*, defaults to `"domainbed"`): The augmentation recipe (`RECIPES`).
        image_size (`int | Sequence[int] | None`, *optional*, defaults to `None`): Overrides the processor's size.
        max_bytes (`int`, *optional*, defaults to `DECODED_BYTES_LIMIT`): Decode nothing and return `None` when the
            decoded split would take more (estimated from its first image).

    Returns:
        `DecodedImages | None`: The split in memory, or `None` when it would not fit `max_bytes`.

    Raises:
        ValueError: If `recipe` is unknown, or an image cannot be decoded (the message names it).
    """
    transform = build_transforms(image_processor, train=True, recipe=recipe, image_size=image_size)
    to_rgb = ToRGB()
    images = []
    for image in _decoded(dataset):
        images.append(np.asarray(to_rgb(image)))
        if len(images) == 1 and images[0].nbytes * len(dataset) > max_bytes:
            return None
    labels = arrow_column(dataset, "label").to_pylist()
    return DecodedImages(images, labels, arrow_column(dataset, "domain").to_pylist(), transform)
