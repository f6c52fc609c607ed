#!/usr/bin/env python
"""How rich the frozen pretrained features are at each input size: a linear probe on training-domain validation.

For each image size, the benchmark is built at that size, and for each domain held out in turn the frozen backbone's
pooled features (dropout off, evaluation transform) of the training domains' train split fit a multinomial logistic
regression, scored on their validation split (new emoji of known categories). Held-out domains are never read. It
prints, per size, the mean validation accuracy over the held-out choices and the backbone's forward images/s (the
cost), and writes them as Markdown:

    python examples/probe_resolution.py --dataset emoji --sizes 64 96 128 224 --output runs/probe_emoji.md

Forward passes only: minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from hf_bigdrop import BigDropForImageClassification
from hf_bigdrop.backbones import load_backbone_image_processor, resolve_backbone_name
from hf_bigdrop.data import DomainCollator, apply_transforms, get_dataset_info, load_domain_dataset
from hf_bigdrop.tables import markdown_table

# Inverse L2 strengths tried for each probe; the best on validation is reported (the probe's own selection).
PROBE_C = (0.01, 0.1, 1.0)


@torch.no_grad()
def features(model, dataset, image_processor, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Pooled features (before dropout) and labels of a split at `size` px, and the forward pass's images/s."""
    model.eval()
    data = apply_transforms(dataset, image_processor, train=False, image_size=size)
    loader = torch.utils.data.DataLoader(data, batch_size=128, collate_fn=DomainCollator())
    chunks, labels, seconds = [], [], 0.0
    for batch in loader:
        pixels = batch["pixel_values"].contiguous(memory_format=torch.channels_last)
        start = time.perf_counter()
        chunks.append(model.extract_features(pixels)[0].float().numpy())
        seconds += time.perf_counter() - start
        labels.append(batch["labels"].numpy())
    return np.concatenate(chunks), np.concatenate(labels), len(dataset) / seconds


def probe(train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray]) -> float:
    """Best validation accuracy of a logistic regression on standardised features over `PROBE_C`."""
    scaler = StandardScaler().fit(train[0])
    x_train, x_validation = scaler.transform(train[0]), scaler.transform(validation[0])
    scores = []
    for c in PROBE_C:
        classifier = LogisticRegression(C=c, max_iter=2000).fit(x_train, train[1])
        scores.append(classifier.score(x_validation, validation[1]))
    return max(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", default="emoji", help="a registered embedded benchmark (built at each size)"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128, 224])
    parser.add_argument("--backbone", default="embedded:efficientnet-lite0")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--output", type=Path, help="write the table here (Markdown)")
    args = parser.parse_args()
    info = get_dataset_info(args.dataset)
    if info is None or info.builder is None:
        parser.error(f"--dataset must be an embedded benchmark built offline, got {args.dataset!r}")
    path = resolve_backbone_name(args.backbone)
    image_processor = load_backbone_image_processor(path)
    model = BigDropForImageClassification.from_backbone(path, num_labels=len(info.classes))
    model.to(memory_format=torch.channels_last)
    rows = []
    for size in args.sizes:
        accuracies, speeds = [], []
        for held_out in info.domain_names:
            splits = load_domain_dataset(args.dataset, test_domains=held_out, image_size=size, seed=args.seed)
            train = features(model, splits["train"], image_processor, size)
            validation = features(model, splits["validation"], image_processor, size)
            accuracies.append(probe(train[:2], validation[:2]))
            speeds += [train[2], validation[2]]
            print(f"{size} px, held out {held_out}: validation {100 * accuracies[-1]:.1f}%", flush=True)
        per_domain = " / ".join(f"{100 * a:.1f}" for a in accuracies)
        rows.append([str(size), f"{100 * np.mean(accuracies):.1f}", per_domain, f"{np.median(speeds):.0f}"])
    table = markdown_table(
        [
            "size (px)",
            "probe validation accuracy (%)",
            f"per held-out domain ({' / '.join(info.domain_names)})",
            "forward images/s",
        ],
        rows,
    )
    print(table)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(table + "\n")


if __name__ == "__main__":
    main()
