"""Trains a tiny BigDrop model and writes its loss log: run it with 1 or 2 processes.

Usage: python trainer_loss.py OUTPUT_JSON PER_DEVICE_BATCH_SIZE [plain|bigdrop]

`plain` (the default): the plain `transformers.Trainer`. `bigdrop`: `BigDropTrainer` with its default arguments, and a
backbone parameter that never receives a gradient (as an unused pooler would).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from toy_images import ToyImages  # beside this script: its folder is the first entry of sys.path
from transformers import Trainer, TrainingArguments

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests/: the tiny backbones every test shares
from tiny_models import tiny_model  # noqa: E402

from hf_bigdrop.training import BigDropTrainer  # noqa: E402
from hf_bigdrop.training_args import BigDropTrainingArguments  # noqa: E402


def main(output: str, per_device_batch_size: int, trainer_kind: str = "plain") -> None:
    torch.manual_seed(0)
    # Dropout masks differ between processes; the loss arithmetic is what is tested.
    model = tiny_model(dropout_rate=0.0)
    trainer_class, arguments_class = Trainer, TrainingArguments
    if trainer_kind == "bigdrop":
        model.backbone.register_parameter("unused_weight", torch.nn.Parameter(torch.ones(3)))
        trainer_class, arguments_class = BigDropTrainer, BigDropTrainingArguments
    args = arguments_class(
        output_dir=output + ".run",
        use_cpu=True,
        per_device_train_batch_size=per_device_batch_size,
        per_device_eval_batch_size=per_device_batch_size,
        max_steps=4,
        learning_rate=0.05,
        optim="sgd",
        lr_scheduler_type="constant",
        logging_steps=1,
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        seed=0,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = trainer_class(
        model=model, args=args, train_dataset=ToyImages(64, seed=0), eval_dataset=ToyImages(32, seed=1)
    )
    trainer.train()
    metrics = trainer.evaluate()
    if trainer.is_world_process_zero():
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        with open(output, "w") as handle:
            json.dump({"train_losses": losses, "eval_loss": metrics["eval_loss"]}, handle)
    # Leave together: a process that exits while the other still holds the gloo connection can abort it.
    trainer.accelerator.wait_for_everyone()
    PartialState().destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:])
