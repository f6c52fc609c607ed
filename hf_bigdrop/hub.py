"""What counts as a Hugging Face Hub repository id: one rule for backbones, datasets and model cards."""

from __future__ import annotations

import os
from pathlib import Path

from .backbones import is_embedded_backbone


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


__all__ = ["is_hub_id"]
