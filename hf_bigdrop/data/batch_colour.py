"""DomainBed's colour augmentation on a batch of tensors, with its own random draws for every image.

`torchvision.transforms.v2.ColorJitter` and `RandomGrayscale` applied to a batch draw one set of parameters for the
whole batch; applied to PIL images one at a time (as DomainBed does) they cost most of a small image's augmentation.
`BatchColorJitter` and `BatchRandomGrayscale` draw, for each image of a `(N, 3, H, W)` float batch, what the
torchvision transform draws for one image (a random order of the four adjustments and their factors; grey or not),
and apply the adjustments to the whole batch at once, with the formulas of `torchvision.transforms.v2.functional`'s
`adjust_brightness`, `adjust_contrast`, `adjust_saturation`, `adjust_hue` and `rgb_to_grayscale` on float images
(tested against them, image by image). A single `(3, H, W)` image is a batch of one.

The draws come from torch's global random state, which `SeededDataset` seeds for every batch, so a batch's
augmentation depends on the batch's seed alone. The images go in and come out in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "BatchColorJitter",
    "BatchRandomGrayscale",
    "ColorJitterDraws",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
]

# ITU-R 601-2 luma, as `torchvision.transforms.v2.functional.rgb_to_grayscale`.
_LUMA = (0.2989, 0.587, 0.114)
_ADJUSTMENTS = ("brightness", "contrast", "saturation", "hue")


def _batched(images: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """`(N, 3, H, W)` float images, and whether the input was a single `(3, H, W)` image."""
    if not images.is_floating_point() or images.ndim not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(
            f"expected float RGB images of shape (3, H, W) or (N, 3, H, W) in [0, 1]; got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    return (images.unsqueeze(0), True) if images.ndim == 3 else (images, False)


def _grey(images: torch.Tensor) -> torch.Tensor:
    """The luma of `(N, 3, H, W)` images, `(N, 1, H, W)`."""
    r, g, b = images.unbind(-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """`factor * images + (1 - factor) * other`, clamped to [0, 1]; `factor` is one value an image, `(N, 1, 1, 1)`."""
    return (factor * images + (1.0 - factor) * other).clamp_(0.0, 1.0)


def _per_image(factor: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """One value an image (any shape with `N` values), shaped `(N, 1, 1, 1)` on the images' device and dtype."""
    return factor.to(device=images.device, dtype=images.dtype).reshape(-1, 1, 1, 1)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scales `(N, 3, H, W)` images by `factor` (one value an image)."""
    return (images * _per_image(factor, images)).clamp_(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blends `(N, 3, H, W)` images with the mean of their luma by `factor` (one value an image)."""
    return _blend(images, _grey(images).mean(dim=(-3, -2, -1), keepdim=True), _per_image(factor, images))


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blends `(N, 3, H, W)` images with their luma by `factor` (one value an image)."""
    return _blend(images, _grey(images), _per_image(factor, images))


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotates the hue of `(N, 3, H, W)` images by `shift` turns (one value an image, in [-0.5, 0.5]): to HSV, shift,
    back to RGB. Written with 0/1 masks as `lerp` weights rather than `torch.where`, and `floor` rather than `%`: on
    CPU each of these runs over ten times faster, and the whole step about three times. In float32 it matches
    torchvision's `adjust_hue` to about 1e-6; in float16 or bfloat16 it is less precise than torchvision's."""
    value, low = images.amax(dim=-3), images.amin(dim=-3)
    chroma = value - low
    # 1 / chroma, finite where the pixel is grey (there every channel difference below is 0, and so is the hue).
    inverse = chroma.clamp_min(torch.finfo(images.dtype).tiny).reciprocal()
    r, g, b = images.unbind(-3)
    red_is_max = (r == value).to(images.dtype)
    green_is_max = (g == value).to(images.dtype)
    # The hue in sixths of a turn, from the channel that is largest (red first, then green, then blue).
    sixths = torch.lerp((r - g) * inverse + 4, (b - r) * inverse + 2, green_is_max)
    sixths = torch.lerp(sixths, (g - b) * inverse, red_is_max)
    sixths = sixths + 6 * _per_image(shift, images).view(-1, 1, 1)
    # Back to RGB: channel n (5 for red, 3 for green, 1 for blue) is value - chroma * clamp(min(k, 4 - k), 0, 1)
    # with k = (n + sixths) mod 6.
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    k = offsets + sixths.unsqueeze(-3)
    k = k - 6 * torch.floor(k / 6)
    return value.unsqueeze(-3) - chroma.unsqueeze(-3) * torch.minimum(k, 4 - k).clamp_(0.0, 1.0)


_ADJUST = {
    "brightness": adjust_brightness,
    "contrast": adjust_contrast,
    "saturation": adjust_saturation,
    "hue": adjust_hue,
}


@dataclass(frozen=True)
class ColorJitterDraws:
    """What `BatchColorJitter` drew for a batch of `N` images.

    Args:
        order (`torch.Tensor`): `(N, 4)`, each row a permutation of the adjustments' indices in `_ADJUSTMENTS`
            (brightness, contrast, saturation, hue), in the order they are applied to that image.
        factors (`torch.Tensor`): `(N, 4)`, each image's brightness, contrast and saturation factors and hue shift
            (1, 1, 1 and 0 for an adjustment that is switched off).
    """

    order: torch.Tensor
    factors: torch.Tensor


class BatchColorJitter(torch.nn.Module):
    """`torchvision.transforms.v2.ColorJitter` with every image's own draws, on a float batch in [0, 1].

    Args:
        brightness (`float`, *optional*, defaults to `0.0`): Factors are drawn uniformly from
            `[max(0, 1 - brightness), 1 + brightness]`.
        contrast (`float`, *optional*, defaults to `0.0`): Likewise for contrast.
        saturation (`float`, *optional*, defaults to `0.0`): Likewise for saturation.
        hue (`float`, *optional*, defaults to `0.0`): Hue shifts are drawn uniformly from `[-hue, hue]`; at most 0.5.

    Raises:
        ValueError: If a strength is negative, or `hue` is above 0.5.
    """

    def __init__(
        self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0
    ):
        super().__init__()
        strengths = {"brightness": brightness, "contrast": contrast, "saturation": saturation, "hue": hue}
        bad = [f"{name}={value!r}" for name, value in strengths.items() if not value >= 0]
        if bad or hue > 0.5:
            raise ValueError(
                f"ColorJitter strengths must be >= 0 and hue <= 0.5; got {', '.join(bad) or f'hue={hue!r}'}"
            )
        self.strengths = strengths
        # The range of each adjustment's factor (the hue's shift), in the order of `_ADJUSTMENTS`.
        self._low = torch.tensor(
            [-hue if name == "hue" else max(0.0, 1.0 - v) for name, v in strengths.items()]
        )
        self._high = torch.tensor([hue if name == "hue" else 1.0 + v for name, v in strengths.items()])

    def draw(self, count: int) -> ColorJitterDraws:
        """Draws the order and factors of `count` images from torch's global random state."""
        order = torch.argsort(torch.rand(count, len(_ADJUSTMENTS)), dim=1)
        factors = self._low + (self._high - self._low) * torch.rand(count, len(_ADJUSTMENTS))
        return ColorJitterDraws(order=order, factors=factors)

    def apply(self, images: torch.Tensor, draws: ColorJitterDraws) -> torch.Tensor:
        """Applies `draws` to `(N, 3, H, W)` float images: at each of the four positions, each adjustment to the
        images that have it there."""
        images = images.clone()
        for position in range(len(_ADJUSTMENTS)):
            for index, name in enumerate(_ADJUSTMENTS):
                if self.strengths[name] == 0:
                    continue
                chosen = torch.nonzero(draws.order[:, position] == index).flatten()
                if len(chosen) == 0:
                    continue
                images[chosen] = _ADJUST[name](images[chosen], draws.factors[chosen, index])
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, single = _batched(images)
        out = self.apply(batch, self.draw(len(batch)))
        return out[0] if single else out

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.strengths.items())


class BatchRandomGrayscale(torch.nn.Module):
    """`torchvision.transforms.v2.RandomGrayscale` with every image's own draw, on a float batch: each image turns
    grey (its luma in all three channels) with probability `p`.

    Args:
        p (`float`, *optional*, defaults to `0.1`): The probability of an image turning grey, in [0, 1].

    Raises:
        ValueError: If `p` is outside [0, 1].
    """

    def __init__(self, p: float = 0.1):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomGrayscale p must be in [0, 1]; got {p!r}")
        self.p = p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, single = _batched(images)
        grey = torch.nonzero(torch.rand(len(batch)) < self.p).flatten()
        if len(grey):
            batch = batch.clone()
            batch[grey] = _grey(batch[grey]).expand(-1, 3, -1, -1)
        return batch[0] if single else batch

    def extra_repr(self) -> str:
        return f"p={self.p}"
