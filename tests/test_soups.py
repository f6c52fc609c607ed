"""Across finished runs: uniform and greedy soups, ensembles of runs, and who may be combined."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from helpers import REMOTE_LOAD
from tiny_models import pixel_batch, tiny_model

from hf_bigdrop.results import MethodResults, RunResults
from hf_bigdrop.soups import average_state_dicts, ensemble_runs, greedy_soup, uniform_soup


def save_run(
    folder, *, bias=None, validation=0.9, backbone="tiny", test_domains=("sketch",), labels=None, seed=0
):
    """A finished run's output_dir: a tiny BigDrop model and its results.json."""
    torch.manual_seed(seed)
    model = tiny_model(classifier_init="normal", id2label=labels or {0: "a", 1: "b", 2: "c"})
    if bias is not None:
        with torch.no_grad():
            model.classifier.bias.copy_(torch.tensor(bias))
    model.save_pretrained(folder)
    RunResults(
        dataset="toy",
        train_domains=["art", "photo"],
        test_domains=list(test_domains),
        seed=seed,
        backbone=backbone,
        dropout_rate=0.9,
        methods={"live": MethodResults(10, {"art": validation, "photo": validation}, {"sketch": 0.5})},
    ).save(folder)
    return model.eval()


def test_ensemble_of_one_run_is_the_run(tmp_path):
    model = save_run(tmp_path / "a")
    pixels = pixel_batch(4)[:, :, :16, :16]
    with torch.no_grad():
        assert torch.equal(ensemble_runs([tmp_path / "a"])(pixels).logits, model(pixels).logits)


def test_ensemble_averages_logits_not_probabilities(tmp_path):
    # Zero weights: each model's logits are its bias. Mean logits pick class 2; mean probabilities would not.
    for name, bias in (("a", [10.0, 0.0, 9.0]), ("b", [-10.0, 1.0, 0.0])):
        model = save_run(tmp_path / name, bias=bias)
        with torch.no_grad():
            model.classifier.weight.zero_()
        model.save_pretrained(tmp_path / name)
    pixels = pixel_batch(1)[:, :, :16, :16]
    with torch.no_grad():
        logits = ensemble_runs([tmp_path / "a", tmp_path / "b"])(pixels).logits
    torch.testing.assert_close(logits, torch.tensor([[0.0, 0.5, 4.5]]))
    probabilities = (
        torch.tensor([10.0, 0.0, 9.0]).softmax(-1) + torch.tensor([-10.0, 1.0, 0.0]).softmax(-1)
    ) / 2
    assert logits.argmax(-1).item() == 2 and probabilities.argmax().item() != 2


def test_uniform_soup_is_the_mean_of_the_runs_weights(tmp_path):
    models = [save_run(tmp_path / str(seed), seed=seed) for seed in range(3)]
    soup = uniform_soup([tmp_path / str(seed) for seed in range(3)])
    expected = average_state_dicts(m.state_dict() for m in models)
    for key, value in soup.state_dict().items():
        torch.testing.assert_close(value, expected[key], msg=key)


def test_greedy_soup_rejects_a_bad_ingredient_and_never_lowers_validation(tmp_path):
    target = torch.tensor([1.0, 2.0, 3.0])
    # Ranked by recorded validation: good (0.9), bad (0.85), other good (0.8); the two good ones average to target.
    save_run(tmp_path / "good", bias=[1.5, 2.5, 3.5], validation=0.9, seed=0)
    save_run(tmp_path / "bad", bias=[90.0, -90.0, 50.0], validation=0.85, seed=1)
    save_run(tmp_path / "other", bias=[0.5, 1.5, 2.5], validation=0.8, seed=2)
    scores = []

    def validation_accuracy(model):
        scores.append(-float((model.classifier.bias.detach() - target).norm()))
        return scores[-1]

    soup, kept = greedy_soup([tmp_path / "other", tmp_path / "bad", tmp_path / "good"], validation_accuracy)
    assert [p.name for p in kept] == ["good", "other"]
    assert len(scores) == 3  # the best run alone, then each candidate once
    assert validation_accuracy(soup) == max(scores[:3]) >= scores[0]
    torch.testing.assert_close(soup.classifier.bias, target)


@pytest.mark.parametrize(
    ("kwargs", "difference"),
    [
        ({"backbone": "other-backbone"}, "different backbone"),
        ({"labels": {0: "x", 1: "y", 2: "z"}}, "different label set"),
        ({"test_domains": ("photo",)}, "different held-out domains"),
    ],
)
def test_incompatible_runs_are_refused(tmp_path, kwargs, difference):
    save_run(tmp_path / "a")
    save_run(tmp_path / "b", **kwargs)
    for combine in (uniform_soup, ensemble_runs, lambda runs: greedy_soup(runs, lambda model: 0.0)):
        with pytest.raises(ValueError, match=f"cannot combine .*b with .*a: {difference}"):
            combine([tmp_path / "a", tmp_path / "b"])


def test_a_soup_reloads_with_remote_code_without_hf_bigdrop(tmp_path):
    for seed in range(2):
        save_run(tmp_path / str(seed), seed=seed)
    soup = uniform_soup([tmp_path / "0", tmp_path / "1"])
    soup.save_pretrained(tmp_path / "soup")
    pixels = pixel_batch(3)[:, :, :16, :16]
    torch.save(pixels, tmp_path / "pixels.pt")
    (tmp_path / "load.py").write_text(REMOTE_LOAD)
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "load.py", "soup", "pixels.pt", "out.pt"]
    subprocess.run(command, check=True, cwd=tmp_path, env=env, timeout=300)
    with torch.no_grad():
        expected = soup(pixels).logits
    torch.testing.assert_close(torch.load(tmp_path / "out.pt", weights_only=True), expected)


def test_the_public_averaging_module_offers_the_soups():
    # `hf_bigdrop.averaging` is the public home of every averaging and ensembling name (trajectory and across runs);
    # `hf_bigdrop.soups` is where the across-runs ones are written.
    import hf_bigdrop.averaging
    import hf_bigdrop.soups

    for name in (
        "average_state_dicts",
        "check_compatible_runs",
        "ensemble_runs",
        "greedy_soup",
        "uniform_soup",
    ):
        assert getattr(hf_bigdrop.averaging, name) is getattr(hf_bigdrop.soups, name)
