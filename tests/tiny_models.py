"""The tiny random backbones every test builds: their configs, BigDrop models over them, and tiny stock vision
classifiers of each backbone family saved as local checkpoints (no network)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    ConvNextConfig,
    ConvNextForImageClassification,
    PreTrainedModel,
    ResNetConfig,
    ResNetForImageClassification,
    TimmWrapperConfig,
    TimmWrapperForImageClassification,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
)

from hf_bigdrop import BigDropConfig, BigDropForImageClassification

NUM_LABELS = 3
IMAGE_SIZE = 32

#: Config arguments of the tiny convolutional backbone (ResNet; also BiT, RegNet, ConvNeXt stages).
TINY_CONV = {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1]}
#: Config arguments of the tiny transformer backbone (ViT and its relatives), for `IMAGE_SIZE` pixels.
TINY_VIT = {
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "image_size": IMAGE_SIZE,
    "patch_size": 8,
}


def tiny_config(**kwargs) -> BigDropConfig:
    """A `BigDropConfig` over the tiny ResNet, with `NUM_LABELS` classes unless `kwargs` say otherwise."""
    return BigDropConfig(backbone_config=ResNetConfig(**TINY_CONV), **{"num_labels": NUM_LABELS, **kwargs})


def tiny_model(**kwargs) -> BigDropForImageClassification:
    """A randomly initialised `BigDropForImageClassification` of `tiny_config(**kwargs)`."""
    return BigDropForImageClassification(tiny_config(**kwargs))


def _resnet() -> PreTrainedModel:
    return ResNetForImageClassification(ResNetConfig(**TINY_CONV, num_labels=NUM_LABELS))


def _vit() -> PreTrainedModel:
    return ViTForImageClassification(ViTConfig(**TINY_VIT, num_labels=NUM_LABELS))


def _convnext() -> PreTrainedModel:
    return ConvNextForImageClassification(
        ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=NUM_LABELS)
    )


def _timm() -> PreTrainedModel:
    # `test_efficientnet` is one of timm's tiny test architectures: created locally, nothing downloaded.
    return TimmWrapperForImageClassification(
        TimmWrapperConfig(architecture="test_efficientnet", num_labels=NUM_LABELS)
    )


FAMILIES = {"resnet": _resnet, "vit": _vit, "convnext": _convnext, "timm": _timm}


def build_classifier(family: str, seed: int = 0) -> PreTrainedModel:
    """A randomly initialised `*ForImageClassification` of `family`, in eval mode, with non-trivial BN stats."""
    torch.manual_seed(seed)
    model = FAMILIES[family]()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def save_classifier(family: str, folder: Path, seed: int = 0) -> PreTrainedModel:
    """Saves a tiny classifier of `family` (and a matching image processor) to `folder`; returns the model."""
    model = build_classifier(family, seed)
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(folder)
    return model


def source_classifier_head(model: PreTrainedModel) -> torch.nn.Linear:
    """The stock model's final linear layer, whatever the family calls it."""
    if hasattr(model, "timm_model"):
        return model.timm_model.get_classifier()
    head = model.classifier
    return head[-1] if isinstance(head, torch.nn.Sequential) else head


def pixel_batch(batch_size: int = 2, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
