"""hf_bigdrop: fine-tuning with very large dropout (Zhang & Bottou, 2024) for Hugging Face vision models."""

import importlib

from transformers import AutoConfig, AutoModelForImageClassification

from .backbones import backbone_preprocessing, resolve_backbone_name
from .configuration_bigdrop import BigDropConfig
from .modeling_bigdrop import BigDropForImageClassification, BigDropPreTrainedModel

__version__ = "0.1.0"

# Loading by model_type when hf_bigdrop is imported ...
AutoConfig.register(BigDropConfig.model_type, BigDropConfig, exist_ok=True)
AutoModelForImageClassification.register(BigDropConfig, BigDropForImageClassification, exist_ok=True)
# ... and by the code that `save_pretrained` writes next to the weights (`trust_remote_code=True`) when it is not.
BigDropConfig.register_for_auto_class()
BigDropForImageClassification.register_for_auto_class("AutoModelForImageClassification")

# `from_backbone("embedded:efficientnet-lite0")` builds the offline checkpoint folder on first use.
BigDropForImageClassification.backbone_resolver = staticmethod(resolve_backbone_name)
# ... and records the backbone's evaluation preprocessing, which `save_pretrained` writes as an image processor.
BigDropForImageClassification.preprocessing_reader = staticmethod(backbone_preprocessing)

# The trainer imports `transformers.Trainer` (and with it accelerate): loaded on first use, as transformers does.
_LAZY_ATTRIBUTES = {"BigDropTrainer": ".training", "BigDropTrainingArguments": ".training_args"}


def __getattr__(name: str):
    if name in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BigDropConfig",
    "BigDropForImageClassification",
    "BigDropPreTrainedModel",
    "BigDropTrainer",
    "BigDropTrainingArguments",
    "__version__",
]
