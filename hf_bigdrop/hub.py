"""What counts as a Hugging Face Hub repository id, and what the Hub knows of a backbone: one rule for backbones,
datasets and model cards."""

from __future__ import annotations

import os
from pathlib import Path

from .backbones import EMBEDDED_BACKBONES, is_embedded_backbone, timm_pretrained_cfg
from .names import is_hub_id


def backbone_hub_id(name: str | os.PathLike) -> str | None:
    """The Hub repository of a backbone's weights: the model card's `base_model`.

    Args:
        name (`str` or `os.PathLike`): A backbone name, as given to the runner or `from_backbone`.

    Returns:
        `str | None`: `name` itself when it is a Hub id; for an embedded backbone, the Hub id of the same weights
        (`EmbeddedBackboneSpec.hub_id`, e.g. `"timm/tf_efficientnet_lite0.in1k"` for `"embedded:efficientnet-lite0"`);
        `None` for a local folder.
    """
    name = os.fspath(name)
    if is_embedded_backbone(name):
        spec = EMBEDDED_BACKBONES.get(name)
        return spec.hub_id if spec is not None else None
    return name if is_hub_id(name) else None


def backbone_license(name: str | os.PathLike, backbone_config: object = None) -> str | None:
    """The licence of a backbone's weights, as far as it is known offline.

    In order: an embedded backbone's (`EmbeddedBackboneSpec.license`); a timm checkpoint's (its pretrained config,
    or timm's registry entry for its architecture and tag); the `license` of a model card (`README.md`) in the
    backbone's folder or, for a Hub id, in the Hugging Face cache.

    Args:
        name (`str` or `os.PathLike`): A backbone name, Hub id or folder.
        backbone_config (`object`, *optional*): The backbone's config (a timm one names its architecture and tag).

    Returns:
        `str | None`: A Hub licence identifier (`"apache-2.0"`, `"bsd-3-clause"`, ...), or `None` when nothing says.
    """
    name = os.fspath(name)
    if is_embedded_backbone(name):
        spec = EMBEDDED_BACKBONES.get(name)
        return spec.license if spec is not None else None
    timm_license = (timm_pretrained_cfg(backbone_config) or {}).get("license")
    if timm_license:
        return str(timm_license)
    card = Path(name) / "README.md"
    if not card.is_file() and is_hub_id(name):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "README.md")
        card = Path(cached) if isinstance(cached, str) else card
    if card.is_file():
        from huggingface_hub import ModelCard

        found = ModelCard.load(card).data.license
        return str(found) if found else None
    return None


__all__ = ["backbone_hub_id", "backbone_license", "is_hub_id"]
