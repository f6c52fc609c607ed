"""The experiment runner (`hf_bigdrop.experiment`, and `examples/run_ood.py` over it) end to end on a tiny backbone
and a few images per domain of the embedded digits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import REPO, RUNNER, launch_two_cpu_processes, run_stopped_after_first_checkpoint, tiny_flags
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification, pipeline

from hf_bigdrop import BigDropForImageClassification
from hf_bigdrop.experiment import UsageError, parse_experiment_arguments, run_experiments
from hf_bigdrop.experiment.arguments import DataArguments
from hf_bigdrop.experiment.runner import load_splits, training_image_size
from hf_bigdrop.results import RunResults


def run(flags: list[str]) -> list[RunResults]:
    """What `examples/run_ood.py` does with these flags, without its exit on a usage error."""
    return run_experiments(parse_experiment_arguments(flags))


def test_runner_end_to_end(backbone, tmp_path):
    out = tmp_path / "run"
    trajectory = ("--weight_averaging_start_step", "1", "--ensemble_start_step", "3")
    [results] = run(tiny_flags(backbone, out, "--dropout_rate", "0.9", *trajectory))

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
    assert saved["primary_method"] == "live"
    assert set(saved["methods"]) == {"live", "trajectory_wa", "trajectory_ensemble"}
    for record in saved["methods"].values():
        assert set(record["validation_accuracy"]) == set(saved["train_domains"])
        # The fit of the training data (a fixed sample, dropout off) is measured at every evaluation.
        assert set(record["fit_accuracy"]) == set(saved["train_domains"])
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
        ("live", "eval"),
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
    assert f'model="{out}"' in card  # not pushed: the usage snippet loads the folder
    assert f"{100 * results.test_accuracy['optdigits']:.1f}" in card
    assert "arXiv:2403.00946" in card and "hf_bigdrop" in card
    # The optimizer is named plainly (the Trainer's enum value), not as an enum's repr.
    assert results.optimizer == saved["arguments"]["training"]["optim"] and "OptimizerNames" not in card
    assert f"Optimiser `{results.optimizer}`" in card
    # The card's metadata, as the Hub parses it: one eval result per domain, from the results.
    metadata = ModelCard(card).data
    assert [(r.dataset_config, r.dataset_split, r.metric_value) for r in metadata.eval_results] == [
        ("optdigits", "test", results.test_accuracy["optdigits"]),
        *((d, "validation", results.validation_accuracy[d]) for d in results.train_domains),
    ]

    # The saved folder is the selected model, and it reloads.
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert isinstance(model, BigDropForImageClassification)
    assert model.config.id2label[3] == "3"
    classifier = pipeline("image-classification", model=str(out), device="cpu")
    assert len(classifier(Image.new("RGB", (20, 20), "white"), top_k=2)) == 2


def test_push_to_hub_pushes_the_finished_folder_once(backbone, tmp_path, monkeypatch):
    """With --push_to_hub the Trainer pushes no checkpoint (the runner's hub_strategy is 'end'); the runner uploads
    its output folder once, after the model, its code, the image processor, the card and results.json."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    from hf_bigdrop.experiment import checks

    created, uploads = [], []

    def create_repo(self, repo_id, **kwargs):
        created.append(repo_id)
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        every_file = [str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file()]
        # What huggingface_hub uploads of them.
        files = sorted(filter_repo_objects(every_file, ignore_patterns=kwargs.get("ignore_patterns")))
        card = ModelCard.load(Path(folder_path) / "README.md").data if "README.md" in files else None
        uploads.append(
            {"repo_id": repo_id, "folder_path": folder_path, "files": files, "card": card, **kwargs}
        )

    # The Hub is mocked: the run may push although the tests run offline.
    monkeypatch.setattr(checks, "_offline", lambda: False)
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    out = tmp_path / "run"
    push = ("--push_to_hub", "True", "--hub_model_id", "me/tiny-digits", "--hub_token", "hf_test")
    [results] = run(tiny_flags(backbone, out, *push))

    assert created == ["me/tiny-digits"]
    assert len(uploads) == 1, [upload["files"] for upload in uploads]  # two checkpoints were saved, no push
    [upload] = uploads
    assert upload["repo_id"] == "me/tiny-digits" and upload["folder_path"] == str(out)
    assert "checkpoint-*" in upload["ignore_patterns"]
    assert not any(name.startswith("checkpoint-") for name in upload["files"])
    assert {
        "results.json",
        "README.md",
        "config.json",
        "model.safetensors",
        "configuration_bigdrop.py",
        "modeling_bigdrop.py",
        "pooling_bigdrop.py",
        "preprocessor_config.json",
    } <= set(upload["files"])
    assert RunResults.load(out) == results  # nothing was written after the push's files were listed
    assert upload["card"].model_name == "tiny-digits"
    assert [r.metric_value for r in upload["card"].eval_results] == [
        results.test_accuracy["optdigits"],
        *(results.validation_accuracy[d] for d in results.train_domains),
    ]
    assert 'model="me/tiny-digits"' in (out / "README.md").read_text()

    # Without --hub_model_id the card names the repository the Trainer resolved (from the folder's name).
    out = tmp_path / "unnamed-run"
    run(tiny_flags(backbone, out, "--push_to_hub", "True", "--hub_token", "hf_test"))
    assert created[-1] == uploads[-1]["repo_id"] == "unnamed-run"
    assert uploads[-1]["card"].model_name == "unnamed-run"
    assert 'model="unnamed-run"' in (out / "README.md").read_text()


def run_ood_trainer_best(out: Path) -> str:
    """The best checkpoint the Trainer recorded (read from the last checkpoint's trainer_state.json)."""
    last = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    return json.loads((last / "trainer_state.json").read_text())["best_model_checkpoint"]


def test_resume_continues_a_killed_run_exactly(backbone, tmp_path, monkeypatch):
    flags = ("--dropout_rate", "0.5", "--classifier_lr_multiplier", "10")
    [uninterrupted] = run(tiny_flags(backbone, tmp_path / "a", *flags))

    run_stopped_after_first_checkpoint(monkeypatch, tiny_flags(backbone, tmp_path / "b", *flags))
    assert sorted(p.name for p in (tmp_path / "b").glob("checkpoint-*")) == ["checkpoint-3"]

    [resumed] = run(tiny_flags(backbone, tmp_path / "b", *flags, "--resume_from_checkpoint", "True"))
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
    arguments = parse_experiment_arguments(
        [str(config), "--dropout_rate", "0.3", "--output_dir", str(tmp_path)]
    )
    model_args, data_args, training_args = arguments.model, arguments.data, arguments.training
    assert model_args.backbone == str(backbone)
    assert model_args.dropout_rate == 0.3  # the flag overrides the file
    assert model_args.freeze_batchnorm is False
    assert training_args.lr_milestones == [5, 8]
    assert data_args.dataset == "digits"


def test_paper_recipes_parse():
    recipes = sorted((REPO / "examples" / "configs").glob("*_[be][ir][gm]*.yaml"))
    assert len(recipes) == 8  # PACS, VLCS, OfficeHome, TerraIncognita x (very large dropout, ERM)
    for recipe in recipes:
        arguments = parse_experiment_arguments([str(recipe)])
        model_args, training_args = arguments.model, arguments.training
        assert model_args.backbone == "timm/resnet50.tv2_in1k"
        assert model_args.dropout_rate in (0.0, 0.9)
        assert training_args.optim == "sgd" and training_args.lr_milestones == [5000]
        assert training_args.max_steps == 10000 and training_args.per_domain_batch_size == 32
        assert training_args.metric_for_best_model == "val_accuracy"


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
    runs = run(flags)
    assert [r.test_domains for r in runs] == [["mnist"], ["mnist_m"], ["optdigits"], ["typeface"]]
    for results in runs:
        assert (tmp_path / "lodo" / results.test_domains[0] / "results.json").exists()

    # A killed leave-one-domain-out run continues: finished domains are kept, the others (re)start.
    (tmp_path / "lodo" / "typeface" / "results.json").unlink()
    shutil.rmtree(tmp_path / "lodo" / "typeface" / "checkpoint-2")
    resumed = run([*flags, "--resume_from_checkpoint", "True"])
    assert resumed[:3] == runs[:3]
    assert resumed[3].test_accuracy == runs[3].test_accuracy


@pytest.mark.slow
def test_bf16_mixed_precision_on_cpu(backbone, tmp_path):
    [results] = run(tiny_flags(backbone, tmp_path / "bf16", "--bf16", "True"))
    assert RunResults.load(tmp_path / "bf16") == results
    assert results.arguments["training"]["bf16"] is True
    config = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert config["dtype"] == "float32"  # mixed precision computes in bf16 and keeps float32 weights


def test_demo_config_parses():
    arguments = parse_experiment_arguments([str(REPO / "examples" / "configs" / "digits.yaml")])
    model_args, data_args, training_args = arguments.model, arguments.data, arguments.training
    assert model_args.backbone == "embedded:efficientnet-lite0"
    assert arguments.run.overwrite_output_dir is False  # no recipe overwrites a finished run
    overwrite = parse_experiment_arguments(
        [str(REPO / "examples/configs/digits.yaml"), "--overwrite_output_dir", "1"]
    )
    assert overwrite.run.overwrite_output_dir is True  # a runner argument, not a training argument
    assert (data_args.dataset, data_args.test_domains, data_args.image_size) == ("digits", ["mnist"], 64)
    assert training_args.per_domain_batch_size == 16 and training_args.classifier_lr_multiplier == 10
    assert training_args.channels_last and training_args.load_best_model_at_end
    assert training_args.weight_averaging_start_step == training_args.ensemble_start_step == 200


@pytest.mark.parametrize(
    ("recipe", "dataset", "held_out"),
    [("styles", "styles", ["sketch"]), ("emoji", "emoji", ["symbola"])],
)
def test_benchmark_recipes_parse(recipe, dataset, held_out):
    arguments = parse_experiment_arguments([str(REPO / "examples" / "configs" / f"{recipe}.yaml")])
    data_args, training_args = arguments.data, arguments.training
    assert (data_args.dataset, data_args.test_domains, data_args.image_size) == (dataset, held_out, None)
    assert training_args.load_best_model_at_end and training_args.metric_for_best_model == "val_accuracy"


def test_oracle_selection_needs_a_held_out_validation_split(backbone, tmp_path):
    with pytest.raises(UsageError, match="--test_holdout_fraction"):
        run(tiny_flags(backbone, tmp_path / "run", "--selection_strategy", "oracle"))


def test_an_embedded_benchmark_is_built_at_the_training_size(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_BIGDROP_CACHE", str(tmp_path))
    data = DataArguments(dataset="digits", test_domains=["mnist"], image_size=20, max_per_domain=6)
    image = load_splits(data, seed=0)["test"][0]["image"]
    assert image.size == (20, 20)  # drawn at 20 px, not the registered 32 px resized later
    # Without --image_size it trains at the registered size it is stored at.
    assert training_image_size(DataArguments(dataset="digits", test_domains=["mnist"])) == 32


def test_the_demo_runs_erm_and_big_dropout_then_compares_them_in_one_process(backbone, tmp_path, capsys):
    from helpers import load_example

    demo = load_example("demo").demo
    text = demo(tiny_flags(backbone, tmp_path / "demo"))
    runs = {name: RunResults.load(tmp_path / "demo" / name) for name in ("erm", "bigdrop")}
    assert [results.dropout_rate for results in runs.values()] == [0.0, 0.9]
    assert "| | ERM | dropout (p=0.9) |" in text and "| **mean o.o.d.** |" in text
    assert (tmp_path / "demo" / "comparison.md").read_text().strip() == text.strip()
    assert (tmp_path / "demo" / "curves.png").stat().st_size > 0
    # The second run is the run it would be alone: whatever ran before it in the process changes nothing.
    [alone] = run(tiny_flags(backbone, tmp_path / "alone", "--dropout_rate", "0.9"))
    assert alone.methods == runs["bigdrop"].methods
    capsys.readouterr()
    for flag, message in [
        (
            ["--dropout_rate", "0.5"],
            "the demo sets --dropout_rate of each run itself (0.0 and 0.9); leave it out",
        ),
        (["--dropout-rate=0.5"], "the demo sets --dropout_rate of each run itself"),
        (
            ["--output-dir", "x"],
            "the demo sets --output_dir of each run itself (its folder's erm and bigdrop)",
        ),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            demo([*tiny_flags(backbone, tmp_path / "again"), *flag])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
