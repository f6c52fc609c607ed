"""examples/run_ood.py end to end on a tiny backbone and a few images per domain of the embedded digits."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, RUNNER, launch_two_cpu_processes, load_run_ood
from PIL import Image
from safetensors.torch import load_file
from tiny_models import save_classifier
from transformers import AutoModelForImageClassification, TrainerCallback, pipeline

from hf_bigdrop import BigDropForImageClassification
from hf_bigdrop.results import RunResults

run_ood = load_run_ood()


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("backbone")
    save_classifier("resnet", folder)
    return folder


def tiny_flags(backbone: Path, output_dir: Path, *extra: str) -> list[str]:
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


def test_runner_end_to_end(backbone, tmp_path):
    out = tmp_path / "run"
    trajectory = ("--weight_averaging_start_step", "1", "--ensemble_start_step", "3")
    [results] = run_ood.main(tiny_flags(backbone, out, "--dropout_rate", "0.9", *trajectory))

    for name in (
        "model.safetensors",
        "config.json",
        "modeling_bigdrop.py",
        "pooling_bigdrop.py",
        "configuration_bigdrop.py",
    ):
        assert (out / name).exists(), name
    # Trained and saved at the registry's image size of the embedded digits (32 px): no --image_size given.
    processor = json.loads((out / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 32, "width": 32}

    saved = json.loads((out / "results.json").read_text())
    assert saved["train_domains"] == ["mnist", "mnist_m", "typeface"]
    assert saved["test_domains"] == ["optdigits"]
    assert saved["primary_method"] == "dropout"
    assert set(saved["methods"]) == {"dropout", "trajectory_wa", "trajectory_ensemble"}
    for record in saved["methods"].values():
        assert set(record["validation_accuracy"]) == set(saved["train_domains"])
        assert set(record["test_accuracy"]) == {"optdigits"}
        assert record["selected_step"] in (3, 6)
    assert saved["selection"] == "training_domain_validation"
    assert saved["arguments"]["model"]["dropout_rate"] == 0.9
    assert saved["arguments"]["training"]["max_steps"] == 6
    assert {"torch", "transformers", "datasets", "hf_bigdrop"} <= set(saved["versions"])
    assert saved["wall_time_s"] > 0
    assert RunResults.load(out) == results

    # Selection read the training domains' validation accuracy, never the held-out domain's, for every method;
    # the live model's selected step is the checkpoint the Trainer loaded.
    for method, prefix in (
        ("dropout", "eval"),
        ("trajectory_wa", "eval_wa"),
        ("trajectory_ensemble", "eval_ens"),
    ):
        evaluations = {}
        for entry in saved["history"]:
            evaluations.setdefault(entry["step"], {}).update(entry)
        evaluations = {step: e for step, e in evaluations.items() if f"{prefix}_val_accuracy" in e}
        best = max(sorted(evaluations), key=lambda step: evaluations[step][f"{prefix}_val_accuracy"])
        record = saved["methods"][method]
        assert record["selected_step"] == best, method
        assert record["test_accuracy"]["optdigits"] == evaluations[best][f"{prefix}_test_optdigits_accuracy"]
    assert Path(run_ood_trainer_best(out)).name == f"checkpoint-{results.selected_step}"

    card = (out / "README.md").read_text()
    assert "| optdigits | held out (o.o.d.) |" in card
    assert f"{100 * results.test_accuracy['optdigits']:.1f}" in card
    assert "arXiv:2403.00946" in card and "hf_bigdrop" in card

    # The saved folder is the selected model, and it reloads.
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert isinstance(model, BigDropForImageClassification)
    assert model.config.id2label[3] == "3"
    classifier = pipeline("image-classification", model=str(out), device="cpu")
    assert len(classifier(Image.new("RGB", (20, 20), "white"), top_k=2)) == 2


def run_ood_trainer_best(out: Path) -> str:
    """The best checkpoint the Trainer recorded (read from the last checkpoint's trainer_state.json)."""
    last = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    return json.loads((last / "trainer_state.json").read_text())["best_model_checkpoint"]


class StopAfterFirstCheckpoint(TrainerCallback):
    """Simulates a run killed right after its first checkpoint."""

    def on_save(self, args, state, control, **kwargs):
        control.should_training_stop = True


def test_resume_continues_a_killed_run_exactly(backbone, tmp_path, monkeypatch):
    flags = ("--dropout_rate", "0.5", "--classifier_lr_multiplier", "10")
    [uninterrupted] = run_ood.main(tiny_flags(backbone, tmp_path / "a", *flags))

    class KilledTrainer(run_ood.BigDropTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(StopAfterFirstCheckpoint())

    with monkeypatch.context() as patch:
        patch.setattr(run_ood, "BigDropTrainer", KilledTrainer)
        run_ood.main(tiny_flags(backbone, tmp_path / "b", *flags))
    assert sorted(p.name for p in (tmp_path / "b").glob("checkpoint-*")) == ["checkpoint-3"]

    [resumed] = run_ood.main(tiny_flags(backbone, tmp_path / "b", *flags, "--resume_from_checkpoint", "True"))
    assert resumed.validation_accuracy == uninterrupted.validation_accuracy
    assert resumed.test_accuracy == uninterrupted.test_accuracy
    assert resumed.selected_step == uninterrupted.selected_step
    for folder in ("", "checkpoint-6"):
        a = load_file(tmp_path / "a" / folder / "model.safetensors")
        b = load_file(tmp_path / "b" / folder / "model.safetensors")
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], msg=f"{folder}/{name}")


def test_config_file_with_overrides(backbone, tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text(
        f"backbone: {backbone}\ndropout_rate: 0.7\nlr_milestones: [5, 8]\nfreeze_batchnorm: false\n"
    )
    model_args, data_args, training_args, _ = run_ood.parse_arguments(
        [str(config), "--dropout_rate", "0.3", "--output_dir", str(tmp_path)]
    )
    assert model_args.backbone == str(backbone)
    assert model_args.dropout_rate == 0.3  # the flag overrides the file
    assert model_args.freeze_batchnorm is False
    assert training_args.lr_milestones == [5, 8]
    assert data_args.dataset == "digits"


def test_paper_recipes_parse():
    recipes = sorted((REPO / "examples" / "configs").glob("*_[be][ir][gm]*.yaml"))
    assert len(recipes) == 8  # PACS, VLCS, OfficeHome, TerraIncognita x (very large dropout, ERM)
    for recipe in recipes:
        model_args, data_args, training_args, _ = run_ood.parse_arguments([str(recipe)])
        assert model_args.backbone == "timm/resnet50.tv2_in1k"
        assert model_args.dropout_rate in (0.0, 0.9)
        assert training_args.optim == "sgd" and training_args.lr_milestones == [5000]
        assert training_args.max_steps == 10000 and training_args.per_domain_batch_size == 32
        assert training_args.metric_for_best_model == "val_accuracy"


def _cli(*flags: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(RUNNER), *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--backbone", "/no/such/folder"], "/no/such/folder"),
        (["--test_domains", "svhn"], "svhn"),
        (["--dropout_rate", "1.5"], r"dropout_rate.*\[0, 1\)"),
    ],
    ids=["unknown-backbone", "unknown-domain", "bad-rate"],
)
def test_bad_input_is_one_line(backbone, tmp_path, flags, message):
    result = _cli(*tiny_flags(backbone, tmp_path / "run"), *flags)  # the last occurrence of a flag wins
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("run_ood.py: error:")]
    assert len(error_lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert re.search(message, error_lines[0]), error_lines[0]


def test_backbone_that_needs_the_network_while_offline(tmp_path):
    result = _cli(
        "--backbone", "timm/resnet50.tv2_in1k", "--output_dir", str(tmp_path), "--use_cpu", "--max_steps", "1",
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty_hf_home")},
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("run_ood.py: error:")]
    assert "timm/resnet50.tv2_in1k" in line and "HF_HUB_OFFLINE=1" in line


@pytest.mark.slow
def test_two_process_run_under_accelerate_launch(backbone, tmp_path):
    out = tmp_path / "ddp"
    launch_two_cpu_processes([str(RUNNER), *tiny_flags(backbone, out)], cwd=tmp_path)
    results = RunResults.load(out)
    assert results.selected_step in (3, 6)
    model = AutoModelForImageClassification.from_pretrained(out)
    assert isinstance(model, BigDropForImageClassification)
    selected = out / f"checkpoint-{results.selected_step}"
    AutoModelForImageClassification.from_pretrained(selected)


@pytest.mark.slow
def test_leave_one_domain_out_runs_every_domain(backbone, tmp_path):
    flags = tiny_flags(backbone, tmp_path / "lodo")
    flags[flags.index("--test_domains") + 1] = "all"
    flags[flags.index("--max_steps") + 1] = "2"
    flags[flags.index("--eval_steps") + 1] = "2"
    flags[flags.index("--save_steps") + 1] = "2"
    runs = run_ood.main(flags)
    assert [r.test_domains for r in runs] == [["mnist"], ["mnist_m"], ["optdigits"], ["typeface"]]
    for run in runs:
        assert (tmp_path / "lodo" / run.test_domains[0] / "results.json").exists()

    # A killed leave-one-domain-out run continues: finished domains are kept, the others (re)start.
    (tmp_path / "lodo" / "typeface" / "results.json").unlink()
    shutil.rmtree(tmp_path / "lodo" / "typeface" / "checkpoint-2")
    resumed = run_ood.main([*flags, "--resume_from_checkpoint", "True"])
    assert resumed[:3] == runs[:3]
    assert resumed[3].test_accuracy == runs[3].test_accuracy


@pytest.mark.slow
def test_bf16_mixed_precision_on_cpu(backbone, tmp_path):
    [results] = run_ood.main(tiny_flags(backbone, tmp_path / "bf16", "--bf16", "True"))
    assert 0.0 <= results.mean_test_accuracy <= 1.0


def test_demo_config_parses():
    model_args, data_args, training_args, run_args = run_ood.parse_arguments(
        [str(REPO / "examples" / "configs" / "digits.yaml")]
    )
    assert model_args.backbone == "embedded:efficientnet-lite0"
    assert run_args.overwrite_output_dir is True  # a runner argument, not a training argument
    assert (data_args.dataset, data_args.test_domains, data_args.image_size) == ("digits", ["mnist"], 64)
    assert training_args.per_domain_batch_size == 16 and training_args.classifier_lr_multiplier == 10
    assert training_args.channels_last and training_args.load_best_model_at_end
    assert training_args.weight_averaging_start_step == training_args.ensemble_start_step == 200


def test_styles_config_parses():
    _, data_args, training_args, _ = run_ood.parse_arguments(
        [str(REPO / "examples" / "configs" / "styles.yaml")]
    )
    assert (data_args.dataset, data_args.test_domains, data_args.image_size) == ("styles", ["sketch"], None)
    assert not hasattr(data_args, "digits_size")
    assert training_args.load_best_model_at_end and training_args.metric_for_best_model == "val_accuracy"


def test_config_file_errors(tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text("dropout_rate: 0.5\nlearning_rat: 0.1\n")
    with pytest.raises(run_ood.UsageError, match=r"unknown key\(s\) \['learning_rat'\]"):
        run_ood.parse_arguments([str(config)])
    with pytest.raises(run_ood.UsageError, match="does not exist"):
        run_ood.parse_arguments([str(tmp_path / "missing.yaml")])
    config.write_text("dropout_rate: [0.5\n")
    with pytest.raises(run_ood.UsageError, match=r"recipe.yaml' is not valid YAML"):
        run_ood.parse_arguments([str(config)])
    config.with_suffix(".json").write_text('{"dropout_rate": 0.5,}')
    with pytest.raises(run_ood.UsageError, match=r"recipe.json' is not valid JSON"):
        run_ood.parse_arguments([str(config.with_suffix(".json"))])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("dropout_rate: 1.5", r"dropout_rate.*\[0, 1\)"),
        ("pooling: average", r"'average'.*'pooler'"),
        ("classifier_init: ones", r"'ones'.*'zeros'"),
    ],
)
def test_model_arguments_are_checked_before_any_work(tmp_path, line, message):
    # A config file's values bypass argparse's `choices`: the parser must still refuse them at once.
    config = tmp_path / "recipe.yaml"
    config.write_text(f"dataset: no-such-dataset\n{line}\n")
    with pytest.raises(ValueError, match=message):
        run_ood.parse_arguments([str(config)])


def test_oracle_selection_needs_a_held_out_validation_split(backbone, tmp_path):
    with pytest.raises(run_ood.UsageError, match="--test_holdout_fraction"):
        run_ood.main(tiny_flags(backbone, tmp_path / "run", "--oracle_selection", "True"))


def test_earlier_checkpoints_are_kept_unless_overwrite_output_dir(backbone, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoint-3").mkdir(parents=True)
    with pytest.raises(run_ood.UsageError, match=r"holds checkpoints of an earlier run \(checkpoint-3\)"):
        run_ood.main(tiny_flags(backbone, out))
    assert (out / "checkpoint-3").is_dir()

    *_, training_args, run_args = run_ood.parse_arguments(tiny_flags(backbone, out, "--overwrite_output_dir"))
    assert run_args.overwrite_output_dir and not hasattr(training_args, "overwrite_output_dir")
    assert run_ood.checkpoint_to_resume(training_args, overwrite_output_dir=True) is None
    run_ood.remove_old_checkpoints(str(out))
    assert not list(out.glob("checkpoint-*"))
