"""Saved BigDrop folders: remote code without hf_bigdrop installed, and the image-classification pipeline."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import REMOTE_LOAD, REMOTE_PIPELINE
from PIL import Image
from tiny_models import build_classifier, pixel_batch, save_classifier
from transformers import AutoImageProcessor, pipeline

from hf_bigdrop import BigDropForImageClassification, resolve_backbone_name

IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
HALF = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


def _run_without_hf_bigdrop(script: str, *args, cwd) -> None:
    """Runs `script` in a fresh interpreter where `import hf_bigdrop` fails, offline."""
    (cwd / "script.py").write_text(script)
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(cwd / "hf_home"), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [sys.executable, str(cwd / "script.py"), *map(str, args)], check=True, cwd=cwd, env=env, timeout=300
    )


@pytest.mark.parametrize("family", ["resnet", "timm"])
def test_remote_code_loads_without_hf_bigdrop(tmp_path, family):
    save_classifier(family, tmp_path / "backbone")
    model = BigDropForImageClassification.from_backbone(
        tmp_path / "backbone", num_labels=3, classifier_init="normal"
    )
    model.save_pretrained(tmp_path / "saved")
    code = {"configuration_bigdrop.py", "modeling_bigdrop.py", "pooling_bigdrop.py"}
    assert code <= {path.name for path in (tmp_path / "saved").iterdir()}
    pixels = pixel_batch(3)
    torch.save(pixels, tmp_path / "pixels.pt")
    _run_without_hf_bigdrop(
        REMOTE_LOAD, tmp_path / "saved", tmp_path / "pixels.pt", tmp_path / "out.pt", cwd=tmp_path
    )
    with torch.no_grad():
        expected = model.eval()(pixels).logits
    torch.testing.assert_close(torch.load(tmp_path / "out.pt", weights_only=True), expected)


def test_pipeline_classifies_with_the_saved_labels(tmp_path):
    save_classifier("resnet", tmp_path / "backbone")
    id2label = {0: "red", 1: "green", 2: "blue"}
    model = BigDropForImageClassification.from_backbone(
        tmp_path / "backbone", num_labels=3, id2label=id2label, classifier_init="normal"
    )
    model.save_pretrained(tmp_path / "saved")
    AutoImageProcessor.from_pretrained(tmp_path / "backbone").save_pretrained(tmp_path / "saved")

    classifier = pipeline("image-classification", model=str(tmp_path / "saved"), device="cpu")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    predictions = classifier(image, top_k=3)
    assert {p["label"] for p in predictions} == set(id2label.values())
    assert sum(p["score"] for p in predictions) == pytest.approx(1.0, abs=1e-4)

    processor = AutoImageProcessor.from_pretrained(tmp_path / "saved")
    with torch.no_grad():
        logits = model.eval()(**processor(image, return_tensors="pt")).logits[0]
    assert predictions[0]["label"] == id2label[int(logits.argmax())]


def test_pipeline_works_after_a_plain_save_pretrained_for_every_backbone_kind(tmp_path):
    """`model.save_pretrained(folder)` alone (no image processor saved by hand) gives a folder that `pipeline` reads
    in a fresh process without hf_bigdrop, preparing images as the model's evaluation does: a transformers
    backbone, a timm checkpoint (which saves no image processor of its own) and the embedded EfficientNet-Lite0."""
    save_classifier("vit", tmp_path / "vit")
    build_classifier("timm").save_pretrained(tmp_path / "timm")
    kinds = {  # backbone -> its evaluation preprocessing (the backbone processor's, timm's pretrained config)
        "transformers": (tmp_path / "vit", {"size": {"height": 32, "width": 32}, **HALF}),
        "timm": (tmp_path / "timm", {"size": {"height": 160, "width": 160}, **IMAGENET}),
        "embedded": ("embedded:efficientnet-lite0", {"size": {"height": 224, "width": 224}, **HALF}),
    }
    id2label = {0: "red", 1: "green", 2: "blue"}
    rng = np.random.default_rng(0)
    arguments, expected = [], {}
    for kind, (backbone, preprocessing) in kinds.items():
        model = BigDropForImageClassification.from_backbone(
            backbone, num_labels=3, id2label=id2label, classifier_init="normal"
        ).eval()
        assert model.config.preprocessing == preprocessing, kind
        with torch.no_grad():
            model.classifier.weight.mul_(
                50
            )  # clearly different scores, so the comparison below means something
        folder = tmp_path / f"saved-{kind}"
        model.save_pretrained(folder)
        # No path of this machine and no label table of the backbone's former head in the folder.
        backbone_config = json.loads((folder / "config.json").read_text())["backbone_config"]
        assert not {"_name_or_path", "label_names", "id2label", "label2id"} & set(backbone_config), kind
        if kind == "embedded":  # its name, not the cache folder it was built into
            assert resolve_backbone_name(backbone) not in (folder / "config.json").read_text()
        # An image at the evaluation size: resizing is the identity and the expected pixels are exact.
        size = (preprocessing["size"]["height"], preprocessing["size"]["width"])
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(image).save(tmp_path / f"{kind}.png")
        pixels = torch.from_numpy(image).permute(2, 0, 1).float() / 255
        mean, std = (torch.tensor(preprocessing[key]).view(3, 1, 1) for key in ("image_mean", "image_std"))
        with torch.no_grad():
            expected[str(folder)] = model(((pixels - mean) / std)[None]).logits.softmax(-1)[0]
        arguments += [folder, tmp_path / f"{kind}.png"]

    _run_without_hf_bigdrop(REMOTE_PIPELINE, *arguments, tmp_path / "predictions.json", cwd=tmp_path)
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    for folder, probabilities in expected.items():
        order = probabilities.argsort(descending=True).tolist()
        assert [p["label"] for p in predictions[folder]] == [id2label[i] for i in order], folder
        scores = torch.tensor([p["score"] for p in predictions[folder]])
        torch.testing.assert_close(scores, probabilities[order], atol=1e-4, rtol=1e-4, msg=folder)
        assert probabilities.max() - probabilities.min() > 0.05, folder


def test_a_model_without_an_image_processor_says_so_when_saved(tmp_path):
    from transformers import ViTConfig, ViTModel
    from transformers.utils import logging as hf_logging

    # A backbone instance built in code has no image processor: the saved folder cannot serve `pipeline`.
    backbone = ViTModel(
        ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    )
    model = BigDropForImageClassification.from_backbone(backbone, num_labels=2)
    assert model.config.preprocessing is None
    logger = hf_logging.get_logger("hf_bigdrop.configuration_bigdrop")
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        model.save_pretrained(tmp_path / "saved")
    finally:
        logger.removeHandler(handler)
    assert any("No image processor saved" in m and "preprocessing=" in m for m in messages), messages
    assert not (tmp_path / "saved" / "preprocessor_config.json").exists()


def test_a_model_from_an_instance_shows_no_progress_bars(capsys):
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.enable_progress_bar()
    try:
        BigDropForImageClassification.from_backbone(build_classifier("vit"), num_labels=3)
        assert transformers_logging.is_progress_bar_enabled()  # as it was
    finally:
        (
            transformers_logging.enable_progress_bar
            if was_enabled
            else transformers_logging.disable_progress_bar
        )()
    captured = capsys.readouterr()
    assert "%|" not in captured.err and "it/s]" not in captured.err, captured.err
