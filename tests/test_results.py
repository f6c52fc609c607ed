"""results.json, the comparison table, the model card and examples/compare_runs.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import REPO
from huggingface_hub import ModelCard

from hf_bigdrop.modelcard import build_model_card
from hf_bigdrop.results import MethodResults, RunResults, comparison_table, run_title
from hf_bigdrop.tables import method_title


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


def test_results_refuse_a_primary_method_they_lack():
    with pytest.raises(ValueError, match="primary_method 'greedy_soup' is not among the methods"):
        RunResults(**{**make_results(0.9, 0.8).__dict__, "primary_method": "greedy_soup"})


def test_model_card_metadata_and_table():
    card = build_model_card(make_results(0.9, 0.8123), model_id="me/pacs-sketch")
    parsed = ModelCard(str(card))
    assert parsed.data.base_model == "timm/resnet50.tv2_in1k"
    assert parsed.data.datasets is None  # "PACS" is a registry name, not a Hub id
    assert "very-large-dropout" in parsed.data.tags
    assert "| sketch | held out (o.o.d.) | 81.2 |" in card.text
    assert 'model="me/pacs-sketch", trust_remote_code=True' in card.text
    assert "arXiv:2403.00946" in card.text
    assert "Optimiser `sgd`, learning rate 0.001, 10000 steps" in " ".join(card.text.split())
    assert "trajectory weight average" not in card.text
    with_wa = build_model_card(make_results(0.9, 0.8123, wa_ood=0.85)).text
    assert "| trajectory weight average | 600 | 85.0 | 90.0 |" in with_wa


def test_model_card_of_a_combination_of_runs():
    results = make_results(0.9, 0.8)
    results.methods = {"greedy_soup": results.methods["live"], "run_ensemble": results.methods["live"]}
    results.primary_method, results.members, results.seed = "greedy_soup", ["a", "b", "c"], None
    text = " ".join(build_model_card(results).text.split())
    assert text.count("# Greedy soup (p=0.9): PACS, held out sketch") == 1
    assert "It combines the selected models of 3 such runs (greedy soup" in text
    assert "Accuracy of the greedy soup of 3 runs" in text and "step None" not in text
    assert "Other combinations of the same runs" in text and "| ensemble of runs |" in text


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
