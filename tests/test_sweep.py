"""Sweeps (`hf_bigdrop.experiment.sweep` / `collect`, `hf-bigdrop sweep`): the grid, checks before the first job,
launching N jobs at once, selection per method across hyperparameters, and the table of mean ± std over seeds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import REPO, tiny_flags

from hf_bigdrop.experiment import UsageError
from hf_bigdrop.experiment.arguments import read_recipe
from hf_bigdrop.experiment.cli import main as cli
from hf_bigdrop.experiment.collect import (
    Row,
    collect,
    combination_plan,
    learning_curves,
)
from hf_bigdrop.experiment.doc_pages import replace_between_markers, table_markers
from hf_bigdrop.experiment.launchers import Task, launch_local, launch_slurm
from hf_bigdrop.experiment.report import results_table, selection_table, sweep_report
from hf_bigdrop.experiment.sweep import Sweep
from hf_bigdrop.results import MethodResults, RunResults


def test_the_results_sweep_files_expand_to_the_documented_grids():
    config = Sweep.load(REPO / "examples" / "configs" / "sweep_styles.yaml")
    jobs = config.jobs()
    assert len(jobs) == 36 and config.hyperparameters == []
    assert {job.test_domain for job in jobs} == {"photo", "sketch", "cartoon", "painting"}
    argv = jobs[0].argv()
    assert argv[0] == "examples/configs/styles.yaml"
    assert argv[-2:] == ["--overwrite_output_dir", "True"]  # a job that has not started starts afresh

    config = Sweep.load(REPO / "examples" / "configs" / "sweep_digits.yaml")
    jobs = config.jobs()
    assert len(jobs) == 24
    command = jobs[0].command()
    assert command[:3] == [sys.executable, "-m", "hf_bigdrop.experiment"] and command[3] == "run"
    assert command[command.index("--dropout_rate") + 1] == "0.0"
    assert command[command.index("--output_dir") + 1] == "runs/sweep_digits/mnist/dropout_rate=0.0/seed0"


@pytest.mark.parametrize(
    ("name", "runs", "budget", "schedule"),
    [
        ("sweep_styles_budget", 2, 6000, "constant"),
        ("sweep_emoji_sgd_budget", 2, 6000, None),  # the recipe's constant learning rate
        ("sweep_styles_converged", 24, 4000, None),  # the recipe's linear decay over the budget
    ],
)
def test_the_budget_pilots_and_converged_sweeps_pass_their_checks(name, runs, budget, schedule):
    """docs/results.md: the pilots hold the learning rate constant; the converged sweeps use the budget they fixed."""
    config = Sweep.load(REPO / "examples" / "configs" / f"{name}.yaml")
    jobs = config.check()
    assert len(jobs) == runs and {job.setting["dropout_rate"] for job in jobs} == {0.0, 0.9}
    for job in jobs:
        argv = job.argv()
        assert argv[argv.index("--max_steps") + 1] == str(budget)
        assert ("--lr_scheduler_type" in argv) == (schedule is not None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("config: c.yaml\noutput_dir: o\ngrid: {seed: [0]}\n", "needs 'test_domains'"),
        (
            "config: c.yaml\noutput_dir: o\ngrid: {seed: [0], test_domains: [a]}\ngrids: 1\n",
            r"unknown key\(s\) grids \(did you mean grid\?\)",
        ),
        ("- config: c.yaml\n", "must hold a mapping"),
        ("config: [c.yaml\n", "is not valid YAML"),
        ("config: c.yaml\noutput_dir: o\ngrid: [seed]\n", "sweep file .*: 'grid' must be a mapping"),
        (
            "config: c.yaml\noutput_dir: o\ngrid: {seed: [0], test_domains: [a]}\narguments: [1]\n",
            "'arguments' .* mapping",
        ),
        ("config: c.yaml\noutput_dir: o\ngrid: {seed: [0, 0], test_domains: [a]}\n", "repeats a value"),
        (
            "config: c.yaml\noutput_dir: o\ngrid: {seed: [0], test_domains: ['../x']}\n",
            "cannot name a folder inside",
        ),
        (
            "config: c.yaml\noutput_dir: o\ngrid: {seed: [0], test_domains: [a], backbone: [/tmp/b]}\n",
            "'/tmp/b', which cannot name a folder inside",
        ),
        # The same cell under two spellings is one run.
        ("config: c.yaml\noutput_dir: o\ngrid: {seed: [0, '0'], test_domains: [a]}\n", "repeats a value"),
        (
            "config: c.yaml\noutput_dir: o\ngrid: {seed: [0], test_domains: [a], learning_rate: [0.0001, '1e-4']}\n",
            "grid key 'learning_rate' repeats a value",
        ),
        # A key given twice is refused, as in recipes (YAML itself keeps the last silently).
        (
            "config: c.yaml\noutput_dir: o\ngrid: {seed: [0], test_domains: [a]}\ncombine: true\ncombine: false\n",
            r"sweep file .*: key 'combine' appears twice \(line 5\)",
        ),
        (
            "config: c.yaml\noutput_dir: o\ngrid: {seed: [0], seed: [1], test_domains: [a]}\n",
            "'seed' appears twice",
        ),
        (
            "config: c.yaml\noutput_dir: o\ngrid: {seed: [0], test_domains: [a]}\ncombine: maybe\n",
            "true or false",
        ),
        (  # given explicitly, even the default must be a grid key
            "config: c.yaml\noutput_dir: o\ngrid: {seed: [0], test_domains: [a]}\nmethod_keys: [dropout_rate]\n",
            r"method_keys \['dropout_rate'\] are not grid keys",
        ),
        (
            "config: c.yaml\noutput_dir: o\ngrid: {seed: [0], test_domains: [a]}\nmethod_keys: [learning_rate]\n",
            r"method_keys \['learning_rate'\] are not grid keys",
        ),
        (
            "config: c.yaml\noutput_dir: o\ngrid: {seed: [0], test_domains: [a], output_dir: [x]}\n",
            "the sweep's to set",
        ),
        (
            "config: c.yaml\noutput_dir: o\ngrid: {seed: [0], test_domains: [a], max_steps: [1]}\narguments: {max_steps: 2}\n",
            "in both 'grid' and 'arguments'",
        ),
    ],
)
def test_sweep_file_errors_are_one_line(tmp_path, content, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(content)
    with pytest.raises(UsageError, match=message) as error:
        Sweep.load(path)
    assert "\n" not in str(error.value)


def test_sweep_file_lists_every_problem_at_once(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "config: c.yaml\noutput_dir: o\ngrid: {seed: [0, 0], test_domains: ['..']}\narguments: {seed: 1}\n"
    )
    with pytest.raises(UsageError) as error:
        Sweep.load(path)
    message = str(error.value)
    assert message.startswith(f"sweep file {str(path)!r}: ") and "\n" not in message
    for problem in (
        "'seed' repeats a value",
        "'..', which cannot name a folder",
        "in both 'grid' and 'arguments'",
    ):
        assert problem in message


def test_sweep_schema_is_the_dataclass():
    sweep = Sweep(config="c.yaml", output_dir="o", grid={"seed": 0, "test_domains": "a"}, arguments=None)
    assert sweep.config == Path("c.yaml") and sweep.grid == {"seed": [0], "test_domains": ["a"]}
    assert sweep.arguments == {} and sweep.method_keys == ("dropout_rate",)
    with pytest.raises(UsageError, match="the sweep: the grid needs 'seed'"):
        Sweep(config="c.yaml", output_dir="o", grid={"test_domains": ["a"]})


def _sweep_file(tmp_path, grid: dict, recipe: dict | None = None, **extra) -> Sweep:
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe or {"dataset": "digits", "max_steps": 2}))
    path = tmp_path / "sweep.yaml"
    path.write_text(
        yaml.safe_dump(
            {"config": str(recipe_path), "output_dir": str(tmp_path / "sweep"), "grid": grid, **extra}
        )
    )
    return Sweep.load(path)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (
            {"test_domains": ["mnist"], "seed": [0], "learning_rat": [0.1]},
            r"unknown argument\(s\) learning_rat \(did you mean learning_rate\?\)",
        ),
        ({"test_domains": ["mnist", "svhn"], "seed": [0]}, r"job .*svhn.*Unknown domain 'svhn'.*mnist_m"),
        ({"test_domains": ["mnist"], "seed": [0], "dropout_rate": [0.9, 1.5]}, r"dropout_rate.*\[0, 1\)"),
        (
            {"test_domains": ["mnist"], "seed": [0], "max_steps": [4.5]},
            r"--max_steps/--max-steps: invalid int value: '4.5'",
        ),
    ],
)
def test_every_job_is_checked_before_the_first_starts(tmp_path, grid, message):
    sweep = _sweep_file(tmp_path, grid)
    with pytest.raises(UsageError, match=message):
        sweep.check()
    assert not (tmp_path / "sweep").exists()  # nothing ran


def test_a_missing_recipe_is_named_once(tmp_path):
    sweep = _sweep_file(tmp_path, {"test_domains": ["mnist"], "seed": [0]})
    (tmp_path / "recipe.yaml").unlink()
    with pytest.raises(UsageError, match=r"recipe '.*recipe.yaml' is not a file"):
        sweep.check()


def _fake_run(
    sweep: Sweep, domain: str, setting: dict, seed: int, validation: float, test: float, wa=None, oracle=None
) -> None:
    """A finished job's results.json, recording the job's own values (as a real run does)."""
    [job] = [j for j in sweep.jobs() if (j.test_domain, j.setting, j.seed) == (domain, setting, seed)]
    job.output_dir.mkdir(parents=True, exist_ok=True)
    oracle_accuracy = {} if oracle is None else {domain: oracle}
    methods = {"live": MethodResults(100, {"x": validation}, {domain: test}, oracle_accuracy)}
    if wa is not None:
        methods["trajectory_wa"] = MethodResults(200, {"x": wa[0]}, {domain: wa[1]})
    RunResults(
        dataset="digits",
        train_domains=["x"],
        test_domains=[domain],
        seed=seed,
        backbone="tiny",
        dropout_rate=setting["dropout_rate"],
        methods=methods,
        wall_time_s=60.0,
        arguments={
            "model": {"dropout_rate": setting["dropout_rate"]},
            "data": {"test_domains": [domain]},
            "training": {"seed": seed, **{k: v for k, v in setting.items() if k != "dropout_rate"}},
            "recipe": read_recipe(sweep.config),  # what a real run records of its recipe's values
        },
    ).save(job.output_dir)


def test_selection_per_method_across_hyperparameters(tmp_path):
    grid = {
        "test_domains": ["a", "b"],
        "dropout_rate": [0.0, 0.9],
        "learning_rate": [0.001, 0.01],
        "seed": [0, 1],
    }
    sweep = _sweep_file(tmp_path, grid)
    assert sweep.hyperparameters == ["learning_rate"]
    lr = [{"dropout_rate": p, "learning_rate": value} for p in (0.0, 0.9) for value in (0.001, 0.01)]
    # ERM: lr 0.01 is better on validation for seed 0 (and worse held out: selection must not look there);
    # seed 1 ties: the first setting in the grid's order wins.
    _fake_run(sweep, "a", lr[0], 0, validation=0.80, test=0.70, wa=(0.85, 0.60))
    _fake_run(sweep, "a", lr[1], 0, validation=0.90, test=0.50, wa=(0.70, 0.99))
    _fake_run(sweep, "a", lr[0], 1, validation=0.88, test=0.60)
    _fake_run(sweep, "a", lr[1], 1, validation=0.88, test=0.40)
    # p=0.9: lr 0.001 did not finish for seed 1: the only candidate is selected.
    _fake_run(sweep, "a", lr[2], 0, validation=0.70, test=0.90)
    _fake_run(sweep, "a", lr[3], 0, validation=0.60, test=0.95)
    _fake_run(sweep, "a", lr[3], 1, validation=0.65, test=0.85)
    _fake_run(sweep, "b", lr[0], 0, validation=0.50, test=0.30)
    results = collect(sweep)
    picked = {
        (c.method_setting, c.method, c.domain, c.seed): (dict(c.hyperparameters), c.candidates)
        for c in results.selected
    }
    erm, big = (("dropout_rate", 0.0),), (("dropout_rate", 0.9),)
    assert picked[(erm, "live", "a", 0)] == ({"learning_rate": 0.01}, 2)
    assert picked[(erm, "trajectory_wa", "a", 0)] == (
        {"learning_rate": 0.001},
        2,
    )  # its own validation decides
    assert picked[(erm, "live", "a", 1)] == ({"learning_rate": 0.001}, 2)  # a tie: the grid's first
    assert picked[(big, "live", "a", 0)] == ({"learning_rate": 0.001}, 2)
    assert picked[(big, "live", "a", 1)] == ({"learning_rate": 0.01}, 1)
    live = {(row.method_setting, row.method): row for row in results.rows}
    assert live[(erm, "live")].test["a"] == {0: 0.50, 1: 0.60}
    assert live[(erm, "trajectory_wa")].test["a"] == {0: 0.60}
    assert live[(big, "live")].test["a"] == {0: 0.90, 1: 0.85}
    table = results_table(results)
    assert (
        "| ERM | 55.0 ± 7.1 (n=2) | 30.0 (n=1) | 40.0 (n=1) |" in table
    )  # seed 0 alone finished both domains
    chosen = selection_table(results)
    assert (
        "seed 0: learning_rate=0.01 (step 100, of 2)" in chosen
        and "seed 1: learning_rate=0.01 (step 100, of 1)" in chosen
    )
    # Soups combine the runs the live model selected, one per seed.
    plan = {
        c.folder.relative_to(tmp_path / "sweep"): [m.relative_to(tmp_path / "sweep") for m in c.members]
        for c in combination_plan(sweep, results.selected)
    }
    assert {str(k): [str(m) for m in v] for k, v in plan.items()} == {
        "a/dropout_rate=0.0/combined": [
            "a/dropout_rate=0.0,learning_rate=0.01/seed0",
            "a/dropout_rate=0.0,learning_rate=0.001/seed1",
        ],
        "a/dropout_rate=0.9/combined": [
            "a/dropout_rate=0.9,learning_rate=0.001/seed0",
            "a/dropout_rate=0.9,learning_rate=0.01/seed1",
        ],
    }
    # Oracle selection reads a validation part of the held-out domain, which these runs did not measure.
    with pytest.raises(
        ValueError,
        match=r"seed0: oracle selection reads the 'oracle' accuracy, which this run did not measure \(oracle selection "
        r"needs test_holdout_fraction",
    ):
        collect(sweep, "oracle")


def test_oracle_selection_reads_the_held_out_validation_part_never_the_reported_test(tmp_path):
    grid = {"test_domains": ["a"], "dropout_rate": [0.0], "learning_rate": [0.001, 0.01], "seed": [0]}
    sweep = _sweep_file(tmp_path, grid)
    lr = [{"dropout_rate": 0.0, "learning_rate": value} for value in (0.001, 0.01)]
    # The test part prefers lr 0.001 (0.70 > 0.50); the oracle's validation part prefers 0.01 (0.60 > 0.40).
    _fake_run(sweep, "a", lr[0], 0, validation=0.80, test=0.70, oracle=0.40)
    _fake_run(sweep, "a", lr[1], 0, validation=0.90, test=0.50, oracle=0.60)
    oracle = collect(sweep, "oracle")
    [choice] = [c for c in oracle.selected if c.method == "live"]
    assert (
        dict(choice.hyperparameters) == {"learning_rate": 0.01} and choice.record.mean_test_accuracy == 0.50
    )
    assert "Oracle selection" in sweep_report(oracle)


def test_results_of_another_setting_never_count_as_finished(tmp_path):
    sweep = _sweep_file(tmp_path, {"test_domains": ["a"], "dropout_rate": [0.0, 0.9], "seed": [0]})
    erm, big = sweep.jobs()
    _fake_run(sweep, "a", {"dropout_rate": 0.9}, 0, validation=0.5, test=0.5)
    assert big.finished and not erm.finished
    # The p=0.9 run's results copied into the ERM job's folder (a stale folder) do not finish the ERM job.
    erm.output_dir.mkdir(parents=True)
    (erm.output_dir / "results.json").write_text((big.output_dir / "results.json").read_text())
    assert not erm.finished and erm.argv()[-2:] == ["--overwrite_output_dir", "True"]
    (big.output_dir / "results.json").write_text('{"dataset": ')  # damaged: runs again
    assert not big.finished


def test_a_recipe_changed_since_a_job_finished_runs_it_again(tmp_path):
    sweep = _sweep_file(tmp_path, {"test_domains": ["a"], "dropout_rate": [0.9], "seed": [0]})
    [job] = sweep.jobs()
    _fake_run(sweep, "a", {"dropout_rate": 0.9}, 0, validation=0.5, test=0.5)
    assert job.finished
    recipe = Path(sweep.config)
    recipe.write_text(yaml.safe_dump({"dataset": "digits", "max_steps": 3}))  # the budget changed
    assert not job.finished
    # How the run goes (its logging, its workers) is not what it computes: still finished.
    recipe.write_text(yaml.safe_dump({"dataset": "digits", "max_steps": 2, "logging_steps": 7}))
    assert job.finished


def test_table_means_stds_and_domainbed_standard_error():
    row = Row((("dropout_rate", 0.9),), "live", {"a": {0: 0.5, 1: 0.7, 2: 0.9}, "b": {0: 0.2, 1: 0.4}}, {})
    a, b, average = row.cells(["a", "b"], "std")
    assert (a.mean, a.spread, a.n) == pytest.approx((0.7, 0.2, 3))
    assert (b.mean, b.spread, b.n) == pytest.approx((0.3, np.std([0.2, 0.4], ddof=1), 2))
    assert (average.mean, average.spread, average.n) == pytest.approx((0.45, np.std([0.35, 0.55], ddof=1), 2))
    sem = row.cells(["a", "b"], "sem")[0]
    assert (sem.mean, sem.spread, sem.n) == pytest.approx((0.7, np.std([0.5, 0.7, 0.9]) / np.sqrt(3), 3))
    assert [str(c) for c in (a, b, average)] == [
        "70.0 ± 20.0 (n=3)",
        "30.0 ± 14.1 (n=2)",
        "45.0 ± 14.1 (n=2)",
    ]
    assert row.title == "dropout (p=0.9)"


def test_report_replaces_only_its_own_sweeps_table(tmp_path):
    page = tmp_path / "results.md"
    a_start, a_end = table_markers("sweep_a")
    b_start, b_end = table_markers("sweep_b")
    page.write_text(f"# R\n{a_start}\nold a\n{a_end}\ntext\n{b_start}\nold b\n{b_end}\nend\n")
    replace_between_markers(page, "new b\n", "sweep_b")
    assert page.read_text() == f"# R\n{a_start}\nold a\n{a_end}\ntext\n{b_start}\nnew b\n{b_end}\nend\n"
    with pytest.raises(ValueError, match="sweep-table:start sweep_c"):
        replace_between_markers(page, "x", "sweep_c")


def test_local_launcher_runs_n_jobs_at_once_with_the_cores_split(tmp_path):
    # Each job records its thread share and when it ran; two at once overlap in time.
    script = (
        "import json, os, sys, time; start = time.time(); time.sleep(1.0); "
        "json.dump({'threads': os.environ['OMP_NUM_THREADS'], 'start': start, 'end': time.time()}, "
        "open(sys.argv[1], 'w'))"
    )
    tasks = [
        Task([sys.executable, "-c", script, str(tmp_path / f"{i}.json")], tmp_path / f"{i}.log", f"job {i}")
        for i in range(3)
    ]
    tasks.append(Task([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "bad.log", "bad job"))
    failed = launch_local(tasks, jobs=2, poll_seconds=0.05)
    assert [task.name for task in failed] == ["bad job"]
    import json
    import os

    runs = [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(3)]
    assert {run["threads"] for run in runs} == {str(max(1, (os.cpu_count() or 1) // 2))}
    assert runs[1]["start"] < runs[0]["end"] and runs[2]["start"] >= min(runs[0]["end"], runs[1]["end"]) - 0.2


def test_slurm_launcher_through_submitits_local_executor(tmp_path):
    pytest.importorskip("submitit")
    ok = Task(
        [sys.executable, "-c", f"open({str(tmp_path / 'ran')!r}, 'w').write('yes')"],
        tmp_path / "ok.log",
        "ok",
    )
    bad = Task([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "bad.log", "bad")
    failed = launch_slurm([ok, bad], tmp_path, {"timeout_min": 5}, cluster="local")
    assert (tmp_path / "ran").read_text() == "yes"
    assert failed == [bad]


@pytest.mark.slow
def test_tiny_sweep_with_two_jobs_at_once_table_and_rerun(backbone, tmp_path, capsys):
    flags = tiny_flags(backbone, tmp_path / "unused", "--weight_averaging_start_step", "1")
    flags += ["--ensemble_start_step", "3"]
    recipe, key = {}, None
    for flag in flags:  # flags -> a recipe file (a flag without a value is a true boolean)
        if flag.startswith("--"):
            key = flag.removeprefix("--")
            recipe[key] = True
        else:
            recipe[key] = flag
    for key in ("output_dir", "test_domains", "seed"):
        del recipe[key]
    grid = {"test_domains": ["optdigits", "typeface"], "dropout_rate": [0.9], "seed": [0, 1]}
    sweep = _sweep_file(tmp_path, grid, recipe)

    cli(["sweep", str(tmp_path / "sweep.yaml"), "--jobs", "2"])
    results = collect(sweep)
    assert results.finished == 4 and results.domains == ["optdigits", "typeface"]
    assert [row.method for row in results.rows] == [
        "live", "trajectory_wa", "trajectory_ensemble", "uniform_soup", "greedy_soup", "run_ensemble"
    ]  # fmt: skip
    table = (tmp_path / "sweep" / "table.md").read_text()
    for domain in results.domains:
        runs = [
            RunResults.load(tmp_path / "sweep" / domain / "dropout_rate=0.9" / f"seed{s}") for s in (0, 1)
        ]
        for method in ("live", "trajectory_wa"):
            values = [r.methods[method].test_accuracy[domain] for r in runs]
            [row] = [row for row in results.rows if row.method == method]
            assert sorted(row.test[domain].values()) == sorted(values)
            cell = row.cells(results.domains, "std")[results.domains.index(domain)]
            assert (cell.mean, cell.spread, cell.n) == pytest.approx(
                (np.mean(values), np.std(values, ddof=1), 2)
            )
        combined = RunResults.load(tmp_path / "sweep" / domain / "dropout_rate=0.9" / "combined")
        [soup] = [row for row in results.rows if row.method == "greedy_soup"]
        assert soup.test[domain] == {None: combined.methods["greedy_soup"].test_accuracy[domain]}
    assert "(n=2)" in table and "(n=1)" in table
    assert (tmp_path / "sweep" / "table.csv").read_text().startswith("method,held_out,mean,std,n")
    for figure in ("accuracy.png", "curves.png"):
        assert (tmp_path / "sweep" / figure).read_bytes().startswith(b"\x89PNG")
    # The learning curves hold the fit (training split, dropout off) beside validation and held-out accuracy.
    curves = learning_curves(results.selected)
    assert curves and all({"fit", "validation", "test"} <= set(curve) for curve in curves.values())
    assert (tmp_path / "sweep" / "optdigits" / "dropout_rate=0.9" / "seed0.log").is_file()

    # A re-run runs nothing: finished jobs and combinations are skipped, the table is the same.
    marker = tmp_path / "sweep" / "optdigits" / "dropout_rate=0.9" / "combined" / "results.json"
    stamp = marker.stat().st_mtime
    capsys.readouterr()
    assert cli(["sweep", str(tmp_path / "sweep.yaml")]).split("runs finished")[0] in table
    assert "4 of 4 jobs already finished; running 0" in capsys.readouterr().out
    assert marker.stat().st_mtime == stamp
    # A killed job (a complete checkpoint, no results.json) is resumed, not restarted.
    killed = tmp_path / "sweep" / "typeface" / "dropout_rate=0.9" / "seed1"
    (killed / "results.json").unlink()
    [job] = [job for job in sweep.jobs() if job.output_dir == killed]
    assert job.argv()[-2:] == ["--resume_from_checkpoint", "True"]
    # A job whose only checkpoints lack the averaging state its arguments need starts over (a resume would be
    # refused at every rerun).
    for checkpoint in killed.glob("checkpoint-*"):
        (checkpoint / "weight_average.safetensors").unlink()
    assert job.checkpoint() is None and job.argv()[-2:] == ["--overwrite_output_dir", "True"]

    # A recipe changed since: the sweep refuses to touch the runs of the old one, naming what changed...
    recipe["learning_rate"] = "0.02"
    Path(sweep.config).write_text(yaml.safe_dump(recipe))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_code:
        cli(["sweep", str(tmp_path / "sweep.yaml")])
    assert exit_code.value.code == 2
    error = capsys.readouterr().err
    assert "and 3 more hold(s) a run of other arguments" in error and "learning_rate 0.01 -> '0.02'" in error
    assert (tmp_path / "sweep" / "optdigits" / "dropout_rate=0.9" / "seed0" / "results.json").is_file()
    # ... and with --rerun-changed runs every job afresh, never from a checkpoint of the old recipe.
    cli(["sweep", str(tmp_path / "sweep.yaml"), "--rerun-changed", "--print-commands"])
    commands = capsys.readouterr().out.strip().splitlines()
    jobs = [line for line in commands if " run " in line]
    assert len(jobs) == 4 and all(line.endswith("--overwrite_output_dir True") for line in jobs)


def test_a_killed_job_of_other_arguments_starts_over(tmp_path):
    sweep = _sweep_file(tmp_path, {"test_domains": ["a"], "dropout_rate": [0.9], "seed": [0]})
    [job] = sweep.jobs()
    job.output_dir.mkdir(parents=True)
    (job.output_dir / "arguments.json").write_text(
        json.dumps(
            {
                "model": {"dropout_rate": 0.5},
                "data": {"dataset": "digits", "test_domains": ["a"]},
                "training": {"seed": 0, "max_steps": 2},
            }
        )
    )
    assert job.changes() == ["dropout_rate 0.5 -> 0.9"] and not job.finished
    assert job.checkpoint() is None and job.argv()[-2:] == ["--overwrite_output_dir", "True"]


def test_launchers_are_a_registry():
    from hf_bigdrop.experiment.launchers import LAUNCHERS, launch

    assert set(LAUNCHERS) == {"local", "slurm"}
    with pytest.raises(UsageError, match=r"unknown launcher 'pbs'; choose one of \['local', 'slurm'\]"):
        launch([], None, "pbs")
