# Copyright 2026 The hf_bigdrop developers. Licensed under the Apache License, Version 2.0.
"""BigDrop model configuration.

This file is exported next to the weights by `save_pretrained` so that the model loads with
`trust_remote_code=True` where `hf_bigdrop` is not installed: it imports only `transformers`.
"""

from __future__ import annotations

import os

from transformers import CONFIG_MAPPING, AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import logging

logger = logging.get_logger(__name__)

POOLING_CHOICES = ("auto", "pooler", "cls", "mean", "cls_mean")
CLASSIFIER_INIT_CHOICES = ("zeros", "normal", "kaiming_uniform")
# The keys of `BigDropConfig.preprocessing`: arguments of `transformers.ViTImageProcessor`.
PREPROCESSING_KEYS = ("size", "image_mean", "image_std")
IMAGE_PROCESSOR_FILE = "preprocessor_config.json"
# Keys of the backbone's config that a BigDrop config does not save (`BigDropConfig.to_dict`).
BACKBONE_KEYS_NOT_SAVED = ("_name_or_path", "id2label", "label2id", "label_names")


class BigDropConfig(PretrainedConfig):
    r"""Configuration of [`BigDropForImageClassification`]: a pretrained vision backbone, a pooled penultimate
    representation, a very large dropout on it, and a linear classifier.

    The method is "Fine-tuning with Very Large Dropout" (Zhang & Bottou, 2024, arXiv:2403.00946): fine-tuning with
    a dropout rate of about 0.9 on the penultimate features forces the linear head to use every subset of the
    features, which keeps the redundant features that carry a model through a distribution shift.

    Args:
        backbone_config (`PretrainedConfig` or `dict`, *optional*, defaults to `ResNetConfig()`):
            Configuration of the vision backbone: any `transformers` vision model config, including
            `TimmWrapperConfig` for timm models. A dict must carry a `model_type`. Left out, it is a default
            `ResNetConfig` (a randomly initialised ResNet-50 once built); a *saved* BigDrop config must hold its own.
        dropout_rate (`float`, *optional*, defaults to 0.9):
            Probability of zeroing each pooled feature during training, in `[0, 1)`. `0.0` is plain ERM
            fine-tuning through the very same code path.
        pooling (`str`, *optional*, defaults to `"auto"`):
            How the penultimate representation is read off the backbone: `"pooler"` (the backbone's
            `pooler_output`), `"cls"` (the first token of `last_hidden_state`), `"mean"` (the mean of the patch
            tokens of `last_hidden_state`, leaving out class, distillation and register tokens, or the mean over the
            spatial positions of a feature map), `"cls_mean"` (the class token concatenated with that mean, twice
            the hidden size, as DINOv2's head), or `"auto"`, which picks what the backbone family's stock
            `*ForImageClassification` head reads: `"cls"` for ViT and DeiT, `"cls_mean"` for DINOv2, `"mean"` for
            CLIP, SigLIP, I-JEPA, SegFormer, ..., and `"pooler"` for the rest (ResNet, ConvNeXt, EfficientNet, Swin,
            BEiT, timm models, ...). The table per family is in `docs/model.md`.
        freeze_batchnorm (`bool`, *optional*, defaults to `True`):
            Keep every BatchNorm layer of the backbone in eval mode while training: running statistics stay as
            pretrained, affine parameters are still trained (the paper's `freeze_bn`).
        freeze_backbone (`bool`, *optional*, defaults to `False`):
            Train the classifier only (a linear probe); the backbone stays in eval mode without gradients.
        classifier_init (`str`, *optional*, defaults to `"zeros"`):
            How the linear head starts: `"zeros"`, `"normal"` (std `initializer_range`) or `"kaiming_uniform"`
            (PyTorch's `nn.Linear` default). A zero head is the default because it trains reliably at p=0.9: with a
            random head, the first steps push the backbone's features through a random projection, and with 90% of
            them dropped the gradients drive the pooled features to exactly zero. Measured: fine-tuning ImageNet
            EfficientNet-Lite0 at p=0.9 with a random head collapsed within about 10 steps (99.5% of the pooled
            features zero, loss stuck at ln(num_labels)) under SGD and Adam, while a zero head trained. A zero head
            gives the backbone no gradient on the first step and lets the head learn first.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the `"normal"` classifier initialisation.
        backbone_name_or_path (`str`, *optional*):
            Where the backbone weights came from (a Hub id, a local folder or an embedded name); recorded by
            [`BigDropForImageClassification.from_backbone`] for model cards.
        preprocessing (`dict`, *optional*):
            How the model's images are prepared for evaluation, as the arguments of a `ViTImageProcessor`:
            `{"size": {"height": h, "width": w}, "image_mean": [...], "image_std": [...]}` (resize to `h x w`, scale
            to `[0, 1]`, normalise). [`BigDropForImageClassification.from_backbone`] records the backbone's (with
            `hf_bigdrop` imported), the experiment runner the size it trained at. `save_pretrained` writes it as
            `preprocessor_config.json` when the folder holds no image processor, so that
            `pipeline("image-classification", model=folder)` works after any save, whatever the backbone (timm
            backbones included, whose own image processor the pipeline cannot load from a BigDrop folder).
        kwargs:
            The usual [`PretrainedConfig`] arguments: `num_labels`, `id2label`, `label2id`, `problem_type`, ...

    Example:

    ```python
    >>> from transformers import ResNetConfig
    >>> from hf_bigdrop import BigDropConfig, BigDropForImageClassification

    >>> config = BigDropConfig(backbone_config=ResNetConfig(), num_labels=7, dropout_rate=0.9)
    >>> model = BigDropForImageClassification(config)
    ```
    """

    model_type = "bigdrop"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    backbone_config: dict | PretrainedConfig | None = None
    dropout_rate: float = 0.9
    pooling: str = "auto"
    freeze_batchnorm: bool = True
    freeze_backbone: bool = False
    classifier_init: str = "zeros"
    initializer_range: float = 0.02
    backbone_name_or_path: str | None = None
    preprocessing: dict | None = None

    def __post_init__(self, **kwargs):
        # Checked before the parent builds the nested config, whose own errors would not name the argument.
        _check_backbone_config(self.backbone_config)
        super().__post_init__(**kwargs)
        self._validate_bigdrop_arguments()

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> BigDropConfig:
        """[`PretrainedConfig.from_dict`] for saved configs, which must name their backbone.

        A saved BigDrop model's weights belong to the backbone its `config.json` describes: building the default
        ResNet in its place would only fail later, on weights that do not fit.
        """
        if config_dict.get("backbone_config") is None:
            raise ValueError(
                "This BigDrop config has no `backbone_config`; a saved BigDrop model's config.json must describe its "
                "backbone (save it with `save_pretrained`, or build one with "
                "BigDropForImageClassification.from_backbone(...))."
            )
        return super().from_dict(config_dict, **kwargs)

    def to_dict(self) -> dict:
        """[`PretrainedConfig.to_dict`], without what describes the backbone's former use rather than its
        architecture: its `_name_or_path` (a path on the machine that built the model, or a cache) and its own
        classification labels (`id2label`/`label2id`, timm's `label_names`: 1,000 ImageNet names for a pretrained
        backbone, 33 KB of `config.json`), which the BigDrop head replaces with `id2label`."""
        output = super().to_dict()
        backbone = output.get("backbone_config")
        if isinstance(backbone, dict):
            for key in BACKBONE_KEYS_NOT_SAVED:
                backbone.pop(key, None)
        return output

    def _validate_bigdrop_arguments(self) -> None:
        """Raises a `ValueError` naming the bad value and the valid choices."""
        if isinstance(self.dropout_rate, bool) or not isinstance(self.dropout_rate, (int, float)):
            raise ValueError(f"`dropout_rate` must be a float in [0, 1), got {self.dropout_rate!r}.")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(
                f"`dropout_rate` must be in [0, 1), got {self.dropout_rate!r} "
                "(0.9 is the paper's very large dropout; 0.0 is plain fine-tuning)."
            )
        if self.pooling not in POOLING_CHOICES:
            raise ValueError(
                f"Unknown `pooling` {self.pooling!r}; valid choices are {list(POOLING_CHOICES)}."
            )
        if self.classifier_init not in CLASSIFIER_INIT_CHOICES:
            raise ValueError(
                f"Unknown `classifier_init` {self.classifier_init!r}; valid choices are "
                f"{list(CLASSIFIER_INIT_CHOICES)}."
            )
        _check_preprocessing(self.preprocessing)

    def build_image_processor(self):
        """The `ViTImageProcessor` of `preprocessing` (the model's evaluation transform), or `None` if none is
        recorded."""
        if self.preprocessing is None:
            return None
        from transformers import ViTImageProcessor

        return ViTImageProcessor(**self.preprocessing)

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs):
        """[`PretrainedConfig.save_pretrained`], and the image processor of `preprocessing` beside `config.json`
        when the folder holds none (one saved by the user or the Trainer is kept).

        The model's `save_pretrained` saves its config this way, before it uploads with `push_to_hub=True`: the
        image processor is part of every saved or pushed model.
        """
        super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        if os.path.isfile(os.path.join(save_directory, IMAGE_PROCESSOR_FILE)):
            return
        processor = self.build_image_processor()
        if processor is None:
            logger.warning(
                "No image processor saved in %s: the backbone came without one (e.g. a model instance built in "
                "code), so `pipeline('image-classification', model=...)` cannot load this folder. Save the "
                "backbone's processor beside it (`processor.save_pretrained(folder)`), or give `from_backbone(..., "
                "preprocessing={'size': {'height': 224, 'width': 224}, 'image_mean': [...], 'image_std': [...]})`.",
                save_directory,
            )
            return
        processor.save_pretrained(save_directory)


def _check_backbone_config(backbone_config) -> None:
    """`None` (the default backbone), a config, or a dict whose `model_type` transformers knows."""
    if backbone_config is None or isinstance(backbone_config, PretrainedConfig):
        return
    if not isinstance(backbone_config, dict):
        raise ValueError(f"`backbone_config` must be a PretrainedConfig or a dict, got {backbone_config!r}.")
    model_type = backbone_config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ValueError(
            f"A `backbone_config` dict needs the `model_type` of a transformers model ('resnet', 'vit', "
            f"'timm_wrapper', ...), got model_type={model_type!r}."
        )


def _check_preprocessing(preprocessing) -> None:
    """`None`, or `{"size": {"height": h, "width": w}, "image_mean": [...], "image_std": [...]}`."""
    if preprocessing is None:
        return
    expected = f"a dict with the keys {list(PREPROCESSING_KEYS)}"
    if not isinstance(preprocessing, dict) or sorted(preprocessing) != sorted(PREPROCESSING_KEYS):
        raise ValueError(f"`preprocessing` must be {expected}, got {preprocessing!r}.")
    size = preprocessing["size"]
    if not (
        isinstance(size, dict)
        and sorted(size) == ["height", "width"]
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size.values())
    ):
        raise ValueError(
            f'`preprocessing["size"]` must be {{"height": h, "width": w}} in whole pixels, got {size!r}.'
        )
    mean, std = preprocessing["image_mean"], preprocessing["image_std"]
    for name, values, positive in (("image_mean", mean, False), ("image_std", std, True)):
        # `abs(v) < inf` is False for NaN too.
        if not (
            isinstance(values, (list, tuple))
            and values
            and all(_is_number(v) and abs(v) < float("inf") and (v > 0 or not positive) for v in values)
        ):
            kind = "positive finite numbers" if positive else "finite numbers"
            raise ValueError(f"`preprocessing[{name!r}]` must be a list of {kind}, got {values!r}.")
    if len(mean) != len(std):
        raise ValueError(
            f"`preprocessing` has {len(mean)} image_mean value(s) and {len(std)} image_std value(s): one per channel."
        )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


__all__ = ["BigDropConfig", "CLASSIFIER_INIT_CHOICES", "POOLING_CHOICES", "PREPROCESSING_KEYS"]
