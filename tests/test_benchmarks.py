"""The benchmark scripts' CPU-runnable parts: argument handling, the GPU check's dry run, a tiny throughput run."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from helpers import REPO

GPU_CHECK = REPO / "benchmarks" / "gpu_check.sh"
THROUGHPUT = REPO / "benchmarks" / "throughput.py"


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHON": sys.executable}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, **kwargs)


def test_gpu_check_dry_run_writes_the_report_with_every_step(tmp_path):
    result = run(["bash", str(GPU_CHECK), "--dry-run", "--steps", "40", str(tmp_path / "out")])
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "out" / "gpu_report.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in report.splitlines() if line.startswith("| ")}
    expected = [
        "train-bf16",
        "resume-bf16",
        "train-fp16",
        "resume-fp16",
        "throughput-cuda",
        "accelerate-bf16",
    ]
    assert [name for name in rows if name != "step"] == expected
    commands = {name: (tmp_path / "out" / "logs" / f"{name}.cmd").read_text() for name in expected}
    assert "--bf16 True" in commands["train-bf16"] and "--max_steps 40" in commands["train-bf16"]
    assert "--image_size 224" in commands["train-fp16"] and "--fp16 True" in commands["train-fp16"]
    assert (
        "--resume_from_checkpoint True" in commands["resume-fp16"]
        and "--max_steps 42" in commands["resume-fp16"]
    )
    assert commands["resume-bf16"].count("run-bf16") == 1 and "run-bf16" in commands["train-bf16"]
    assert "--device cuda" in commands["throughput-cuda"]
    assert "--mixed_precision bf16" in commands["accelerate-bf16"]
    assert all(command.startswith(sys.executable) for command in commands.values())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "missing OUTPUT_DIR"),
        (["--budget", "soon", "out"], "positive integer"),
        (["--fast", "out"], "unknown option --fast"),
        (["a", "b"], "one OUTPUT_DIR only"),
    ],
)
def test_gpu_check_rejects_bad_arguments(arguments, message, tmp_path):
    result = run(["bash", str(GPU_CHECK), *arguments], cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr


def test_throughput_rejects_cuda_only_options_on_cpu():
    result = run([sys.executable, str(THROUGHPUT), "--amp", "bf16"])
    assert result.returncode == 2 and "--amp is for --device cuda" in result.stderr


def _rows(output: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| tiny-resnet"):
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


# The smallest throughput.py run: one tiny ResNet, 32 px, batches of 4, one step.
TINY_RUN = (
    "--models",
    "tiny-resnet",
    "--image-size",
    "32",
    "--batch",
    "4",
    "--eval-batch",
    "4",
    "--steps",
    "1",
)


@pytest.mark.slow
def test_throughput_compares_with_the_stock_head_and_probes_memory_and_loading_on_cpu(tmp_path):
    """One run of every CPU part (steps/s, peak-memory probes, load probes): each probe is a fresh process."""
    flags = list(TINY_RUN)
    flags += ["--eval-steps", "1", "--rounds", "1", "--threads", "1", "--load", "--output", "report.md"]
    result = run([sys.executable, str(THROUGHPUT), *flags], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "report.md").read_text()
    speed, loading = text.split("| checkpoint | loader | load s |")
    rows = _rows(speed)
    assert set(rows) == {("tiny-resnet", "stock"), ("tiny-resnet", "bigdrop")}
    stock, bigdrop = rows[("tiny-resnet", "stock")], rows[("tiny-resnet", "bigdrop")]
    assert stock[1::2] == ["1.000"] * 4  # every ratio of the stock head against itself
    steps, ratio = float(bigdrop[0]), float(bigdrop[1])
    assert steps > 0 and ratio == pytest.approx(steps / float(stock[0]), rel=0.01)
    for cells in rows.values():  # steps/s, images/s and the peak memory of training and evaluation
        assert all(float(cell) > 0 for cell in cells)
    load_rows = _rows(loading)
    assert set(load_rows) == {("tiny-resnet", "stock"), ("tiny-resnet", "bigdrop")}
    assert load_rows[("tiny-resnet", "stock")][1::2] == ["1.00", "1.00"]
    for cells in load_rows.values():  # load seconds and peak memory
        assert all(float(cell) > 0 for cell in cells)


def test_train_throughput_times_each_variant_and_bf16_when_asked(tmp_path):
    script = REPO / "benchmarks" / "train_throughput.py"
    flags = ["--image-size", "32", "--batch", "2", "--steps", "1", "--rounds", "1", "--bf16"]
    result = run([sys.executable, str(script), *flags], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "images/s" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| default", "| channels_last", "| channels_last_bf16"]
    assert rows[0].endswith("| 1.00x |")


def test_run_throughput_prints_the_run_against_its_step(backbone, tmp_path):
    script = REPO / "benchmarks" / "run_throughput.py"
    recipe = REPO / "examples" / "configs" / "digits.yaml"
    flags = ["--backbone", str(backbone), "--max_steps", "4", "--eval_steps", "2", "--save_steps", "2"]
    flags += ["--max_per_domain", "24", "--per_domain_batch_size", "4", "--dataloader_num_workers", "0"]
    flags += ["--weight_averaging_start_step", "2", "--ensemble_start_step", "none", "--bf16", "True"]
    result = run([sys.executable, str(script), str(recipe), *flags], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| **ratio run / step** |" in result.stdout and "| evaluation: live |" in result.stdout


def test_augmentation_check_pairs_two_values_of_a_grid_key_by_seed(tmp_path, capsys):
    import yaml

    from hf_bigdrop.experiment.sweep import Sweep
    from hf_bigdrop.results import MethodResults, RunResults

    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"dataset": "digits", "max_steps": 2}))
    grid = {
        "test_domains": ["mnist"],
        "augmentation": ["domainbed", "domainbed_batched"],
        "dropout_rate": [0.0, 0.9],
        "seed": [0, 1, 2],
    }
    (tmp_path / "sweep.yaml").write_text(
        yaml.safe_dump(
            {
                "config": str(tmp_path / "recipe.yaml"),
                "output_dir": str(tmp_path / "sweep"),
                "grid": grid,
                "method_keys": ["augmentation", "dropout_rate"],
            }
        )
    )
    sweep = Sweep.load(tmp_path / "sweep.yaml")
    # Validation: the batched runs 1, 2 and 3 points above the per-image ones (seeds 0, 1, 2); seed 2 of p=0.9 with
    # the batched augmentation has not finished, so p=0.9 has two pairs.
    for job in sweep.jobs():
        batched = job.setting["augmentation"] == "domainbed_batched"
        if batched and job.seed == 2 and job.setting["dropout_rate"] == 0.9:
            continue
        validation = 0.70 + 0.05 * job.seed + (0.01 * (job.seed + 1) if batched else 0.0)
        job.output_dir.mkdir(parents=True)
        RunResults(
            dataset="digits",
            train_domains=["x"],
            test_domains=["mnist"],
            seed=job.seed,
            backbone="tiny",
            dropout_rate=job.setting["dropout_rate"],
            methods={"live": MethodResults(100, {"x": validation}, {"mnist": 0.5}, fit_accuracy={"x": 0.9})},
            wall_time_s=50.0 if batched else 60.0,
            arguments={
                "model": {"dropout_rate": job.setting["dropout_rate"]},
                "data": {"test_domains": ["mnist"], "augmentation": job.setting["augmentation"]},
                "training": {"seed": job.seed},
                "recipe": {"dataset": "digits", "max_steps": 2},
            },
        ).save(job.output_dir)
    spec = importlib.util.spec_from_file_location(
        "augmentation_check", REPO / "benchmarks" / "augmentation_check.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main([str(tmp_path / "sweep.yaml")])
    out = capsys.readouterr().out
    erm, big = out.split("### held out mnist, dropout_rate=0.9")
    assert "### held out mnist, dropout_rate=0.0" in erm
    # Mean +2.0 points over 3 pairs of 1, 2, 3: t(0.975, 2) = 4.303, std 1, half-width 2.48.
    assert "| training-domain validation | 77.0 | 75.0 | +2.0 (-0.5 to +4.5) | 3 |" in erm
    assert "| fit (dropout off) | 90.0 | 90.0 | +0.0 (+0.0 to +0.0) | 3 |" in erm
    assert "| wall time (s) | 50.0 | 60.0 | -10.0 (-10.0 to -10.0) | 3 |" in erm
    assert "| training-domain validation | 74.0 | 72.5 | +1.5 " in big and "| 2 |" in big
    with pytest.raises(
        SystemExit, match=r"augmentation='fancy' is not in the sweep's grid; its values: \['domainbed'"
    ):
        script.main([str(tmp_path / "sweep.yaml"), "--treatment", "fancy", "--control", "domainbed"])
    for results in (tmp_path / "sweep").rglob("results.json"):
        if "domainbed_batched" in str(results):
            results.unlink()
    with pytest.raises(
        SystemExit, match="no seed finished with both augmentation='domainbed_batched' and 'domainbed'"
    ):
        script.main([str(tmp_path / "sweep.yaml")])


def test_augmentation_throughput_times_each_recipe_against_the_first(tmp_path):
    script = REPO / "benchmarks" / "augmentation_throughput.py"
    flags = ["--size", "8", "--stored-size", "10", "--batch", "4", "--batches", "1", "--rounds", "2"]
    result = run([sys.executable, str(script), *flags], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| domainbed")]
    assert [row.split(" | ")[0] for row in rows] == ["| domainbed", "| domainbed_batched"]
    assert rows[0].endswith("| 1.00x |") and "4 images of 10 px to 8 px a batch" in result.stdout
    bad = run([sys.executable, str(script), "--recipes", "fancy"], cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice: 'fancy'" in bad.stderr
    bad = run([sys.executable, str(script), "--threads", "0"], cwd=tmp_path)
    assert bad.returncode == 2 and "--threads must be a positive integer, got 0" in bad.stderr
