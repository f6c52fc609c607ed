# Copyright 2026 The hf_bigdrop developers. Licensed under the Apache License, Version 2.0.
"""Which feature of a backbone BigDrop reads: the pooling per backbone family, the feature width, the pooling itself.

Exported next to the weights with `modeling_bigdrop.py`, which imports it: like it, it imports only `torch` and,
relatively, `configuration_bigdrop`.
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration_bigdrop import BigDropConfig

# Pooling that `pooling="auto"` picks, per backbone `model_type`: the feature that the family's stock
# `*ForImageClassification` head reads; docs/model.md has the table, what each head reads, and the deliberate
# differences (CvT, PoolFormer and SwiftFormer heads first normalise with a layer of their own, which BigDrop lacks).
# ViT-style heads read the class token and never train the optional dense + tanh `pooler`, so it is not built.
AUTO_POOLING_BY_MODEL_TYPE: dict[str, str] = {
    **dict.fromkeys(("vit", "deit", "vit_msn", "vit_mae", "pvt", "cvt"), "cls"),
    **dict.fromkeys(("dinov2", "dinov2_with_registers"), "cls_mean"),
    **dict.fromkeys(("clip_vision_model", "siglip_vision_model", "ijepa", "pvt_v2", "segformer"), "mean"),
    **dict.fromkeys(("textnet", "poolformer", "swiftformer"), "mean"),
}
# Every other family (ResNet, ConvNeXt, EfficientNet, RegNet, Swin, BEiT, timm models, ...) has a `pooler_output`
# that its own head reads: global average pooling, or its own normed class token.
DEFAULT_AUTO_POOLING = "pooler"

# Leading tokens of `last_hidden_state` that are not image patches: a class token (DeiT's also a distillation
# token), plus `config.num_register_tokens` register tokens. "mean" and "cls_mean" average the patches only.
NON_PATCH_TOKENS_BY_MODEL_TYPE: dict[str, int] = {
    **dict.fromkeys(("vit", "vit_msn", "vit_mae", "beit", "data2vec-vision", "pvt", "clip_vision_model"), 1),
    **dict.fromkeys(("dinov2", "dinov2_with_registers", "dinov3_vit"), 1),
    "deit": 2,
}


def resolve_pooling(config: BigDropConfig) -> str:
    """The concrete pooling that `config.pooling` means.

    Args:
        config (`BigDropConfig`): A config whose `pooling` is a concrete pooling or `"auto"`.

    Returns:
        `str`: `"pooler"`, `"cls"`, `"mean"` or `"cls_mean"`; for `"auto"`, the one of the backbone family
        (`AUTO_POOLING_BY_MODEL_TYPE`, else `DEFAULT_AUTO_POOLING`).
    """
    if config.pooling != "auto":
        return config.pooling
    return AUTO_POOLING_BY_MODEL_TYPE.get(config.backbone_config.model_type, DEFAULT_AUTO_POOLING)


def feature_size(backbone: nn.Module) -> int:
    """The width of the backbone's pooled penultimate representation."""
    timm_model = getattr(backbone, "timm_model", None)
    if timm_model is not None:
        # timm's pooled output (`forward_head(pre_logits=True)`) has `head_hidden_size` features: wider than
        # `num_features` for models with a layer between pooling and classifier (MobileNetV3, ...).
        size = getattr(timm_model, "head_hidden_size", None) or getattr(timm_model, "num_features", None)
        if isinstance(size, int):
            return size
    size = getattr(backbone, "num_features", None)
    if isinstance(size, int):
        return size
    config = backbone.config
    for name in ("hidden_sizes", "hidden_size", "hidden_dim", "embed_dim", "embed_dims"):
        size = getattr(config, name, None)
        if isinstance(size, (list, tuple)) and size:
            return int(size[-1])
        if isinstance(size, int):
            return size
    # No config field states it (MobileNet, MobileViTV2): the width of the last convolution or linear layer.
    layers = [m for m in backbone.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if layers:
        return layers[-1].out_channels if isinstance(layers[-1], nn.Conv2d) else layers[-1].out_features
    raise ValueError(
        f"Cannot tell the feature size of the {type(backbone).__name__} backbone (model_type "
        f"{config.model_type!r}): it has no `num_features`, its config no `hidden_sizes` / `hidden_size` / "
        "`hidden_dim`, and it has no convolution or linear layer."
    )


def num_non_patch_tokens(backbone: nn.Module) -> int:
    """How many leading tokens of the backbone's `last_hidden_state` are class, distillation or register tokens."""
    timm_model = getattr(backbone, "timm_model", None)
    if timm_model is not None:
        return int(getattr(timm_model, "num_prefix_tokens", 0))
    config = backbone.config
    registers = getattr(config, "num_register_tokens", 0) or 0
    return NON_PATCH_TOKENS_BY_MODEL_TYPE.get(config.model_type, 0) + int(registers)


def pool_features(outputs, pooling: str, num_non_patch_tokens: int, backbone_name: str) -> torch.Tensor:
    """The pooled penultimate features, of shape `(batch_size, num_features)`, from a backbone's output.

    Args:
        outputs (`ModelOutput`): The backbone's output (`pooler_output`, `last_hidden_state`).
        pooling (`str`): A concrete pooling (`"pooler"`, `"cls"`, `"mean"` or `"cls_mean"`; see `resolve_pooling`).
        num_non_patch_tokens (`int`): Leading tokens that `"mean"` and `"cls_mean"` leave out of the patch mean.
        backbone_name (`str`): The backbone's class name, for error messages.

    Returns:
        `torch.Tensor`: The features (`"cls_mean"`: the class token and the patch mean, concatenated).
    """
    if pooling == "pooler":
        features = getattr(outputs, "pooler_output", None)
        if features is None:
            raise ValueError(
                f"The {backbone_name} backbone returns no `pooler_output`; choose "
                "`pooling='cls'` or `pooling='mean'` in BigDropConfig."
            )
        return features.flatten(1)
    hidden = outputs.last_hidden_state
    if pooling == "cls" and getattr(outputs, "cls_token_value", None) is not None:
        return outputs.cls_token_value[:, 0]  # CvT returns its class token beside the last feature map
    if hidden.dim() != 3:  # a (batch, channels, height, width) feature map
        if pooling != "mean":
            raise ValueError(
                f"`pooling={pooling!r}` needs token outputs (batch, tokens, dim); the "
                f"{backbone_name} backbone returns shape {tuple(hidden.shape)}. Choose 'pooler' "
                "or 'mean'."
            )
        return hidden.flatten(2).mean(dim=-1)
    if pooling == "cls":
        return hidden[:, 0]
    patch_mean = hidden[:, num_non_patch_tokens:].mean(dim=1)
    return patch_mean if pooling == "mean" else torch.cat([hidden[:, 0], patch_mean], dim=1)


__all__ = [
    "AUTO_POOLING_BY_MODEL_TYPE",
    "DEFAULT_AUTO_POOLING",
    "NON_PATCH_TOKENS_BY_MODEL_TYPE",
    "feature_size",
    "num_non_patch_tokens",
    "pool_features",
    "resolve_pooling",
]
