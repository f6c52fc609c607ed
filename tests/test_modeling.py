"""BigDropForImageClassification: head, dropout, pooling, loading and saving on tiny backbones of each family."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_models import (
    FAMILIES,
    NUM_LABELS,
    TINY_CONV,
    TINY_VIT,
    build_classifier,
    pixel_batch,
    save_classifier,
    source_classifier_head,
    tiny_config,
)
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    ResNetConfig,
    ResNetModel,
    TimmWrapperConfig,
    ViTConfig,
    ViTModel,
)
from transformers.modeling_outputs import ImageClassifierOutput

from hf_bigdrop import BigDropConfig, BigDropForImageClassification
from hf_bigdrop.modeling_bigdrop import resolve_pooling

_PREPROCESSING = {"size": {"height": 32, "width": 24}, "image_mean": [0.5] * 3, "image_std": [0.25] * 3}


@pytest.fixture(params=sorted(FAMILIES))
def family(request) -> str:
    return request.param


@pytest.fixture
def checkpoint(family, tmp_path):
    """(family, folder, stock classifier) of a tiny saved `*ForImageClassification`."""
    folder = tmp_path / family
    return family, folder, save_classifier(family, folder)


# --- configuration ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dropout_rate": 1.0}, r"dropout_rate.*\[0, 1\).*1\.0"),
        ({"dropout_rate": -0.1}, r"dropout_rate.*-0\.1"),
        ({"dropout_rate": "high"}, r"dropout_rate.*'high'"),
        ({"pooling": "max"}, r"pooling.*'max'.*'auto', 'pooler', 'cls', 'mean'"),
        ({"classifier_init": "xavier"}, r"classifier_init.*'xavier'.*'zeros'"),
        ({"preprocessing": {"size": 32}}, r"preprocessing.*keys \['size', 'image_mean', 'image_std'\]"),
        ({"preprocessing": {**_PREPROCESSING, "size": 32}}, r"preprocessing\[\"size\"\].*whole pixels.*32"),
        (
            {"preprocessing": {**_PREPROCESSING, "size": {"height": 0, "width": 8}}},
            r"whole pixels.*'height': 0",
        ),
        (
            {"preprocessing": {**_PREPROCESSING, "image_mean": [0.5, float("nan"), 0.5]}},
            r"'image_mean'.*finite",
        ),
        ({"preprocessing": {**_PREPROCESSING, "image_std": [0.5, 0.0, 0.5]}}, r"'image_std'.*positive.*0\.0"),
        (
            {"preprocessing": {**_PREPROCESSING, "image_std": [0.5]}},
            r"3 image_mean value\(s\) and 1 image_std",
        ),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**kwargs)


def test_config_builds_with_no_arguments():
    # transformers builds default configs (`config_class()`); the default backbone is its SubConfigSpec's ResNet.
    config = BigDropConfig()
    assert isinstance(config.backbone_config, ResNetConfig)
    assert config.backbone_config.to_dict() == ResNetConfig().to_dict()
    assert (config.dropout_rate, config.pooling) == (0.9, "auto")
    assert isinstance(BigDropConfig(num_labels=2).backbone_config, ResNetConfig)


@pytest.mark.parametrize(
    ("backbone_config", "message"),
    [
        ({"hidden_size": 16}, r"backbone_config.*model_type.*'resnet'.*got model_type=None"),
        ({"model_type": "nope"}, r"backbone_config.*got model_type='nope'"),
        (3, r"backbone_config.*PretrainedConfig or a dict, got 3"),
    ],
)
def test_config_rejects_bad_backbone_configs(backbone_config, message):
    with pytest.raises(ValueError, match=message):
        BigDropConfig(backbone_config=backbone_config)


def test_a_saved_config_must_name_its_backbone(tmp_path):
    # Where the missing backbone matters: the weights of a saved model belong to the backbone its config names.
    config_dict = tiny_config().to_dict()
    assert (
        BigDropConfig.from_dict(config_dict).backbone_config.to_dict()
        == tiny_config().backbone_config.to_dict()
    )
    del config_dict["backbone_config"]
    with pytest.raises(ValueError, match="no `backbone_config`.*config.json must describe its backbone"):
        BigDropConfig.from_dict(config_dict)


def test_config_defaults_are_the_papers():
    config = tiny_config()
    assert config.dropout_rate == 0.9
    assert config.freeze_batchnorm is True
    assert config.freeze_backbone is False
    assert config.classifier_init == "zeros"
    assert config.model_type == "bigdrop"


@pytest.mark.parametrize(
    "backbone_config",
    [ResNetConfig(**TINY_CONV), TimmWrapperConfig(architecture="test_efficientnet")],
    ids=["resnet", "timm_wrapper"],
)
def test_nested_backbone_config_round_trips(tmp_path, backbone_config):
    config = BigDropConfig(backbone_config=backbone_config, num_labels=4, dropout_rate=0.5, pooling="mean")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, BigDropConfig)
    assert type(loaded.backbone_config) is type(backbone_config)
    assert loaded.backbone_config.to_dict() == config.backbone_config.to_dict()
    assert (loaded.dropout_rate, loaded.pooling, loaded.num_labels) == (0.5, "mean", 4)


def test_backbone_config_from_a_dict():
    config = BigDropConfig(backbone_config={"model_type": "vit", "hidden_size": 16}, num_labels=2)
    assert isinstance(config.backbone_config, ViTConfig)
    assert config.backbone_config.hidden_size == 16


# --- the head --------------------------------------------------------------------------------------------------


def test_forward_returns_image_classifier_output_with_loss():
    model = BigDropForImageClassification(tiny_config()).eval()
    labels = torch.tensor([0, 2])
    output = model(pixel_batch(), labels=labels)
    assert isinstance(output, ImageClassifierOutput)
    assert output.logits.shape == (2, NUM_LABELS)
    # A zero-initialised head gives uniform predictions: the loss is exactly ln(num_labels).
    assert output.loss.item() == pytest.approx(torch.log(torch.tensor(float(NUM_LABELS))).item())
    as_tuple = model(pixel_batch(), labels=labels, return_dict=False)
    torch.testing.assert_close(as_tuple[1], output.logits)


def test_multi_label_loss_follows_problem_type():
    model = BigDropForImageClassification(tiny_config(classifier_init="normal")).eval()
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    output = model(pixel_batch(), labels=targets)
    assert model.config.problem_type == "multi_label_classification"
    expected = torch.nn.functional.binary_cross_entropy_with_logits(output.logits, targets)
    torch.testing.assert_close(output.loss, expected)


def test_dropout_is_its_own_module_with_the_configured_rate():
    model = BigDropForImageClassification(tiny_config(dropout_rate=0.7))
    assert isinstance(model.dropout, torch.nn.Dropout)
    assert model.dropout.p == 0.7
    names = set(model.state_dict())
    assert {"classifier.weight", "classifier.bias"} <= names
    assert not any(name.startswith("dropout") for name in names)


def test_dropout_statistics_in_training_mode():
    p = 0.9
    model = BigDropForImageClassification(tiny_config(dropout_rate=p)).train()
    seen = {}
    model.classifier.register_forward_hook(lambda module, inputs, output: seen.update(dropped=inputs[0]))
    pixels = torch.rand(256, 3, 32, 32)
    features, _ = model.extract_features(pixels)
    model(pixels)
    dropped = seen["dropped"]
    alive = features != 0  # ReLU features that are zero before dropout say nothing about it
    kept = (dropped != 0) & alive
    assert alive.float().mean() > 0.5
    assert kept.sum().item() / alive.sum().item() == pytest.approx(1 - p, abs=0.02)
    # Inverted dropout: survivors are scaled by 1 / (1 - p).
    torch.testing.assert_close(dropped[kept], features[kept] / (1 - p))


def test_dropout_is_identity_in_eval_mode():
    model = BigDropForImageClassification(tiny_config(classifier_init="normal"))
    pixels = pixel_batch(8)
    model.eval()
    torch.testing.assert_close(model(pixels).logits, model(pixels).logits)
    features, _ = model.extract_features(pixels)
    torch.testing.assert_close(model(pixels).logits, model.classifier(features))
    model.train()
    assert not torch.allclose(model(pixels).logits, model(pixels).logits)


@pytest.mark.parametrize("init", ["zeros", "normal", "kaiming_uniform"])
def test_classifier_init_choices(init):
    model = BigDropForImageClassification(tiny_config(classifier_init=init))
    weight = model.classifier.weight
    assert torch.count_nonzero(model.classifier.bias) == 0
    if init == "zeros":
        assert torch.count_nonzero(weight) == 0
    elif init == "normal":
        assert weight.std().item() == pytest.approx(0.02, rel=0.5)
    else:
        bound = 1 / weight.shape[1] ** 0.5
        assert 0 < weight.abs().max().item() <= bound


# --- freezing --------------------------------------------------------------------------------------------------


def _batchnorms(model):
    return [m for m in model.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("family", ["resnet", "timm"])
def test_freeze_batchnorm_survives_train_calls(family, tmp_path):
    save_classifier(family, tmp_path)
    model = BigDropForImageClassification.from_backbone(tmp_path, num_labels=2)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    assert before
    model.train()
    assert model.training and model.dropout.training
    assert all(not bn.training for bn in _batchnorms(model))
    model(torch.rand(4, 3, 32, 32) * 3)
    after = model.state_dict()
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, msg=name)


def test_batchnorm_trains_when_not_frozen():
    model = BigDropForImageClassification(tiny_config(freeze_batchnorm=False)).train()
    assert all(bn.training for bn in _batchnorms(model))


def test_freeze_backbone_is_a_linear_probe():
    model = BigDropForImageClassification(tiny_config(freeze_backbone=True, dropout_rate=0.0)).train()
    assert not model.backbone.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    model(pixel_batch(4), labels=torch.tensor([0, 1, 2, 0])).loss.backward()
    assert model.classifier.weight.grad is not None
    assert all(p.grad is None for p in model.backbone.parameters())


# --- pooling ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backbone_config", "expected"),
    [
        # transformers' families are tested against their stock heads (test_auto_pooling.py); timm's has none there.
        (TimmWrapperConfig(architecture="test_vit"), "pooler"),
    ],
    ids=["timm"],
)
def test_auto_pooling_per_family(backbone_config, expected):
    assert resolve_pooling(BigDropConfig(backbone_config=backbone_config, num_labels=2)) == expected


def test_saved_config_records_what_auto_pooling_resolved_to(tmp_path):
    # A later change of the per-family table must not change the feature a saved model reads.
    save_classifier("vit", tmp_path / "backbone")
    model = BigDropForImageClassification.from_backbone(tmp_path / "backbone", num_labels=2)
    assert model.config.pooling == model.pooling == "cls"
    model.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["pooling"] == "cls"


def test_timm_models_with_a_pre_logits_layer():
    # MobileNetV3 pools 576 features, then a 1x1 conv widens them to 1024 before its classifier.
    config = BigDropConfig(
        backbone_config=TimmWrapperConfig(architecture="mobilenetv3_small_050"), num_labels=3
    )
    model = BigDropForImageClassification(config).eval()
    assert model.num_features == model.backbone.timm_model.head_hidden_size == 1024
    assert model(pixel_batch()).logits.shape == (2, 3)


def test_vit_cls_pooling_builds_no_untrained_pooler(tmp_path):
    save_classifier("vit", tmp_path)
    model = BigDropForImageClassification.from_backbone(tmp_path, num_labels=2)
    assert model.backbone.pooler is None
    assert not any("pooler" in name for name in model.state_dict())


@pytest.mark.parametrize("pooling", ["cls", "mean", "pooler"])
def test_explicit_pooling_shapes(pooling):
    config = BigDropConfig(
        backbone_config=ViTConfig(**TINY_VIT),
        num_labels=2,
        pooling=pooling,
    )
    model = BigDropForImageClassification(config).eval()
    features, _ = model.extract_features(pixel_batch())
    assert features.shape == (2, 16)


def test_mean_pooling_of_a_feature_map():
    model = BigDropForImageClassification(tiny_config(pooling="mean")).eval()
    features, _ = model.extract_features(pixel_batch())
    outputs = model.backbone(pixel_batch())
    torch.testing.assert_close(features, outputs.last_hidden_state.mean(dim=(2, 3)))


def test_cls_pooling_of_a_feature_map_is_a_clear_error():
    model = BigDropForImageClassification(tiny_config(pooling="cls"))
    with pytest.raises(ValueError, match="pooling='cls'.*Choose 'pooler' or 'mean'"):
        model(pixel_batch())


# --- from_backbone ---------------------------------------------------------------------------------------------


def test_from_backbone_with_p0_matches_the_stock_classifier(checkpoint):
    family, folder, source = checkpoint
    model = BigDropForImageClassification.from_backbone(folder, num_labels=NUM_LABELS, dropout_rate=0.0)
    model.classifier.load_state_dict(source_classifier_head(source).state_dict())
    model.eval()
    pixels = pixel_batch(4)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, source(pixels).logits, rtol=1e-5, atol=1e-5)


def test_from_backbone_loads_every_backbone_weight(checkpoint):
    family, folder, source = checkpoint
    model = BigDropForImageClassification.from_backbone(folder, num_labels=5)
    source_state = source.base_model.state_dict() if family != "timm" else source.timm_model.state_dict()
    backbone_state = model.backbone.state_dict()
    if family == "timm":
        backbone_state = {k.removeprefix("timm_model."): v for k, v in backbone_state.items()}
    assert backbone_state
    for name, value in backbone_state.items():
        torch.testing.assert_close(value, source_state[name], msg=name)
    assert model.config.backbone_name_or_path == str(folder)
    assert model.config.num_labels == 5


@pytest.mark.parametrize("init", ["zeros", "normal"])
def test_from_backbone_builds_the_backbone_once_and_initialises_the_head(init, tmp_path, monkeypatch):
    save_classifier("resnet", tmp_path)
    built = []
    original_init = ResNetModel.__init__

    def recording_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        built.append(next(self.parameters()).device.type)

    monkeypatch.setattr(ResNetModel, "__init__", recording_init)
    model = BigDropForImageClassification.from_backbone(
        tmp_path, num_labels=4, classifier_init=init, freeze_backbone=True
    )
    # Loading builds its backbone on the meta device and fills it from the checkpoint; the model around it is
    # also built on meta, so no randomly initialised twin of the backbone is ever allocated.
    assert built and set(built) == {"meta"}
    assert model.backbone.config is model.config.backbone_config
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    assert not [name for name, tensor in tensors.items() if tensor.is_meta]
    assert (
        not any(p.requires_grad for p in model.backbone.parameters())
        and model.classifier.weight.requires_grad
    )
    assert torch.count_nonzero(model.classifier.bias) == 0
    if init == "zeros":
        assert torch.count_nonzero(model.classifier.weight) == 0
    else:
        assert model.classifier.weight.std().item() == pytest.approx(0.02, rel=0.5)
    model(pixel_batch(2), labels=torch.tensor([0, 3])).loss.backward()


def test_from_backbone_accepts_base_models_and_instances(tmp_path):
    source = build_classifier("resnet")
    source.resnet.save_pretrained(tmp_path)  # a base-model checkpoint: no classifier at all
    from_folder = BigDropForImageClassification.from_backbone(tmp_path, num_labels=2).eval()
    from_instance = BigDropForImageClassification.from_backbone(source, num_labels=2).eval()
    pixels = pixel_batch()
    torch.testing.assert_close(
        from_folder.extract_features(pixels)[0], from_instance.extract_features(pixels)[0]
    )
    torch.testing.assert_close(
        from_folder.extract_features(pixels)[0], source.resnet(pixels).pooler_output.flatten(1)
    )


def test_a_model_built_from_an_instance_takes_its_name_not_a_temporary_folder(tmp_path):
    unnamed = BigDropForImageClassification.from_backbone(build_classifier("vit"), num_labels=2)
    assert unnamed.name_or_path == "" and unnamed.config.backbone_name_or_path is None
    save_classifier("vit", tmp_path / "vit")
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "vit")
    named = BigDropForImageClassification.from_backbone(loaded, num_labels=2)
    assert named.name_or_path == named.config.backbone_name_or_path == str(tmp_path / "vit")

    peft = pytest.importorskip("peft")
    for model, recorded in ((named, str(tmp_path / "vit")), (unnamed, None)):
        lora = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
        lora.save_pretrained(tmp_path / "adapter")
        adapter_config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
        assert adapter_config["base_model_name_or_path"] == recorded


def test_from_backbone_records_the_backbones_evaluation_preprocessing(checkpoint):
    family, folder, source = checkpoint
    # Read off the image processor saved beside the backbone (tiny_models saves a 32-pixel ViTImageProcessor).
    model = BigDropForImageClassification.from_backbone(folder, num_labels=2)
    assert model.config.preprocessing == {
        "size": {"height": 32, "width": 32},
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    # Given, it is kept; an instance has no image processor: a timm one still has timm's pretrained config (the
    # tiny test_efficientnet's is 160 pixels, ImageNet statistics), a transformers one nothing to say.
    given = BigDropForImageClassification.from_backbone(folder, num_labels=2, preprocessing=_PREPROCESSING)
    assert given.config.preprocessing == _PREPROCESSING
    from_instance = BigDropForImageClassification.from_backbone(source, num_labels=2).config.preprocessing
    if family == "timm":
        assert from_instance == {
            "size": {"height": 160, "width": 160},
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
        }
    else:
        assert from_instance is None


def test_from_backbone_refuses_newly_initialised_backbone_weights(tmp_path):
    # A ViT base checkpoint saved without its pooler: pooling="pooler" would train on a random dense layer.
    config = ViTConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=32
    )
    ViTModel(config, add_pooling_layer=False).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"not in the checkpoint.*pooler"):
        BigDropForImageClassification.from_backbone(tmp_path, num_labels=2, pooling="pooler")
    # The stock rule (the class token) needs no pooler, so the same checkpoint loads.
    BigDropForImageClassification.from_backbone(tmp_path, num_labels=2)


def test_from_backbone_labels(tmp_path):
    save_classifier("resnet", tmp_path)
    id2label = {0: "cat", 1: "dog"}
    model = BigDropForImageClassification.from_backbone(tmp_path, num_labels=2, id2label=id2label)
    assert model.config.id2label == id2label
    assert model.config.label2id == {"cat": 0, "dog": 1}
    with pytest.raises(ValueError, match=r"id2label.*0\.\.2.*num_labels=3"):
        BigDropForImageClassification.from_backbone(tmp_path, num_labels=3, id2label=id2label)
    with pytest.raises(ValueError, match="label2id.*not the inverse"):
        BigDropForImageClassification.from_backbone(
            tmp_path, num_labels=2, id2label=id2label, label2id={"cat": 1}
        )
    with pytest.raises(ValueError, match="num_labels.*positive"):
        BigDropForImageClassification.from_backbone(tmp_path, num_labels=0)


def test_from_backbone_unknown_sources(tmp_path):
    with pytest.raises(ValueError, match="Unknown embedded backbone 'embedded:nope'"):
        BigDropForImageClassification.from_backbone("embedded:nope", num_labels=2)
    with pytest.raises(OSError):
        BigDropForImageClassification.from_backbone(tmp_path / "missing", num_labels=2)


def test_from_backbone_refuses_a_bigdrop_checkpoint(tmp_path):
    BigDropForImageClassification(tiny_config()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="already a BigDrop model"):
        BigDropForImageClassification.from_backbone(tmp_path, num_labels=2)


# --- saving and loading ----------------------------------------------------------------------------------------


# ResNet and ViT: test_modeling_conformance.py's test_save_and_load (with the state dict) covers them.
@pytest.mark.parametrize("family", sorted(set(FAMILIES) - {"resnet", "vit"}))
def test_save_and_reload_give_identical_logits(checkpoint, tmp_path):
    family, folder, _ = checkpoint
    model = BigDropForImageClassification.from_backbone(
        folder, num_labels=NUM_LABELS, classifier_init="normal"
    )
    model.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").exists()
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "saved")
    assert isinstance(reloaded, BigDropForImageClassification)
    pixels = pixel_batch(3)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(pixels).logits, model.eval()(pixels).logits)


def test_save_writes_the_image_processor_of_its_preprocessing(tmp_path):
    from transformers import AutoImageProcessor, ViTImageProcessor

    model = BigDropForImageClassification(tiny_config(preprocessing=_PREPROCESSING))
    model.save_pretrained(tmp_path / "saved")
    processor = AutoImageProcessor.from_pretrained(tmp_path / "saved")
    assert isinstance(processor, ViTImageProcessor)
    assert (processor.size.height, processor.size.width) == (32, 24)
    assert list(processor.image_mean) == [0.5] * 3 and list(processor.image_std) == [0.25] * 3
    # The preprocessing goes with the config: a reloaded model saves it again.
    reloaded = BigDropForImageClassification.from_pretrained(tmp_path / "saved")
    reloaded.save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / "preprocessor_config.json").read_text() == (
        tmp_path / "saved" / "preprocessor_config.json"
    ).read_text()
    # An image processor already in the folder (saved by the user or the Trainer) is kept.
    ViTImageProcessor(size={"height": 8, "width": 8}).save_pretrained(tmp_path / "own")
    model.save_pretrained(tmp_path / "own")
    assert AutoImageProcessor.from_pretrained(tmp_path / "own").size.height == 8
    # No preprocessing recorded, no image processor written.
    BigDropForImageClassification(tiny_config()).save_pretrained(tmp_path / "none")
    assert not (tmp_path / "none" / "preprocessor_config.json").exists()


def test_reload_never_silently_reinitialises_the_head(tmp_path):
    BigDropForImageClassification(tiny_config(classifier_init="normal")).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["classifier.weight"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"lacks 1 weight.*classifier\.weight"):
        BigDropForImageClassification.from_pretrained(tmp_path)


def test_save_writes_the_remote_code(tmp_path):
    BigDropForImageClassification(tiny_config()).save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text()
    assert '"AutoModelForImageClassification": "modeling_bigdrop.BigDropForImageClassification"' in config
    assert '"AutoConfig": "configuration_bigdrop.BigDropConfig"' in config
    for name in ("modeling_bigdrop.py", "pooling_bigdrop.py", "configuration_bigdrop.py"):
        source = (tmp_path / name).read_text()
        imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
        for line in imports:
            module = line.split()[1]
            assert module.split(".")[0] in {
                "__future__",
                "inspect",
                "os",
                "tempfile",
                "collections",
                "torch",
            } | {
                "transformers",
                "",
            }, line


# --- gradient checkpointing ------------------------------------------------------------------------------------


def test_gradient_checkpointing_follows_the_backbone(tmp_path):
    save_classifier("vit", tmp_path / "vit")
    model = BigDropForImageClassification.from_backbone(tmp_path / "vit", num_labels=2, dropout_rate=0.0)

    def switches():
        return [
            m.gradient_checkpointing for m in model.backbone.modules() if hasattr(m, "gradient_checkpointing")
        ]

    assert switches() and not any(switches())
    model.activation_checkpointing_enable()
    assert all(switches())
    model.train()
    model(pixel_batch(2), labels=torch.tensor([0, 1])).loss.backward()
    model.activation_checkpointing_disable()
    assert not any(switches())

    resnet = BigDropForImageClassification(tiny_config())
    with pytest.raises(
        ValueError, match="ResNetModel backbone.*'resnet'.*does not support gradient checkpointing"
    ):
        resnet.activation_checkpointing_enable()
