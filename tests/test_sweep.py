"""examples/sweep.py: the grid, the launchers, re-runs, and the table of mean ± std over seeds."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import yaml
from helpers import REPO
from test_run_ood import backbone, tiny_flags  # noqa: F401  (backbone is a fixture)

from hf_bigdrop.results import RunResults


def load_sweep():
    if "sweep" in sys.modules:
        return sys.modules["sweep"]
    sys.path.insert(0, str(REPO / "examples"))
    spec = importlib.util.spec_from_file_location("sweep", REPO / "examples" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sweep"] = module
    spec.loader.exec_module(module)
    return module


sweep = load_sweep()


def test_the_results_sweep_files_expand_to_the_documented_grids():
    config = sweep.Sweep.load(REPO / "examples" / "configs" / "sweep_styles.yaml")
    jobs = sweep.expand(config)
    assert len(jobs) == 36
    assert {job.test_domain for job in jobs} == {"photo", "sketch", "cartoon", "painting"}
    assert len(sweep.combinations(config, jobs)) == 12  # 4 held-out domains x 3 dropout rates
    assert jobs[0].command(config)[2] == "examples/configs/styles.yaml"

    config = sweep.Sweep.load(REPO / "examples" / "configs" / "sweep_digits.yaml")
    jobs = sweep.expand(config)
    assert len(jobs) == 24
    assert {job.test_domain for job in jobs} == {"mnist", "mnist_m", "optdigits", "typeface"}
    assert len(sweep.combinations(config, jobs)) == 8  # 4 held-out domains x 2 dropout rates
    command = jobs[0].command(config)
    assert command[1:3] == [str(REPO / "examples" / "run_ood.py"), "examples/configs/digits.yaml"]
    assert command[command.index("--dropout_rate") + 1] == "0.0"
    assert command[command.index("--output_dir") + 1] == "runs/sweep_digits/mnist/dropout_rate=0.0/seed0"


def test_sweep_file_errors(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"config": "c.yaml", "output_dir": "o", "grid": {"seed": [0]}}))
    with pytest.raises(ValueError, match="needs 'test_domains'"):
        sweep.Sweep.load(path)
    path.write_text(
        yaml.safe_dump({"config": "c.yaml", "output_dir": "o", "grid": {"seed": [0]}, "grids": 1})
    )
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['grids'\]"):
        sweep.Sweep.load(path)


def test_table_means_stds_and_domainbed_standard_error():
    row = sweep.Row("dropout", "dropout", {"a": {0: 0.5, 1: 0.7, 2: 0.9}, "b": {0: 0.2, 1: 0.4}})
    (a, b, average) = sweep.table_cells(row, ["a", "b"], "std")
    assert a == pytest.approx((0.7, 0.2, 3))
    assert b == pytest.approx((0.3, np.std([0.2, 0.4], ddof=1), 2))
    assert average == pytest.approx((0.45, np.std([0.35, 0.55], ddof=1), 2))  # seeds 0 and 1 finished both
    sem = sweep.table_cells(row, ["a", "b"], "sem")[0]
    assert sem == pytest.approx((0.7, np.std([0.5, 0.7, 0.9]) / np.sqrt(3), 3))
    table = sweep.markdown_table([row], ["a", "b"], "std")
    assert "| dropout | 70.0 ± 20.0 (n=3) | 30.0 ± 14.1 (n=2) | 45.0 ± 14.1 (n=2) |" in table


def test_report_replaces_only_its_own_sweeps_table(tmp_path):
    page = tmp_path / "results.md"
    a_start, a_end = sweep.table_markers("sweep_a")
    b_start, b_end = sweep.table_markers("sweep_b")
    page.write_text(f"# R\n{a_start}\nold a\n{a_end}\ntext\n{b_start}\nold b\n{b_end}\nend\n")
    sweep.replace_between_markers(page, "new b\n", "sweep_b")
    assert page.read_text() == f"# R\n{a_start}\nold a\n{a_end}\ntext\n{b_start}\nnew b\n{b_end}\nend\n"
    with pytest.raises(ValueError, match="sweep-table:start sweep_c"):
        sweep.replace_between_markers(page, "x", "sweep_c")


def test_slurm_launcher_through_submitits_local_executor(tmp_path):
    pytest.importorskip("submitit")
    ok = [sys.executable, "-c", f"open({str(tmp_path / 'ran')!r}, 'w').write('yes')"]
    bad = [sys.executable, "-c", "raise SystemExit(3)"]
    failed = sweep.run_slurm([ok, bad], tmp_path, {"timeout_min": 5}, cluster="local")
    assert (tmp_path / "ran").read_text() == "yes"
    assert failed == [" ".join(bad)]


@pytest.mark.slow
def test_tiny_sweep_table_and_rerun(backbone, tmp_path, capsys):  # noqa: F811
    flags = tiny_flags(backbone, tmp_path / "unused", "--weight_averaging_start_step", "1")
    flags += ["--ensemble_start_step", "3"]
    recipe, key = {}, None
    for flag in flags:  # flags -> a run_ood.py recipe file (a flag without a value is a true boolean)
        if flag.startswith("--"):
            key = flag.removeprefix("--")
            recipe[key] = True
        else:
            recipe[key] = flag
    for key in ("output_dir", "test_domains", "seed"):
        del recipe[key]
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    grid = {"test_domains": ["optdigits", "typeface"], "dropout_rate": [0.9], "seed": [0, 1]}
    config = {"config": str(tmp_path / "recipe.yaml"), "output_dir": str(tmp_path / "sweep"), "grid": grid}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))

    sweep.main([str(tmp_path / "sweep.yaml")])
    loaded = sweep.Sweep.load(tmp_path / "sweep.yaml")
    rows, domains, wall = sweep.collect(loaded, sweep.expand(loaded))
    assert wall["finished"] == 4 and domains == ["optdigits", "typeface"]
    assert [row.method for row in rows] == [
        "dropout",
        "trajectory_wa",
        "trajectory_ensemble",
        "uniform_soup",
        "greedy_soup",
        "run_ensemble",
    ]
    table = (tmp_path / "sweep" / "table.md").read_text()
    for domain in domains:
        runs = [
            RunResults.load(tmp_path / "sweep" / domain / "dropout_rate=0.9" / f"seed{s}") for s in (0, 1)
        ]
        for method in ("dropout", "trajectory_wa"):
            values = [r.methods[method].test_accuracy[domain] for r in runs]
            [row] = [row for row in rows if row.method == method]
            assert sorted(row.by_domain[domain].values()) == sorted(values)
            mean, std = np.mean(values), np.std(values, ddof=1)
            assert sweep.table_cells(row, domains, "std")[domains.index(domain)] == pytest.approx(
                (mean, std, 2)
            )
        combined = RunResults.load(tmp_path / "sweep" / domain / "dropout_rate=0.9" / "combined")
        [soup] = [row for row in rows if row.method == "greedy_soup"]
        assert soup.by_domain[domain] == {None: combined.methods["greedy_soup"].test_accuracy[domain]}
    assert "(n=2)" in table and "(n=1)" in table
    assert (tmp_path / "sweep" / "table.csv").read_text().startswith("method,held_out,mean,std,n")
    assert (tmp_path / "sweep" / "accuracy.png").read_bytes().startswith(b"\x89PNG")

    # A re-run runs nothing: finished jobs and combinations are skipped, the table is the same.
    stamp = (
        (tmp_path / "sweep" / "optdigits" / "dropout_rate=0.9" / "combined" / "results.json").stat().st_mtime
    )
    capsys.readouterr()
    assert sweep.main([str(tmp_path / "sweep.yaml")]).split("runs finished")[0] in table
    assert "4 of 4 jobs already finished; running 0" in capsys.readouterr().out
    assert (
        tmp_path / "sweep" / "optdigits" / "dropout_rate=0.9" / "combined" / "results.json"
    ).stat().st_mtime == stamp
    # A killed job (checkpoints, no results.json) is resumed, not restarted.
    killed = tmp_path / "sweep" / "typeface" / "dropout_rate=0.9" / "seed1"
    (killed / "results.json").unlink()
    [job] = [job for job in sweep.expand(loaded) if job.output_dir == killed]
    assert job.command(loaded)[-2:] == ["--resume_from_checkpoint", "True"]
