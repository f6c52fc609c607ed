"""DomainBed's colour augmentation on batches (`BatchColorJitter`, `BatchRandomGrayscale`, the `domainbed_batched`
recipe): torchvision's formulas image by image, every image its own draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from hf_bigdrop.data import DomainBatchTransform, build_transforms
from hf_bigdrop.data.batch_colour import (
    BatchColorJitter,
    BatchRandomGrayscale,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
)

TORCHVISION = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]


def _images(count=12, size=10, seed=0) -> torch.Tensor:
    """Random float images with the cases the hue formula must get right: a grey image, grey pixels, pure and
    saturated colours, black and white, ties between two largest channels."""
    images = torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed))
    images[0] = 0.4  # grey everywhere
    images[1, :, :3] = images[1, 0, :3]  # grey rows
    images[2, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    images[2, :, 0, 1] = torch.tensor([0.0, 1.0, 0.0])
    images[2, :, 0, 2] = torch.tensor([0.0, 0.0, 1.0])
    images[2, :, 0, 3] = 0.0
    images[2, :, 0, 4] = 1.0
    images[2, :, 0, 5] = torch.tensor([0.7, 0.7, 0.1])  # red and green tie
    images[2, :, 0, 6] = torch.tensor([0.2, 0.9, 0.9])  # green and blue tie
    return images


@pytest.mark.parametrize(
    ("ours", "theirs", "low", "high"),
    [
        (adjust_brightness, F.adjust_brightness, 0.0, 2.0),
        (adjust_contrast, F.adjust_contrast, 0.0, 2.0),
        (adjust_saturation, F.adjust_saturation, 0.0, 2.0),
        (adjust_hue, F.adjust_hue, -0.5, 0.5),
    ],
)
def test_each_adjustment_is_torchvisions_with_a_factor_per_image(ours, theirs, low, high):
    images = _images()
    factors = torch.linspace(low, high, len(images))
    shaped = factors if ours is adjust_hue else factors.view(-1, 1, 1, 1)
    got = ours(images.clone(), shaped)
    expected = torch.stack([theirs(image, float(factor)) for image, factor in zip(images, factors)])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert got.min() >= 0 and got.max() <= 1


def test_jitter_applies_each_images_adjustments_in_its_own_order():
    torch.manual_seed(0)
    images = _images(count=32)
    jitter = BatchColorJitter(0.3, 0.3, 0.3, 0.3)
    draws = jitter.draw(len(images))
    got = jitter.apply(images, draws)
    expected = []
    for image, order, factors in zip(images, draws.order, draws.factors):
        for index in order.tolist():
            image = TORCHVISION[index](image, float(factors[index]))
        expected.append(image)
    torch.testing.assert_close(got, torch.stack(expected), atol=1e-5, rtol=0)
    assert not torch.equal(got, images)  # the input is left as it was, the output changed


def test_draws_are_torchvisions_distributions_one_per_image():
    torch.manual_seed(0)
    draws = BatchColorJitter(0.3, 0.2, 0.1, 0.05).draw(4000)
    assert all(sorted(row) == [0, 1, 2, 3] for row in draws.order.tolist())
    # Every order appears, about equally often (24 orders, 4000 images: ~167 each).
    counts = torch.unique(draws.order, dim=0, return_counts=True)[1]
    assert len(counts) == 24 and counts.min() > 110
    low, high = draws.factors.min(0).values, draws.factors.max(0).values
    torch.testing.assert_close(low, torch.tensor([0.7, 0.8, 0.9, -0.05]), atol=2e-3, rtol=0)
    torch.testing.assert_close(high, torch.tensor([1.3, 1.2, 1.1, 0.05]), atol=2e-3, rtol=0)
    # Each image draws its own factors (torchvision's transform on a batch would draw one for all).
    assert len(torch.unique(draws.factors[:, 0])) > 3900  # float32 draws repeat now and then


def test_switched_off_adjustments_and_single_images():
    torch.manual_seed(1)
    images = _images(count=4)
    assert torch.equal(BatchColorJitter()(images), images)
    draws = BatchColorJitter(brightness=0.5).draw(3)
    assert torch.equal(draws.factors[:, 1:], torch.tensor([[1.0, 1.0, 0.0]] * 3))
    single = BatchColorJitter(0.3, 0.3, 0.3, 0.3)(images[3])
    assert single.shape == (3, 10, 10)
    torch.manual_seed(2)
    once = BatchColorJitter(0.3, 0.3, 0.3, 0.3)(images)
    torch.manual_seed(2)
    assert torch.equal(BatchColorJitter(0.3, 0.3, 0.3, 0.3)(images), once)  # seeded: the same draws


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: BatchColorJitter(brightness=-0.1),
            r"strengths must be >= 0 and hue <= 0.5; got brightness=-0.1",
        ),
        (lambda: BatchColorJitter(hue=0.6), r"got hue=0.6"),
        (lambda: BatchRandomGrayscale(p=1.5), r"p must be in \[0, 1\]; got 1.5"),
    ],
)
def test_bad_strengths_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("transform", [BatchColorJitter(0.3), BatchRandomGrayscale()])
def test_bad_images_are_named(transform):
    with pytest.raises(ValueError, match=r"float RGB images .* got torch.uint8 \(3, 4, 4\)"):
        transform(torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"got torch.float32 \(2, 1, 4, 4\)"):
        transform(torch.zeros(2, 1, 4, 4))


def test_grayscale_turns_each_image_grey_on_its_own_draw():
    images = _images(count=400, size=8)
    grey = F.rgb_to_grayscale(images, num_output_channels=3)
    torch.testing.assert_close(BatchRandomGrayscale(p=1.0)(images), grey, atol=1e-6, rtol=0)
    assert torch.equal(BatchRandomGrayscale(p=0.0)(images), images)
    torch.manual_seed(0)
    out = BatchRandomGrayscale(p=0.25)(images)
    turned = torch.tensor([torch.allclose(o, g, atol=1e-6) for o, g in zip(out, grey)])
    unchanged = torch.tensor([torch.equal(o, i) for o, i in zip(out, images)])
    assert torch.all(turned | unchanged)
    assert 60 < int(turned[1:].sum()) < 140  # about a quarter of the images, each its own draw


def test_batched_recipe_is_domainbeds_with_colour_on_tensors():
    train = build_transforms(None, train=True, recipe="domainbed_batched", image_size=16)
    names = [type(t).__name__ for t in train.transforms]
    assert names == [
        "ToRGB", "RandomResizedCrop", "RandomHorizontalFlip", "ToImage", "ToDtype",
        "BatchColorJitter", "BatchRandomGrayscale", "Normalize",
    ]  # fmt: skip
    assert train.transforms[5].strengths == {
        "brightness": 0.3,
        "contrast": 0.3,
        "saturation": 0.3,
        "hue": 0.3,
    }
    assert train.transforms[6].p == 0.1
    evaluation = build_transforms(None, train=False, recipe="domainbed_batched", image_size=16)
    reference = build_transforms(None, train=False, recipe="domainbed", image_size=16)
    assert repr(evaluation) == repr(reference)
    # Run image by image, as a per-image transform, it gives a normalised tensor.
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    assert train(image).shape == (3, 16, 16)


def _batch(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]}


def test_the_batch_transform_runs_the_colour_steps_once_on_the_batch():
    transform = build_transforms(None, train=True, recipe="domainbed_batched", image_size=16)
    batch_transform = DomainBatchTransform(transform)
    per_image, per_batch = batch_transform._per_image, batch_transform._per_batch
    assert isinstance(per_image.transforms[-1], v2.ToImage)
    assert [type(t).__name__ for t in per_batch.transforms] == [
        "ToDtype", "BatchColorJitter", "BatchRandomGrayscale", "Normalize",
    ]  # fmt: skip
    batch = _batch([(20, 24)] * 6)
    torch.manual_seed(3)
    got = torch.stack(batch_transform(batch)["pixel_values"])
    # By hand: the per-image geometry draws first, image by image, then the colour steps draw for the batch.
    torch.manual_seed(3)
    expected = per_batch(torch.stack([per_image(image) for image in batch["image"]]))
    assert torch.equal(got, expected)


def test_images_of_different_sizes_get_the_tail_image_by_image():
    """Without a crop to one size the images cannot be stacked: the colour steps then run on each image alone."""
    transform = v2.Compose(
        [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            BatchColorJitter(0.3, 0.3, 0.3, 0.3),
            v2.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )
    batch_transform = DomainBatchTransform(transform)
    batch = _batch([(20, 24), (30, 18)])
    torch.manual_seed(4)
    got = batch_transform(batch)["pixel_values"]
    torch.manual_seed(4)
    images = [batch_transform._per_image(image) for image in batch["image"]]
    expected = [batch_transform._per_batch(image) for image in images]
    assert [tuple(image.shape) for image in got] == [(3, 20, 24), (3, 30, 18)]
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_both_recipes_give_the_same_colour_statistics():
    """The same augmentation in distribution: over many draws on one photo-like image, the batched recipe's pixels
    have the per-PIL-image recipe's mean and spread per channel (PIL rounds to uint8 between steps; floats do not)."""
    rng = np.random.default_rng(0)
    base = np.clip(rng.normal([150, 100, 60], 40, size=(16, 16, 3)), 0, 255).astype(np.uint8)
    batch = {"image": [Image.fromarray(base)] * 2000}
    stats = {}
    for recipe in ("domainbed", "domainbed_batched"):
        torch.manual_seed(0)
        pixels = torch.stack(
            DomainBatchTransform(build_transforms(None, train=True, recipe=recipe, image_size=16))(batch)[
                "pixel_values"
            ]
        )
        mean, spread = pixels.mean(dim=(2, 3)), pixels.std(dim=(2, 3))  # per image and channel
        # How far apart an image's channels are: saturation and hue move it, brightness and contrast scale it.
        chroma = (pixels.amax(dim=1) - pixels.amin(dim=1)).mean(dim=(1, 2))
        stats[recipe] = [
            mean.mean(0),
            mean.std(0),
            spread.mean(0),
            spread.std(0),
            chroma.mean(),
            chroma.std(),
        ]
    # Tolerances about four standard errors of each statistic over 2000 draws (skipping any one adjustment in the
    # batched recipe breaks at least one of them).
    tolerances = [0.03, 0.02, 0.02, 0.012, 0.07, 0.03]
    for batched, per_image, atol in zip(stats["domainbed_batched"], stats["domainbed"], tolerances):
        torch.testing.assert_close(batched, per_image, atol=atol, rtol=0)
