"""BigDropTrainer / BigDropTrainingArguments: parameter groups, schedules, balanced batches, selection."""

from __future__ import annotations

import collections

import datasets
import numpy as np
import pytest
import torch
from helpers import PROCESSOR, colour_dataset, make_args
from tiny_models import tiny_model

from hf_bigdrop.data import DomainCollator, apply_transforms
from hf_bigdrop.evaluation import fit_sample, per_domain_eval_sets, summarize_domain_metrics
from hf_bigdrop.metrics import make_compute_metrics
from hf_bigdrop.training import BigDropTrainer


def test_classifier_learning_rate_is_multiplied(tmp_path):
    args = make_args(tmp_path, learning_rate=1e-3, classifier_lr_multiplier=10.0, weight_decay=0.01)
    model = tiny_model()
    trainer = BigDropTrainer(model=model, args=args)
    optimizer = trainer.create_optimizer()
    head_params = {id(p) for p in model.classifier.parameters()}
    groups = {}
    for group in optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        is_head = ids <= head_params
        assert is_head or ids.isdisjoint(head_params), "a group mixes head and backbone parameters"
        assert group["lr"] == pytest.approx(1e-2 if is_head else 1e-3)
        groups[(is_head, group["weight_decay"])] = group
    # Weight decay per group as the Trainer does it: weights decay, biases do not.
    assert groups[(True, 0.01)]["params"] == [model.classifier.weight]
    assert groups[(True, 0.0)]["params"] == [model.classifier.bias]
    assert set(groups) == {(False, 0.01), (False, 0.0), (True, 0.01), (True, 0.0)}
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert trained == {id(p) for p in model.parameters() if p.requires_grad}


def test_classifier_multiplier_needs_a_classifier(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    trainer = BigDropTrainer(model=model, args=make_args(tmp_path, classifier_lr_multiplier=10.0))
    with pytest.raises(ValueError, match="needs a model with a `classifier` module; Sequential"):
        trainer.create_optimizer()


def test_sgd_uses_the_papers_momentum(tmp_path):
    trainer = BigDropTrainer(model=tiny_model(), args=make_args(tmp_path, optim="sgd", learning_rate=1e-3))
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.SGD)
    assert all(group["momentum"] == 0.9 for group in optimizer.param_groups)


def test_step_schedule_learning_rates_at_the_milestones(tmp_path):
    args = make_args(
        tmp_path,
        learning_rate=1e-2,
        lr_milestones=[5, 8],
        lr_gamma=0.1,
        classifier_lr_multiplier=10.0,
        max_steps=10,
    )
    trainer = BigDropTrainer(model=tiny_model(), args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    seen = []
    for _ in range(10):
        seen.append([group["lr"] for group in trainer.optimizer.param_groups])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    backbone = [lrs[0] for lrs in seen]
    head = [lrs[-1] for lrs in seen]
    assert backbone == pytest.approx([1e-2] * 5 + [1e-3] * 3 + [1e-4] * 2)
    assert head == pytest.approx([1e-1] * 5 + [1e-2] * 3 + [1e-3] * 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classifier_lr_multiplier": 0.0}, "classifier_lr_multiplier must be > 0"),
        ({"lr_milestones": [5, 3]}, r"lr_milestones must be increasing.*\[5, 3\]"),
        ({"lr_gamma": 1.5}, r"lr_gamma must be in \(0, 1\]"),
        ({"per_domain_batch_size": 0}, "per_domain_batch_size must be a positive integer"),
    ],
)
def test_argument_validation(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_args(tmp_path, **kwargs)


def test_evaluation_batches_default_to_64_and_stay_overridable(tmp_path):
    assert make_args(tmp_path).per_device_eval_batch_size == 64
    assert make_args(tmp_path).eval_batch_size == 64
    assert make_args(tmp_path, per_device_eval_batch_size=4).eval_batch_size == 4
    trainer = BigDropTrainer(
        model=tiny_model(),
        args=make_args(tmp_path),
        eval_dataset=apply_transforms(colour_dataset({"art": 70}), PROCESSOR, train=False),
        data_collator=DomainCollator(),
    )
    assert [len(batch["labels"]) for batch in trainer.get_eval_dataloader()] == [64, 6]


def test_selection_reads_training_domains_unless_oracle(tmp_path):
    common = dict(eval_strategy="steps", save_strategy="steps", load_best_model_at_end=True)
    assert make_args(tmp_path, **common).metric_for_best_model == "val_accuracy"
    oracle = dict(common, selection_strategy="oracle")
    assert make_args(tmp_path, **oracle).metric_for_best_model == "oracle_accuracy"
    with pytest.raises(ValueError, match="reads held-out domains.*selection_strategy='oracle'"):
        make_args(tmp_path, **common, metric_for_best_model="oracle_accuracy")
    with pytest.raises(ValueError, match="selects on the held-out domains' accuracy"):
        make_args(tmp_path, **common, metric_for_best_model="eval_test_photo_accuracy")
    with pytest.raises(ValueError, match="selects on the held-out domains' accuracy"):
        make_args(tmp_path, **oracle, metric_for_best_model="test_accuracy")
    with pytest.raises(ValueError, match="selects on the held-out domains' accuracy"):
        make_args(tmp_path, **common, metric_for_best_model="known_accuracy")
    assert make_args(tmp_path, **common, metric_for_best_model="fit_accuracy")
    assert make_args(tmp_path, **oracle, metric_for_best_model="oracle_accuracy")
    # The deprecated flag still means the oracle, with a warning; contradicting the strategy is an error.
    with pytest.warns(FutureWarning, match="use selection_strategy='oracle'"):
        assert make_args(tmp_path, **common, oracle_selection=True).selection_strategy == "oracle"
    with pytest.raises(ValueError, match="contradict each other"), pytest.warns(FutureWarning):
        make_args(tmp_path, **common, oracle_selection=True, selection_strategy="training_domain_validation")


def test_domain_balanced_batches_through_the_trainer(tmp_path):
    train = apply_transforms(colour_dataset({"art": 10, "photo": 25, "sketch": 7}), PROCESSOR, train=True)
    args = make_args(tmp_path, per_domain_batch_size=4, max_steps=6)
    trainer = BigDropTrainer(
        model=tiny_model(),
        args=args,
        train_dataset=train,
        data_collator=DomainCollator(include_domain_ids=True),
    )
    batches = list(trainer.get_train_dataloader())
    assert len(batches) == 6
    for batch in batches:
        assert batch["pixel_values"].shape == (12, 3, 16, 16)
        assert collections.Counter(batch["domain_ids"].tolist()) == {0: 4, 1: 4, 2: 4}


def test_per_domain_eval_sets_and_summary():
    splits = datasets.DatasetDict(
        validation=colour_dataset({"art": 4, "photo": 6}), test=colour_dataset({"sketch": 5})
    )
    sets = per_domain_eval_sets(splits)
    assert {name: len(ds) for name, ds in sets.items()} == {"val_art": 4, "val_photo": 6, "test_sketch": 5}
    metrics = {
        "eval_val_art_accuracy": 0.5,
        "eval_val_photo_accuracy": 0.9,
        "eval_val_photo_loss": 0.3,
        "eval_test_sketch_accuracy": 0.4,
    }
    assert summarize_domain_metrics(metrics) == pytest.approx(
        {
            "eval_val_accuracy": 0.7,
            "eval_val_worst_accuracy": 0.5,
            "eval_test_accuracy": 0.4,
            "eval_test_worst_accuracy": 0.4,
        }
    )


def test_fit_and_known_sets():
    splits = datasets.DatasetDict(
        train=colour_dataset({"art": 10, "photo": 3}),
        validation=colour_dataset({"art": 4, "photo": 6}),
        test=colour_dataset({"sketch": 5}),
        test_known=colour_dataset({"sketch": 7}),
    )
    assert "fit_art" not in per_domain_eval_sets(splits)  # off unless asked
    sets = per_domain_eval_sets(splits, fit_examples_per_domain=4)
    sizes = {name: len(ds) for name, ds in sets.items()}
    assert sizes == {
        "val_art": 4,
        "val_photo": 6,
        "test_sketch": 5,
        "known_sketch": 7,
        "fit_art": 4,
        "fit_photo": 3,
    }
    # A fixed sample of the training split: the same whatever the seed or the call.
    again = fit_sample(splits["train"], 4)
    pixels = [np.asarray(image).tobytes() for image in again["image"]]
    assert pixels == [
        np.asarray(i).tobytes() for name in ("fit_art", "fit_photo") for i in sets[name]["image"]
    ]
    with pytest.raises(ValueError, match="examples_per_domain must be a positive integer"):
        fit_sample(splits["train"], 0)


def _eval_sets(splits: datasets.DatasetDict) -> dict[str, datasets.Dataset]:
    """The per-domain evaluation sets of `splits`, transformed for the tiny models."""
    return {
        name: apply_transforms(ds, PROCESSOR, train=False)
        for name, ds in per_domain_eval_sets(splits).items()
    }


def test_evaluate_reports_per_domain_and_mean_accuracy(tmp_path):
    splits = datasets.DatasetDict(
        validation=colour_dataset({"art": 8, "photo": 12}, seed=1),
        test=colour_dataset({"sketch": 10}, seed=2),
    )
    eval_sets = _eval_sets(splits)
    trainer = BigDropTrainer(
        model=tiny_model(classifier_init="normal"),
        args=make_args(tmp_path, per_device_eval_batch_size=4),
        eval_dataset=eval_sets,
        data_collator=DomainCollator(),
        compute_metrics=make_compute_metrics(),
    )
    metrics = trainer.evaluate()
    for name in ("val_art", "val_photo", "test_sketch"):
        assert 0.0 <= metrics[f"eval_{name}_accuracy"] <= 1.0
    mean = (metrics["eval_val_art_accuracy"] + metrics["eval_val_photo_accuracy"]) / 2
    assert metrics["eval_val_accuracy"] == pytest.approx(mean)
    assert metrics["eval_test_accuracy"] == pytest.approx(metrics["eval_test_sketch_accuracy"])
    # The accuracy is the model's: recompute one domain by hand.
    model = trainer.model.eval()
    batch = DomainCollator()([eval_sets["test_sketch"][i] for i in range(10)])
    with torch.no_grad():
        predicted = model(batch["pixel_values"]).logits.argmax(-1)
    assert metrics["eval_test_sketch_accuracy"] == pytest.approx(
        (predicted == batch["labels"]).float().mean().item()
    )


def test_channels_last_trains_the_same_model(tmp_path):
    train = apply_transforms(colour_dataset({"art": 12, "photo": 12}), PROCESSOR, train=True)
    losses = {}
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = tiny_model(dropout_rate=0.0, classifier_init="normal")
        args = make_args(
            tmp_path, channels_last=channels_last, per_domain_batch_size=4, max_steps=3, logging_steps=1
        )
        trainer = BigDropTrainer(model=model, args=args, train_dataset=train, data_collator=DomainCollator())
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        trainer.train()
        losses[channels_last] = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_model_card_already_in_output_dir_is_kept(tmp_path):
    trainer = BigDropTrainer(model=tiny_model(), args=make_args(tmp_path))
    card = tmp_path / "run" / "README.md"
    trainer.create_model_card()
    assert card.exists() and "hf_bigdrop-written" not in card.read_text()  # the Trainer's own card
    card.write_text("hf_bigdrop-written card")
    trainer.create_model_card()  # e.g. inside push_to_hub, after run_ood.py wrote the o.o.d. card
    assert card.read_text() == "hf_bigdrop-written card"


def test_trainer_classes_are_public_names():
    import hf_bigdrop
    from hf_bigdrop import training

    assert hf_bigdrop.BigDropTrainer is training.BigDropTrainer
    assert hf_bigdrop.BigDropTrainingArguments is training.BigDropTrainingArguments
    with pytest.raises(AttributeError, match="no attribute 'NotAThing'"):
        hf_bigdrop.NotAThing  # noqa: B018


def test_one_progress_bar_per_evaluation(tmp_path, monkeypatch):
    import hf_bigdrop.progress as progress

    bars = []

    class RecordingBar(progress.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(progress, "tqdm", RecordingBar)
    splits = datasets.DatasetDict(
        train=colour_dataset({"art": 8, "photo": 8}, seed=0),
        validation=colour_dataset({"art": 8, "photo": 12}, seed=1),
        test=colour_dataset({"sketch": 10}, seed=2),
    )
    eval_sets = _eval_sets(splits)
    trainer = BigDropTrainer(
        model=tiny_model(),
        args=make_args(
            tmp_path,
            disable_tqdm=False,
            per_device_eval_batch_size=4,
            max_steps=2,
            weight_averaging_start_step=1,
        ),
        train_dataset=apply_transforms(splits["train"], PROCESSOR, train=True),
        eval_dataset=eval_sets,
        data_collator=DomainCollator(),
        compute_metrics=make_compute_metrics(),
    )
    batches = 2 + 3 + 3  # val_art (8 images), val_photo (12), test_sketch (10), 4 a batch
    trainer.evaluate()  # before training: the live model only
    assert [(bar.total, bar.n) for bar in bars] == [(batches, batches)]
    trainer.train()
    bars.clear()
    trainer.evaluate()  # the live model and the weight average: one bar for both
    assert [(bar.total, bar.n) for bar in bars[-1:]] == [(2 * batches, 2 * batches)]
    assert len([bar for bar in bars if bar.total != trainer.state.max_steps]) == 1


def test_ddp_defaults_to_a_static_graph_unless_gradients_accumulate(tmp_path):
    args = make_args(tmp_path)
    assert (args.ddp_find_unused_parameters, args.ddp_static_graph) == (False, True)
    accumulating = make_args(tmp_path, gradient_accumulation_steps=2)  # a static graph cannot accumulate
    assert (accumulating.ddp_find_unused_parameters, accumulating.ddp_static_graph) == (None, None)
    chosen = make_args(tmp_path, ddp_find_unused_parameters=True)
    assert (chosen.ddp_find_unused_parameters, chosen.ddp_static_graph) == (True, None)


def test_an_evaluation_prints_one_line(tmp_path, capsys):
    from hf_bigdrop.progress import evaluation_line, is_set_log

    assert is_set_log({"eval_val_art_loss": 0.3, "eval_val_art_runtime": 0.1})
    assert not is_set_log({"eval_val_accuracy": 0.5}) and not is_set_log({"train_runtime": 3.0})
    line = evaluation_line(
        {"eval_val_accuracy": 0.5, "eval_test_accuracy": 0.25, "eval_wa_val_accuracy": 0.75}, 7
    )
    assert line == "step 7 | val 50.0 test 25.0 | wa: val 75.0"
    assert evaluation_line({"loss": 1.0}, 7) is None

    splits = datasets.DatasetDict(
        train=colour_dataset({"art": 8, "photo": 8}, seed=0),
        validation=colour_dataset({"art": 8, "photo": 12}, seed=1),
        test=colour_dataset({"sketch": 10}, seed=2),
    )
    for disable_tqdm in (True, False):
        trainer = BigDropTrainer(
            model=tiny_model(),
            args=make_args(tmp_path, disable_tqdm=disable_tqdm, per_device_eval_batch_size=4, max_steps=1),
            train_dataset=apply_transforms(splits["train"], PROCESSOR, train=True),
            eval_dataset=_eval_sets(splits),
            data_collator=DomainCollator(),
            compute_metrics=make_compute_metrics(),
        )
        capsys.readouterr()
        trainer.evaluate()
        printed = capsys.readouterr()
        lines = [
            line
            for line in (printed.out + printed.err).splitlines()
            if "step 0 |" in line or "{'eval" in line
        ]
        # One line for the evaluation, none per set; every set's metrics are still in the log history.
        assert len(lines) == 1 and lines[0].strip().startswith("step 0 | val "), (disable_tqdm, lines)
        assert any("eval_val_art_accuracy" in entry for entry in trainer.state.log_history)
