"""Every bad argument of an experiment is refused before any data or model is loaded: one line naming the value (and
the valid choices), exit status 2, nothing left that looks finished. Errors after that keep their traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
from helpers import REPO, RUNNER, tiny_flags
from PIL import Image

from hf_bigdrop.experiment import UsageError, parse_experiment_arguments, runner
from hf_bigdrop.experiment.cli import main as cli


@pytest.fixture
def no_work(monkeypatch):
    """Makes loading data or a model fail the test: a usage error must come before either."""

    def refuse(*args, **kwargs):
        raise AssertionError("data or a model was loaded before the arguments were checked")

    monkeypatch.setattr(runner, "load_domain_dataset", refuse)
    monkeypatch.setattr(runner.BigDropForImageClassification, "from_backbone", refuse)


def _refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_code:
        cli(argv, command="run")
    assert exit_code.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hf-bigdrop run: error: "), lines
    return lines[0]


BAD_FLAGS = [
    (["--backbone", "/no/such/folder"], r"'/no/such/folder' is not a local folder"),
    (
        ["--backbone", "nobody/no-such-model"],
        r"'nobody/no-such-model' is not in the Hugging Face cache.*OFFLINE",
    ),
    (["--dataset", "no-such-dataset"], r"unknown dataset 'no-such-dataset'.*digits, styles, emoji"),
    (["--test_domains", "svhn"], r"Unknown domain 'svhn' in test_domains.*'mnist_m'.*Or 'all'"),
    (["--test_domains", "all", "mnist"], r"'all' holds each domain out in turn: give it alone"),
    (["--dropout_rate", "1.5"], r"dropout_rate.*\[0, 1\)"),
    (["--pooling", "average"], r"--pooling.*invalid choice: 'average'"),
    (["--classifier_init", "ones"], r"--classifier_init.*invalid choice: 'ones' \(choose from 'zeros'"),
    (["--classifier_lr_multiplier", "nan"], r"--classifier_lr_multiplier must be a finite number, got nan"),
    (["--learning_rate", "inf"], r"--learning_rate must be a finite number, got inf"),
    (["--max_steps", "4.5"], r"--max_steps.*invalid int value: '4.5'"),
    (["--image_size", "0"], r"--image_size must be a positive number of pixels, got 0"),
    (["--holdout_fraction", "0"], r"--holdout_fraction 0 leaves no validation split"),
    (["--holdout_fraction", "1.2"], r"--holdout_fraction must be a float in \[0, 1\), got 1.2"),
    (["--max_per_domain", "0"], r"--max_per_domain must be a positive integer or None, got 0"),
    (
        ["--augmentation", "fancy"],
        r"unknown --augmentation 'fancy'; choose one of \['domainbed', 'domainbed_batched', 'none'\]",
    ),
    (["--data_dir", "/tmp"], r"--data_dir '/tmp' does not apply to 'digits'"),
    (
        ["--weight_averaging_start_step", "100"],
        r"--weight_averaging_start_step 100 is beyond --max_steps 6: .* switch it off with 'none'",
    ),
    (["--ensemble_start_step", "7"], r"--ensemble_start_step 7 is beyond --max_steps 6"),
    (  # both problems in one message, not one after the other
        ["--weight_averaging_start_step", "100", "--ensemble_start_step", "7"],
        r"--weight_averaging_start_step 100 and --ensemble_start_step 7 are beyond --max_steps 6",
    ),
    (
        ["--weight_averaging_start_step", "never"],
        r"--weight_averaging_start_step/.*: invalid int value: 'never'",
    ),
    (["--weight_averaging_device", "foo"], r"--weight_averaging_device 'foo' is not a device"),
    (["--max_steps", "0"], r"max_steps must be a positive number of optimizer steps .*got 0"),
    (["--max_steps", "-5"], r"max_steps must be a positive number of optimizer steps .*got -5"),
    (["--weight_decay", "-1"], r"weight_decay must be >= 0, got -1"),
    (["--lora_alpha", "16"], r"--lora_alpha 16.0 without --lora_r would be ignored"),
    (
        ["--lora_alpha", "16", "--lora_dropout", "0.1"],
        r"--lora_alpha 16.0 and --lora_dropout 0.1 without --lora_r would be ignored",
    ),
    (["--fp16", "True"], r"--fp16 needs a CUDA GPU; on CPU use --bf16"),
    (["--fp16_full_eval", "True"], r"--fp16_full_eval needs a CUDA GPU"),
    (["--fp16", "True", "--bf16", "True"], r"fp16 and bf16 are both set: choose one"),
    (
        ["--selection_strategy", "oracle"],
        r"--selection_strategy oracle selects on a validation part.*--test_holdout_fraction",
    ),
    (["--selection_strategy", "best"], r"--selection_strategy.*invalid choice: 'best'.*'last_step'"),
    (["--lr_gamma", "2"], r"lr_gamma must be in \(0, 1\], got 2"),
    (["--lr_milestones", "5", "3"], r"lr_milestones must be increasing positive steps"),
    (["--per_domain_batch_size", "0"], r"per_domain_batch_size must be a positive integer, got 0"),
    (
        ["--resume_from_checkpoint", "/no/such/checkpoint"],
        r"'/no/such/checkpoint' is not a checkpoint folder",
    ),
    (
        ["--resume_from_checkpoint", "True"],
        r"--resume_from_checkpoint: cannot resume: no complete checkpoint-\* folder in",
    ),
    (["--push_to_hub", "True"], r"--push_to_hub cannot push with HF_HUB_OFFLINE=1"),
    (
        ["--push_to_hub", "True", "--hub_strategy", "every_save"],
        r"--hub_strategy 'every_save' pushes while training; the runner pushes .* once.*use 'end'",
    ),
    (["--metric_for_best_model", "test_accuracy"], r"selects on the held-out domains' accuracy"),
    (["--lora_r", "-1"], r"--lora_r must be >= 0 \(0: full fine-tuning, no LoRA\), got -1"),
    (["--lora_r", "4", "--lora_alpha", "0"], r"LoRA's alpha \(lora_alpha\) must be positive.*got 0.0"),
    (
        ["--lora_r", "4", "--lora_dropout", "1"],
        r"LoRA's dropout \(lora_dropout\) must be in \[0, 1\), got 1.0",
    ),
    (["--lora_r", "4", "--freeze_backbone", "True"], r"freeze_backbone trains the head alone and LoRA"),
    (["--lora_r", "4", "--freeze_batchnorm", "False"], r"BatchNorm statistics.*keep freeze_batchnorm=True"),
    # Judged on a weightless build of the backbone, before any data loads: the message lists the layers.
    (
        ["--lora_r", "4", "--lora_target_modules", "query"],
        r"LoRA target_modules \['query'\] cannot adapt.*are named \[.convolution.\]",
    ),
    (
        ["--backbone", "embedded:efficientnet-lite9"],
        r"unknown embedded backbone 'embedded:efficientnet-lite9'; .*lite0",
    ),
    (["--learning_rate", "-0.1"], r"learning_rate must be >= 0, got -0.1"),
    (["--seed", "-1"], r"seed must be >= 0, got -1"),
    (
        ["--gradient_accumulation_steps", "0"],
        r"gradient_accumulation_steps must be a positive integer, got 0",
    ),
    (["--per_device_eval_batch_size", "0"], r"per_device_eval_batch_size must be a positive integer, got 0"),
    (  # every problem of the numbers at once, not one after the other
        ["--learning_rate", "-1", "--weight_decay", "-1"],
        r"learning_rate must be >= 0, got -1.0; weight_decay must be >= 0, got -1.0",
    ),
    (  # every problem of the checks at once
        ["--image_size", "0", "--augmentation", "fancy"],
        r"2 problems: \(1\) --image_size must be .*; \(2\) unknown --augmentation 'fancy'",
    ),
    (["--learning_rat", "0.1"], r"unknown argument\(s\) --learning_rat \(did you mean --learning_rate\?\);"),
    (
        ["--learning_rat=0.1", "--no_such_flag", "1"],
        r"--learning_rat \(did you mean --learning_rate\?\), --no_such_flag;",
    ),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS, ids=[" ".join(flags) for flags, _ in BAD_FLAGS])
def test_bad_flags_are_one_line_before_any_work(backbone, tmp_path, capsys, no_work, flags, message):
    line = _refused(
        [*tiny_flags(backbone, tmp_path / "run"), *flags], capsys
    )  # the last occurrence of a flag wins
    assert re.search(message, line), line
    assert not (tmp_path / "run" / "results.json").exists()


def test_lora_without_peft_names_the_extra(backbone, tmp_path, capsys, no_work, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "peft" else find_spec(name, *a)
    )
    line = _refused([*tiny_flags(backbone, tmp_path / "run"), "--lora_r", "8"], capsys)
    assert line.endswith('--lora_r needs the peft package: pip install "hf-bigdrop[lora]"'), line


BAD_RECIPES = [
    ("recipe.yaml", "dropout_rate: 0.5\ndropout_rate: 0.9\n", r"key 'dropout_rate' appears twice \(line 2\)"),
    ("recipe.json", '{"dropout_rate": 0.5, "dropout_rate": 0.9}', r"key 'dropout_rate' appears twice"),
    ("recipe.yaml", "", r"recipe '.*recipe.yaml' is empty"),
    ("recipe.yaml", "# only a comment\n", r"is empty"),
    ("recipe.yaml", "- dropout_rate: 0.5\n", r"must hold a mapping of names to values"),
    ("recipe.yaml", "dropout_rate: [0.5\n", r"recipe '.*recipe.yaml' is not valid YAML"),
    ("recipe.json", '{"dropout_rate": 0.5,}', r"recipe '.*recipe.json' is not valid JSON"),
    (
        "recipe.yaml",
        "learning_rat: 0.1\n",
        r"unknown argument\(s\) learning_rat \(did you mean learning_rate\?\)",
    ),
    ("recipe.yaml", "max_steps: 4.5\n", r"--max_steps.*invalid int value: '4.5' \(in recipe"),
    ("recipe.yaml", "dropout_rate: 1.5\n", r"dropout_rate.*\[0, 1\)"),
    ("recipe.yaml", "pooling: average\n", r"--pooling.*invalid choice: 'average'"),
    ("recipe.yaml", "classifier_lr_multiplier: .nan\n", r"must be a finite number, got nan"),
    (  # every bad value of a recipe at once
        "recipe.yaml",
        "max_steps: 4.5\npooling: average\n",
        r"--max_steps: invalid int value: '4.5'; argument --pooling: invalid choice: 'average'.*\(in recipe",
    ),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_RECIPES)
def test_bad_recipes_are_one_line_before_any_work(
    backbone, tmp_path, capsys, no_work, name, content, message
):
    recipe = tmp_path / name
    recipe.write_text(content)
    flags = tiny_flags(backbone, tmp_path / "run")
    for key in ("--max_steps", "--dropout_rate"):  # the recipe's own value must be the one judged
        if key in flags:
            del flags[flags.index(key) : flags.index(key) + 2]
    line = _refused([str(recipe), *flags], capsys)
    assert re.search(message, line), line


def test_the_recipe_comes_first(backbone, tmp_path, capsys, no_work):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dropout_rate: 0.5\n")
    line = _refused([*tiny_flags(backbone, tmp_path / "run"), str(recipe)], capsys)
    assert "must be the first argument" in line


def test_a_missing_recipe_is_named(tmp_path, capsys, no_work):
    assert "recipe '" in _refused([str(tmp_path / "missing.yaml")], capsys)


def test_an_output_folder_that_is_a_file(backbone, tmp_path, capsys, no_work):
    (tmp_path / "run").write_text("not a folder")
    assert "is a file, not a folder" in _refused(tiny_flags(backbone, tmp_path / "run"), capsys)


def test_an_earlier_run_is_kept_unless_resumed_or_overwritten(backbone, tmp_path, capsys, no_work):
    out = tmp_path / "run"
    (out / "checkpoint-3").mkdir(parents=True)
    line = _refused(tiny_flags(backbone, out), capsys)
    assert "holds an earlier run (checkpoint-3, ...)" in line and "--overwrite_output_dir" in line
    assert (out / "checkpoint-3").is_dir()
    # A checkpoint named explicitly must be complete.
    line = _refused(
        [*tiny_flags(backbone, out), "--resume_from_checkpoint", str(out / "checkpoint-3")], capsys
    )
    assert "cannot resume from" in line and "trainer_state.json is missing" in line


def test_test_domains_all_as_a_yaml_scalar_and_nulls(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("test_domains: all\nimage_size: null\nlr_milestones: []\n")
    arguments = parse_experiment_arguments([str(recipe), "--output_dir", str(tmp_path)])
    assert arguments.data.test_domains == ["all"] and arguments.data.leave_one_domain_out
    assert arguments.data.image_size is None and arguments.training.lr_milestones == []


def test_bf16_on_a_machine_without_accelerator_runs_on_the_cpu(tmp_path, monkeypatch):
    # transformers alone refuses --bf16 without a GPU unless --use_cpu is given; with no accelerator at all the run is
    # on the CPU anyway, where bf16 autocast works.
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    arguments = parse_experiment_arguments(["--output_dir", str(tmp_path), "--bf16", "True"])
    assert arguments.training.bf16 and arguments.training.use_cpu


def test_bf16_where_the_cpu_only_emulates_it_is_warned_about(tmp_path, monkeypatch, caplog):
    from hf_bigdrop.training_args import _warn_emulated_bf16

    _warn_emulated_bf16.cache_clear()  # once a process: another test may have warned already
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with caplog.at_level("WARNING", logger="hf_bigdrop.training_args"):
        parse_experiment_arguments(["--output_dir", str(tmp_path), "--bf16", "True"])
    assert "bf16 on this CPU is emulated" in caplog.text
    caplog.clear()
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    with caplog.at_level("WARNING", logger="hf_bigdrop.training_args"):
        parse_experiment_arguments(["--output_dir", str(tmp_path), "--bf16", "True"])
    assert "emulated" not in caplog.text


def test_memory_is_not_pinned_without_an_accelerator(tmp_path, monkeypatch):
    # Pinned memory only speeds copies to an accelerator; torch warns when it is asked for without one.
    arguments = parse_experiment_arguments(["--output_dir", str(tmp_path), "--use_cpu"])
    assert arguments.training.dataloader_pin_memory is False
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    assert parse_experiment_arguments(["--output_dir", str(tmp_path)]).training.dataloader_pin_memory is False


@pytest.mark.parametrize("recipe", ["digits", "styles", "emoji", "emoji_sgd"])
def test_every_shipped_recipe_runs_small_with_its_averaging_switched_off(recipe, tmp_path, no_work):
    small = [
        "--max_steps",
        "4",
        "--eval_steps",
        "2",
        "--save_steps",
        "2",
        "--output_dir",
        str(tmp_path / recipe),
    ]
    off = ["--weight_averaging_start_step", "none", "--ensemble_start_step", "NONE"]
    arguments = parse_experiment_arguments(
        [str(REPO / "examples" / "configs" / f"{recipe}.yaml"), *small, *off]
    )
    runner.check_experiment_arguments(arguments)  # the arguments pass every check
    training = arguments.training
    assert training.weight_averaging_start_step is None and training.ensemble_start_step is None


def test_a_bug_during_training_keeps_its_traceback(backbone, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("a bug in a stage, not a usage error")

    monkeypatch.setattr(runner, "build_trainer", broken)
    with pytest.raises(KeyError, match="a bug in a stage"):
        cli(tiny_flags(backbone, tmp_path / "run"), command="run")


def test_from_the_command_line(backbone, tmp_path):
    # The script as a user runs it: one line, exit status 2, no traceback.
    result = subprocess.run(
        [sys.executable, str(RUNNER), *tiny_flags(backbone, tmp_path / "run"), "--test_domains", "svhn"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("hf-bigdrop run: error: Unknown domain 'svhn'")


def test_the_console_command_exits_0_after_a_command_that_returns_results(monkeypatch):
    """`hf-bigdrop` is a console script: it exits with what its function returns, which must not be the results."""
    from importlib.metadata import entry_points

    import hf_bigdrop.experiment.cli as cli_module

    [entry] = entry_points(group="console_scripts", name="hf-bigdrop")
    assert entry.value == "hf_bigdrop.experiment.cli:console_main"
    monkeypatch.setitem(cli_module.COMMANDS, "compare", lambda argv: ["results", *argv])
    monkeypatch.setattr(sys, "argv", ["hf-bigdrop", "compare", "run-a"])
    assert cli_module.main() == ["results", "run-a"]  # the library call keeps the results
    with pytest.raises(SystemExit) as exit_:
        sys.exit(entry.load()())  # what the console script's wrapper does
    assert exit_.value.code is None


@pytest.mark.parametrize(("log_level", "bars"), [("passive", False), ("info", True)])
def test_weight_loading_and_writing_bars_only_when_asked_for(
    backbone, tmp_path, monkeypatch, log_level, bars
):
    from transformers.utils import logging as transformers_logging

    import hf_bigdrop.experiment.runner as runner_module

    switched_off = []
    monkeypatch.setattr(transformers_logging, "disable_progress_bar", lambda: switched_off.append(True))
    monkeypatch.setattr(runner_module, "run_experiments", lambda arguments: [])
    cli([*tiny_flags(backbone, tmp_path / "run"), "--log_level", log_level], command="run")
    assert switched_off == ([] if bars else [True])


def test_a_registered_dataset_in_a_folder_of_its_name_passes_the_checks(tmp_path, monkeypatch, no_work):
    monkeypatch.chdir(tmp_path)
    for domain in ("photo", "sketch"):
        (tmp_path / "PACS" / domain / "dog").mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "PACS" / domain / "dog" / "0.png")
    flags = [
        "--dataset",
        "PACS",
        "--data_dir",
        "PACS",
        "--test_domains",
        "S",
        "--output_dir",
        str(tmp_path / "o"),
    ]
    arguments = parse_experiment_arguments(flags)
    runner.check_experiment_arguments(arguments)  # the registry's PACS, from the folder `PACS`
    assert runner.held_out_domain_sets(arguments) == [["S"]]


def _domainbed_folder(root, layout: dict[str, dict[str, int]]):
    """A local DomainBed folder: `layout[domain][class]` tiny PNG images each."""
    for domain, classes in layout.items():
        (root / domain).mkdir(parents=True, exist_ok=True)
        for label, count in classes.items():
            (root / domain / label).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                Image.new("RGB", (4, 4)).save(root / domain / label / f"{index}.png")
    return root


FOLDER_PROBLEMS = [
    (
        {"a": {"x": 1}, "b": {"x": 1}},
        ["--test_domains", "c"],
        r"Unknown domain 'c' in test_domains.*'a', 'b'",
    ),
    ({"a": {"x": 1}, "b": {"x": 1}}, ["--test_domains", "a", "b"], r"Every domain is held out"),
    ({"a": {"x": 1, "y": 0}, "b": {"x": 1, "y": 0}}, [], r"Class 'y' in .* has no images in any domain"),
    ({"a": {"x": 1}, "b": {"x": 1}, "c": {}}, [], r"does not match the DomainBed layout.*c' should hold"),
]


@pytest.mark.parametrize(("layout", "flags", "message"), FOLDER_PROBLEMS)
def test_a_local_folder_is_checked_before_any_work(
    backbone, tmp_path, capsys, no_work, layout, flags, message
):
    folder = _domainbed_folder(tmp_path / "data", layout)
    argv = [*tiny_flags(backbone, tmp_path / "run"), "--dataset", str(folder), "--test_domains", "a", *flags]
    assert re.search(message, _refused(argv, capsys))


def test_an_unreadable_image_in_a_local_folder_is_found_before_any_work(backbone, tmp_path, capsys, no_work):
    folder = _domainbed_folder(tmp_path / "data", {"a": {"x": 1}, "b": {"x": 1}})
    (folder / "b" / "x" / "0.png").write_bytes(b"not a png")
    argv = [*tiny_flags(backbone, tmp_path / "run"), "--dataset", str(folder), "--test_domains", "a"]
    assert re.search(
        r"unreadable image '.*b/x/0.png' \(UnidentifiedImageError: cannot identify image file",
        _refused(argv, capsys),
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dataset", "VLCS"], r"VLCS has no public Hugging Face Hub dataset: download it .* --data_dir"),
        (["--dataset", "PACS"], r"dataset 'flwrlabs/pacs' is not in the Hugging Face cache .* --data_dir"),
        (
            ["--dataset", "nobody/no-such-data"],
            r"dataset 'nobody/no-such-data' is not in the Hugging Face cache",
        ),
    ],
)
def test_a_dataset_that_cannot_load_offline_is_refused_before_any_work(
    backbone, tmp_path, capsys, no_work, monkeypatch, flags, message
):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("datasets.config.HF_DATASETS_CACHE", tmp_path / "datasets")
    argv = [*tiny_flags(backbone, tmp_path / "run"), *flags, "--test_domains", "S"]
    assert re.search(message, _refused(argv, capsys))


def test_a_registered_dataset_from_data_files_has_its_domains_checked(backbone, tmp_path, capsys, no_work):
    (tmp_path / "pacs").mkdir()
    (tmp_path / "pacs" / "train.parquet").write_bytes(b"")  # a Hub-like copy: its domains are the registry's
    flags = ["--dataset", "PACS", "--data_dir", str(tmp_path / "pacs"), "--test_domains", "sketchh"]
    line = _refused([*tiny_flags(backbone, tmp_path / "run"), *flags], capsys)
    assert re.search(r"Unknown domain 'sketchh' in test_domains.*'sketch'", line)


def test_a_backbone_folder_without_a_config_is_refused(backbone, tmp_path, capsys, no_work):
    (tmp_path / "empty").mkdir()
    argv = [*tiny_flags(backbone, tmp_path / "run"), "--backbone", str(tmp_path / "empty")]
    assert re.search(r"backbone folder '.*empty' holds no config.json", _refused(argv, capsys))


def test_an_output_folder_under_a_file_or_unwritable_is_refused(
    backbone, tmp_path, capsys, no_work, monkeypatch
):
    (tmp_path / "file").write_text("")
    argv = tiny_flags(backbone, tmp_path / "file" / "run")
    assert re.search(r"--output_dir '.*file/run' is under '.*file', a file", _refused(argv, capsys))
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root writes anywhere: pretend it cannot
    argv = tiny_flags(backbone, tmp_path / "new" / "run")
    assert re.search(
        r"--output_dir '.*new/run' cannot be written: '.*' is not writable", _refused(argv, capsys)
    )


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../x"])
def test_a_name_from_data_never_leaves_its_folder(name):
    with pytest.raises(UsageError, match="cannot name a folder inside --output_dir"):
        runner.folder_name(name, "domain")
    assert runner.folder_name("art_painting", "domain") == "art_painting"


@pytest.mark.parametrize(
    "argv",
    [
        ["combine", "a", "b", "--output_d", "c"],
        ["compare", "a", "--outp", "table.md"],
        ["sweep", "sweep.yaml", "--job", "2"],
    ],
)
def test_no_command_takes_an_abbreviated_flag(argv, capsys):
    from hf_bigdrop.experiment.cli import main

    with pytest.raises(SystemExit) as exit_code:
        main(argv)
    # The abbreviation is not taken for the flag it starts: refused, or the flag counts as missing.
    assert exit_code.value.code == 2
    assert re.search(r"unrecognized arguments|required: --output_dir", capsys.readouterr().err)
