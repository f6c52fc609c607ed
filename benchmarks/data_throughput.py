"""Data pipeline throughput: hf_bigdrop.data vs torchvision ImageFolder, same JPEGs, same transforms.

Measures images/s of JPEG decode + DomainBed training augmentation + collate through a torch DataLoader with
0 and 2 workers, for

- ours: ``load_domain_dataset(folder)`` -> ``apply_transforms`` (``with_transform``) -> ``DomainCollator``;
- baseline: ``torchvision.datasets.ImageFolder`` with the same ``build_transforms(train=True)`` transform;

on the same generated folder of JPEGs (DomainBed layout), interleaved in one process (ours / baseline
alternate, the order flipping each round), and prints the median over rounds and the ratio.

Usage::

    python benchmarks/data_throughput.py [--num-images 1200] [--rounds 3] [--batch-size 64] [--size 224]

The script re-executes itself with glibc allocator settings (``MALLOC_ARENA_MAX=1`` ...) unless they are set.
"""

from __future__ import annotations

import argparse
import os
import sys

from _benchmark_env import prepare_process

prepare_process()

import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision.datasets import ImageFolder  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hf_bigdrop.data import DomainCollator, apply_transforms, build_transforms, load_domain_dataset  # noqa: E402

DOMAINS = ("domain_a", "domain_b", "held_out")
CLASSES = ("c0", "c1", "c2", "c3")


def make_jpeg_folder(root: Path, num_images: int, seed: int = 0) -> Path:
    """``root/<domain>/<class>/<i>.jpg``: smooth random colour images of 200-320 px, JPEG quality 90."""
    rng = np.random.default_rng(seed)
    for i in range(num_images):
        domain, cls = DOMAINS[i % len(DOMAINS)], CLASSES[(i // len(DOMAINS)) % len(CLASSES)]
        folder = root / domain / cls
        folder.mkdir(parents=True, exist_ok=True)
        w, h = (int(v) for v in rng.integers(200, 321, size=2))
        coarse = Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8), "RGB")
        image = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
        image = (image + rng.integers(-20, 21, size=image.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(image, "RGB").save(folder / f"{i:05d}.jpg", quality=90)
    return root


def _images_per_second(loader: DataLoader) -> float:
    start, count = time.perf_counter(), 0
    for batch in loader:
        pixels = batch["pixel_values"] if isinstance(batch, dict) else batch[0]
        count += pixels.shape[0]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-images", type=int, default=1200, help="JPEGs generated (2/3 are read).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224, help="Output side of RandomResizedCrop.")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch intra-op threads of the main process (2 threads made both pipelines ~14x slower here).",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = make_jpeg_folder(Path(tmp) / "jpegs", args.num_images)
        transform = build_transforms(None, train=True, image_size=args.size)
        # Ours: the training split (both training domains, holdout 0) with lazy with_transform.
        ours = apply_transforms(
            load_domain_dataset(root, test_domains="held_out", holdout_fraction=0.0, cache_dir=tmp)["train"],
            None,
            train=True,
            image_size=args.size,
        )
        # Baseline: ImageFolder over the same training-domain files (domains play the role of classes).
        theirs = ImageFolder(
            str(root), transform=transform, is_valid_file=lambda p: "held_out" not in p, allow_empty=True
        )
        assert len(ours) == len(theirs), (len(ours), len(theirs))
        pipelines = {
            "hf_bigdrop (datasets + with_transform)": lambda w: DataLoader(
                ours, batch_size=args.batch_size, shuffle=True, num_workers=w, collate_fn=DomainCollator(),
                generator=torch.Generator().manual_seed(0),
            ),
            "torchvision ImageFolder": lambda w: DataLoader(
                theirs, batch_size=args.batch_size, shuffle=True, num_workers=w,
                generator=torch.Generator().manual_seed(0),
            ),
        }  # fmt: skip
        results: dict[tuple[str, int], list[float]] = {}
        for workers in args.workers:  # warm-up: page cache, worker start-up paths
            for make in pipelines.values():
                next(iter(make(workers)))
        for round_index in range(args.rounds):
            names = list(pipelines) if round_index % 2 == 0 else list(reversed(pipelines))
            for workers in args.workers:
                for name in names:
                    rate = _images_per_second(pipelines[name](workers))
                    results.setdefault((name, workers), []).append(rate)

    print(
        f"{len(ours)} JPEGs (200-320 px) -> RandomResizedCrop({args.size}) + flip + ColorJitter + RandomGrayscale"
        f" + normalize, batch {args.batch_size}, median of {args.rounds} interleaved rounds"
    )
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} main-process torch thread(s)"
    )
    print(f"{'workers':>7} | {'hf_bigdrop img/s':>16} | {'ImageFolder img/s':>17} | ratio")
    names = list(pipelines)
    for workers in args.workers:
        mine, base = (statistics.median(results[(n, workers)]) for n in names)
        print(f"{workers:>7} | {mine:16.1f} | {base:17.1f} | {mine / base:.2f}x")


if __name__ == "__main__":
    main()
