#!/usr/bin/env python
"""Applies the budget rule (`hf_bigdrop.experiment.budget`) to a finished budget-pilot sweep: reads only the
training-domain validation curves of its runs (and, with `--fit`, their fit on the training data), prints the
smoothed curves and the budget, draws the curves.

    python examples/budget_pilot.py examples/configs/sweep_styles_budget.yaml --plot docs/images/budget_styles.png
    python examples/budget_pilot.py examples/configs/sweep_emoji_sgd_budget.yaml --fit 0.99 --first 1000

Held-out accuracies of the pilot's runs are never read or printed: the budget is fixed before any is looked at.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hf_bigdrop.experiment.budget import BudgetRule, fit_curve, validation_curve
from hf_bigdrop.experiment.plots import plot_validation_curves
from hf_bigdrop.experiment.sweep import Sweep
from hf_bigdrop.tables import method_title


def training_loss(folder: Path, step: int) -> float | None:
    """The logged training loss nearest to `step`, from the run's newest checkpoint's Trainer state."""
    states = sorted(
        folder.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1])
    )
    if not states:
        return None
    losses = [
        (abs(e["step"] - step), e["loss"])
        for e in json.loads(states[-1].read_text())["log_history"]
        if "loss" in e
    ]
    return min(losses)[1] if losses else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", help="the pilot's sweep file")
    parser.add_argument("--plot", type=Path, help="draw the validation curves into this PNG")
    parser.add_argument(
        "--fit", type=float, help="the fit every method must reach (e.g. 0.99); default: not read"
    )
    parser.add_argument("--first", type=int, default=BudgetRule.first, help="the shortest budget considered")
    args = parser.parse_args()
    sweep = Sweep.load(args.sweep)
    curves, fits, folders = {}, {}, {}
    for job in sweep.jobs():
        results = job.results()
        if results is None:
            raise SystemExit(f"budget_pilot.py: {job.output_dir} has not finished")
        name = method_title("live", results.dropout_rate)
        curves[name], folders[name] = validation_curve(results), job.output_dir
        fits[name] = fit_curve(results)
    rule = BudgetRule(first=args.first, fit_threshold=args.fit)
    budget, plateaued = rule.apply(curves, fits)
    print(rule.table())
    met = "plateaued and fit" if args.fit is not None else "plateaued"
    state = f"every method {met}" if plateaued else f"NOT every method {met}: the pilot's last step"
    print(f"\nbudget: {budget} steps ({state})")
    for name, folder in folders.items():
        loss = training_loss(folder, budget)
        print(f"{name}: training loss near step {budget}: {loss if loss is None else f'{loss:.4f}'}")
    if args.plot:
        title = f"budget pilot: {Path(args.sweep).stem}"
        plot_validation_curves(curves, rule.smoothed, args.plot, title, budget, rule.smoothed_fit)
        print(f"curves: {args.plot}")


if __name__ == "__main__":
    main()
