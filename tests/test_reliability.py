"""No silent wrong result: a diverged run writes nothing that looks like a result, a damaged checkpoint is never
resumed, a stale results.json never survives a new run, and a resumed run reports its whole wall time."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from helpers import tiny_flags
from transformers import TrainerCallback

from hf_bigdrop.experiment import UsageError, parse_experiment_arguments, run_experiments
from hf_bigdrop.experiment import runner as runner_module
from hf_bigdrop.results import RunResults
from hf_bigdrop.training import TrainingDivergedError


def run(flags: list[str]) -> list[RunResults]:
    return run_experiments(parse_experiment_arguments(flags))


TRAJECTORY = ("--weight_averaging_start_step", "1", "--ensemble_start_step", "3", "--save_total_limit", "3")


def test_a_diverged_run_stops_and_writes_no_result(backbone, tmp_path):
    out = tmp_path / "run"
    flags = tiny_flags(backbone, out, "--optim", "sgd", "--learning_rate", "1e12", "--max_grad_norm", "0")
    with pytest.raises(
        TrainingDivergedError, match=r"Training diverged at step \d+: the (loss|gradient norm) is"
    ):
        run(flags)
    for name in ("results.json", "README.md", "model.safetensors"):
        assert not (out / name).exists(), name


def test_the_command_says_a_divergence_in_one_line(backbone, tmp_path, capsys):
    from hf_bigdrop.experiment.cli import main

    flags = tiny_flags(
        backbone, tmp_path / "run", "--optim", "sgd", "--learning_rate", "1e12", "--max_grad_norm", "0"
    )
    with pytest.raises(SystemExit) as exit_code:
        main(flags, command="run")
    assert exit_code.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "diverged" in line]
    assert len(lines) == 1 and lines[0].startswith("hf-bigdrop run: Training diverged at step ")


@pytest.fixture(scope="module")
def uninterrupted(backbone, tmp_path_factory):
    out = tmp_path_factory.mktemp("reliability") / "a"
    [results] = run(tiny_flags(backbone, out, *TRAJECTORY))
    return results


class _Killed(Exception):
    pass


class _KillAfterFirstCheckpoint(TrainerCallback):
    """A crash in the step after the first checkpoint (the process dies: no outputs)."""

    saved = False

    def on_save(self, args, state, control, **kwargs):
        self.saved = True

    def on_step_begin(self, args, state, control, **kwargs):
        if self.saved:
            raise _Killed


def _killed_run(backbone, out, monkeypatch) -> None:
    """A new run in `out`, killed right after its checkpoint at step 3, as a crash would leave it."""

    class KilledTrainer(runner_module.BigDropTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(_KillAfterFirstCheckpoint())

    with monkeypatch.context() as patch, pytest.raises(_Killed):
        patch.setattr(runner_module, "BigDropTrainer", KilledTrainer)
        run(tiny_flags(backbone, out, *TRAJECTORY, "--overwrite_output_dir"))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGES = {
    "no trainer state": lambda c: (c / "trainer_state.json").unlink(),
    "truncated model": lambda c: _truncate(c / "model.safetensors"),
    "truncated optimizer": lambda c: _truncate(c / "optimizer.pt"),
    "no weight average": lambda c: (c / "weight_average.safetensors").unlink(),
    "no trajectory ensemble": lambda c: (c / "trajectory_ensemble.safetensors").unlink(),
    "truncated weight average": lambda c: _truncate(c / "weight_average.safetensors"),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(
    backbone, tmp_path, monkeypatch, caplog, uninterrupted, damage
):
    out = tmp_path / "b"
    _killed_run(backbone, out, monkeypatch)
    # The run went on to step 6 and was killed while writing that checkpoint: a damaged newest checkpoint.
    shutil.copytree(out / "checkpoint-3", out / "checkpoint-6")
    DAMAGES[damage](out / "checkpoint-6")
    [resumed] = run(tiny_flags(backbone, out, *TRAJECTORY, "--resume_from_checkpoint", "True"))
    assert "Not resuming from" in caplog.text and "checkpoint-6" in caplog.text
    for method, record in uninterrupted.methods.items():  # resumed from step 3 exactly, every method alike
        assert resumed.methods[method].test_accuracy == record.test_accuracy, method
        assert resumed.methods[method].selected_step == record.selected_step, method


@pytest.mark.slow
def test_a_damaged_checkpoint_named_explicitly_is_refused_in_one_line(backbone, tmp_path, monkeypatch):
    out = tmp_path / "b"
    _killed_run(backbone, out, monkeypatch)
    (out / "checkpoint-3" / "trajectory_ensemble.safetensors").unlink()
    with pytest.raises(
        UsageError, match=r"cannot resume from .*checkpoint-3: trajectory_ensemble.safetensors is missing"
    ):
        run(tiny_flags(backbone, out, *TRAJECTORY, "--resume_from_checkpoint", str(out / "checkpoint-3")))


@pytest.mark.slow
def test_a_checkpoint_resumes_only_under_the_arguments_its_run_started_with(backbone, tmp_path, monkeypatch):
    out = tmp_path / "b"
    _killed_run(backbone, out, monkeypatch)
    recorded = json.loads((out / "arguments.json").read_text())
    assert recorded["training"]["learning_rate"] == 0.01 and recorded["data"]["test_domains"] == ["optdigits"]
    resume = ("--resume_from_checkpoint", "True")
    with pytest.raises(
        UsageError,
        match=r"cannot resume .*checkpoint-3: its run started with other arguments "
        r"\(learning_rate 0.01 -> 0.02\); resume with the arguments it started with, or start over",
    ):
        run(tiny_flags(backbone, out, *TRAJECTORY, *resume, "--learning_rate", "0.02"))
    # How the run goes (its workers, its logging) is not what it computes: it resumes.
    [resumed] = run(tiny_flags(backbone, out, *TRAJECTORY, *resume, "--logging_steps", "7"))
    assert resumed.arguments["training"]["learning_rate"] == 0.01


@pytest.mark.slow
def test_a_new_run_removes_the_finished_marker_first_and_wall_time_adds_up(backbone, tmp_path, monkeypatch):
    out = tmp_path / "b"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"stale": True}))
    (out / "model.safetensors").write_text("an older run's model")
    _killed_run(backbone, out, monkeypatch)  # a new run over the folder, killed: nothing looks finished
    assert not (out / "results.json").exists() and not (out / "model.safetensors").exists()
    seconds = json.loads((out / "checkpoint-3" / "wall_time.json").read_text())["seconds"]
    assert seconds > 0
    [resumed] = run(tiny_flags(backbone, out, *TRAJECTORY, "--resume_from_checkpoint", "True"))
    assert resumed.wall_time_s > seconds
    assert RunResults.load(out) == resumed


def _scripted_losses(monkeypatch, tmp_path, losses: list[float], num_labels: int = 3, **args):
    """Feeds `losses` to `BigDropTrainer.training_step` as the Trainer's step results; returns where it stopped."""
    from helpers import make_args
    from tiny_models import tiny_model
    from transformers import Trainer

    from hf_bigdrop import BigDropTrainer

    values = iter(losses)
    monkeypatch.setattr(Trainer, "training_step", lambda self, *a, **k: torch.tensor(next(values)))
    trainer = BigDropTrainer(model=tiny_model(num_labels=num_labels), args=make_args(tmp_path, **args))
    trainer.create_optimizer_and_scheduler(
        num_training_steps=len(losses)
    )  # the message names the learning rate
    for step in range(len(losses)):
        trainer.state.global_step = step
        try:
            trainer.training_step(trainer.model, {})
        except TrainingDivergedError as error:
            return step, str(error)
    return None, None


def test_a_finite_blow_up_of_the_loss_stops_training(monkeypatch, tmp_path):
    # ln(3) = 1.10 at the start, then a loss that grows 10-fold and more: stopped once the last 10 steps' mean
    # passes 10 x the first step's loss.
    blow_up = [1.1] * 10 + [1.1 * 1.5**k for k in range(1, 30)]
    step, message = _scripted_losses(monkeypatch, tmp_path, blow_up)
    assert step is not None and step < len(blow_up) - 1
    assert f"Training diverged at step {step + 1}: the mean training loss of the last 10 steps" in message
    assert "learning rate" in message
    # A run that learns, even one resumed already fitting (tiny losses, noisy), is never stopped.
    learning = [1.1 * 0.9**k for k in range(60)] + [0.001, 0.05] * 20
    assert _scripted_losses(monkeypatch, tmp_path, learning) == (None, None)
    # Switched off: only a loss that is not finite stops training.
    assert _scripted_losses(monkeypatch, tmp_path, blow_up, divergence_factor=None) == (None, None)
    step, message = _scripted_losses(monkeypatch, tmp_path, [1.0, float("inf")], divergence_factor=None)
    assert step == 1 and "the loss is inf" in message


def test_divergence_factor_must_exceed_one(tmp_path):
    from helpers import make_args

    with pytest.raises(ValueError, match="divergence_factor must be > 1 or unset, got 0.5"):
        make_args(tmp_path, divergence_factor=0.5)


def test_a_second_run_into_a_folder_being_written_is_refused(backbone, tmp_path):
    from hf_bigdrop.experiment import UsageError
    from hf_bigdrop.experiment.outputs import output_dir_lock

    out = tmp_path / "run"
    with output_dir_lock(out):  # another run holds the folder
        with pytest.raises(UsageError, match="is being written by another run"):
            run(tiny_flags(backbone, out))
        assert not (out / "results.json").exists()
    # Released (as a killed process releases it): the folder is free again, the lock file left behind is not stale.
    [results] = run(tiny_flags(backbone, out))
    assert (out / "results.json").is_file() and results.selected_step
