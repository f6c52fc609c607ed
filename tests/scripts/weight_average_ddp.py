"""Trains a tiny BigDrop model with trajectory weight averaging and ensembling; each process writes its average.

Usage: python weight_average_ddp.py OUTPUT_FOLDER  (run it with 2 processes: every rank must hold the same average)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from toy_images import ToyImages  # beside this script: its folder is the first entry of sys.path

from hf_bigdrop.metrics import make_compute_metrics
from hf_bigdrop.training import BigDropTrainer
from hf_bigdrop.training_args import BigDropTrainingArguments

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests/: the tiny backbones every test shares
from tiny_models import tiny_model  # noqa: E402


def main(folder: str) -> None:
    torch.manual_seed(0)
    args = BigDropTrainingArguments(
        output_dir=str(Path(folder) / "run"),
        use_cpu=True,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        max_steps=4,
        learning_rate=0.05,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        weight_averaging_start_step=1,
        ensemble_start_step=2,
    )
    trainer = BigDropTrainer(
        model=tiny_model(classifier_init="normal"),
        args=args,
        train_dataset=ToyImages(64, seed=0),
        eval_dataset={"val_a": ToyImages(21, seed=1), "val_b": ToyImages(16, seed=2)},
        compute_metrics=make_compute_metrics(),
    )
    trainer.train()
    metrics = trainer.evaluate()
    average = trainer.weight_averaging.averaged.module.state_dict()
    state = PartialState()
    result = {
        "n_averaged": trainer.weight_averaging.n_averaged,
        "average": {k: v.flatten().tolist() for k, v in average.items() if v.is_floating_point()},
        "eval_wa_val_accuracy": metrics["eval_wa_val_accuracy"],
        "eval_ens_val_accuracy": metrics["eval_ens_val_accuracy"],
    }
    (Path(folder) / f"rank{state.process_index}.json").write_text(json.dumps(result))
    state.wait_for_everyone()
    state.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
