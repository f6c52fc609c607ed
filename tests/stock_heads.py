"""Tiny stock `*ForImageClassification` models of every transformers family BigDrop can wrap, and their heads.

Each entry says which module of the stock model is its head (the feature a head reads is that module's input) and,
for the few families whose head first normalises with a layer of its own, that layer's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import transformers as tf
from tiny_models import IMAGE_SIZE, NUM_LABELS, TINY_CONV, TINY_VIT
from transformers import PreTrainedModel

TINY_TEXT = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
TINY_SWIN = {
    "image_size": IMAGE_SIZE,
    "patch_size": 4,
    "embed_dim": 8,
    "depths": [1, 1],
    "num_heads": [1, 2],
    "window_size": 4,
}
TINY_SEGFORMER = {
    "num_encoder_blocks": 2,
    "depths": [1, 1],
    "sr_ratios": [2, 1],
    "hidden_sizes": [8, 16],
    "patch_sizes": [7, 3],
    "strides": [4, 2],
    "num_attention_heads": [1, 2],
    "mlp_ratios": [2, 2],
}
# The stock CvT head needs a class token in the last stage (`cls_token`), as in the released checkpoints.
TINY_CVT = {
    "embed_dim": [8, 16],
    "num_heads": [1, 2],
    "depth": [1, 2],
    "patch_sizes": [7, 3],
    "patch_stride": [4, 2],
    "patch_padding": [2, 1],
    "stride_kv": [2, 2],
    "mlp_ratio": [2.0, 2.0],
    "attention_drop_rate": [0.0, 0.0],
    "drop_rate": [0.0, 0.0],
    "drop_path_rate": [0.0, 0.0],
    "qkv_bias": [True, True],
    "padding_kv": [1, 1],
    "kernel_qkv": [3, 3],
    "padding_q": [1, 1],
    "stride_q": [1, 1],
    "qkv_projection_method": ["dw_bn", "dw_bn"],
}


@dataclass(frozen=True)
class StockHead:
    """A tiny stock classifier of one family."""

    model_class: str
    config_class: str
    config: dict
    head: str = "classifier"  # the module whose input is the feature the stock head reads
    own_norm: str | None = None  # a normalisation layer of the stock head that BigDrop has no counterpart for
    image_size: int = IMAGE_SIZE
    # The model that `from_backbone` wraps: the stock checkpoint itself, or (CLIP, SigLIP) its vision tower.
    backbone: Callable[[PreTrainedModel], PreTrainedModel] = lambda stock: stock

    def build(self) -> PreTrainedModel:
        config = getattr(tf, self.config_class)(num_labels=NUM_LABELS, **self.config)
        return getattr(tf, self.model_class)(config).eval()


def _vision_tower(stock: PreTrainedModel) -> PreTrainedModel:
    return stock.vision_model


STOCK_HEADS: dict[str, StockHead] = {
    "beit": StockHead("BeitForImageClassification", "BeitConfig", {**TINY_VIT, "use_mean_pooling": True}),
    "bit": StockHead("BitForImageClassification", "BitConfig", {**TINY_CONV, "num_groups": 2}),
    "clip_vision_model": StockHead(
        "CLIPForImageClassification",
        "CLIPConfig",
        {"vision_config": TINY_VIT, "text_config": TINY_TEXT},
        backbone=_vision_tower,
    ),
    "convnext": StockHead("ConvNextForImageClassification", "ConvNextConfig", {**TINY_CONV, "num_stages": 2}),
    "convnextv2": StockHead(
        "ConvNextV2ForImageClassification", "ConvNextV2Config", {**TINY_CONV, "num_stages": 2}
    ),
    "cvt": StockHead(
        "CvtForImageClassification",
        "CvtConfig",
        {**TINY_CVT, "cls_token": [False, True]},
        own_norm="layernorm",
    ),
    "data2vec-vision": StockHead(
        "Data2VecVisionForImageClassification", "Data2VecVisionConfig", {**TINY_VIT, "use_mean_pooling": True}
    ),
    "deit": StockHead("DeiTForImageClassification", "DeiTConfig", TINY_VIT),
    "dinov2": StockHead("Dinov2ForImageClassification", "Dinov2Config", TINY_VIT),
    "dinov2_with_registers": StockHead(
        "Dinov2WithRegistersForImageClassification",
        "Dinov2WithRegistersConfig",
        {**TINY_VIT, "num_register_tokens": 2},
    ),
    "donut-swin": StockHead("DonutSwinForImageClassification", "DonutSwinConfig", TINY_SWIN),
    "efficientnet": StockHead(
        "EfficientNetForImageClassification",
        "EfficientNetConfig",
        {"image_size": IMAGE_SIZE, "width_coefficient": 0.1, "depth_coefficient": 0.1, "hidden_dim": 128},
    ),
    "focalnet": StockHead(
        "FocalNetForImageClassification",
        "FocalNetConfig",
        {"image_size": IMAGE_SIZE, "patch_size": 4, "embed_dim": 8, "depths": [1, 1]},
    ),
    "hiera": StockHead(
        "HieraForImageClassification",
        "HieraConfig",
        {
            "image_size": [IMAGE_SIZE, IMAGE_SIZE],
            "patch_size": [3, 3],
            "patch_stride": [2, 2],
            "patch_padding": [1, 1],
            "embed_dim": 8,
            "num_heads": [1, 2],
            "depths": [1, 1],
            "num_query_pool": 1,
            "query_stride": [2, 2],
            "masked_unit_size": [4, 4],
            "masked_unit_attention": [True, False],
        },
    ),
    "ijepa": StockHead("IJepaForImageClassification", "IJepaConfig", TINY_VIT),
    "levit": StockHead(
        "LevitForImageClassification",
        "LevitConfig",
        {
            "image_size": IMAGE_SIZE,
            "hidden_sizes": [16, 32],
            "num_attention_heads": [1, 2],
            "depths": [1, 1],
            "key_dim": [8, 8],
            "drop_path_rate": 0,
            "mlp_ratio": [2, 2],
            "attention_ratio": [2, 2],
            "down_ops": [["Subsample", 8, 1, 4, 2, 2]],
        },
    ),
    "mobilenet_v1": StockHead(
        "MobileNetV1ForImageClassification",
        "MobileNetV1Config",
        {"image_size": IMAGE_SIZE, "depth_multiplier": 0.25, "min_depth": 4},
    ),
    "mobilenet_v2": StockHead(
        "MobileNetV2ForImageClassification",
        "MobileNetV2Config",
        {"image_size": IMAGE_SIZE, "depth_multiplier": 0.25, "min_depth": 4, "finegrained_output": False},
    ),
    "mobilevit": StockHead(
        "MobileViTForImageClassification",
        "MobileViTConfig",
        {"image_size": IMAGE_SIZE, "hidden_sizes": [16, 16, 16], "neck_hidden_sizes": [8, 8, 8, 8, 8, 8, 16]},
    ),
    "mobilevitv2": StockHead(
        "MobileViTV2ForImageClassification",
        "MobileViTV2Config",
        {"image_size": 64, "width_multiplier": 0.25},
        image_size=64,  # its last stage folds 2x2 patches of an 8x downsampled map
    ),
    "poolformer": StockHead(
        "PoolFormerForImageClassification",
        "PoolFormerConfig",
        {
            "hidden_sizes": [8, 16],
            "depths": [1, 1],
            "num_encoder_blocks": 2,
            "patch_sizes": [7, 3],
            "strides": [4, 2],
            "padding": [2, 1],
        },
        own_norm="norm",
    ),
    "pvt": StockHead(
        "PvtForImageClassification",
        "PvtConfig",
        {
            "image_size": IMAGE_SIZE,
            "num_encoder_blocks": 2,
            "depths": [1, 1],
            "sequence_reduction_ratios": [2, 1],
            "hidden_sizes": [8, 16],
            "patch_sizes": [4, 2],
            "strides": [4, 2],
            "num_attention_heads": [1, 2],
            "mlp_ratios": [2, 2],
        },
    ),
    "pvt_v2": StockHead("PvtV2ForImageClassification", "PvtV2Config", TINY_SEGFORMER),
    "regnet": StockHead("RegNetForImageClassification", "RegNetConfig", {**TINY_CONV, "groups_width": 8}),
    "resnet": StockHead("ResNetForImageClassification", "ResNetConfig", TINY_CONV),
    "segformer": StockHead("SegformerForImageClassification", "SegformerConfig", TINY_SEGFORMER),
    "siglip_vision_model": StockHead(
        "SiglipForImageClassification",
        "SiglipConfig",
        {"vision_config": TINY_VIT, "text_config": TINY_TEXT},
        backbone=_vision_tower,
    ),
    "swiftformer": StockHead(
        "SwiftFormerForImageClassification",
        "SwiftFormerConfig",
        {"depths": [1, 1], "embed_dims": [8, 16], "downsamples": [True, True]},
        head="head",
        own_norm="norm",
    ),
    "swin": StockHead("SwinForImageClassification", "SwinConfig", TINY_SWIN),
    "swinv2": StockHead("Swinv2ForImageClassification", "Swinv2Config", TINY_SWIN),
    "textnet": StockHead(
        "TextNetForImageClassification",
        "TextNetConfig",
        {
            "stem_out_channels": 8,
            "conv_layer_kernel_sizes": [[[3, 3]], [[3, 3]]],
            "conv_layer_strides": [[2], [2]],
            "hidden_sizes": [8, 8, 16],
        },
        head="fc",
    ),
    "timm_wrapper": StockHead(
        "TimmWrapperForImageClassification",
        "TimmWrapperConfig",
        {"architecture": "test_vit"},
        head="timm_model.head",
    ),
    "vit": StockHead("ViTForImageClassification", "ViTConfig", TINY_VIT),
    "vit_msn": StockHead("ViTMSNForImageClassification", "ViTMSNConfig", TINY_VIT),
}
