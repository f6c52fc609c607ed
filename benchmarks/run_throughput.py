#!/usr/bin/env python
"""Where a run's time goes: a real recipe end to end, its training images/s against its own training step's.

Runs a recipe through the library's runner (`hf_bigdrop.experiment.run_experiment`: data, backbone, `BigDropTrainer`
with its evaluations, weight average, ensemble and checkpoints) for `--max_steps` steps, timing each phase with a
Trainer callback, then times the bare training step of the same model (same backbone, dropout, optimiser, image size,
batch, memory format and torch threads) on random images in the same process, and prints:

- the run's training images/s (steps x batch over the training loop's wall time, evaluations and checkpoints
  included), the step's images/s and their ratio;
- the share of the training loop's wall time in each phase: waiting for data, the step itself (forward, backward,
  optimizer, weight-average update), evaluation of each method (the Trainer's own per-set runtimes), checkpoints;
  start-up (imports, data, backbone) and the end (selection, saving the model, card) beside it.

    python benchmarks/run_throughput.py examples/configs/emoji_sgd.yaml --max_steps 300 [any runner flag ...]

Any flag after the recipe overrides it as in `hf-bigdrop run`. The run writes into a temporary folder.
"""

from __future__ import annotations

import time

PROCESS_START = time.perf_counter()

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402

from _benchmark_env import cpu_model, prepare_process  # noqa: E402

prepare_process()

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from hf_bigdrop import BigDropForImageClassification  # noqa: E402
from hf_bigdrop.experiment import parse_experiment_arguments  # noqa: E402
from hf_bigdrop.experiment.runner import run_experiment, training_image_size  # noqa: E402
from hf_bigdrop.metric_keys import parse_metric_key  # noqa: E402


class PhaseTimer(TrainerCallback):
    """Wall time of each phase of the Trainer's loop, from its callback events.

    The Trainer fetches a batch, calls `on_step_begin`, runs the step, calls `on_step_end`, then may evaluate (each
    evaluation set ends with `on_evaluate`) and save (`on_save`). So: data = previous boundary -> step begin;
    step = step begin -> step end; evaluation = step end -> last `on_evaluate`; checkpoint -> `on_save`.
    """

    def __init__(self):
        self.phases: dict[str, float] = defaultdict(float)
        self.train_begin = self.train_end = self.mark = 0.0
        self.steps = 0

    def _lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] += now - self.mark
        self.mark = now

    def on_train_begin(self, args, state, control, **kwargs):
        self.train_begin = self.mark = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self._lap("data wait")

    def on_step_end(self, args, state, control, **kwargs):
        self._lap("training step")
        self.steps += 1

    def on_evaluate(self, args, state, control, **kwargs):
        self._lap("evaluation")

    def on_save(self, args, state, control, **kwargs):
        self._lap("checkpoint")

    def on_train_end(self, args, state, control, **kwargs):
        self._lap("other")
        self.train_end = self.mark


def evaluation_seconds_by_method(history: list[dict]) -> dict[str, float]:
    """Seconds of evaluation per method, from the Trainer's per-set `..._runtime` entries."""
    seconds: dict[str, float] = defaultdict(float)
    for entry in history:
        for key, value in entry.items():
            parsed = parse_metric_key(key)
            if parsed is not None and parsed.statistic == "runtime":
                seconds[parsed.method] += float(value)
    return dict(seconds)


def optimizer_for(model, training) -> torch.optim.Optimizer:
    """The recipe's optimiser on every parameter (the step's cost; the parameter groups do not change it)."""
    if training.optim == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=training.learning_rate,
            momentum=training.sgd_momentum,
            weight_decay=training.weight_decay,
        )
    return torch.optim.AdamW(
        model.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay
    )


def step_images_per_second(arguments, batch: int, size: int, steps: int = 10, rounds: int = 3) -> float:
    """Images/s of the bare training step (forward, cross-entropy, backward, optimizer) on random images, in the
    run's memory format and precision."""
    model = BigDropForImageClassification.from_backbone(
        arguments.model.backbone, num_labels=10, **arguments.model.config_kwargs()
    )
    memory_format = torch.channels_last if arguments.training.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format).train()
    optimizer = optimizer_for(model, arguments.training)
    pixels = torch.randn(batch, 3, size, size).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (batch,))

    def step():
        # In the run's precision: bf16 autocast with fp32 weights where the recipe sets `bf16`, as the Trainer does.
        with torch.autocast(pixels.device.type, dtype=torch.bfloat16, enabled=bool(arguments.training.bf16)):
            loss = model(pixels, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(3):  # warm-up: allocator, oneDNN kernel selection
        step()
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="a recipe file (e.g. examples/configs/emoji_sgd.yaml)")
    parser.add_argument("--max_steps", type=int, default=300)
    args, overrides = parser.parse_known_args()
    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as folder:
        flags = [args.recipe, *overrides, "--max_steps", str(args.max_steps), "--output_dir", folder]
        flags += ["--overwrite_output_dir", "True", "--report_to", "none", "--disable_tqdm", "True"]
        arguments = parse_experiment_arguments(flags)
        timer = PhaseTimer()
        results = run_experiment(arguments, callbacks=[timer])
        run_end = time.perf_counter()
    training = arguments.training
    batch = training.per_domain_batch_size * len(results.train_domains)
    size = training_image_size(arguments.data) or 224
    loop = timer.train_end - timer.train_begin
    run_rate = timer.steps * batch / loop
    step_rate = step_images_per_second(arguments, batch, size)

    print(
        f"\n{args.recipe} + {' '.join(overrides) or 'no overrides'}: {timer.steps} steps of {batch} images at "
        f"{size} px, evaluation every {training.eval_steps} steps, {training.dataloader_num_workers} DataLoader "
        f"worker(s), {torch.get_num_threads()} torch threads, torch {torch.__version__}, {cpu_model()}\n"
    )
    print("| | images/s |\n|---|---:|")
    print(f"| run (training loop, evaluations and checkpoints included) | {run_rate:.1f} |")
    print(f"| training step alone (random images, same model and batch) | {step_rate:.1f} |")
    print(f"| **ratio run / step** | **{run_rate / step_rate:.2f}** |\n")
    evaluation = evaluation_seconds_by_method(results.history)
    rows = [(phase, seconds) for phase, seconds in timer.phases.items() if phase != "evaluation"]
    measured_evaluation = timer.phases.get("evaluation", 0.0)
    for method, seconds in sorted(evaluation.items()):
        rows.append((f"evaluation: {method}", seconds))
    rows.append(
        (
            "evaluation: the rest (summaries, ensemble, logging)",
            measured_evaluation - sum(evaluation.values()),
        )
    )
    print("| phase of the training loop | seconds | share |\n|---|---:|---:|")
    for phase, seconds in rows:
        print(f"| {phase} | {seconds:.1f} | {100 * seconds / loop:.1f}% |")
    print(f"| **training loop** | **{loop:.1f}** | 100% |\n")
    print(
        f"start-up (imports, data, backbone) before the loop: {timer.train_begin - PROCESS_START:.1f} s; "
        f"after it (selection, model, card): {run_end - timer.train_end:.1f} s"
    )


if __name__ == "__main__":
    main()
