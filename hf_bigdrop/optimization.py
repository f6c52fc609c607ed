"""The paper's optimizer set-up: parameter groups with a classifier learning rate of its own, and the step schedule.

`BigDropTrainer.create_optimizer` / `create_scheduler` (`hf_bigdrop.training`) build them from
`BigDropTrainingArguments` (`classifier_lr_multiplier`, `lr_milestones`, `lr_gamma`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

import torch


def step_schedule(milestones: list[int], gamma: float, warmup_steps: int) -> Callable[[int], float]:
    """The paper's step schedule as a `LambdaLR` factor: `gamma` to the number of `milestones` passed, after a
    linear warm-up over `warmup_steps` steps (none if 0).

    Args:
        milestones (`list[int]`): increasing optimizer steps at which the learning rate is multiplied by `gamma`.
        gamma (`float`): the factor at each milestone.
        warmup_steps (`int`): steps of linear warm-up.
    """

    def factor(step: int) -> float:
        warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        return warmup * gamma ** bisect.bisect_right(milestones, step)

    return factor


def classifier_parameter_groups(
    model: torch.nn.Module,
    head: torch.nn.Module,
    *,
    decay_names: set[str],
    weight_decay: float,
    head_lr: float,
) -> list[dict]:
    """Optimizer parameter groups: (backbone, classifier) x (weight decay, none); the classifier's at `head_lr`.

    Args:
        model (`torch.nn.Module`): the model whose trainable parameters are grouped.
        head (`torch.nn.Module`): its classifier.
        decay_names (`set[str]`): names of the parameters that decay (`Trainer.get_decay_parameter_names`).
        weight_decay (`float`): their weight decay.
        head_lr (`float`): the classifier's learning rate.
    """
    head_ids = {id(p) for p in head.parameters()}
    groups = []
    for in_head in (False, True):
        for decays in (True, False):
            params = [
                p
                for name, p in model.named_parameters()
                if p.requires_grad and (id(p) in head_ids) == in_head and (name in decay_names) == decays
            ]
            if params:
                group = {"params": params, "weight_decay": weight_decay if decays else 0.0}
                groups.append({**group, "lr": head_lr} if in_head else group)
    return groups


__all__ = ["classifier_parameter_groups", "step_schedule"]
