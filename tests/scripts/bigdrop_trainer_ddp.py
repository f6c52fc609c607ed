"""Trains a tiny BigDrop model with BigDropTrainer's default arguments and writes its loss log: run it with 1 or 2
processes. Its backbone holds a parameter that never receives a gradient (as an unused pooler would).

Usage: python bigdrop_trainer_ddp.py OUTPUT_JSON PER_DEVICE_BATCH_SIZE
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from toy_images import ToyImages  # beside this script: its folder is the first entry of sys.path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests/: the tiny backbones every test shares
from tiny_models import tiny_model  # noqa: E402

from hf_bigdrop.training import BigDropTrainer  # noqa: E402
from hf_bigdrop.training_args import BigDropTrainingArguments  # noqa: E402


def main(output: str, per_device_batch_size: int) -> None:
    torch.manual_seed(0)
    model = tiny_model(dropout_rate=0.0)  # dropout masks differ between processes; the arithmetic is tested
    model.backbone.register_parameter("unused_weight", torch.nn.Parameter(torch.ones(3)))
    args = BigDropTrainingArguments(
        output_dir=output + ".run",
        use_cpu=True,
        per_device_train_batch_size=per_device_batch_size,
        max_steps=4,
        learning_rate=0.05,
        optim="sgd",
        lr_scheduler_type="constant",
        logging_steps=1,
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = BigDropTrainer(model=model, args=args, train_dataset=ToyImages(64, seed=0))
    trainer.train()
    if trainer.is_world_process_zero():
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        Path(output).write_text(json.dumps({"train_losses": losses}))
    trainer.accelerator.wait_for_everyone()
    PartialState().destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
