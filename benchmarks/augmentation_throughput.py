#!/usr/bin/env python
"""The training augmentation of one batch, recipe against recipe: images decoded once (as a run keeps them), then
`DomainBatchTransform` (crop, flip, colour jitter, grey-scale, scaling, normalisation), timed in one process, the
recipes interleaved (the order flipping each round), on random images of the stored size:

    python benchmarks/augmentation_throughput.py [--size 64] [--stored-size 64] [--batch 48] [--rounds 5]
        [--recipes domainbed domainbed_batched] [--threads 2]

Prints each recipe's median milliseconds a batch and images/s, and its speed against the first recipe. The script
re-executes itself with glibc allocator settings (``MALLOC_ARENA_MAX=1`` ...) unless they are set.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _benchmark_env import cpu_model, prepare_process

prepare_process()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from hf_bigdrop.data import RECIPES, DomainBatchTransform, build_transforms  # noqa: E402
from hf_bigdrop.tables import markdown_table  # noqa: E402


def time_batches(transform: DomainBatchTransform, images: list[np.ndarray], batches: int) -> float:
    """Seconds a batch, over `batches` batches (each image wrapped as PIL, as `DecodedImages` does)."""
    start = time.perf_counter()
    for _ in range(batches):
        transform({"image": [Image.fromarray(image) for image in images]})
    return (time.perf_counter() - start) / batches


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", type=int, default=64, help="the training image size (RandomResizedCrop's output)"
    )
    parser.add_argument("--stored-size", type=int, default=64, help="the side of the decoded images")
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--batches", type=int, default=20, help="batches timed a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--recipes", nargs="+", default=["domainbed", "domainbed_batched"], choices=sorted(RECIPES)
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    for flag in ("size", "stored_size", "batch", "batches", "rounds", "threads"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be a positive integer, got {getattr(args, flag)}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (args.stored_size, args.stored_size, 3), dtype=np.uint8)
        for _ in range(args.batch)
    ]
    transforms = {
        recipe: DomainBatchTransform(build_transforms(None, train=True, recipe=recipe, image_size=args.size))
        for recipe in args.recipes
    }
    seconds: dict[str, list[float]] = {recipe: [] for recipe in args.recipes}
    torch.manual_seed(0)
    for transform in transforms.values():  # warm-up
        time_batches(transform, images, 2)
    for round_index in range(args.rounds):
        order = args.recipes if round_index % 2 == 0 else list(reversed(args.recipes))
        for recipe in order:
            seconds[recipe].append(time_batches(transforms[recipe], images, args.batches))
    print(
        f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{args.batch} images of {args.stored_size} px to {args.size} px a batch, median of {args.rounds} rounds"
    )
    reference = statistics.median(seconds[args.recipes[0]])
    rows = []
    for recipe in args.recipes:
        median = statistics.median(seconds[recipe])
        rows.append(
            [recipe, f"{1000 * median:.1f}", f"{args.batch / median:.0f}", f"{reference / median:.2f}x"]
        )
    print(markdown_table(["recipe", "ms a batch", "images/s", f"speed against {args.recipes[0]}"], rows))


if __name__ == "__main__":
    main()
