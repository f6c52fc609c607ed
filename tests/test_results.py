"""results.json, the comparison table, the model card and examples/compare_runs.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import REPO
from huggingface_hub import EvalResult, ModelCard, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from hf_bigdrop.modelcard import build_model_card, card_eval_results
from hf_bigdrop.results import MethodResults, RunResults
from hf_bigdrop.tables import comparison_table, domain_table, method_title, run_title


def make_results(dropout_rate: float, ood: float, wa_ood: float | None = None) -> RunResults:
    validation = {"art_painting": 0.9, "cartoon": 0.8, "photo": 1.0}
    methods = {"live": MethodResults(300, validation, {"sketch": ood})}
    if wa_ood is not None:
        methods["trajectory_wa"] = MethodResults(600, validation, {"sketch": wa_ood})
    return RunResults(
        dataset="PACS",
        train_domains=["art_painting", "cartoon", "photo"],
        test_domains=["sketch"],
        seed=1,
        backbone="timm/resnet50.tv2_in1k",
        dropout_rate=dropout_rate,
        methods=methods,
        optimizer="sgd",
        learning_rate=0.001,
        max_steps=10000,
        wall_time_s=12.0,
        history=[
            {"step": step, "eval_val_accuracy": 0.5 + step / 1000, "eval_test_accuracy": ood * step / 300}
            for step in (100, 200, 300)
        ],
    )


def test_results_round_trip(tmp_path):
    results = make_results(0.9, 0.8123, wa_ood=0.85)
    path = results.save(tmp_path)
    assert RunResults.load(path) == results
    assert RunResults.load(tmp_path).mean_validation_accuracy == pytest.approx(0.9)
    with pytest.raises(FileNotFoundError, match="finished run"):
        RunResults.load(tmp_path / "missing")


def test_a_damaged_or_foreign_results_file_is_named(tmp_path):
    (tmp_path / "results.json").write_text('{"dataset": "PACS", "methods": {"live": ')  # truncated
    with pytest.raises(ValueError, match=r"results.json is not a readable results.json \(JSONDecodeError"):
        RunResults.load(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"dataset": "PACS", "validation_accuracy": {}}))
    with pytest.raises(ValueError, match="is not a readable results.json"):
        RunResults.load(tmp_path)
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['erm'\]"):
        RunResults(**{**make_results(0.0, 0.8).__dict__, "methods": {"erm": make_results(0.0, 0.8).primary}})


def test_titles_are_chosen_when_drawn():
    assert run_title(make_results(0.0, 0.8)) == "ERM"
    assert run_title(make_results(0.9, 0.8)) == "dropout (p=0.9)"
    assert method_title("trajectory_wa", 0.0) == "trajectory weight average (p=0)"
    assert method_title("greedy_soup", 0.9, with_rate=False) == "greedy soup"


def test_comparison_table_puts_runs_side_by_side():
    table = comparison_table({"ERM": make_results(0.0, 0.75), "BigDrop": make_results(0.9, 0.8123)})
    lines = table.splitlines()
    assert lines[0] == "| | ERM | BigDrop |"
    assert "| o.o.d. sketch | 75.0 | 81.2 |" in lines
    assert "| mean validation | 90.0 | 90.0 |" in lines
    assert "| selected step | 300 | 300 |" in lines
    # Methods a run measured beside its live model get a row; a run without them shows a dash.
    table = comparison_table({"ERM": make_results(0.0, 0.75), "BigDrop": make_results(0.9, 0.8, wa_ood=0.85)})
    assert "| trajectory weight average: mean o.o.d. | – | 85.0 |" in table.splitlines()


def test_fit_and_known_accuracies_are_shown_when_measured():
    measured = make_results(0.9, 0.8)
    measured.primary.fit_accuracy = {"art_painting": 1.0, "cartoon": 0.98, "photo": 0.99}
    measured.primary.known_accuracy = {"sketch": 0.95}
    assert measured.primary.mean_fit_accuracy == pytest.approx(0.99)
    assert make_results(0.0, 0.8).primary.mean_fit_accuracy is None
    table = comparison_table({"ERM": make_results(0.0, 0.75), "BigDrop": measured})
    assert "| mean fit (training split, dropout off) | – | 99.0 |" in table.splitlines()
    assert "| held out, known instances (diagnostic) | – | 95.0 |" in table.splitlines()
    rows = domain_table(measured).splitlines()
    assert "| cartoon | training (fit: training split, dropout off) | 98.0 |" in rows
    assert "| sketch | held out, known instances (diagnostic) | 95.0 |" in rows
    assert "| **mean o.o.d.** | | **80.0** |" in rows and "| mean fit | | 99.0 |" in rows


def test_results_refuse_a_primary_method_they_lack():
    with pytest.raises(ValueError, match="primary_method 'greedy_soup' is not among the methods"):
        RunResults(**{**make_results(0.9, 0.8).__dict__, "primary_method": "greedy_soup"})


def test_model_card_metadata_and_table():
    card = build_model_card(make_results(0.9, 0.8123), model_id="me/pacs-sketch")
    parsed = ModelCard(str(card))
    assert parsed.data.base_model == "timm/resnet50.tv2_in1k"
    assert parsed.data.datasets == ["flwrlabs/pacs"]  # the registry's Hub id of PACS
    assert parsed.data.license == "apache-2.0"  # the backbone's licence is unknown here: hf_bigdrop's
    assert "licence of the backbone `timm/resnet50.tv2_in1k` was not known" in " ".join(card.text.split())
    assert (parsed.data.library_name, parsed.data.pipeline_tag) == ("transformers", "image-classification")
    assert "very-large-dropout" in parsed.data.tags
    assert "| sketch | held out (o.o.d.) | 81.2 |" in card.text
    assert 'model="me/pacs-sketch", trust_remote_code=True' in card.text
    assert "arXiv:2403.00946" in card.text
    # What loading needs: the timm backbone needs timm; a transformers backbone does not.
    assert "its timm backbone needs `timm` too" in " ".join(card.text.split())
    transformers_backbone = make_results(0.9, 0.8)
    transformers_backbone.backbone = "google/vit-base-patch16-224"
    assert "needs `timm`" not in " ".join(build_model_card(transformers_backbone).text.split())
    assert "Optimiser `sgd`, learning rate 0.001, 10000 steps" in " ".join(card.text.split())
    assert "A reduced run" not in card.text
    smoke = make_results(0.9, 0.8)
    smoke.arguments = {"data": {"max_per_domain": 24}}
    assert "**A reduced run**: at most 24 examples per domain" in " ".join(
        build_model_card(smoke).text.split()
    )
    assert "trajectory weight average" not in card.text
    with_wa = build_model_card(make_results(0.9, 0.8123, wa_ood=0.85)).text
    assert "| trajectory weight average | 600 | 85.0 | 90.0 |" in with_wa


def _eval_result(domain: str, value: float, held_out: bool) -> EvalResult:
    return EvalResult(
        task_type="image-classification",
        task_name="Image Classification",
        dataset_type="flwrlabs/pacs",
        dataset_name=f"PACS ({domain}, {'held out' if held_out else 'training domain'})",
        dataset_config=domain,
        dataset_split="test" if held_out else "validation",
        metric_type="accuracy",
        metric_value=value,
        metric_name=f"{'o.o.d.' if held_out else 'validation'} accuracy ({domain})",
    )


def test_model_card_eval_results_read_back_by_huggingface_hub(tmp_path):
    results = make_results(0.9, 0.8123, wa_ood=0.85)  # the weight average is not the model on the card
    expected = [
        _eval_result("sketch", 0.8123, held_out=True),
        _eval_result("art_painting", 0.9, held_out=False),
        _eval_result("cartoon", 0.8, held_out=False),
        _eval_result("photo", 1.0, held_out=False),
    ]
    assert card_eval_results(results) == expected
    build_model_card(results, model_id="me/pacs-sketch").save(tmp_path / "README.md")
    # Read back as the Hub does: the YAML metadata, its model-index, and the card's own parser.
    metadata = metadata_load(tmp_path / "README.md")
    model_name, eval_results = model_index_to_eval_results(metadata["model-index"])
    assert model_name == "pacs-sketch"
    assert eval_results == expected
    parsed = ModelCard.load(tmp_path / "README.md").data
    assert parsed.eval_results == expected and parsed.model_name == "pacs-sketch"
    assert metadata["datasets"] == ["flwrlabs/pacs"] and metadata["base_model"] == "timm/resnet50.tv2_in1k"


def test_model_card_of_the_embedded_backbone_and_benchmark():
    results = make_results(0.9, 0.7)
    results.backbone, results.backbone_license = "embedded:efficientnet-lite0", "apache-2.0"
    results.dataset = "digits"
    results.train_domains, results.test_domains = ["mnist", "mnist_m"], ["optdigits"]
    results.methods["live"].validation_accuracy = {"mnist": 0.9, "mnist_m": float("nan")}
    results.methods["live"].test_accuracy = {"optdigits": 0.7}
    card = build_model_card(results)
    parsed = ModelCard(str(card)).data
    # The embedded backbone's weights are Google's EfficientNet-Lite0, which timm publishes under this id.
    assert parsed.base_model == "timm/tf_efficientnet_lite0.in1k"
    assert "(the weights of [`timm/tf_efficientnet_lite0.in1k`]" in card.text
    assert parsed.license == "apache-2.0" and "the licence of the backbone's weights" in card.text
    assert parsed.datasets is None  # an embedded benchmark has no Hub id
    # Named by its registry name; a domain without a finite accuracy is left out.
    assert [(r.dataset_type, r.dataset_config, r.dataset_split) for r in parsed.eval_results] == [
        ("digits", "optdigits", "test"),
        ("digits", "mnist", "validation"),
    ]
    assert parsed.model_name == "Dropout (p=0.9): digits, held out optdigits"


def test_model_card_licence_follows_a_known_backbone_licence():
    results = make_results(0.9, 0.8)
    results.backbone_license = "bsd-3-clause"
    assert ModelCard(str(build_model_card(results))).data.license == "bsd-3-clause"


def test_model_card_of_a_combination_of_runs():
    results = make_results(0.9, 0.8)
    results.methods = {"greedy_soup": results.methods["live"], "run_ensemble": results.methods["live"]}
    results.primary_method, results.members, results.seed = "greedy_soup", ["a", "b", "c"], None
    text = " ".join(build_model_card(results).text.split())
    assert text.count("# Greedy soup (p=0.9): PACS, held out sketch") == 1
    assert "It combines the selected models of 3 such runs (greedy soup" in text
    assert "Accuracy of the greedy soup of 3 runs" in text and "step None" not in text
    assert "Other combinations of the same runs" in text and "| ensemble of runs |" in text
    assert "The runs it combines (their output folders): - `a` - `b` - `c`" in text
    assert len(ModelCard(str(build_model_card(results))).data.eval_results) == 4  # the greedy soup's


def test_compare_runs_script(tmp_path):
    for name, rate, ood in (("erm", 0.0, 0.75), ("bigdrop", 0.9, 0.8123)):
        (tmp_path / name).mkdir()
        make_results(rate, ood).save(tmp_path / name)
    output, plot = tmp_path / "comparison.md", tmp_path / "curves.png"
    script = str(REPO / "examples" / "compare_runs.py")
    result = subprocess.run(
        [sys.executable, script, str(tmp_path / "erm"), str(tmp_path / "bigdrop"), "--output", str(output)]
        + ["--plot", str(plot)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert "| | ERM | dropout (p=0.9) |" in result.stdout
    assert "| o.o.d. sketch | 75.0 | 81.2 |" in output.read_text()
    assert plot.read_bytes().startswith(b"\x89PNG") and plot.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("strategy", "selection", "held_out"),
    [
        (
            "training_domain_validation",
            "best mean training-domain validation accuracy",
            "never took part in training or in",
        ),
        ("oracle", "(oracle selection)", "optimistic estimate"),
        ("last_step", "last step is kept", "never took part in training or in"),
    ],
)
def test_model_card_states_how_the_checkpoint_was_selected(strategy, selection, held_out):
    results = make_results(0.9, 0.8)
    results.selection = strategy
    text = " ".join(build_model_card(results).text.split())
    assert selection in text and held_out in text
