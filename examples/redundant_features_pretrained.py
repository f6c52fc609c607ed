#!/usr/bin/env python
"""The redundant-features experiment at the scale of a pretrained network, on the library's own training path.

`BigDropForImageClassification.from_backbone` around a pretrained backbone (default: the embedded ImageNet
EfficientNet-Lite0) is fine-tuned by `BigDropTrainer` on the embedded `styles` photos, one style held out, with a
planted cue: a coloured frame whose colour is the image's class colour in a share `a` of the training images
(`--cue_agreements`) and another class's colour (drawn uniformly) in the others; `a = 0` is the control, every frame
grey (no cue). Everything but the frame is the library's path, as `hf_bigdrop.experiment.runner` wires it:
`load_domain_dataset("styles", ...)` (DomainBed splits), `build_trainer` (the DomainBed transforms of
`apply_transforms`, `DomainCollator`, domain-balanced batches of `per_domain_batch_size` images of every training
style, per-domain evaluation sets), `BigDropTrainingArguments` (AdamW, the classifier's learning-rate multiplier) and
selection of the checkpoint with the best training-domain validation accuracy (`eval_val_accuracy`, the cue as
trained; `load_best_model_at_end`).

The frame is painted by `CueFrame`, a batch transform composed after the library's: the image is augmented,
converted and normalised first, then its border is overwritten, so augmentation (crops, colour jitter, grey-scale)
never hides or changes the cue. Which class's colour each image gets is a `cue` column of the dataset, drawn once
per run from the seed.

Measured at the selected checkpoint: accuracy with the cue as trained, removed (grey) and flipped (another class's
colour) on training-domain validation, how often a flipped cue decides the prediction, accuracy on the held-out
style with the cue as trained and removed, a linear probe of the fine-tuned features for the class (cue removed),
and how many penultimate units hold 90% of the head. A probe of the pretrained features (no fine-tuning) is the
reference. See docs/redundant_features.md.

    python examples/redundant_features_pretrained.py --seeds 0 --dropout_rates 0 0.9 --cue_agreements 0 0.9 \\
        --examples_per_class 40 --max_steps 300 --workers 2 --cpu_threads 1

Writes to `output_dir`: `results.csv` (one row per run), `results.md` (mean ± std over seeds) and, per run,
`runs/<cue>_<p>_<seed>/` with its `trainer_state.json` (the evaluation log) and `measurements.json`.
"""

from __future__ import annotations

import colorsys
import csv
import itertools
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import torch
from torch import nn
from transformers import HfArgumentParser
from transformers.trainer_utils import set_seed

from hf_bigdrop import BigDropForImageClassification
from hf_bigdrop.backbones import load_backbone_image_processor, resolve_backbone_name
from hf_bigdrop.data import (
    STYLES_DOMAINS,
    DomainCollator,
    apply_transforms,
    image_spec_from_processor,
    load_domain_dataset,
)
from hf_bigdrop.evaluation import per_domain_eval_sets
from hf_bigdrop.experiment.arguments import DataArguments, ModelArguments
from hf_bigdrop.experiment.collect import summarize
from hf_bigdrop.experiment.runner import build_trainer, training_image_size
from hf_bigdrop.metric_keys import metric_key
from hf_bigdrop.tables import markdown_table, mean_std_text
from hf_bigdrop.training_args import BigDropTrainingArguments

# Grey frame: the cue removed (the border stays, its colour says nothing). Indexes the palette's last row.
NO_CUE = -1
# What each split is measured with: the cue as trained, removed (grey), flipped (always another class's colour).
CONDITIONS = {"validation": ("as_trained", "no_cue", "flipped"), "test": ("as_trained", "no_cue")}
METRICS = (
    "validation",
    "validation_no_cue",
    "validation_flipped",
    "flipped_follows_cue",
    "ood",
    "ood_no_cue",
    "probe_validation",
    "probe_ood",
    "head_units",
)
TITLES = {
    "validation": "validation, cue as trained",
    "validation_no_cue": "validation, cue removed",
    "validation_flipped": "validation, cue flipped",
    "flipped_follows_cue": "cue flipped: predicts the cue's class",
    "ood": "held-out style, cue as trained",
    "ood_no_cue": "held-out style, cue removed (o.o.d.)",
    "probe_validation": "probe on features, validation (no cue)",
    "probe_ood": "probe on features, held-out style (no cue)",
    "head_units": "units holding 90% of the head",
}
SCHEDULES = ("linear", "constant")


@dataclass
class CueArguments:
    """The grid (cue agreement x dropout rate x seed), the data, and the training protocol of every run."""

    output_dir: str = field(
        default="runs/redundant_features_pretrained",
        metadata={"help": "Where the CSV, the Markdown table and one folder per run go."},
    )
    seeds: list[int] = field(
        default_factory=lambda: [0, 1, 2], metadata={"help": "One run per seed and setting."}
    )
    dropout_rates: list[float] = field(
        default_factory=lambda: [0.0, 0.5, 0.9],
        metadata={"help": "Dropout rates on the penultimate features; 0 = plain fine-tuning (ERM)."},
    )
    cue_agreements: list[float] = field(
        default_factory=lambda: [0.0, 0.8, 0.9],
        metadata={
            "help": "The knob, one setting each: the share of training images whose frame has their own class's "
            "colour (exactly round(a x N) images; the others get another class's colour, drawn uniformly). "
            "0 = no cue: every frame is grey (the control)."
        },
    )
    cue_width: int = field(default=4, metadata={"help": "Width of the coloured frame, in pixels."})
    backbone: str = field(
        default="embedded:efficientnet-lite0",
        metadata={"help": "Pretrained backbone (embedded name, local folder or Hub id)."},
    )
    test_domain: str = field(default="sketch", metadata={"help": "The held-out style of `styles`."})
    image_size: int = field(default=64, metadata={"help": "Side of the stored `styles` images, in pixels."})
    examples_per_class: int = field(
        default=100,
        metadata={"help": "`styles` crops per class and style (its builder's examples_per_class)."},
    )
    max_per_domain: int | None = field(
        default=None, metadata={"help": "Keep at most this many images per style (quick runs); default all."}
    )
    max_steps: int = field(default=300, metadata={"help": "Training steps of every run."})
    eval_steps: int = field(
        default=50,
        metadata={
            "help": "Training-domain validation (cue as trained), and a checkpoint, every this many steps."
        },
    )
    per_domain_batch_size: int = field(
        default=16, metadata={"help": "Images of every training style a step."}
    )
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate of the backbone."})
    classifier_lr_multiplier: float = field(
        default=10.0, metadata={"help": "The classifier's learning rate is this times learning_rate."}
    )
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay."})
    lr_scheduler_type: str = field(
        default="linear", metadata={"help": f"Learning-rate schedule: one of {list(SCHEDULES)}."}
    )
    probe_l2: float = field(
        default=1e-3,
        metadata={"help": "L2 penalty of the linear probe (logistic regression on standardised features)."},
    )
    probe_steps: int = field(default=100, metadata={"help": "L-BFGS iterations of the linear probe."})
    use_cpu: bool = field(
        default=False, metadata={"help": "Train on CPU even if an accelerator is available."}
    )
    workers: int = field(default=1, metadata={"help": "Runs at a time, each in its own process."})
    cpu_threads: int = field(
        default=1,
        metadata={"help": "torch CPU threads of each run (on a busy CPU one thread per run was fastest)."},
    )
    channels_last: bool = field(
        default=True, metadata={"help": "channels_last memory format (faster convolutions)."}
    )
    keep_checkpoints: bool = field(
        default=False,
        metadata={"help": "Keep each run's checkpoints (default: removed once it is measured)."},
    )

    def __post_init__(self):
        _check_list("seeds", self.seeds, lambda s: s >= 0, ">= 0")
        _check_list("dropout_rates", self.dropout_rates, lambda p: 0 <= p < 1, "in [0, 1)")
        _check_list("cue_agreements", self.cue_agreements, lambda a: 0 <= a <= 1, "in [0, 1]")
        if self.test_domain not in STYLES_DOMAINS:
            raise ValueError(f"test_domain={self.test_domain!r} is not one of {list(STYLES_DOMAINS)}")
        if self.lr_scheduler_type not in SCHEDULES:
            raise ValueError(f"lr_scheduler_type={self.lr_scheduler_type!r} is not one of {list(SCHEDULES)}")
        positive = {
            "image_size": self.image_size,
            "examples_per_class": self.examples_per_class,
            "max_steps": self.max_steps,
            "eval_steps": self.eval_steps,
            "per_domain_batch_size": self.per_domain_batch_size,
            "learning_rate": self.learning_rate,
            "classifier_lr_multiplier": self.classifier_lr_multiplier,
            "probe_steps": self.probe_steps,
            "workers": self.workers,
            "cpu_threads": self.cpu_threads,
        }
        bad = {name: value for name, value in positive.items() if not value > 0}
        if bad:
            raise ValueError(f"these arguments must be > 0: {bad}")
        if self.max_per_domain is not None and self.max_per_domain < 1:
            raise ValueError(f"max_per_domain={self.max_per_domain} must be >= 1 (or unset)")
        if self.eval_steps > self.max_steps:
            raise ValueError(f"eval_steps={self.eval_steps} must be <= max_steps={self.max_steps}")
        if not 0 < 2 * self.cue_width < self.image_size:
            raise ValueError(
                f"cue_width={self.cue_width} must be >= 1 and leave part of a {self.image_size}-px image"
            )
        if self.weight_decay < 0 or self.probe_l2 < 0:
            raise ValueError(f"weight_decay={self.weight_decay} and probe_l2={self.probe_l2} must be >= 0")


def _check_list(name: str, values: list, valid, description: str) -> None:
    bad = [value for value in values if not valid(value)]
    if not values or bad:
        raise ValueError(f"{name}={values} must be a non-empty list of values {description} (bad: {bad})")


# ------------------------------------------------------------------------------------------------ the cue
def cue_palette(num_classes: int) -> torch.Tensor:
    """One saturated colour per class (hues evenly spaced), then grey for "no cue": uint8 `(num_classes + 1, 3)`."""
    colours = [colorsys.hsv_to_rgb(k / num_classes, 1.0, 1.0) for k in range(num_classes)] + [(0.5, 0.5, 0.5)]
    return torch.tensor([[round(255 * c) for c in colour] for colour in colours], dtype=torch.uint8)


def draw_cues(
    labels: torch.Tensor, agreement: float, num_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """The class whose colour each image's frame gets (`NO_CUE`: grey).

    Exactly `round(agreement * N)` images, chosen at random, get their own class; every other image gets a class
    drawn uniformly among the other classes. `agreement = 0` means no cue at all (every frame grey).
    """
    if agreement == 0:
        return torch.full_like(labels, NO_CUE)
    num = len(labels)
    agree = torch.zeros(num, dtype=torch.bool)
    agree[torch.randperm(num, generator=generator)[: round(agreement * num)]] = True
    other = (labels + torch.randint(1, num_classes, (num,), generator=generator)) % num_classes
    return torch.where(agree, labels, other)


def flipped_cues(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Every frame has the colour of another class (drawn uniformly): the cue always lies."""
    return (labels + torch.randint(1, num_classes, labels.shape, generator=generator)) % num_classes


def cue_columns(
    splits: datasets.DatasetDict, agreement: float, seed: int
) -> dict[tuple[str, str], datasets.Dataset]:
    """Each split under each condition, with its `cue` column: `("train", "as_trained")` is what the run trains on;
    `("train", "no_cue")` feeds the probe; `CONDITIONS` lists the measured ones.

    The seed fixes every assignment; the training cues are drawn first, so they depend on the seed and the training
    split alone.
    """
    generator = torch.Generator().manual_seed(seed)
    num_classes = splits["train"].features["label"].num_classes
    labels = {name: torch.tensor(splits[name]["label"]) for name in ("train", "validation", "test")}
    cues = {("train", "as_trained"): draw_cues(labels["train"], agreement, num_classes, generator)}
    for split in CONDITIONS:
        cues[split, "as_trained"] = draw_cues(labels[split], agreement, num_classes, generator)
        cues[split, "no_cue"] = torch.full_like(labels[split], NO_CUE)
    cues["validation", "flipped"] = flipped_cues(labels["validation"], num_classes, generator)
    cues["train", "no_cue"] = torch.full_like(labels["train"], NO_CUE)
    return {key: splits[key[0]].add_column("cue", value.tolist()) for key, value in cues.items()}


class CueFrame:
    """A batch transform for `Dataset.with_transform`: the library's transform, then a coloured frame.

    The inner transform (`hf_bigdrop.data.DomainBatchTransform`, set by `apply_transforms`) decodes, augments and
    normalises each image; the frame is painted afterwards, in the class colour `palette[cue]` normalised like the
    pixels (`NO_CUE` = -1: the grey last row), so no augmentation can crop it away or change its colour.

    Args:
        inner (`Callable`): the batch transform that makes `pixel_values`.
        palette (`torch.Tensor`): uint8 `(num_classes + 1, 3)`, from `cue_palette`.
        width (`int`): the frame's width in pixels.
        mean (`tuple[float, ...]`): the normalisation mean of the inner transform.
        std (`tuple[float, ...]`): its standard deviation.
    """

    def __init__(self, inner, palette: torch.Tensor, width: int, mean, std):
        self.inner, self.width = inner, width
        mean, std = torch.tensor(mean)[None, :], torch.tensor(std)[None, :]
        self.colours = (palette.float() / 255.0 - mean) / std  # (num_classes + 1, 3), normalised

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        output = self.inner(batch)
        output["pixel_values"] = [
            paint_frame(pixels, self.colours[cue], self.width)
            for pixels, cue in zip(output["pixel_values"], batch["cue"])
        ]
        return output


def paint_frame(pixels: torch.Tensor, colour: torch.Tensor, width: int) -> torch.Tensor:
    """A copy of `pixels` `(3, H, W)` with a `width`-pixel border of `colour` `(3,)`."""
    framed = pixels.clone()
    colour = colour.to(pixels.dtype)[:, None, None]
    framed[:, :width, :] = colour
    framed[:, -width:, :] = colour
    framed[:, :, :width] = colour
    framed[:, :, -width:] = colour
    return framed


def with_frames(dataset: datasets.Dataset, frame: dict) -> datasets.Dataset:
    """`dataset` (transformed by `apply_transforms`, with a `cue` column) with `CueFrame` composed after its
    transform; `frame` holds `CueFrame`'s other arguments."""
    inner = dataset.format["format_kwargs"].get("transform")
    if inner is None:
        raise ValueError("with_frames needs a dataset transformed by apply_transforms")
    return dataset.with_transform(CueFrame(inner, **frame))


# ------------------------------------------------------------------------------------------------ one run
def load_splits(args: CueArguments) -> datasets.DatasetDict:
    """`styles` with `args.test_domain` held out, split with seed 0, so that every run sees the same split (the
    run's seed draws the cue, the batches, the augmentation and the dropout masks). `load_domain_dataset` directly,
    not `runner.load_splits`: the benchmark's `examples_per_class` is a builder argument."""
    return load_domain_dataset(
        "styles",
        test_domains=[args.test_domain],
        image_size=args.image_size,
        builder_kwargs={"examples_per_class": args.examples_per_class},
        max_per_domain=args.max_per_domain,
        seed=0,
    )


def data_arguments(args: CueArguments) -> DataArguments:
    """The library's data arguments of these runs (DomainBed augmentation at the stored image size). The splits stay
    lazily transformed `datasets` (no images kept in memory): `with_frames` composes the cue frame after their
    transform."""
    return DataArguments(
        dataset="styles",
        test_domains=[args.test_domain],
        image_size=args.image_size,
        augmentation="domainbed",
        max_per_domain=args.max_per_domain,
        decode_train_images=False,
        preprocess_eval_images=False,
        fit_examples_per_domain=0,
    )


def training_arguments(args: CueArguments, output_dir: str, seed: int) -> BigDropTrainingArguments:
    """The library's protocol (as `examples/configs/styles.yaml`): AdamW, the classifier's learning rate x10,
    domain-balanced batches, an evaluation and a checkpoint every `eval_steps`, the best training-domain validation
    checkpoint loaded at the end."""
    return BigDropTrainingArguments(
        output_dir=output_dir,
        optim="adamw_torch",
        learning_rate=args.learning_rate,
        classifier_lr_multiplier=args.classifier_lr_multiplier,
        weight_decay=args.weight_decay,
        lr_scheduler_type=args.lr_scheduler_type,
        max_steps=args.max_steps,
        per_domain_batch_size=args.per_domain_batch_size,
        eval_strategy="steps",
        eval_steps=args.eval_steps,
        save_strategy="steps",
        save_steps=args.eval_steps,
        save_total_limit=1,
        load_best_model_at_end=True,
        logging_steps=args.eval_steps,
        dataloader_num_workers=0,
        channels_last=args.channels_last,
        use_cpu=args.use_cpu,
        seed=seed,
        report_to="none",
        disable_tqdm=True,
        save_only_model=True,
    )


@torch.no_grad()
def pooled_features(model: nn.Module, dataset: datasets.Dataset, batch_size: int = 256) -> torch.Tensor:
    """Pooled penultimate features (before dropout) of a transformed split, in eval mode, on the CPU."""
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=DomainCollator())
    device = next(model.parameters()).device
    chunks = []
    for batch in loader:
        pixels = batch["pixel_values"].to(device).contiguous(memory_format=torch.channels_last)
        chunks.append(model.extract_features(pixels)[0].float().cpu())
    return torch.cat(chunks)


@torch.no_grad()
def head_units(classifier: nn.Linear, features: torch.Tensor, share: float = 0.9) -> int:
    """How many penultimate units hold `share` of the head's logit variance, `sum_j var_j * |W_j|^2` with the
    head's weights centred over classes (a constant added to every class's weight changes no prediction)."""
    weight = classifier.weight.float().cpu()
    weight = weight - weight.mean(0, keepdim=True)
    energy = features.var(0) * weight.square().sum(0)
    cumulative = torch.cumsum(torch.sort(energy, descending=True).values, 0)
    return int(torch.searchsorted(cumulative, share * cumulative[-1]).item()) + 1


def probe(
    features: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    num_classes: int,
    l2: float,
    steps: int,
) -> dict[str, float]:
    """A linear probe of features for the class: multinomial logistic regression on standardised training
    features (zero start, L-BFGS, L2 `l2`), measured (%) on `validation` and `test` (as `probe_ood`)."""
    mean, std = features["train"].mean(0), features["train"].std(0) + 1e-6
    standard = {split: (value - mean) / std for split, value in features.items()}
    linear = nn.Linear(standard["train"].shape[1], num_classes)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=steps)

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(linear(standard["train"]), labels["train"])
        loss = loss + l2 * linear.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return {
            f"probe_{name}": 100.0
            * (linear(standard[split]).argmax(1) == labels[split]).float().mean().item()
            for name, split in (("validation", "validation"), ("ood", "test"))
        }


class Run:
    """One (cue agreement, dropout rate, seed): the library's trainer on the framed splits, and the measurements."""

    def __init__(self, args: CueArguments, splits: datasets.DatasetDict, *, cue_agreement: float, seed: int):
        self.args, self.seed, self.cue_agreement = args, seed, cue_agreement
        self.data = data_arguments(args)
        self.backbone = resolve_backbone_name(args.backbone)
        self.image_processor = load_backbone_image_processor(self.backbone)
        spec = image_spec_from_processor(self.image_processor, training_image_size(self.data))
        self.num_classes = splits["train"].features["label"].num_classes
        self.class_names = splits["train"].features["label"].names
        self.frame = {
            "palette": cue_palette(self.num_classes),
            "width": args.cue_width,
            "mean": spec.mean,
            "std": spec.std,
        }
        self.conditions = cue_columns(splits, cue_agreement, seed)
        self.labels = {s: torch.tensor(splits[s]["label"]) for s in ("train", "validation", "test")}

    def model(self, dropout_rate: float) -> BigDropForImageClassification:
        """A fresh `BigDropForImageClassification` around the backbone (the library's defaults: zero head, frozen
        batch-norm statistics)."""
        model_args = ModelArguments(backbone=self.args.backbone, dropout_rate=dropout_rate)
        return BigDropForImageClassification.from_backbone(
            self.backbone,
            num_labels=self.num_classes,
            id2label=dict(enumerate(self.class_names)),
            backbone_name_or_path=self.args.backbone,
            **model_args.config_kwargs(),
        )

    def _transformed(self, dataset: datasets.Dataset) -> datasets.Dataset:
        """`dataset` with the library's evaluation transform (`apply_transforms`), then the frame."""
        transformed = apply_transforms(
            dataset,
            self.image_processor,
            train=False,
            recipe=self.data.augmentation,
            image_size=training_image_size(self.data),
        )
        return with_frames(transformed, self.frame)

    def evaluation_set(self, split: str, condition: str) -> datasets.Dataset:
        """One split under one condition, with the evaluation transform and the frame."""
        return self._transformed(self.conditions[split, condition])

    def trainer(self, model: nn.Module, output_dir: str):
        """`build_trainer` on the training split and the per-domain validation sets, both with the cue as trained
        (the held-out style is measured once, at the selected checkpoint)."""
        splits = datasets.DatasetDict(
            train=self.conditions["train", "as_trained"],
            validation=self.conditions["validation", "as_trained"],
        )
        training_args = training_arguments(self.args, output_dir, self.seed)
        trainer = build_trainer(model, splits, self.image_processor, self.data, training_args)
        trainer.train_dataset = with_frames(trainer.train_dataset, self.frame)
        trainer.eval_dataset = {name: with_frames(d, self.frame) for name, d in trainer.eval_dataset.items()}
        return trainer

    def train(self, dropout_rate: float, output_dir: str) -> dict[str, float]:
        """Fine-tunes, then measures the selected checkpoint; returns the row of this run."""
        start = time.perf_counter()
        set_seed(self.seed)
        trainer = self.trainer(self.model(dropout_rate), output_dir)
        trainer.train()
        selected = trainer.select_models()["live"].step
        measured = self.measure(trainer)
        trainer.save_state()  # trainer_state.json: the evaluation log
        if not self.args.keep_checkpoints:
            for folder in Path(output_dir).glob("checkpoint-*"):
                shutil.rmtree(folder)
        row = {
            "cue_agreement": self.cue_agreement,
            "setting": "fine-tuned",
            "dropout_rate": dropout_rate,
            "seed": self.seed,
            "steps": self.args.max_steps,
            "selected_step": selected,
        }
        row |= measured | {"seconds": time.perf_counter() - start}
        Path(output_dir, "measurements.json").write_text(json.dumps(row, indent=1))
        return row

    def measure(self, trainer) -> dict[str, float]:
        """Every measurement of the trainer's model (the selected checkpoint). Accuracies (%) with the cue as trained,
        removed and flipped are the Trainer's evaluation (`eval_<condition>_val_accuracy`: the mean over training
        styles); how often a flipped cue decides is over all validation images."""
        results = {}
        for split, group, name in (("validation", "val", "validation"), ("test", "test", "ood")):
            for condition in CONDITIONS[split]:
                sets = per_domain_eval_sets(datasets.DatasetDict({split: self.conditions[split, condition]}))
                sets = {key: self._transformed(d) for key, d in sets.items()}
                prefix = f"eval_{condition}"
                metrics = trainer.evaluate(sets, metric_key_prefix=prefix)
                suffix = "" if condition == "as_trained" else f"_{condition}"
                results[f"{name}{suffix}"] = 100.0 * metrics[metric_key(group, prefix=prefix)]
        model = trainer.model
        flipped = pooled_features(model, self.evaluation_set("validation", "flipped"))
        predictions = model.classifier(flipped.to(model.classifier.weight.device)).argmax(1).cpu()
        cues = torch.tensor(self.conditions["validation", "flipped"]["cue"])
        results["flipped_follows_cue"] = 100.0 * (predictions == cues).float().mean().item()
        features = self.no_cue_features(model)
        results["head_units"] = float(head_units(model.classifier, features["validation"]))
        return results | probe(
            features, self.labels, self.num_classes, self.args.probe_l2, self.args.probe_steps
        )

    def no_cue_features(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Features of every split with grey frames (the probe's input)."""
        return {
            s: pooled_features(model, self.evaluation_set(s, "no_cue"))
            for s in ("train", "validation", "test")
        }

    def reference(self) -> dict[str, float]:
        """The pretrained features' probe (no fine-tuning): the same for every cue agreement and seed."""
        model = self.model(0.0)
        if self.args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        measured = probe(
            self.no_cue_features(model),
            self.labels,
            self.num_classes,
            self.args.probe_l2,
            self.args.probe_steps,
        )
        row = {
            "cue_agreement": math.nan,
            "setting": "pretrained features",
            "dropout_rate": 0.0,
            "seed": self.seed,
        }
        row |= {"steps": 0, "selected_step": 0} | {m: math.nan for m in METRICS} | measured
        return row | {"seconds": 0.0}


# ------------------------------------------------------------------------------------------------ the grid
def run_name(cue_agreement: float, dropout_rate: float, seed: int) -> str:
    return f"cue{cue_agreement:g}_p{dropout_rate:g}_seed{seed}"


_WORKER: dict = {}


def _start_worker(args: CueArguments) -> None:
    torch.set_num_threads(args.cpu_threads)
    _WORKER.update(args=args, splits=load_splits(args))


def _run_job(job: tuple[float, float, int]) -> dict:
    cue_agreement, dropout_rate, seed = job
    args = _WORKER["args"]
    run = Run(args, _WORKER["splits"], cue_agreement=cue_agreement, seed=seed)
    output_dir = str(Path(args.output_dir, "runs", run_name(*job)))
    return run.train(dropout_rate, output_dir)


def run_grid(args: CueArguments) -> list[dict]:
    """Every (cue agreement, dropout rate, seed): one fine-tuning run, `args.workers` at a time; then the probe of
    the pretrained features (one row: it sees no cue and trains nothing)."""
    # seed first: an interrupted grid has whole seeds
    jobs = [(a, p, s) for s, a, p in itertools.product(args.seeds, args.cue_agreements, args.dropout_rates)]
    threads = torch.get_num_threads()
    if args.workers == 1:
        _start_worker(args)
        results = map(_run_job, jobs)
    else:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(
            args.workers, initializer=_start_worker, initargs=(args,)
        )
        results = pool.imap(_run_job, jobs)
    rows = []
    try:
        for job, row in zip(jobs, results):
            rows.append(row)
            print(
                f"{run_name(*job)}: {row['steps']} steps in {row['seconds']:.0f} s, selected step "
                f"{row['selected_step']}, o.o.d. no cue {row['ood_no_cue']:.1f}%",
                flush=True,
            )
    finally:
        if args.workers > 1:
            pool.close()
            pool.join()
    torch.set_num_threads(args.cpu_threads)
    try:
        splits = _WORKER.get("splits") or load_splits(args)
        rows.append(Run(args, splits, cue_agreement=0.0, seed=args.seeds[0]).reference())
    finally:
        torch.set_num_threads(threads)
    return rows


# ------------------------------------------------------------------------------------------------ the report
def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation (ddof 1; undefined, NaN, for one seed) over seeds, per (cue agreement, setting, dropout rate)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row["setting"], row["cue_agreement"], row["dropout_rate"])
        groups.setdefault(key, []).append(row)
    summary = []
    for (setting, cue, rate), group in groups.items():
        entry = {"setting": setting, "cue_agreement": cue, "dropout_rate": rate, "seeds": len(group)}
        for metric in METRICS:
            cell = summarize([row[metric] for row in group])  # the std of one seed is undefined (NaN), not 0
            entry[metric], entry[f"{metric}_std"] = cell.mean, cell.spread
        summary.append(entry)
    order = {"pretrained features": 1}
    return sorted(summary, key=lambda e: (order.get(e["setting"], 0), e["cue_agreement"], e["dropout_rate"]))


def summary_table(summary: list[dict]) -> str:
    """One line per setting: every measurement as mean ± std over seeds (— where it does not apply)."""
    rows = []
    for entry in summary:
        if entry["setting"] == "pretrained features":
            cue, setting = "—", "pretrained features, no fine-tuning"
        else:
            cue = f"{entry['cue_agreement']:g}" if entry["cue_agreement"] else "no cue"
            setting = f"p={entry['dropout_rate']:g}"
        cells = [mean_std_text(entry[m], entry[f"{m}_std"]) for m in METRICS]
        rows.append([cue, setting, *cells])
    return markdown_table(["cue agreement", "setting", *(TITLES[m] for m in METRICS)], rows)


def report(args: CueArguments, rows: list[dict], seconds: float) -> tuple[str, list[dict]]:
    """Writes `results.csv` and `results.md` into `args.output_dir`; returns the printed text and the summary."""
    summary = summarise(rows)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    heading = (
        f"Redundant features, pretrained network on the library's path: {args.backbone} fine-tuned by BigDropTrainer "
        f"on styles at {args.image_size} px ({args.examples_per_class} crops per class and style"
        + (f", at most {args.max_per_domain} per style" if args.max_per_domain else "")
        + f"), {args.test_domain} held out, a {args.cue_width}-px frame in a class colour that agrees with the label "
        f"in a share {', '.join(f'{a:g}' for a in args.cue_agreements)} of training images (0 = grey, no cue); "
        f"AdamW {args.learning_rate:g} (head x{args.classifier_lr_multiplier:g}), {args.lr_scheduler_type} schedule, "
        f"{args.max_steps} steps of {args.per_domain_batch_size} images per style; the best training-domain "
        f"validation checkpoint (cue as trained, every {args.eval_steps} steps); seeds {args.seeds}; accuracies in "
        f"%, mean ± std over seeds (ddof 1); {seconds:.0f} s of wall time."
    )
    table = summary_table(summary)
    with (output_dir / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (output_dir / "results.md").write_text(f"{heading}\n\n{table}\n\nArguments: {asdict(args)}\n")
    return f"{heading}\n\n{table}", summary


def main(argv: list[str] | None = None) -> list[dict]:
    """Parses the arguments, runs the grid and writes the report; returns the summary."""
    argv = sys.argv[1:] if argv is None else argv
    (args,) = HfArgumentParser(
        CueArguments, description=__doc__.split("\n\n")[0]
    ).parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    start = time.perf_counter()
    rows = run_grid(args)
    seconds = time.perf_counter() - start
    text, summary = report(args, rows, seconds)
    print(f"\n{text}\n\n{len(rows)} rows in {seconds:.1f} s; written to {args.output_dir}/")
    return summary


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:  # a bad argument: one line that names it, not a traceback
        sys.exit(f"redundant_features_pretrained.py: error: {error}")
