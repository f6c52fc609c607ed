"""One progress bar per evaluation.

An evaluation of the protocol runs the Trainer's loop once per evaluation set (each training domain's validation,
each held-out domain) and once more per set for the weight average. `transformers.ProgressCallback` opens and closes
a bar in each loop, so one evaluation printed 4 bars, or 8 with weight averaging. `EvaluationProgressCallback`
keeps the Trainer's training bar and its logs, and draws the whole evaluation as one bar, whose length grows as
each set's loop starts.
"""

from __future__ import annotations

from tqdm.auto import tqdm  # as transformers' ProgressCallback
from transformers import ProgressCallback
from transformers.trainer_utils import has_length

__all__ = ["EvaluationProgressCallback"]


class EvaluationProgressCallback(ProgressCallback):
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

    def _close_bar(self, state) -> None:
        if state.is_world_process_zero and self.prediction_bar is not None:
            self.prediction_bar.close()
        self.prediction_bar = None
