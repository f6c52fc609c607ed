"""What a name means before anything is loaded: an embedded backbone (`embedded:<name>`) or a Hugging Face Hub
repository id (`owner/name`). A leaf module (it imports nothing of the package), so that the backbones, the datasets
and the model cards read one rule without importing each other."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["EMBEDDED_PREFIX", "is_embedded_backbone", "is_hub_id"]

EMBEDDED_PREFIX = "embedded:"
"""Names that start with this prefix refer to an embedded backbone (see `hf_bigdrop.backbones.EMBEDDED_BACKBONES`)."""


def is_embedded_backbone(name: object) -> bool:
    """Tells whether `name` refers to an embedded backbone.

    Any string with the `"embedded:"` prefix counts (known or not), so that a misspelt name reaches
    `embedded_backbone_path` and fails with the list of known names instead of a Hub lookup.

    Args:
        name (`object`): A backbone name or path (non-strings give `False`).

    Returns:
        `bool`: Whether `name` starts with `"embedded:"`.
    """
    return isinstance(name, str) and name.startswith(EMBEDDED_PREFIX)


def is_hub_id(name: str | os.PathLike) -> bool:
    """Tells whether `name` reads as a Hub repository id (`"owner/name"`) rather than a local path or an embedded name.

    Args:
        name (`str` or `os.PathLike`): A backbone or dataset name, Hub id or path.

    Returns:
        `bool`: `True` for `"timm/resnet50.tv2_in1k"`; `False` for an existing path, a relative or absolute path
        (`"./x"`, `"/x/y"`), a bare name (`"digits"`), or `"embedded:..."`.
    """
    name = os.fspath(name)
    return (
        name.count("/") == 1
        and not name.startswith(("/", "."))
        and not is_embedded_backbone(name)
        and not Path(name).exists()
    )
