"""LoRA with the very-large-dropout head: `peft` adapters in the backbone, the head trained in full, and the merge back
into a plain BigDrop checkpoint.

`add_lora` wraps a `BigDropForImageClassification` in a `peft.PeftModel`: low-rank adapters on the backbone's linear
(or plain convolution) layers named by `target_modules`, and the linear head (`classifier`) trained and saved whole
(`modules_to_save`). Everything else stays as pretrained, BatchNorm statistics included; the dropout on the pooled
features, a module of the base model, is active in training and off in evaluation as without LoRA. `merge_lora` folds
the adapters into the weights and gives back a `BigDropForImageClassification` that saves, loads, runs in `pipeline`
and under `trust_remote_code` like any other. `peft` is the optional extra `lora` (`pip install "hf-bigdrop[lora]"`).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .modeling_bigdrop import BASE_CONFIG_FILE, BigDropForImageClassification

__all__ = [
    "ALL_LINEAR",
    "AUTO",
    "HEAD_MODULES",
    "LORA_EXTRA_HINT",
    "add_lora",
    "default_target_modules",
    "is_lora_model",
    "lora_argument_problems",
    "merge_lora",
    "no_vocabulary_warning",
    "save_adapter",
]

LORA_EXTRA_HINT = 'pip install "hf-bigdrop[lora]"'
# peft's shorthand for every linear layer but the output layer.
ALL_LINEAR = "all-linear"
# The default: the layers `default_target_modules` picks for the backbone's family.
AUTO = "auto"
# Trained and saved in full beside the adapters: the linear head after the dropout.
HEAD_MODULES = (BigDropForImageClassification.head_module_name,)
# Layers whose adapters merge exactly into the weights: plain linear layers and convolutions without groups.
_MERGEABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _peft():
    try:
        import peft
    except ImportError as error:
        raise ImportError(f"LoRA needs the peft package: {LORA_EXTRA_HINT}") from error
    return peft


def is_lora_model(model: nn.Module) -> bool:
    """Whether `model` is a `peft.PeftModel` (without importing peft when it is not installed)."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def _adaptable_layer_names(model: BigDropForImageClassification) -> list[str]:
    """The names (last component) of the backbone's layers that LoRA can adapt and merge."""
    names = set()
    for name, module in model.backbone.named_modules():
        if type(module) in _MERGEABLE and getattr(module, "groups", 1) == 1:
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def default_target_modules(model: BigDropForImageClassification) -> str | list[str]:
    """The layers LoRA adapts by default: every linear layer of a backbone that has them (ViT-like: attention and MLP,
    `"all-linear"`), else every pointwise (1x1, ungrouped) convolution (EfficientNet-, MobileNet-, ResNet- and
    ConvNeXt-like backbones, whose linear layers are 1x1 convolutions), else every ungrouped convolution.

    Returns:
        `str | list[str]`: `"all-linear"`, or the chosen convolutions' names in `model` (`backbone. ...`).

    Raises:
        `ValueError`: a backbone with no layer whose adapter could be merged (the message says so).
    """
    modules = list(model.backbone.named_modules())
    if any(type(module) is nn.Linear for _, module in modules):
        return ALL_LINEAR
    convolutions = [(name, m) for name, m in modules if type(m) is nn.Conv2d and m.groups == 1]
    pointwise = [name for name, m in convolutions if tuple(m.kernel_size) == (1, 1)]
    chosen = pointwise or [name for name, _ in convolutions]
    if not chosen:
        raise ValueError(
            f"the {type(model.backbone).__name__} backbone has no linear layer and no ungrouped convolution: LoRA "
            "has nothing to adapt whose adapter could be merged"
        )
    return [f"backbone.{name}" for name in chosen]


def lora_argument_problems(
    *,
    r: int,
    alpha: float | None = None,
    dropout: float = 0.0,
    target_modules: str | Sequence[str] = AUTO,
    freeze_backbone: bool = False,
) -> list[str]:
    """What is wrong with `add_lora`'s arguments, one message each: the one rule, read by `add_lora` and by the
    experiment's checks before any work (which name them `lora_r`, `lora_alpha`, `lora_dropout`,
    `lora_target_modules`).

    Returns:
        `list[str]`: the problems, empty when there are none.
    """
    problems = []
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        problems.append(f"the LoRA rank (r, lora_r) must be a positive integer, got {r!r}")
    if alpha is not None and not alpha > 0:
        problems.append(f"LoRA's alpha (lora_alpha) must be positive, or unset for r, got {alpha!r}")
    if not 0.0 <= dropout < 1.0:
        problems.append(f"LoRA's dropout (lora_dropout) must be in [0, 1), got {dropout!r}")
    if not target_modules:
        problems.append(
            "LoRA's target_modules (lora_target_modules) is empty: name the backbone layers to adapt, or auto, or "
            "all-linear"
        )
    if freeze_backbone:
        problems.append(
            "freeze_backbone trains the head alone and LoRA trains adapters in the backbone: choose one"
        )
    return problems


def add_lora(
    model: BigDropForImageClassification,
    *,
    r: int,
    alpha: float | None = None,
    dropout: float = 0.0,
    target_modules: str | Sequence[str] = AUTO,
):
    """Adds LoRA adapters to the backbone of `model` and trains its head in full.

    Args:
        model (`BigDropForImageClassification`): the model (changed in place, as `peft.get_peft_model` does).
        r (`int`): the rank of the adapters (positive).
        alpha (`float`, *optional*): LoRA's scaling numerator (the update is scaled by `alpha / r`); default `r`.
        dropout (`float`, *optional*, defaults to 0.0): LoRA's own dropout on the adapters' input, in `[0, 1)`;
            the very large dropout on the pooled features is the model's `dropout_rate`.
        target_modules (`str` or `Sequence[str]`, *optional*, defaults to `"auto"`): the layers to adapt, by
            name (a name matches a layer whose name is it or ends with `.` and it), `"all-linear"` for every
            linear layer of the backbone, or `"auto"` for the backbone family's (`default_target_modules`: its
            linear layers for ViT-like backbones, its pointwise convolutions for convolutional ones).

    Returns:
        `peft.PeftModel`: the model to train. `merge_lora` turns it back into a plain BigDrop model.

    Raises:
        `ImportError`: peft is not installed (the message names the extra).
        `ValueError`: a bad rank, alpha or dropout; a model that cannot take adapters as asked (`freeze_backbone`, or
            BatchNorm statistics that train); `target_modules` that match no layer (the message lists the backbone's
            adaptable layer names), or match a layer whose adapter cannot be merged (a grouped or self-padding
            convolution).
    """
    peft = _peft()
    problems = lora_argument_problems(
        r=r,
        alpha=alpha,
        dropout=dropout,
        target_modules=target_modules,
        freeze_backbone=model.config.freeze_backbone,
    )
    if problems:
        raise ValueError("; ".join(problems))
    alpha = r if alpha is None else alpha
    if not model.config.freeze_batchnorm and any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.backbone.modules()
    ):
        raise ValueError(
            "LoRA keeps the backbone as pretrained, and BatchNorm statistics updated in training would not be part "
            "of the adapter (its checkpoints, the selected model): keep freeze_batchnorm=True"
        )
    targets = target_modules if isinstance(target_modules, str) else list(target_modules)
    if isinstance(targets, list) and len(targets) == 1 and targets[0] in (ALL_LINEAR, AUTO):
        targets = targets[0]  # the shorthands are strings
    if targets == AUTO:
        targets = default_target_modules(model)
    lora_config = peft.LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        modules_to_save=list(HEAD_MODULES),
    )
    adaptable = _adaptable_layer_names(model)
    try:
        wrapped = peft.get_peft_model(model, lora_config)
    except ValueError as error:  # peft's NoMatchingPeftModuleError, and its refusals of unsupported layers
        raise ValueError(
            f"LoRA target_modules {target_modules!r} cannot adapt the {type(model.backbone).__name__} backbone "
            f"(peft: {' '.join(str(error).split())}); its layers that take adapters are named {adaptable}"
        ) from None
    _check_mergeable(wrapped, adaptable)
    return wrapped


def _check_mergeable(wrapped, adaptable: list[str]) -> None:
    from peft.tuners.lora import LoraLayer

    unmergeable = sorted(
        name
        for name, module in wrapped.named_modules()
        if isinstance(module, LoraLayer)
        and (
            type(module.get_base_layer()) not in _MERGEABLE
            or getattr(module.get_base_layer(), "groups", 1) > 1
        )
    )
    if unmergeable:
        raise ValueError(
            f"LoRA target_modules include {len(unmergeable)} layer(s) whose adapter cannot be merged into the "
            f"weights (grouped or depthwise convolutions, or convolutions that pad themselves like timm's "
            f"Conv2dSame): {unmergeable[:4]}{' ...' if len(unmergeable) > 4 else ''}; choose among {adaptable}"
        )


# peft's "auto" check for a resized vocabulary looks for the base model's config.json and warns when its name is not a
# folder or a reachable Hub repository (an embedded backbone, offline): an image model has no vocabulary to check.
_VOCABULARY_WARNING = "Could not find a config file in .* - will assume that the vocabulary was not modified"


@contextlib.contextmanager
def no_vocabulary_warning():
    """peft's warning about a vocabulary, meaningless for an image model, off while a LoRA model saves."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_VOCABULARY_WARNING)
        yield


def save_adapter(model, folder: str | os.PathLike) -> None:
    """Saves the adapters of `model` (from `add_lora`) and its trained head into `folder`, a self-contained adapter.

    Beside peft's files it writes the base it adapts, weightless (`BASE_CONFIG_FILE`: the backbone's name, the labels,
    the dropout), and names that folder as the base (`base_model_name_or_path`, as `folder` is given), so that
    `peft.AutoPeftModel.from_pretrained(folder, import_allowlist=["hf_bigdrop"])` rebuilds the base from the
    backbone and loads the adapter onto it, labels included. No blank card template, no vocabulary check.
    """
    folder = Path(folder)
    model.save_pretrained(folder, save_embedding_layers=False)
    (folder / "README.md").unlink(missing_ok=True)  # the run's own card describes the adapter
    base = model.get_base_model().config
    (folder / BASE_CONFIG_FILE).write_text(base.to_json_string(use_diff=False))
    adapter_config = folder / "adapter_config.json"
    settings = json.loads(adapter_config.read_text())
    settings["base_model_name_or_path"] = os.fspath(folder)
    adapter_config.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def merge_lora(model) -> BigDropForImageClassification:
    """Folds the LoRA adapters of `model` into its weights and returns the plain BigDrop model.

    The head trained beside the adapters replaces the original one. The result saves with `save_pretrained` as any
    BigDrop checkpoint (its code, its image processor), loads without peft and gives the logits of `model` (up to
    floating-point rounding of the merged weights).

    Args:
        model (`peft.PeftModel`): a model from `add_lora` (it is unwrapped in place: use the returned model).

    Returns:
        `BigDropForImageClassification`: the merged model, in the training mode `model` was in.
    """
    if not is_lora_model(model):
        raise ValueError(f"merge_lora needs a peft model (from add_lora), got {type(model).__name__}")
    with torch.no_grad():
        merged = model.merge_and_unload()
    if not isinstance(merged, BigDropForImageClassification):
        raise ValueError(
            f"the merged model is a {type(merged).__name__}, not a BigDropForImageClassification"
        )
    for (
        parameter
    ) in merged.parameters():  # a normal model again: every weight trainable, as after from_backbone
        parameter.requires_grad_(True)
    if merged.config.freeze_backbone:
        merged.backbone.requires_grad_(False)
    return merged
