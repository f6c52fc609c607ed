#!/usr/bin/env python
"""Draws a grid of sample images of the embedded `styles` benchmark: one row per domain (style), one column per
class, the first crop of each (domain, class). Builds the benchmark if it is not cached yet.

    python examples/styles_samples.py --output docs/images/styles_samples.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hf_bigdrop.data import domain_ids, load_domain_dataset
from hf_bigdrop.data.styles import DEFAULT_EXAMPLES_PER_CLASS, DEFAULT_IMAGE_SIZE


def sample_grid(
    image_size: int = DEFAULT_IMAGE_SIZE,
    examples_per_class: int = DEFAULT_EXAMPLES_PER_CLASS,
    scale: int = 2,
    label_width: int = 64,
    header: int = 16,
) -> Image.Image:
    """The grid: rows = domains in their order, columns = classes in label order, names on the left and on top.

    Args:
        image_size (`int`, *optional*, defaults to `64`): Stored image size of the benchmark to draw.
        examples_per_class (`int`, *optional*, defaults to `100`): Of the benchmark to draw (the first crop of
            each class and domain is the same for every value).
        scale (`int`, *optional*, defaults to `2`): Each image is drawn `scale` times larger (nearest neighbour).
        label_width (`int`, *optional*, defaults to `64`): Width in pixels of the domain-name column.
        header (`int`, *optional*, defaults to `16`): Height in pixels of the class-name row.

    Returns:
        `PIL.Image.Image`: The grid.
    """
    splits = load_domain_dataset(
        "styles",
        test_domains=[],
        holdout_fraction=0.0,
        image_size=image_size,
        builder_kwargs={"examples_per_class": examples_per_class},
    )
    data = splits["train"]
    domains, classes = data.features["domain"].names, data.features["label"].names
    ids, labels = domain_ids(data), np.asarray(data["label"])
    cell = image_size * scale
    grid = Image.new("RGB", (label_width + cell * len(classes), header + cell * len(domains)), "white")
    draw = ImageDraw.Draw(grid)
    for column, name in enumerate(classes):
        draw.text((label_width + column * cell + 2, 2), name[: cell // 6], fill="black")
    for row, domain in enumerate(domains):
        draw.text((4, header + row * cell + cell // 2 - 6), domain, fill="black")
        for column in range(len(classes)):
            index = int(np.flatnonzero((ids == row) & (labels == column))[0])
            image = data[index]["image"].convert("RGB").resize((cell, cell), Image.Resampling.NEAREST)
            grid.paste(image, (label_width + column * cell, header + row * cell))
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="docs/images/styles_samples.png", help="PNG file to write.")
    parser.add_argument("--image_size", type=int, default=DEFAULT_IMAGE_SIZE, help="Stored image size.")
    parser.add_argument(
        "--examples_per_class",
        type=int,
        default=1,
        help="Build this many crops per class and domain (the first ones are the same whatever the number).",
    )
    args = parser.parse_args()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    sample_grid(args.image_size, args.examples_per_class).save(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
