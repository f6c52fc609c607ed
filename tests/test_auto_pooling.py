"""`pooling="auto"` reads the feature that each family's stock `*ForImageClassification` head reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from stock_heads import STOCK_HEADS, TINY_VIT
from tiny_models import NUM_LABELS
from transformers import CONFIG_MAPPING, ViTConfig

from hf_bigdrop import BigDropConfig, BigDropForImageClassification
from hf_bigdrop.modeling_bigdrop import AUTO_POOLING_BY_MODEL_TYPE, resolve_pooling

DOCS = Path(__file__).resolve().parents[1] / "docs" / "model.md"


@pytest.mark.parametrize("model_type", sorted(STOCK_HEADS))
def test_auto_pooling_reads_what_the_stock_head_reads(model_type):
    spec = STOCK_HEADS[model_type]
    torch.manual_seed(0)
    stock = spec.build()
    if spec.own_norm is not None:
        # Documented difference: the stock head normalises first with a layer of its own, which BigDrop lacks.
        stock.set_submodule(spec.own_norm, torch.nn.Identity())
    read = {}
    stock.get_submodule(spec.head).register_forward_hook(
        lambda module, inputs, output: read.update(x=inputs[0])
    )
    pixels = torch.randn(2, 3, spec.image_size, spec.image_size)
    with torch.no_grad():
        stock(pixels)

    model = BigDropForImageClassification.from_backbone(spec.backbone(stock), num_labels=NUM_LABELS).eval()
    assert model.config.backbone_config.model_type == model_type
    with torch.no_grad():
        features, _ = model.extract_features(pixels)
    expected = read["x"].flatten(1)
    assert features.shape == expected.shape == (2, model.num_features)
    torch.testing.assert_close(features, expected)


def test_dinov2_auto_pooling_is_the_stock_model(tmp_path):
    # With the stock head's weights, `from_backbone(..., dropout_rate=0)` is the stock Dinov2ForImageClassification.
    torch.manual_seed(0)
    stock = STOCK_HEADS["dinov2"].build()
    model = BigDropForImageClassification.from_backbone(stock, num_labels=NUM_LABELS, dropout_rate=0.0).eval()
    assert model.pooling == "cls_mean" and model.num_features == 2 * stock.config.hidden_size
    model.classifier.load_state_dict(stock.classifier.state_dict())
    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, stock(pixels).logits)


def test_mean_pooling_leaves_out_class_distillation_and_register_tokens():
    torch.manual_seed(0)
    for model_type, non_patch in [("vit", 1), ("deit", 2), ("dinov2_with_registers", 1 + 2)]:
        backbone = STOCK_HEADS[model_type].build().base_model
        model = BigDropForImageClassification(
            BigDropConfig(backbone_config=backbone.config, num_labels=2, pooling="mean")
        ).eval()
        model.backbone.load_state_dict(backbone.state_dict(), strict=False)
        pixels = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            features, _ = model.extract_features(pixels)
            tokens = backbone(pixels).last_hidden_state
        assert model.num_non_patch_tokens == non_patch
        torch.testing.assert_close(features, tokens[:, non_patch:].mean(dim=1), msg=model_type)


def test_cls_mean_pooling_needs_tokens():
    config = BigDropConfig(
        backbone_config=STOCK_HEADS["resnet"].build().config, num_labels=2, pooling="cls_mean"
    )
    with pytest.raises(ValueError, match=r"pooling='cls_mean'.*token outputs.*Choose 'pooler' or 'mean'"):
        BigDropForImageClassification(config)(torch.randn(1, 3, 32, 32))
    vit = BigDropForImageClassification(
        BigDropConfig(backbone_config=ViTConfig(**TINY_VIT), pooling="cls_mean")
    )
    assert vit.num_features == 32
    assert vit(torch.randn(1, 3, 32, 32)).logits.shape == (1, 2)


def test_docs_table_names_every_family():
    table = re.findall(r"^\| `([\w-]+)` \| `(\w+)` \|", DOCS.read_text(), flags=re.MULTILINE)
    documented = dict(table)
    for model_type in set(STOCK_HEADS) | set(AUTO_POOLING_BY_MODEL_TYPE):
        config = BigDropConfig(backbone_config=CONFIG_MAPPING[model_type]())
        assert documented.get(model_type) == resolve_pooling(config), model_type
