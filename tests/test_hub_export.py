"""Saved BigDrop folders: remote code without hf_bigdrop installed, and the image-classification pipeline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import REMOTE_LOAD
from PIL import Image
from tiny_models import pixel_batch, save_classifier
from transformers import AutoImageProcessor, pipeline

from hf_bigdrop import BigDropForImageClassification


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
    script = tmp_path / "load.py"
    script.write_text(REMOTE_LOAD)
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "saved"),
            str(tmp_path / "pixels.pt"),
            str(tmp_path / "out.pt"),
        ],
        check=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
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
