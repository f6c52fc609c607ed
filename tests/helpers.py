"""Helpers shared by the test modules (no test module imports another): paths, tiny datasets and arguments, the
runner's tiny flags, callbacks that simulate a killed run, and launching several processes."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import datasets
import numpy as np
from PIL import Image
from transformers import TrainerCallback, ViTImageProcessor

from hf_bigdrop.training_args import BigDropTrainingArguments

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "examples" / "run_ood.py"


def load_example(name: str) -> ModuleType:
    """`examples/<name>.py` as a module (the examples are scripts, not part of the package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A free TCP port on localhost for a torch.distributed rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two_cpu_processes(
    script_and_args: list[str], *, cwd: Path, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Runs `accelerate launch --multi_gpu --num_processes 2` on CPU (gloo) and fails with the launcher's output;
    returns the finished launch (its output, for tests that read it).

    The rendezvous port is picked free just before the launch; if another process takes it in between, the
    launch fails before training starts, so it is tried once more on a new port.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    failures = []
    for _ in range(2):
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
        command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        command += ["--main_process_port", str(free_port()), *script_and_args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
        if result.returncode == 0:
            return result
        log = cwd / f"launch-{len(failures)}.log"
        log.write_text(result.stdout + "\n" + result.stderr)
        clues = [
            line
            for line in result.stderr.splitlines()
            if re.search(r"Error|error|terminate|abort|what\(\)", line)
        ]
        failures.append(f"{log}:\n" + "\n".join(clues[:30]))
    raise AssertionError("accelerate launch failed twice:\n" + "\n----\n".join(failures))


DOMAINS = ["art", "photo", "sketch"]
CLASSES = ["red", "green", "blue"]
PROCESSOR = ViTImageProcessor(size={"height": 16, "width": 16})


def colour_dataset(sizes: dict[str, int], seed: int = 0) -> datasets.Dataset:
    """Images whose class is their dominant colour, from domains of the given sizes."""
    rng = np.random.default_rng(seed)
    images, labels, domains = [], [], []
    for domain, size in sizes.items():
        for _ in range(size):
            label = int(rng.integers(0, 3))
            pixels = rng.integers(0, 120, (16, 16, 3), dtype=np.uint8)
            pixels[..., label] += 120
            images.append(Image.fromarray(pixels))
            labels.append(label)
            domains.append(DOMAINS.index(domain))
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=CLASSES),
            "domain": datasets.ClassLabel(names=DOMAINS),
        }
    )
    return datasets.Dataset.from_dict(
        {"image": images, "label": labels, "domain": domains}, features=features
    )


def make_args(tmp_path, **kwargs) -> BigDropTrainingArguments:
    defaults = dict(output_dir=str(tmp_path / "run"), use_cpu=True, report_to=[], disable_tqdm=True, seed=0)
    return BigDropTrainingArguments(**{**defaults, **kwargs})


def tiny_flags(backbone: Path, output_dir: Path, *extra: str) -> list[str]:
    """The experiment's flags for a run of a few seconds: digits, 24 images a domain, 6 steps, 2 evaluations."""
    return [
        "--backbone", str(backbone),
        "--dataset", "digits",
        "--test_domains", "optdigits",
        "--max_per_domain", "24",
        "--output_dir", str(output_dir),
        "--use_cpu",
        "--report_to", "none",
        "--disable_tqdm", "True",
        "--per_domain_batch_size", "4",
        "--max_steps", "6",
        "--learning_rate", "0.01",
        "--eval_strategy", "steps",
        "--eval_steps", "3",
        "--save_strategy", "steps",
        "--save_steps", "3",
        "--load_best_model_at_end",
        "--dataloader_num_workers", "0",
        "--seed", "0",
        *extra,
    ]  # fmt: skip


class StopAfterFirstCheckpoint(TrainerCallback):
    """Simulates a run killed right after its first checkpoint."""

    def on_save(self, args, state, control, **kwargs):
        control.should_training_stop = True


def run_stopped_after_first_checkpoint(monkeypatch, argv: list[str]) -> None:
    """Runs the experiment of `argv` as far as its first checkpoint, as a run killed there leaves its folder."""
    from hf_bigdrop.experiment import parse_experiment_arguments, run_experiments
    from hf_bigdrop.experiment import runner as runner_module

    class KilledTrainer(runner_module.BigDropTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(StopAfterFirstCheckpoint())

    with monkeypatch.context() as patch:
        patch.setattr(runner_module, "BigDropTrainer", KilledTrainer)
        run_experiments(parse_experiment_arguments(argv))


# The start of a script run in a fresh interpreter in which `import hf_bigdrop` fails, as on a machine that never
# installed it.
_BLOCK_HF_BIGDROP = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockHfBigdrop(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hf_bigdrop" or name.startswith("hf_bigdrop."):
                raise ImportError("hf_bigdrop is blocked in this test")

    sys.meta_path.insert(0, BlockHfBigdrop())
    try:
        import hf_bigdrop  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the import block failed")
    """
)

# Loads a saved model with its remote code and writes its logits on saved pixels.
REMOTE_LOAD = _BLOCK_HF_BIGDROP + textwrap.dedent(
    """
    import torch
    from transformers import AutoModelForImageClassification

    folder, pixels_file, logits_file = sys.argv[1:4]
    model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    # The pooling module, imported relatively by the model's file, was saved beside it and loaded from there.
    pooling_modules = [m for m in sys.modules if m.endswith(".pooling_bigdrop")]
    assert pooling_modules and all(m.startswith("transformers_modules") for m in pooling_modules), pooling_modules
    # The exported code supports the backbone's attention implementations (timm: sdpa; ResNet: eager).
    expected = "eager" if model.config.backbone_config.model_type == "resnet" else "sdpa"
    assert model.config._attn_implementation == model.backbone.config._attn_implementation == expected
    with torch.no_grad():
        torch.save(model(torch.load(pixels_file, weights_only=True)).logits, logits_file)
    """
)

# Classifies an image with `pipeline("image-classification")` from each saved folder (its remote code and the image
# processor that `save_pretrained` wrote) and writes the predictions as JSON: `folder image [folder image ...] out`.
REMOTE_PIPELINE = _BLOCK_HF_BIGDROP + textwrap.dedent(
    """
    import json
    from PIL import Image
    from transformers import pipeline

    *pairs, output = sys.argv[1:]
    predictions = {}
    for folder, image in zip(pairs[::2], pairs[1::2]):
        classifier = pipeline("image-classification", model=folder, trust_remote_code=True, device="cpu")
        predictions[folder] = classifier(Image.open(image), top_k=3)
    with open(output, "w") as handle:
        json.dump(predictions, handle)
    """
)
