"""BigDrop in the plain transformers.Trainer: learning, frozen BatchNorm, and the loss under data parallelism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, launch_two_cpu_processes
from tiny_models import save_classifier
from transformers import Trainer, TrainingArguments

from hf_bigdrop import BigDropForImageClassification

SCRIPT = Path(__file__).parent / "scripts" / "trainer_loss.py"


class ColourImages(torch.utils.data.Dataset):
    """Class = the brightest colour channel: a task a tiny backbone learns in a few dozen steps."""

    def __init__(self, size: int, seed: int, image_size: int = 32):
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 3, (size,), generator=generator)
        self.pixels = torch.rand(size, 3, image_size, image_size, generator=generator)
        self.pixels[torch.arange(size), self.labels] += 1.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"pixel_values": self.pixels[index], "labels": self.labels[index]}


def _args(tmp_path, **kwargs) -> TrainingArguments:
    defaults = dict(
        output_dir=str(tmp_path / "run"),
        use_cpu=True,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        remove_unused_columns=False,
        disable_tqdm=True,
        seed=0,
    )
    defaults.update(kwargs)
    return TrainingArguments(**defaults)


@pytest.mark.parametrize("dropout_rate", [0.0, 0.9])
def test_a_few_trainer_steps_lower_the_loss(tmp_path, dropout_rate):
    save_classifier("resnet", tmp_path / "backbone")
    model = BigDropForImageClassification.from_backbone(
        tmp_path / "backbone", num_labels=3, dropout_rate=dropout_rate
    )
    trainer = Trainer(
        model=model,
        args=_args(tmp_path, max_steps=40, optim="adamw_torch", lr_scheduler_type="constant"),
        train_dataset=ColourImages(256, seed=0),
        eval_dataset=ColourImages(96, seed=1),
    )
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    assert after < before - 0.05, (before, after)


@pytest.mark.parametrize("family", ["resnet", "timm"])
def test_trainer_leaves_frozen_batchnorm_statistics_unchanged(tmp_path, family):
    save_classifier(family, tmp_path / "backbone")
    model = BigDropForImageClassification.from_backbone(tmp_path / "backbone", num_labels=3)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_" in k}
    weights_before = {k: v.clone() for k, v in model.state_dict().items() if "running_" not in k}
    assert before
    trainer = Trainer(model=model, args=_args(tmp_path, max_steps=5), train_dataset=ColourImages(80, seed=0))
    trainer.train()
    state = model.state_dict()
    for name, value in before.items():
        torch.testing.assert_close(state[name], value, msg=name)
    # ... while the network itself did train.
    assert any(not torch.equal(state[k], v) for k, v in weights_before.items() if "backbone" in k)


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["transformers", "bigdrop"])
def test_two_processes_train_as_one(tmp_path, trainer):
    """Two processes report the losses of one: the Trainer must not scale the loss by the number of processes
    (transformers' ResNet head does). BigDropTrainer's DDP also learns the unused parameters once (a static graph):
    no search every step, no warning that there were none, and a backbone parameter without a gradient still trains
    as in one process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    kind = ["bigdrop"] if trainer == "bigdrop" else []
    subprocess.run(
        [sys.executable, str(SCRIPT), str(one), "8", *kind], check=True, cwd=tmp_path, env=env, timeout=300
    )
    launch = launch_two_cpu_processes([str(SCRIPT), str(two), "4", *kind], cwd=tmp_path, timeout=300)
    single, double = json.loads(one.read_text()), json.loads(two.read_text())
    assert len(single["train_losses"]) == len(double["train_losses"]) == 4
    assert double["train_losses"] == pytest.approx(single["train_losses"], rel=1e-5)
    assert double["eval_loss"] == pytest.approx(single["eval_loss"], rel=1e-5)
    if trainer == "bigdrop":
        assert "find_unused_parameters" not in launch.stderr
