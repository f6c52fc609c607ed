#!/usr/bin/env python
"""Training-step throughput of BigDropForImageClassification: default memory format vs channels-last (and, with
`--bf16`, channels-last under bf16 autocast, as `--bf16` trains).

Times full optimizer steps (forward, cross-entropy, backward, AdamW) on random images, the variants interleaved
in one process (median of `--rounds`), and prints images/s and the ratio. The default backbone is the embedded
ImageNet EfficientNet-Lite0, the `make demo` configuration (64 px, 48 images a step).

    python benchmarks/train_throughput.py [--backbone embedded:efficientnet-lite0] [--image-size 64] [--batch 48]

The script re-executes itself with glibc allocator settings (``MALLOC_ARENA_MAX=1`` ...) unless they are set: on
2-core machines the default allocator stalls for seconds (see docs/benchmarks.md, "Allocator stalls").
"""

from __future__ import annotations

import argparse
import statistics
import time

from _benchmark_env import prepare_process

prepare_process()

import torch  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from hf_bigdrop import BigDropForImageClassification  # noqa: E402


def steps_per_second(model, pixels, labels, steps: int, bf16: bool = False) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        # bf16 autocast with fp32 weights, as the Trainer's `--bf16` (mixed precision) runs a step.
        with torch.autocast(pixels.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(pixels, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(3):  # warm-up: allocator, oneDNN kernel selection
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="embedded:efficientnet-lite0")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="also time channels-last under bf16 autocast")
    args = parser.parse_args()

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    pixels = torch.randn(args.batch, 3, args.image_size, args.image_size)
    labels = torch.randint(0, 10, (args.batch,))
    models = {}
    variants = (
        ("default", "channels_last", "channels_last_bf16") if args.bf16 else ("default", "channels_last")
    )
    for name in variants:
        model = BigDropForImageClassification.from_backbone(
            args.backbone, num_labels=10, classifier_init="normal"
        )
        if name.startswith("channels_last"):
            model.to(memory_format=torch.channels_last)
        models[name] = model

    rates: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(args.rounds):
        order = list(models) if round_index % 2 == 0 else list(reversed(models))
        for name in order:
            rate = steps_per_second(models[name], pixels, labels, args.steps, bf16=name.endswith("bf16"))
            rates[name].append(rate * args.batch)

    print(
        f"\n{args.backbone}, {args.image_size} px, batch {args.batch}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, median of {args.rounds} interleaved rounds of {args.steps} steps\n"
    )
    print("| memory format (precision) | train images/s | vs default |\n|---|---:|---:|")
    base = statistics.median(rates["default"])
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
