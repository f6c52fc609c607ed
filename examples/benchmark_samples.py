#!/usr/bin/env python
"""Draws a grid of sample images of an embedded benchmark (`styles`, `emoji`, `digits`): one row per domain, one
column per class, the first example of each (domain, class). Builds a small version of the benchmark whose first
examples are those of the full one.

    python examples/benchmark_samples.py styles --output docs/images/styles_samples.png
    python examples/benchmark_samples.py emoji --output docs/images/emoji_samples.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hf_bigdrop.data import domain_ids, get_dataset_info, load_domain_dataset

# The smallest build of each benchmark whose first example of every (domain, class) is the full build's.
SAMPLE_BUILDS = {
    "styles": {"examples_per_class": 1},
    "emoji": {"renders_per_emoji": 1, "max_emoji_per_class": 1},
    "digits": {"max_per_domain": 200},
}


def sample_grid(
    dataset: str = "styles",
    image_size: int | None = None,
    scale: int = 2,
    label_width: int = 96,
    header: int = 16,
) -> Image.Image:
    """The grid: rows = domains in their order, columns = classes in label order, names on the left and on top.

    Args:
        dataset (`str`, *optional*, defaults to `"styles"`): An embedded benchmark (a key of `SAMPLE_BUILDS`).
        image_size (`int | None`, *optional*, defaults to `None`): Stored image size (default: the benchmark's).
        scale (`int`, *optional*, defaults to `2`): Each image is drawn `scale` times larger (nearest neighbour).
        label_width (`int`, *optional*, defaults to `96`): Width in pixels of the domain-name column.
        header (`int`, *optional*, defaults to `16`): Height in pixels of the class-name row.

    Returns:
        `PIL.Image.Image`: The grid.
    """
    if dataset not in SAMPLE_BUILDS:
        raise ValueError(f"unknown embedded benchmark {dataset!r}; choose one of {list(SAMPLE_BUILDS)}")
    image_size = image_size or get_dataset_info(dataset).default_image_size
    splits = load_domain_dataset(
        dataset,
        test_domains=[],
        holdout_fraction=0.0,
        image_size=image_size,
        builder_kwargs=SAMPLE_BUILDS[dataset],
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
    parser.add_argument("dataset", choices=list(SAMPLE_BUILDS), help="The embedded benchmark.")
    parser.add_argument("--output", help="PNG file to write (default: docs/images/<dataset>_samples.png).")
    parser.add_argument("--image_size", type=int, help="Stored image size (default: the benchmark's).")
    args = parser.parse_args()
    output = Path(args.output or f"docs/images/{args.dataset}_samples.png")
    output.parent.mkdir(parents=True, exist_ok=True)
    sample_grid(args.dataset, args.image_size).save(output)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
