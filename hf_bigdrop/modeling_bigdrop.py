# Copyright 2026 The hf_bigdrop developers. Licensed under the Apache License, Version 2.0.
"""BigDrop: any pretrained vision backbone -> pooled penultimate features -> very large dropout -> linear head.

The model lives in this file; which backbone feature it pools lives in `pooling_bigdrop.py`. Both are exported next to
the weights by `save_pretrained` and must run where `hf_bigdrop` is not installed: they import only `torch`,
`transformers` and, relatively, each other and `configuration_bigdrop`.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Callable

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import logging

from .configuration_bigdrop import BigDropConfig
from .pooling_bigdrop import (
    AUTO_POOLING_BY_MODEL_TYPE,
    feature_size,
    num_non_patch_tokens,
    pool_features,
    resolve_pooling,
)


def _backbone_class(backbone_config) -> type | None:
    """The transformers model class that `AutoModel` builds for `backbone_config` (`None` if it builds none)."""
    model_class = AutoModel._model_mapping.get(type(backbone_config), None)
    return model_class[0] if isinstance(model_class, (list, tuple)) else model_class


def _backbone_init_kwargs(backbone_config, pooling: str) -> dict:
    """Builds an optional pooler layer exactly when the chosen pooling reads it (some families default to none)."""
    model_class = _backbone_class(backbone_config)
    if model_class is not None and "add_pooling_layer" in inspect.signature(model_class.__init__).parameters:
        return {"add_pooling_layer": pooling == "pooler"}
    return {}


class _SupportedByBackbone:
    """An attention-support flag (`_supports_sdpa`, ...) that a model reads off its backbone's class.

    A BigDrop model supports exactly the attention implementations its backbone supports. The class alone cannot
    tell (the config picks the backbone), so it answers `False`; transformers asks the instance, during
    `__init__`, before the backbone is built, hence the backbone's class rather than the module.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, model: BigDropPreTrainedModel | None, owner: type | None = None) -> bool:
        if model is None:
            return False
        return bool(getattr(_backbone_class(model.config.backbone_config), self.name, False))


class BigDropPreTrainedModel(PreTrainedModel):
    """Weight initialisation and the loading conventions shared by BigDrop models."""

    config: BigDropConfig
    config_class = BigDropConfig
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    # The loss is a plain mean over the local batch: without `**kwargs` in `forward`, the Trainer would otherwise
    # scale it by the number of processes (docs/model.md, "Training behaviour").
    accepts_loss_kwargs = False
    # `from_pretrained(..., attn_implementation=...)` and `set_attn_implementation` reach the backbone.
    _supports_sdpa = _SupportedByBackbone()
    _supports_flash_attn = _SupportedByBackbone()
    _supports_flex_attn = _SupportedByBackbone()
    _supports_attention_backend = _SupportedByBackbone()

    def _init_weights(self, module: nn.Module) -> None:
        # Only the head is ours: nested backbone models are initialised by their own `_init_weights`.
        if isinstance(module, nn.Linear):
            if self.config.classifier_init == "zeros":
                init.zeros_(module.weight)
            elif self.config.classifier_init == "normal":
                init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            else:  # "kaiming_uniform", PyTorch's nn.Linear default
                init.kaiming_uniform_(module.weight, a=5**0.5)
            if module.bias is not None:
                init.zeros_(module.bias)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """[`PreTrainedModel.from_pretrained`] that refuses to re-initialise weights silently.

        A BigDrop checkpoint holds every weight, so a missing one means a wrong or truncated checkpoint, not a new
        head to train: raise instead of starting from random values. Use `ignore_mismatched_sizes=True` to
        deliberately re-initialise a head of another size.

        A folder that holds a weightless base (`BASE_CONFIG_FILE`, written beside a LoRA adapter) is the model
        before training, by its own description: built with [`from_backbone`] from the backbone it names, with its
        labels, dropout and head initialisation; peft's `AutoPeftModel` loads an adapter onto it. Of the loading
        options only `dtype` applies there (the backbone loads from its own name).
        """
        source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        base = os.path.join(os.fspath(source), BASE_CONFIG_FILE) if source is not None else ""
        output_loading_info = kwargs.pop("output_loading_info", False)
        if os.path.isfile(base):
            model = cls._from_weightless_base(base)
            dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
            if isinstance(dtype, torch.dtype):
                model = model.to(dtype)
            return (model, {"missing_keys": [], "unexpected_keys": []}) if output_loading_info else model
        model, loading_info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        missing = sorted(loading_info.get("missing_keys", ()))
        if missing:
            raise ValueError(
                f"The checkpoint {args[0] if args else kwargs.get('pretrained_model_name_or_path')!r} lacks "
                f"{len(missing)} weight(s) of {cls.__name__}, which would be randomly initialised: "
                f"{missing[:8]}{' ...' if len(missing) > 8 else ''}"
            )
        return (model, loading_info) if output_loading_info else model


BASE_CONFIG_FILE = "bigdrop_base.json"
"""A weightless description of a model before training (its config: backbone, labels, dropout), written beside a LoRA
adapter: `from_pretrained` on its folder builds the model from the backbone, so the adapter's base resolves."""


class BigDropForImageClassification(BigDropPreTrainedModel):
    """A pretrained vision backbone with a very-large-dropout linear head.

    `pixel_values` -> backbone -> pooled penultimate features -> `nn.Dropout(config.dropout_rate)` ->
    `nn.Linear(num_features, num_labels)`. Build it around pretrained weights with [`from_backbone`]; it then
    trains in the plain `transformers.Trainer`, saves with its code and reloads with
    `AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True)`.

    Args:
        config ([`BigDropConfig`]): the model configuration. Building the model from a config alone gives a
            randomly initialised backbone; use [`from_backbone`] or `from_pretrained` for trained weights.
    """

    # The linear head after the dropout, by its attribute name: what LoRA trains in full and what
    # `classifier_lr_multiplier` scales (the name transformers' own image classifiers use).
    head_module_name = "classifier"
    # Maps a backbone name to the folder or Hub id that [`from_backbone`] loads; `None` loads names as given.
    # `import hf_bigdrop` sets `hf_bigdrop.backbones.resolve_backbone_name`, which builds the embedded backbones.
    backbone_resolver: Callable[[str | os.PathLike], str] | None = None
    # Reads a backbone's evaluation preprocessing (`BigDropConfig.preprocessing`) from its folder or Hub id and its
    # config (`None`: none known). `import hf_bigdrop` sets `hf_bigdrop.backbones.backbone_preprocessing`; without
    # it, `from_backbone` records none unless given `preprocessing=...`.
    preprocessing_reader: Callable[..., dict | None] | None = None

    def __init__(self, config: BigDropConfig):
        super().__init__(config)
        # The config records what "auto" resolved to, so a saved model keeps reading the same feature even if the
        # per-family table changes in a later version.
        self.pooling = config.pooling = resolve_pooling(config)
        self.backbone = AutoModel.from_config(
            config.backbone_config, **_backbone_init_kwargs(config.backbone_config, self.pooling)
        )
        self.num_non_patch_tokens = num_non_patch_tokens(self.backbone)
        # "cls_mean" concatenates two features of the backbone's width.
        self.num_features = feature_size(self.backbone) * (2 if self.pooling == "cls_mean" else 1)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.classifier = nn.Linear(self.num_features, config.num_labels)
        if config.freeze_backbone:
            self.backbone.requires_grad_(False)
        self.post_init()

    @property
    def supports_gradient_checkpointing(self) -> bool:
        return bool(getattr(self.backbone, "supports_gradient_checkpointing", False))

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None, **kwargs):
        """Enables activation (gradient) checkpointing in the backbone, which must support it."""
        if not self.supports_gradient_checkpointing:
            raise ValueError(
                f"The {type(self.backbone).__name__} backbone (model_type "
                f"{self.config.backbone_config.model_type!r}) does not support gradient checkpointing; "
                "train without `gradient_checkpointing=True`."
            )
        return super().activation_checkpointing_enable(activation_checkpointing_kwargs, **kwargs)

    def _set_gradient_checkpointing(self, enable: bool = True, *args, **kwargs):
        # The backbone knows how to checkpoint itself (timm models, for one, use their own switch).
        self.backbone._set_gradient_checkpointing(enable, *args, **kwargs)

    def train(self, mode: bool = True) -> BigDropForImageClassification:
        """Sets training mode, keeping frozen parts in eval mode.

        `Trainer` calls `model.train()` before every step, so the frozen BatchNorm statistics (and a frozen
        backbone) are enforced here rather than once at start-up.
        """
        super().train(mode)
        if mode and self.config.freeze_backbone:
            self.backbone.eval()
        elif mode and self.config.freeze_batchnorm:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def extract_features(
        self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """Runs the backbone and pools its penultimate representation.

        Args:
            pixel_values (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`): the images.
            output_hidden_states (`bool`, *optional*): also return the backbone's hidden states.

        Returns:
            `tuple`: the pooled features of shape `(batch_size, num_features)` (before dropout) and the backbone's
            hidden states (or `None`).
        """
        outputs = self._run_backbone(pixel_values, output_hidden_states=output_hidden_states)
        return self.pool(outputs), getattr(outputs, "hidden_states", None)

    def _run_backbone(
        self,
        pixel_values: torch.Tensor,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ):
        """The backbone's output; an output flag left `None` follows this config, then the backbone's."""

        def flag(value: bool | None, name: str) -> bool:
            # Passed explicitly: backbones built on transformers' output capturing read `None` as "off".
            if value is not None:
                return value
            return bool(getattr(self.config, name, False) or getattr(self.backbone.config, name, False))

        return self.backbone(
            pixel_values,
            output_attentions=flag(output_attentions, "output_attentions"),
            output_hidden_states=flag(output_hidden_states, "output_hidden_states"),
            return_dict=True,
        )

    def pool(self, outputs) -> torch.Tensor:
        """The pooled penultimate features, of shape `(batch_size, num_features)`, from the backbone's output."""
        return pool_features(outputs, self.pooling, self.num_non_patch_tokens, type(self.backbone).__name__)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> ImageClassifierOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
                The images, normalised as the backbone's image processor does.
            labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Class indices in `[0, num_labels)` for a cross-entropy loss; float targets of shape
                `(batch_size, num_labels)` for a multi-label loss; follows `config.problem_type` as in transformers.
            output_attentions (`bool`, *optional*): return the backbone's attention maps (backbones with
                attention, run with `attn_implementation="eager"`). Defaults to `config.output_attentions` or the
                backbone config's.
            output_hidden_states (`bool`, *optional*): return the backbone's hidden states. Defaults to
                `config.output_hidden_states` or the backbone config's.
            return_dict (`bool`, *optional*): return an [`ImageClassifierOutput`] rather than a tuple.

        Returns:
            [`ImageClassifierOutput`]: `loss` (when `labels` are given), `logits` of shape
            `(batch_size, num_labels)` and, if asked, the backbone's `hidden_states` and `attentions`. As a tuple,
            the fields that are not `None`, in that order.
        """
        if pixel_values is None:
            raise ValueError("BigDropForImageClassification needs `pixel_values`.")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self._run_backbone(pixel_values, output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(self.pool(outputs)))

        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config)

        output = ImageClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )
        return output if return_dict else output.to_tuple()

    @classmethod
    def _from_weightless_base(cls, path: str) -> BigDropForImageClassification:
        """The model a `BASE_CONFIG_FILE` describes: its backbone's pretrained weights and a new head."""
        config = BigDropConfig.from_json_file(path)
        if not config.backbone_name_or_path:
            raise ValueError(
                f"{path} names no backbone (`backbone_name_or_path`) to build the base model from"
            )
        settings = ("pooling", "freeze_batchnorm", "freeze_backbone", "classifier_init", "initializer_range")
        return cls.from_backbone(
            config.backbone_name_or_path,
            num_labels=config.num_labels,
            id2label=config.id2label,
            dropout_rate=config.dropout_rate,
            preprocessing=config.preprocessing,
            **{name: getattr(config, name) for name in settings},
        )

    @classmethod
    def from_backbone(
        cls,
        name_or_path: str | os.PathLike | PreTrainedModel,
        *,
        num_labels: int,
        id2label: dict[int, str] | None = None,
        label2id: dict[str, int] | None = None,
        dropout_rate: float = 0.9,
        backbone_kwargs: dict | None = None,
        **config_kwargs,
    ) -> BigDropForImageClassification:
        """Builds a BigDrop model around pretrained backbone weights.

        Args:
            name_or_path (`str`, `os.PathLike` or `PreTrainedModel`):
                A Hub id (`"microsoft/resnet-50"`, `"timm/resnet50.tv2_in1k"`), a local checkpoint folder, an
                embedded name (`"embedded:efficientnet-lite0"`), or an instantiated model. Base models and
                `*ForImageClassification` checkpoints both work (their classifier is dropped); timm checkpoints
                load through transformers' `TimmWrapper`.
            num_labels (`int`): the number of classes of the new head.
            id2label (`dict[int, str]`, *optional*): class names; `label2id` is derived when omitted.
            label2id (`dict[str, int]`, *optional*): the inverse of `id2label`.
            dropout_rate (`float`, *optional*, defaults to 0.9): the dropout rate on the pooled features.
            backbone_kwargs (`dict`, *optional*): passed to `from_pretrained` when loading the backbone
                (`revision`, `cache_dir`, `token`, `trust_remote_code`, ...).
            config_kwargs: other [`BigDropConfig`] arguments (`pooling`, `freeze_batchnorm`, `classifier_init`,
                `preprocessing`, ...). Without `preprocessing`, the backbone's own evaluation preprocessing is
                recorded (read by `preprocessing_reader`, which `import hf_bigdrop` sets), so that `save_pretrained`
                writes an image processor that `pipeline` loads.

        Returns:
            [`BigDropForImageClassification`]: every backbone weight comes from the checkpoint; the head is new.

        Raises:
            ValueError: if any backbone weight would be newly initialised (not in the checkpoint), or the labels
                disagree.
        """
        if isinstance(name_or_path, PreTrainedModel):
            # One loading path for every source: the instance goes through its own saved checkpoint, a temporary
            # folder that the model must not remember: it takes the instance's own name (or none), which is what
            # peft records as `base_model_name_or_path`.
            name = name_or_path.name_or_path or name_or_path.config.name_or_path or ""
            # Saving and reloading through a temporary folder is an implementation detail, not a download the user
            # waits for: no progress bars (then as they were).
            bars = logging.is_progress_bar_enabled()
            logging.disable_progress_bar()
            try:
                with tempfile.TemporaryDirectory(prefix="bigdrop-backbone-") as folder:
                    name_or_path.save_pretrained(folder)
                    model = cls.from_backbone(
                        folder,
                        num_labels=num_labels,
                        id2label=id2label,
                        label2id=label2id,
                        dropout_rate=dropout_rate,
                        backbone_kwargs=backbone_kwargs,
                        **{"backbone_name_or_path": name or None, **config_kwargs},
                    )
            finally:
                if bars:
                    logging.enable_progress_bar()
            model.name_or_path = str(name)
            return model

        backbone_kwargs = dict(backbone_kwargs or {})
        source = cls.backbone_resolver(name_or_path) if cls.backbone_resolver else name_or_path
        backbone_config = AutoConfig.from_pretrained(source, **backbone_kwargs)
        if backbone_config.model_type == BigDropConfig.model_type:
            raise ValueError(
                f"{str(name_or_path)!r} is already a BigDrop model; load it with "
                "BigDropForImageClassification.from_pretrained instead."
            )
        label_kwargs = _label_kwargs(num_labels, id2label, label2id)
        config_kwargs.setdefault("backbone_name_or_path", str(name_or_path))
        if "preprocessing" not in config_kwargs and cls.preprocessing_reader is not None:
            hub_kwargs = {key: value for key, value in backbone_kwargs.items() if key in _HUB_KWARGS}
            config_kwargs["preprocessing"] = cls.preprocessing_reader(source, backbone_config, **hub_kwargs)
        config = BigDropConfig(
            backbone_config=backbone_config, dropout_rate=dropout_rate, **label_kwargs, **config_kwargs
        )

        pooling = resolve_pooling(config)
        # The checkpoint's own head (e.g. timm's `classifier`) is dropped on purpose: transformers' load report would
        # list it as UNEXPECTED on every run. Missing and mismatched weights are checked below, and raise.
        load_logger = logging.get_logger("transformers.modeling_utils")
        load_logger.addFilter(_drop_load_report)
        try:
            backbone, loading_info = AutoModel.from_pretrained(
                source,
                config=backbone_config,
                output_loading_info=True,
                **_backbone_init_kwargs(backbone_config, pooling),
                **backbone_kwargs,
            )
        finally:
            load_logger.removeFilter(_drop_load_report)
        not_loaded = sorted(set(loading_info.get("missing_keys", ())) | _mismatched(loading_info))
        if not_loaded:
            raise ValueError(
                f"{len(not_loaded)} backbone weight(s) are not in the checkpoint {str(name_or_path)!r} and would be "
                f"randomly initialised: {not_loaded[:8]}{' ...' if len(not_loaded) > 8 else ''}. Use a checkpoint "
                "that holds the whole backbone, or another `pooling` if these are an untrained pooler's weights."
            )

        # Build the model without a backbone of its own (meta tensors) and take the loaded one: the backbone is
        # materialised once, not loaded and then copied into a randomly initialised twin.
        with torch.device("meta"):
            model = cls(config)
        backbone.config = model.backbone.config  # one config object, shared with model.config.backbone_config
        model.backbone = backbone.to(dtype=model.backbone.dtype)  # the dtype the copy used to get
        if config.freeze_backbone:
            model.backbone.requires_grad_(False)
        device = next(backbone.parameters()).device
        for module in model.modules():  # the new head: give it memory, then its configured initialisation
            tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
            if any(tensor.is_meta for tensor in tensors):
                module.to_empty(device=device, recurse=False)
                model._init_weights(module)
        model.name_or_path = str(name_or_path)
        return model


def _drop_load_report(record) -> bool:
    """A logging filter: keeps every record but transformers' state-dict load report."""
    return "LOAD REPORT" not in record.getMessage()


# The `backbone_kwargs` that also say where the backbone's image processor comes from.
_HUB_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "force_download", "proxies", "subfolder")


def _mismatched(loading_info: dict) -> set[str]:
    return {
        entry[0] if isinstance(entry, tuple) else entry for entry in loading_info.get("mismatched_keys", ())
    }


def _label_kwargs(num_labels: int, id2label: dict | None, label2id: dict | None) -> dict:
    """Validated `id2label` / `label2id` for `num_labels` classes."""
    if not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 1:
        raise ValueError(f"`num_labels` must be a positive integer, got {num_labels!r}.")
    if id2label is None and label2id is not None:
        id2label = {int(index): name for name, index in label2id.items()}
    if id2label is None:
        return {"num_labels": num_labels}
    id2label = {int(index): str(name) for index, name in id2label.items()}
    if sorted(id2label) != list(range(num_labels)):
        raise ValueError(
            f"`id2label` must name the classes 0..{num_labels - 1} for num_labels={num_labels}, got ids "
            f"{sorted(id2label)}."
        )
    derived = {name: index for index, name in id2label.items()}
    if label2id is not None and {str(k): int(v) for k, v in label2id.items()} != derived:
        raise ValueError(f"`label2id` {label2id!r} is not the inverse of `id2label` {id2label!r}.")
    return {"id2label": id2label, "label2id": derived}


__all__ = [
    "AUTO_POOLING_BY_MODEL_TYPE",
    "BASE_CONFIG_FILE",
    "BigDropForImageClassification",
    "BigDropPreTrainedModel",
    "resolve_pooling",
]
