"""One progress bar and one line per evaluation.

An evaluation of the protocol runs the Trainer's loop once per evaluation set (each training domain's validation,
each held-out domain, the fit samples) and once more per set for the weight average. `transformers.ProgressCallback`
opens and closes a bar in each loop and prints each loop's metrics as a dict, so one evaluation printed a dozen bars
and dicts. `EvaluationProgressCallback` keeps the Trainer's training bar and its logs, draws the whole evaluation as
one bar, whose length grows as each set's loop starts, and prints the evaluation as one line
(`evaluation_line`: each method's mean accuracy per group); `EvaluationPrinterCallback` does the same without bars
(`disable_tqdm=True`). Every metric is still in the Trainer's `log_history` and `results.json`.
"""

from __future__ import annotations

from collections.abc import Mapping

from tqdm.auto import tqdm  # as transformers' ProgressCallback
from transformers import PrinterCallback, ProgressCallback
from transformers.trainer_utils import has_length

from .metric_keys import METHOD_TAGS, read_accuracies

__all__ = ["EvaluationPrinterCallback", "EvaluationProgressCallback", "evaluation_line", "is_set_log"]


def is_set_log(logs: Mapping) -> bool:
    """Whether a log entry is one evaluation set's own metrics (`eval_val_photo_loss`, ...), which the evaluation's
    line sums up."""
    return any(key.endswith("_runtime") and key.startswith("eval_") for key in logs)


def evaluation_line(logs: Mapping, step: int) -> str | None:
    """One line for an evaluation's summary log: each method's mean accuracy (%) per group, e.g.
    `step 300 | val 88.6 fit 97.5 test 45.7 | wa: val 88.4 test 46.7 | ens: ...`; `None` for any other log."""
    parts = []
    for method, tag in METHOD_TAGS.items():
        means = {
            group: value for (group, domain), value in read_accuracies(logs, method).items() if domain is None
        }
        if means:
            text = " ".join(f"{group} {100 * value:.1f}" for group, value in means.items())
            parts.append(f"{tag}: {text}" if tag else text)
    return f"step {step} | " + " | ".join(parts) if parts else None


class _OneLinePerEvaluation:
    """Mixed into a Trainer callback that prints logs: an evaluation set's own log is not printed, an evaluation's
    summary is printed as one line (`_write`), any other log as the callback prints it."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or is_set_log(logs):
            return None
        line = evaluation_line(logs, state.global_step)
        if line is None:
            return super().on_log(args, state, control, logs=logs, **kwargs)
        if state.is_world_process_zero:
            self._write(line)
        return None

    def _write(self, line: str) -> None:
        print(line)


class EvaluationPrinterCallback(_OneLinePerEvaluation, PrinterCallback):
    """`transformers.PrinterCallback` (used with `disable_tqdm=True`) printing an evaluation as one line."""


class EvaluationProgressCallback(_OneLinePerEvaluation, ProgressCallback):
    """`transformers.ProgressCallback` with one bar for an evaluation over several sets.

    Between `begin_evaluation` and `end_evaluation` (called by `BigDropTrainer.evaluate` around the sets of one
    evaluation), the bar stays open across the sets' loops; outside them it behaves as `ProgressCallback`.
    """

    def __init__(self, max_str_len: int = 100):
        super().__init__(max_str_len=max_str_len)
        self._grouping = False
        self._new_loop = True

    def begin_evaluation(self) -> None:
        """The sets that follow belong to one evaluation, and share one bar."""
        self._grouping = True
        self._new_loop = True

    def end_evaluation(self, state) -> None:
        """The evaluation is over: its bar closes."""
        self._grouping = False
        self._close_bar(state)

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if not self._grouping:
            return super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)
        if state.is_world_process_zero and has_length(eval_dataloader):
            if self.prediction_bar is None:
                self.prediction_bar = tqdm(
                    total=0, desc="evaluation", leave=self.training_bar is None, dynamic_ncols=True
                )
            if self._new_loop:  # the first batch of one set's loop: the bar grows by the set's batches
                self._new_loop = False
                self.prediction_bar.total += len(eval_dataloader)
                self.prediction_bar.refresh()
            self.prediction_bar.update(1)

    def on_evaluate(self, args, state, control, **kwargs):
        if not self._grouping:
            return super().on_evaluate(args, state, control, **kwargs)
        self._new_loop = True  # one set done; the bar stays open for the next

    def _write(self, line: str) -> None:
        (self.training_bar.write if self.training_bar is not None else print)(line)

    def _close_bar(self, state) -> None:
        if state.is_world_process_zero and self.prediction_bar is not None:
            self.prediction_bar.close()
        self.prediction_bar = None
