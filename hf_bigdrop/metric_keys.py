"""The names of evaluation metrics: `metric_key` builds every one, `parse_metric_key` reads every one back.

`BigDropTrainer` evaluates one set per domain and logs, for each method evaluated along the trajectory,

    <prefix>[_<method tag>]_<group>_<domain>_<statistic>     e.g. eval_val_photo_accuracy, eval_wa_test_sketch_loss
    <prefix>[_<method tag>]_<group>_<summary>                e.g. eval_val_accuracy, eval_ens_test_worst_accuracy

- `prefix`: the Trainer's `metric_key_prefix` (`eval`), or none (`metric_for_best_model` is written without it);
- method tag (`METHOD_TAGS`): none for the live model, `wa` for the trajectory weight average, `ens` for the trajectory
  ensemble;
- group (`EVAL_GROUPS`): `val` (validation split of the training domains), `test` (held-out domains), `oracle` (a
  validation split of the held-out domains), `known` (a grouped dataset's held-out domains on the groups training
  saw: a diagnostic of recognising known instances, never the o.o.d. result), `fit` (a fixed sample of the training
  split, evaluated like every set with dropout off: how well the model fits its training data);
- a per-domain statistic (`DOMAIN_STATISTICS`: `accuracy`, and the Trainer's `loss`, `runtime`, ...) after the domain
  name, which may itself hold underscores (`art_painting`), or a summary over the group's domains (`SUMMARIES`:
  `accuracy`, the mean, and `worst_accuracy`) without one.

No other module writes or splits these strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "DOMAIN_STATISTICS",
    "EVAL_GROUPS",
    "METHOD_TAGS",
    "SUMMARIES",
    "MetricKey",
    "accuracies_by_step",
    "domain_accuracies",
    "eval_set_name",
    "metric_key",
    "method_prefix",
    "nest_by_group",
    "parse_eval_set_name",
    "parse_metric_key",
    "read_accuracies",
]

# Evaluation group -> the `load_domain_dataset` split its per-domain sets come from.
EVAL_GROUPS = {
    "val": "validation",
    "test": "test",
    "oracle": "test_validation",
    "known": "test_known",
    "fit": "train",
}
# The methods evaluated along one trajectory -> the tag of their keys (the live model has none).
METHOD_TAGS = {"live": "", "trajectory_wa": "wa", "trajectory_ensemble": "ens"}
# Statistics of one domain's evaluation set: ours (`accuracy`) and the Trainer's own.
DOMAIN_STATISTICS = ("accuracy", "loss", "runtime", "samples_per_second", "steps_per_second")
# Statistics over a group's domains (`hf_bigdrop.metrics`' mean and worst accuracy).
SUMMARIES = ("accuracy", "worst_accuracy")
_PREFIX = "eval"


@dataclass(frozen=True)
class MetricKey:
    """What one metric key names.

    Args:
        group (`str`): `val`, `test`, `oracle`, `known` or `fit` (`EVAL_GROUPS`).
        domain (`str | None`, defaults to `None`): the domain, or `None` for a summary over the group's domains.
        statistic (`str`, defaults to `"accuracy"`): a `DOMAIN_STATISTICS` entry for a domain, a `SUMMARIES` entry
            for a summary.
        method (`str`, defaults to `"live"`): a key of `METHOD_TAGS`.
        prefix (`str`, defaults to `"eval"`): the Trainer's `metric_key_prefix`, or `""` for none.
    """

    group: str
    domain: str | None = None
    statistic: str = "accuracy"
    method: str = "live"
    prefix: str = _PREFIX

    def __post_init__(self):
        if self.group not in EVAL_GROUPS:
            raise ValueError(f"unknown evaluation group {self.group!r}; choose one of {list(EVAL_GROUPS)}")
        if self.method not in METHOD_TAGS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {list(METHOD_TAGS)}")
        statistics = SUMMARIES if self.domain is None else DOMAIN_STATISTICS
        if self.statistic not in statistics:
            raise ValueError(
                f"unknown statistic {self.statistic!r} for a {'summary' if self.domain is None else 'domain'}; "
                f"choose one of {list(statistics)}"
            )
        if self.domain == "":
            raise ValueError("a domain name cannot be empty")

    def __str__(self) -> str:
        parts = [self.prefix, METHOD_TAGS[self.method], self.group, self.domain or "", self.statistic]
        return "_".join(part for part in parts if part)


def metric_key(
    group: str,
    domain: str | None = None,
    statistic: str = "accuracy",
    *,
    method: str = "live",
    prefix: str = _PREFIX,
) -> str:
    """The key of one metric, e.g. `metric_key("val", "photo")` = `"eval_val_photo_accuracy"`.

    Args:
        group (`str`): `val`, `test`, `oracle`, `known` or `fit`.
        domain (`str | None`, *optional*, defaults to `None`): a domain, or `None` for the summary over the group.
        statistic (`str`, *optional*, defaults to `"accuracy"`): what is measured (see `MetricKey`).
        method (`str`, *optional*, defaults to `"live"`): `live`, `trajectory_wa` or `trajectory_ensemble`.
        prefix (`str`, *optional*, defaults to `"eval"`): `""` for a key without prefix (`metric_for_best_model`).

    Raises:
        `ValueError`: an unknown group, method or statistic.
    """
    return str(MetricKey(group, domain, statistic, method, prefix))


def method_prefix(method: str, prefix: str = _PREFIX) -> str:
    """The `metric_key_prefix` under which the Trainer logs a method's evaluation (`eval`, `eval_wa`, `eval_ens`)."""
    if method not in METHOD_TAGS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHOD_TAGS)}")
    return "_".join(part for part in (prefix, METHOD_TAGS[method]) if part)


def parse_metric_key(key: str, prefix: str = _PREFIX) -> MetricKey | None:
    """What `key` names, or `None` when it is not an evaluation metric of this grammar (`epoch`, `eval_loss`, ...).

    Args:
        key (`str`): e.g. `"eval_wa_val_art_painting_accuracy"`.
        prefix (`str`, *optional*, defaults to `"eval"`): the prefix the key starts with (`""`: none).
    """
    rest = key
    if prefix:
        if not rest.startswith(f"{prefix}_"):
            return None
        rest = rest[len(prefix) + 1 :]
    method = "live"
    for name, tag in METHOD_TAGS.items():
        if tag and rest.startswith(f"{tag}_"):
            method, rest = name, rest[len(tag) + 1 :]
            break
    group, _, rest = rest.partition("_")
    if group not in EVAL_GROUPS or not rest:
        return None
    if rest in SUMMARIES:
        return MetricKey(group, None, rest, method, prefix)
    for statistic in DOMAIN_STATISTICS:
        if rest.endswith(f"_{statistic}") and len(rest) > len(statistic) + 1:
            return MetricKey(group, rest[: -len(statistic) - 1], statistic, method, prefix)
    return None


def eval_set_name(group: str, domain: str) -> str:
    """The name of one domain's evaluation set in the Trainer's `eval_dataset` dict (`val_photo`): the Trainer
    logs its metrics under `eval_<name>_<statistic>`."""
    return metric_key(group, domain, prefix="").removesuffix("_accuracy")


def parse_eval_set_name(name: str) -> tuple[str, str] | None:
    """`(group, domain)` of an evaluation set's name (`val_photo` -> `("val", "photo")`), or `None`."""
    parsed = parse_metric_key(f"{name}_accuracy", prefix="")
    return None if parsed is None or parsed.domain is None else (parsed.group, parsed.domain)


def read_accuracies(
    metrics: Mapping[str, float], method: str = "live", prefix: str = _PREFIX
) -> dict[tuple[str, str | None], float]:
    """One method's accuracies in a dict of metrics: `(group, domain)` -> accuracy, the domain `None` for the mean
    over the group's domains (`{"eval_val_photo_accuracy": 0.9}` -> `{("val", "photo"): 0.9}`)."""
    found: dict[tuple[str, str | None], float] = {}
    for key, value in metrics.items():
        parsed = parse_metric_key(key, prefix)
        if parsed is not None and parsed.method == method and parsed.statistic == "accuracy":
            found[(parsed.group, parsed.domain)] = float(value)
    return found


def nest_by_group(accuracies: Mapping[tuple[str, str | None], float]) -> dict[str, dict[str, float]]:
    """Group -> domain -> accuracy, from `(group, domain)` -> accuracy (the summaries, domain `None`, left out)."""
    nested: dict[str, dict[str, float]] = {}
    for (group, domain), value in accuracies.items():
        if domain is not None:
            nested.setdefault(group, {})[domain] = value
    return nested


def domain_accuracies(
    metrics: Mapping[str, float], method: str = "live", prefix: str = _PREFIX
) -> dict[str, dict[str, float]]:
    """Group -> domain -> accuracy of one method, from a dict of metrics (summaries left out)."""
    return nest_by_group(read_accuracies(metrics, method, prefix))


def accuracies_by_step(
    log_history: Iterable[Mapping], method: str = "live"
) -> dict[int, dict[tuple[str, str | None], float]]:
    """`read_accuracies` of every step of a Trainer's `log_history` (or a run's `history`), entries of one step
    merged: step -> `(group, domain)` -> accuracy."""
    by_step: dict[int, dict[tuple[str, str | None], float]] = {}
    for entry in log_history:
        if "step" in entry:
            found = read_accuracies(entry, method)
            if found:
                by_step.setdefault(int(entry["step"]), {}).update(found)
    return by_step
