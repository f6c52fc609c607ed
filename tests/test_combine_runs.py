"""examples/combine_runs.py on real tiny runs: soups and the run ensemble, evaluated and saved like a run."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from helpers import REPO
from test_run_ood import backbone, run_ood, tiny_flags  # noqa: F401  (backbone is a fixture)
from transformers import AutoModelForImageClassification

from hf_bigdrop import BigDropForImageClassification
from hf_bigdrop.results import RunResults


def load_combine_runs():
    if "combine_runs" in sys.modules:
        return sys.modules["combine_runs"]
    spec = importlib.util.spec_from_file_location("combine_runs", REPO / "examples" / "combine_runs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["combine_runs"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_combine_two_seeds(backbone, tmp_path):  # noqa: F811
    runs = []
    for seed in (0, 1):
        flags = tiny_flags(backbone, tmp_path / f"seed{seed}")
        flags[flags.index("--seed") + 1] = str(seed)
        [result] = run_ood.main(flags)
        runs.append(result)
    combined = load_combine_runs().main(
        [str(tmp_path / "seed0"), str(tmp_path / "seed1"), "--output_dir", str(tmp_path / "soup")]
    )
    saved = RunResults.load(tmp_path / "soup")
    assert saved == combined
    assert set(saved.methods) == {"greedy_soup", "uniform_soup", "run_ensemble"}
    assert saved.primary_method == "greedy_soup" and saved.seed is None
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
