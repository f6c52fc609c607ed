#!/usr/bin/env python
"""What BigDropForImageClassification costs over the stock transformers head on the same backbone.

Compares, on the same random images, batch, image size and torch threads:

- training steps/s (forward, cross-entropy, backward, AdamW) and evaluation images/s (inference mode), the two
  models interleaved in one process, median of `--rounds`, and the ratio BigDrop / stock;
- peak memory of a training step and of evaluation: on CPU each model runs in a fresh subprocess that resets
  the kernel's peak-RSS counter (`/proc/self/clear_refs`) once the model is built and reads `VmHWM` after the
  steps, so the figure is what training adds above the built model (activations, gradients, AdamW state);
  on CUDA `torch.cuda.max_memory_allocated` above the resident models;
- `--load`: `BigDropForImageClassification.from_backbone` against `AutoModelForImageClassification.from_pretrained`
  on the same checkpoint: wall time and peak memory of the call (fresh subprocesses, interleaved);
- `--scaling`: `examples/run_ood.py` (demo config, a short budget, no evaluation) in 1 process against 2 processes
  under `accelerate launch --multi_gpu --num_processes 2` on CPU: training images/s and the ratio.

Backbones (`--models`): `tiny-resnet` and `resnet50` (random `ResNetConfig`s; stock head
`ResNetForImageClassification`) and `efficientnet-lite0` (the embedded ImageNet weights; stock head
`TimmWrapperForImageClassification`). BigDrop runs with `freeze_batchnorm=False`, as the stock models train.

    python benchmarks/throughput.py --models tiny-resnet resnet50 efficientnet-lite0 --load --scaling
    python benchmarks/throughput.py --device cuda --amp bf16 --output report.md

The script re-executes itself with glibc allocator settings (``MALLOC_ARENA_MAX=1`` ...) unless they are set.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from _benchmark_env import prepare_process

prepare_process()

import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForImageClassification,
    ResNetConfig,
    ResNetForImageClassification,
)
from transformers.utils import logging as hf_logging  # noqa: E402

from hf_bigdrop import BigDropForImageClassification  # noqa: E402
from hf_bigdrop.backbones import embedded_backbone_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NUM_LABELS = 10
RESNET_CONFIGS = {
    "tiny-resnet": dict(
        embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], layer_type="basic"
    ),
    "resnet50": {},  # ResNetConfig's defaults are ResNet-50
}
MODELS = (*RESNET_CONFIGS, "efficientnet-lite0")
KINDS = ("stock", "bigdrop")


def checkpoint(name: str, root: Path) -> str:
    """A local checkpoint folder of backbone `name` (random ResNets are saved once under `root`)."""
    if name == "efficientnet-lite0":
        return str(embedded_backbone_path("embedded:efficientnet-lite0"))
    folder = root / name
    if not (folder / "config.json").exists():
        torch.manual_seed(0)
        config = ResNetConfig(num_labels=NUM_LABELS, **RESNET_CONFIGS[name])
        ResNetForImageClassification(config).save_pretrained(folder)
    return str(folder)


def build(kind: str, path: str) -> torch.nn.Module:
    """The stock `*ForImageClassification` or the BigDrop model on the checkpoint at `path`, 10 classes."""
    if kind == "stock":
        return AutoModelForImageClassification.from_pretrained(
            path, num_labels=NUM_LABELS, ignore_mismatched_sizes=True
        )
    return BigDropForImageClassification.from_backbone(
        path, num_labels=NUM_LABELS, dropout_rate=0.9, freeze_batchnorm=False, classifier_init="normal"
    )


class Runner:
    """Timed training steps and evaluation batches of one model on fixed random inputs."""

    def __init__(self, model: torch.nn.Module, args: argparse.Namespace):
        self.device = torch.device(args.device)
        self.model = model.to(self.device)
        if args.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=args.amp == "fp16")
        generator = torch.Generator().manual_seed(0)
        size = args.image_size
        self.pixels = torch.randn(args.batch, 3, size, size, generator=generator).to(self.device)
        self.labels = torch.randint(0, NUM_LABELS, (args.batch,), generator=generator).to(self.device)
        self.eval_pixels = torch.randn(args.eval_batch, 3, size, size, generator=generator).to(self.device)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp) if self.amp else nullcontext()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def train_steps(self, steps: int) -> float:
        """Seconds per training step."""
        self.model.train()
        self._sync()
        start = time.perf_counter()
        for _ in range(steps):
            with self._autocast():
                loss = self.model(pixel_values=self.pixels, labels=self.labels).loss
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        self._sync()
        return (time.perf_counter() - start) / steps

    def eval_batches(self, batches: int) -> float:
        """Seconds per evaluation batch."""
        self.model.eval()
        self._sync()
        start = time.perf_counter()
        with torch.inference_mode(), self._autocast():
            for _ in range(batches):
                self.model(pixel_values=self.eval_pixels)
        self._sync()
        return (time.perf_counter() - start) / batches


def interleaved(runners: dict[str, Runner], measure: str, count: int, rounds: int) -> dict[str, float]:
    """Median seconds per call of `measure`, the models alternating (order flipped every round)."""
    for runner in runners.values():  # warm-up: allocator, kernel selection, AdamW state
        getattr(runner, measure)(2)
    times: dict[str, list[float]] = {kind: [] for kind in runners}
    for round_index in range(rounds):
        order = list(runners) if round_index % 2 == 0 else list(reversed(runners))
        for kind in order:
            times[kind].append(getattr(runners[kind], measure)(count))
    return {kind: statistics.median(values) for kind, values in times.items()}


# ---- memory and load probes: each in a fresh subprocess ------------------------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\s+(\d+) kB", status.read()).group(1)) / 1024


def _settle_and_reset_peak() -> float:
    """Returns freed memory to the OS, resets the kernel's peak-RSS counter and returns the RSS now (MiB)."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _rss_mib()


def probe(args: argparse.Namespace) -> dict:
    """One measurement in this (fresh) process: `args.probe = [model, kind, phase]`."""
    name, kind, phase = args.probe
    path = checkpoint(name, Path(args.work_dir))
    if phase == "load":
        before = _settle_and_reset_peak()
        start = time.perf_counter()
        model = build(kind, path)
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "peak_mib": _peak_rss_mib() - before, "model_mib": _model_mib(model)}
    runner = Runner(build(kind, path), args)
    before = _settle_and_reset_peak()
    if phase == "train":
        runner.train_steps(3)
    else:
        runner.eval_batches(3)
    return {"peak_mib": _peak_rss_mib() - before, "model_mib": _model_mib(runner.model)}


def _model_mib(model: torch.nn.Module) -> float:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def run_probe(args: argparse.Namespace, name: str, kind: str, phase: str) -> dict:
    command = [sys.executable, __file__, "--probe", name, kind, phase, "--work-dir", args.work_dir]
    command += ["--device", "cpu", "--batch", str(args.batch), "--eval-batch", str(args.eval_batch)]
    command += ["--image-size", str(args.image_size), "--threads", str(torch.get_num_threads())]
    command += ["--channels-last"] if args.channels_last else []
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"probe {name} {kind} {phase} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def cuda_peak_mib(runner: Runner, phase: str) -> float:
    torch.cuda.synchronize()
    gc.collect()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    runner.train_steps(3) if phase == "train" else runner.eval_batches(3)
    return (torch.cuda.max_memory_allocated() - before) / 2**20


# ---- the comparisons ------------------------------------------------------------------------------------------


def compare_model(args: argparse.Namespace, name: str) -> list[str]:
    path = checkpoint(name, Path(args.work_dir))
    runners = {kind: Runner(build(kind, path), args) for kind in KINDS}
    train = interleaved(runners, "train_steps", args.steps, args.rounds)
    evaluation = interleaved(runners, "eval_batches", args.eval_steps, args.rounds)
    rows = []
    for kind in KINDS:
        if args.device == "cuda":
            memory = {phase: cuda_peak_mib(runners[kind], phase) for phase in ("train", "eval")}
        elif args.skip_memory:
            memory = {"train": float("nan"), "eval": float("nan")}
        else:
            memory = {phase: run_probe(args, name, kind, phase)["peak_mib"] for phase in ("train", "eval")}
        rows.append((kind, 1 / train[kind], args.eval_batch / evaluation[kind], memory))
    del runners
    stock = rows[0]
    lines = []
    for kind, steps, images, memory in rows:
        lines.append(
            f"| {name} | {kind} | {steps:.2f} | {steps / stock[1]:.3f} | {images:.1f} | {images / stock[2]:.3f} | "
            f"{memory['train']:.0f} | {memory['train'] / stock[3]['train']:.3f} | {memory['eval']:.0f} | "
            f"{memory['eval'] / stock[3]['eval']:.3f} |"
        )
    return lines


def compare_loading(args: argparse.Namespace, names: list[str]) -> list[str]:
    lines = []
    for name in names:
        results: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        for round_index in range(args.rounds):
            for kind in KINDS if round_index % 2 == 0 else reversed(KINDS):
                results[kind].append(run_probe(args, name, kind, "load"))
        medians = {
            kind: {key: statistics.median(r[key] for r in values) for key in ("seconds", "peak_mib")}
            for kind, values in results.items()
        }
        stock = medians["stock"]
        for kind in KINDS:
            m = medians[kind]
            lines.append(
                f"| {name} | {kind} | {m['seconds']:.2f} | {m['seconds'] / stock['seconds']:.2f} | "
                f"{m['peak_mib']:.0f} | {m['peak_mib'] / stock['peak_mib']:.2f} |"
            )
    return lines


def compare_scaling(args: argparse.Namespace) -> list[str]:
    """run_ood.py training images/s, 1 process (all threads) against 2 processes (half the threads each)."""
    threads = torch.get_num_threads()
    flags = [
        str(REPO / "examples" / "run_ood.py"), args.scaling_config, "--use_cpu", "True",
        "--max_steps", str(args.scaling_steps), "--eval_strategy", "no", "--save_strategy", "no",
        "--load_best_model_at_end", "False", "--logging_steps", str(args.scaling_steps), "--report_to", "none",
    ]  # fmt: skip
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
    ]
    launch += ["--dynamo_backend", "no"]
    rates: dict[int, list[float]] = {1: [], 2: []}
    for round_index in range(args.rounds):
        for processes in (1, 2) if round_index % 2 == 0 else (2, 1):
            extra = ["--multi_gpu", "--num_processes", "2", "--main_process_port", str(_free_port())]
            command = launch + (extra if processes == 2 else ["--cpu", "--num_processes", "1"])
            output = Path(args.work_dir) / f"scaling-{processes}"
            env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // processes))}
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
            result = subprocess.run(
                [*command, *flags, "--output_dir", str(output), "--overwrite_output_dir", "True"],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            found = re.findall(r"'train_samples_per_second': '?([0-9.]+)", result.stdout + result.stderr)
            if result.returncode != 0 or not found:
                raise RuntimeError(
                    f"run_ood.py with {processes} process(es) failed:\n{result.stderr[-3000:]}"
                )
            rates[processes].append(float(found[-1]))
    one, two = (statistics.median(rates[p]) for p in (1, 2))
    return [
        f"| 1 process, {threads} threads | {one:.1f} | 1.00 |",
        f"| 2 processes (DDP, gloo), {max(1, threads // 2)} thread(s) each | {two:.1f} | {two / one:.2f} |",
    ]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def describe_device(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        found = re.search(
            r"Model name:\s*(.+)", subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        )
    except OSError:
        found = None
    return f"{found.group(1).strip() if found else 'unknown CPU'}, {os.cpu_count()} cores"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--amp", default="no", choices=("no", "bf16", "fp16"), help="autocast dtype")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32, help="training batch")
    parser.add_argument("--eval-batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="training steps per round")
    parser.add_argument("--eval-steps", type=int, default=5, help="evaluation batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-memory subprocesses (CPU)")
    parser.add_argument("--load", action="store_true", help="also time from_backbone against from_pretrained")
    parser.add_argument("--scaling", action="store_true", help="also 1 vs 2 processes of run_ood.py on CPU")
    parser.add_argument("--scaling-config", default=str(REPO / "examples" / "configs" / "digits.yaml"))
    parser.add_argument("--scaling-steps", type=int, default=30)
    parser.add_argument(
        "--work-dir", default=None, help="where random checkpoints are saved (default: a temp dir)"
    )
    parser.add_argument("--output", default=None, help="also write the Markdown report to this file")
    parser.add_argument("--probe", nargs=3, metavar=("MODEL", "KIND", "PHASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch")
    if args.amp != "no" and args.device != "cuda":
        parser.error("--amp is for --device cuda (CPU autocast is not what this benchmark compares)")
    if args.scaling and args.device != "cpu":
        parser.error("--scaling runs on CPU (accelerate launch with use_cpu); use --device cpu")
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe:
        print(json.dumps(probe(args)))
        return ""
    with tempfile.TemporaryDirectory(prefix="bigdrop-throughput-") as scratch:
        args.work_dir = args.work_dir or scratch
        report = [
            f"{describe_device(args.device)}; torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
            f"{args.image_size} px, training batch {args.batch}, evaluation batch {args.eval_batch}, "
            f"amp {args.amp}, {'channels-last' if args.channels_last else 'default memory format'}; "
            f"median of {args.rounds} interleaved rounds ({args.steps} training steps, {args.eval_steps} "
            "evaluation batches each).",
            "",
            "| backbone | head | train steps/s | vs stock | eval images/s | vs stock | train peak MiB | vs stock | "
            "eval peak MiB | vs stock |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name in args.models:
            report += compare_model(args, name)
            print("\n".join(report[-2:]), flush=True)
        if args.load:
            report += [
                "",
                "| checkpoint | loader | load s | vs stock | peak MiB | vs stock |",
                "|---|---|---:|---:|---:|---:|",
            ]
            report += compare_loading(args, args.models)
        if args.scaling:
            report += ["", "| run_ood.py (demo config) | train images/s | vs 1 process |", "|---|---:|---:|"]
            report += compare_scaling(args)
    text = "\n".join(report) + "\n"
    print("\n" + text)
    if args.output:
        Path(args.output).write_text(text)
    return text


if __name__ == "__main__":
    main()
