"""Combinations of finished runs (`hf_bigdrop.experiment.combine`, `hf-bigdrop combine`) on real tiny runs: soups
and the run ensemble, evaluated and saved like a run, and never written over one of their runs."""

from __future__ import annotations

import shutil

import pytest
from helpers import tiny_flags
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

from hf_bigdrop import BigDropForImageClassification
from hf_bigdrop.experiment import UsageError, parse_experiment_arguments, run_experiments
from hf_bigdrop.experiment.cli import main as cli
from hf_bigdrop.experiment.combine import combine_runs
from hf_bigdrop.results import RunResults


@pytest.fixture(scope="module")
def two_seeds(backbone, tmp_path_factory):
    root = tmp_path_factory.mktemp("combine")
    for seed in (0, 1):
        flags = tiny_flags(backbone, root / f"seed{seed}")
        flags[flags.index("--seed") + 1] = str(seed)
        run_experiments(parse_experiment_arguments(flags))
    return root


@pytest.mark.slow
def test_combine_two_seeds(two_seeds, tmp_path):
    runs = [str(two_seeds / "seed0"), str(two_seeds / "seed1")]
    combined = cli(["combine", *runs, "--output_dir", str(tmp_path / "soup")])
    saved = RunResults.load(tmp_path / "soup")
    assert saved == combined
    assert set(saved.methods) == {"greedy_soup", "uniform_soup", "run_ensemble"}
    assert saved.primary_method == "greedy_soup" and saved.seed is None and saved.members == runs
    for record in saved.methods.values():
        assert set(record.validation_accuracy) == {"mnist", "mnist_m", "typeface"}
        assert set(record.test_accuracy) == {"optdigits"}
    # Soups are checkpoints like any run's.
    for folder in (tmp_path / "soup", tmp_path / "soup" / "uniform_soup"):
        assert isinstance(
            AutoModelForImageClassification.from_pretrained(folder), BigDropForImageClassification
        )
    assert RunResults.load(tmp_path / "soup" / "uniform_soup").primary_method == "uniform_soup"
    assert "soup" in (tmp_path / "soup" / "README.md").read_text()
    # A folder that holds anything (here: the soup just made, or another run) is never replaced unasked.
    before = (tmp_path / "soup" / "model.safetensors").read_bytes()
    for output in (tmp_path / "soup", two_seeds / "other-run"):
        output.mkdir(exist_ok=True)
        (output / "results.json").touch()
        with pytest.raises(UsageError, match="already holds a finished run: choose an empty or new folder"):
            combine_runs(runs, output)
    assert (tmp_path / "soup" / "model.safetensors").read_bytes() == before
    # Asked for, it is replaced.
    again = cli(["combine", *runs, "--output_dir", str(tmp_path / "soup"), "--overwrite_output_dir"])
    assert again.methods == combined.methods


@pytest.mark.slow
@pytest.mark.parametrize("methods", [["uniform_soup"], ["greedy_soup", "uniform_soup", "run_ensemble"]])
def test_a_combination_is_never_written_into_one_of_its_runs(two_seeds, methods):
    run = two_seeds / "seed1"
    before = {name: (run / name).read_bytes() for name in ("results.json", "model.safetensors")}
    for output in (run, run / "soups"):
        with pytest.raises(UsageError, match=r"is \(or is inside\) the run .*seed1"):
            combine_runs([two_seeds / "seed0", run], output, methods)
    assert {name: (run / name).read_bytes() for name in before} == before
    assert not (run / "soups").exists()


@pytest.mark.slow
def test_damaged_inputs_are_named(two_seeds, tmp_path, capsys):
    damaged = tmp_path / "damaged"
    shutil.copytree(two_seeds / "seed1", damaged)
    (damaged / "results.json").write_text('{"dataset": "digits", ')
    with pytest.raises(SystemExit) as exit_code:
        cli(["combine", str(two_seeds / "seed0"), str(damaged), "--output_dir", str(tmp_path / "soup")])
    assert exit_code.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "damaged/results.json is not a readable results.json" in line
    shutil.copy(two_seeds / "seed1" / "results.json", damaged / "results.json")
    weights = (damaged / "model.safetensors").read_bytes()
    (damaged / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(UsageError, match=r"damaged.*model.safetensors is (truncated|damaged)"):
        combine_runs([two_seeds / "seed0", damaged], tmp_path / "soup")
    assert load_file(two_seeds / "seed1" / "model.safetensors")  # the original is intact
    # A run without its weights is refused before the output folder is made.
    (damaged / "model.safetensors").unlink()
    with pytest.raises(UsageError, match=r"damaged': holds no model weights"):
        combine_runs([two_seeds / "seed0", damaged], tmp_path / "soup")
    assert not (tmp_path / "soup").exists()


def test_compare_checks_where_it_writes_before_printing(tmp_path, capsys):
    for flag in ("--output", "--plot"):
        with pytest.raises(SystemExit) as exit_code:
            cli(["compare", str(tmp_path / "run"), flag, str(tmp_path / "missing" / "table.md")])
        assert exit_code.value.code == 2
        captured = capsys.readouterr()
        assert captured.out == "" and f"{flag} " in captured.err and "which is not a folder" in captured.err
