"""Trajectory weight averaging and ensembles: the state-dict mean, the callback, and the trainer's reports."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
from helpers import PROCESSOR, StopAfterFirstCheckpoint, colour_dataset, launch_two_cpu_processes, make_args
from tiny_models import tiny_model

from hf_bigdrop.averaging import (
    TrajectoryEnsemble,
    WeightAveragingCallback,
    average_state_dicts,
)
from hf_bigdrop.checkpoints import ResumeError
from hf_bigdrop.data import DomainCollator, apply_transforms
from hf_bigdrop.evaluation import per_domain_eval_sets
from hf_bigdrop.metrics import make_compute_metrics
from hf_bigdrop.training import BigDropTrainer

SCRIPTS = Path(__file__).parent / "scripts"


def _state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {
        "weight": torch.randn(3, 2),
        "half": torch.randn(4).to(torch.bfloat16),
        "num_batches_tracked": torch.tensor(7),
        "mask": torch.tensor([True, False]),
    }


def test_average_of_identical_state_dicts_is_exact():
    state = _state(0)
    average = average_state_dicts([state, state, state])
    for key, value in state.items():
        assert torch.equal(average[key], value), key
        assert average[key].dtype == value.dtype


def test_average_of_two_is_the_manual_mean_and_integer_buffers_are_copied():
    a, b = _state(0), _state(1)
    average = average_state_dicts(iter([a, b]))
    torch.testing.assert_close(average["weight"], (a["weight"] + b["weight"]) / 2)
    expected_half = ((a["half"].double() + b["half"].double()) / 2).to(torch.bfloat16)
    assert torch.equal(average["half"], expected_half)
    assert average["num_batches_tracked"].dtype == torch.int64 and int(average["num_batches_tracked"]) == 7
    assert torch.equal(average["mask"], a["mask"])
    weighted = average_state_dicts([a, b], weights=[3, 1])
    torch.testing.assert_close(weighted["weight"], 0.75 * a["weight"] + 0.25 * b["weight"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("weight"), "lacks 'weight'"),
        (lambda s: s.update(extra=torch.zeros(1)), "has 'extra'"),
        (
            lambda s: s.update(weight=torch.zeros(2, 3)),
            r"'weight' has shape \(2, 3\), the first has \(3, 2\)",
        ),
        (
            lambda s: s.update(num_batches_tracked=torch.tensor(8)),
            "integer tensor 'num_batches_tracked' differs",
        ),
    ],
)
def test_average_refuses_mismatched_state_dicts(change, message):
    other = _state(1)
    change(other)
    with pytest.raises(ValueError, match=message):
        average_state_dicts([_state(0), other])


def test_average_refuses_bad_weights_and_no_input():
    with pytest.raises(ValueError, match="at least one"):
        average_state_dicts([])
    with pytest.raises(ValueError, match="2 weights for more than 2"):
        average_state_dicts([_state(0)] * 3, weights=[1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        average_state_dicts([_state(0)] * 2, weights=[1, -1])


def _callback_args(**kwargs):
    return SimpleNamespace(**{"fsdp": "", "output_dir": "unused", "should_save": False, **kwargs})


def test_callback_average_after_k_updates_is_the_mean_of_the_k_snapshots():
    model = tiny_model()
    callback = WeightAveragingCallback(start_step=2, every=2)
    callback.on_train_begin(_callback_args(), None, None, model=model)
    snapshots = []
    for step in range(1, 8):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        callback.on_step_end(_callback_args(), SimpleNamespace(global_step=step), None, model=model)
        if step in (2, 4, 6):
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
    assert callback.n_averaged == 3
    expected = average_state_dicts(snapshots)
    averaged = callback.averaged.module.state_dict()
    for name, _ in model.named_parameters():
        torch.testing.assert_close(averaged[name], expected[name], msg=name)


def test_callback_refuses_fsdp():
    callback = WeightAveragingCallback(start_step=0)
    with pytest.raises(ValueError, match="does not support FSDP"):
        callback.on_train_begin(_callback_args(fsdp="full_shard"), None, None, model=tiny_model())


def test_trajectory_ensemble_sums_logits_not_probabilities():
    # Two members that disagree: the first is barely sure of class 0, the second very sure of class 1 on the
    # logit scale but the softmax saturates the other way round; logit sums and probability sums disagree.
    first = np.array([[10.0, 0.0, 9.0]])
    second = np.array([[-10.0, 1.0, 0.0]])
    logit_sum = first + second  # [0, 1, 9] -> class 2
    probabilities = sum(torch.softmax(torch.tensor(x), -1).numpy() for x in (first, second))
    assert probabilities.argmax(-1)[0] != logit_sum.argmax(-1)[0]
    ensemble = TrajectoryEnsemble(start_step=5)
    assert ensemble.add("val_a", 4, first, np.array([2])) is None  # before start_step: not a member
    assert ensemble.add("val_a", 5, first, np.array([2])) == 0.0
    assert ensemble.add("val_a", 10, second, np.array([2])) == 1.0
    assert ensemble.add("val_a", 10, second, np.array([2])) == 1.0  # the same step is not added twice
    assert ensemble.members == {"val_a": 2}


def _eval_sets():
    splits = datasets.DatasetDict(
        validation=colour_dataset({"art": 6, "photo": 6}, seed=1), test=colour_dataset({"sketch": 8}, seed=2)
    )
    return {
        name: apply_transforms(ds, PROCESSOR, train=False)
        for name, ds in per_domain_eval_sets(splits).items()
    }


def _trainer(tmp_path, model=None, **kwargs) -> BigDropTrainer:
    train = apply_transforms(colour_dataset({"art": 12, "photo": 12}), PROCESSOR, train=True)
    torch.manual_seed(0)
    defaults = dict(
        per_domain_batch_size=4,
        max_steps=6,
        learning_rate=0.05,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="no",
        weight_averaging_start_step=1,
        ensemble_start_step=2,
    )
    return BigDropTrainer(
        model=model or tiny_model(classifier_init="normal"),
        args=make_args(tmp_path, **{**defaults, **kwargs}),
        train_dataset=train,
        eval_dataset=_eval_sets(),
        data_collator=DomainCollator(),
        compute_metrics=make_compute_metrics(),
    )


def _method_accuracies(metrics: dict[str, float], method: str) -> dict[str, float]:
    prefix = f"eval_{method}_" if method else "eval_"
    names = ("val_art", "val_photo", "test_sketch", "val", "test")
    return {name: metrics[f"{prefix}{name}_accuracy"] for name in names}


def test_with_learning_rate_zero_average_and_ensemble_equal_the_live_model(tmp_path):
    trainer = _trainer(tmp_path, learning_rate=0.0)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    metrics = trainer.evaluate()
    live = _method_accuracies(metrics, "")
    assert _method_accuracies(metrics, "wa") == live
    assert _method_accuracies(metrics, "ens") == live
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, before[key]), key
    logged = [e for e in trainer.state.log_history if "eval_wa_val_accuracy" in e]
    assert [e["step"] for e in logged] == [2, 4, 6, 6]
    assert trainer.trajectory_ensemble.members["val_art"] == 3  # steps 2, 4, 6
    trainer.predict(trainer.eval_dataset["val_art"])  # predictions are not evaluations: they never join
    assert trainer.trajectory_ensemble.members == {"val_art": 3, "val_photo": 3, "test_sketch": 3}


def test_evaluating_the_average_leaves_the_live_weights_bitwise_unchanged(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.train()
    live = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    metrics = trainer.evaluate()
    assert trainer.weight_averaging.n_averaged == 6
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, live[key]), key
    averaged = dict(trainer.weight_averaging.averaged.module.named_parameters())
    assert any(not torch.equal(averaged[k], live[k]) for k in averaged), "the average should differ"
    assert set(_method_accuracies(metrics, "wa")) == set(_method_accuracies(metrics, ""))


def test_switching_averaging_on_leaves_the_live_training_unchanged(tmp_path):
    # Evaluating the average must not draw from the global random stream (each evaluation DataLoader takes a
    # seed from it), or the live model's dropout masks after the first evaluation would change with the switch.
    final = {}
    for start in (1, None):
        torch.manual_seed(0)
        trainer = _trainer(
            tmp_path / str(start),
            model=tiny_model(classifier_init="normal", dropout_rate=0.5),
            weight_averaging_start_step=start,
            ensemble_start_step=None,
        )
        trainer.train()
        final[start] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert final[1].keys() == final[None].keys()
    assert all(torch.equal(final[1][k], final[None][k]) for k in final[1])


def test_unfrozen_batchnorm_statistics_are_re_estimated_for_the_average(tmp_path):
    trainer = _trainer(tmp_path, model=tiny_model(classifier_init="normal", freeze_batchnorm=False))
    trainer.train()
    live = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    averaging = trainer.weight_averaging
    with averaging.evaluating_average(trainer.model, trainer._batchnorm_batches()):
        during = {k: v.clone() for k, v in trainer.model.state_dict().items() if "running_mean" in k}
    assert during and any(not torch.equal(v, live[k]) for k, v in during.items())
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, live[key]), key
    # With frozen BatchNorm (the default) the statistics stay the pretrained ones: nothing to re-estimate.
    assert _trainer(tmp_path)._batchnorm_batches() is None


def test_resumed_run_ends_with_the_same_average_and_ensemble(tmp_path):
    common = dict(save_strategy="steps", save_steps=3, eval_steps=3)
    whole = _trainer(tmp_path / "whole", **common)
    whole.train()
    killed = _trainer(tmp_path / "resumed", **common)
    killed.add_callback(StopAfterFirstCheckpoint())
    killed.train()
    assert killed.state.global_step == 3
    resumed = _trainer(tmp_path / "resumed", **common)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.weight_averaging.n_averaged == whole.weight_averaging.n_averaged == 6
    expected = whole.weight_averaging.averaged.state_dict()
    for key, value in resumed.weight_averaging.averaged.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-6, atol=1e-7, msg=key)
    assert (
        resumed.trajectory_ensemble.members
        == whole.trajectory_ensemble.members
        == {
            "val_art": 2,
            "val_photo": 2,
            "test_sketch": 2,
        }
    )
    for name, value in whole.trajectory_ensemble.sums.items():
        torch.testing.assert_close(resumed.trajectory_ensemble.sums[name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("missing", ["weight_average.safetensors", "trajectory_ensemble.safetensors"])
def test_a_checkpoint_without_its_averaging_state_is_never_resumed_silently(tmp_path, missing):
    trainer = _trainer(tmp_path, save_strategy="steps", save_steps=3, max_steps=3)
    trainer.train()
    checkpoint = tmp_path / "run" / "checkpoint-3"
    assert {"weight_average.safetensors", "trajectory_ensemble.safetensors"} <= {
        p.name for p in checkpoint.iterdir()
    }
    (checkpoint / missing).unlink()
    with pytest.raises(
        ResumeError, match="cannot resume: no complete checkpoint"
    ):  # the latest complete one: none is left
        _trainer(tmp_path, save_strategy="steps", save_steps=3).train(resume_from_checkpoint=True)
    with pytest.raises(ResumeError, match=f"cannot resume from .*checkpoint-3: {missing} is missing"):
        _trainer(tmp_path, save_strategy="steps", save_steps=3).train(resume_from_checkpoint=str(checkpoint))


@pytest.mark.slow
def test_two_processes_hold_the_same_average(tmp_path):
    launch_two_cpu_processes(
        [str(SCRIPTS / "weight_average_ddp.py"), str(tmp_path)], cwd=tmp_path, timeout=300
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["n_averaged"] == ranks[1]["n_averaged"] == 4
    assert ranks[0]["average"] == ranks[1]["average"]
    assert ranks[0]["eval_wa_val_accuracy"] == ranks[1]["eval_wa_val_accuracy"]
    assert ranks[0]["eval_ens_val_accuracy"] == ranks[1]["eval_ens_val_accuracy"]
