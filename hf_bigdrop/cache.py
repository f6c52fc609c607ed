"""hf_bigdrop's local cache: one root folder and one way to build a folder in it once.

The embedded backbones (`hf_bigdrop.backbones`) and the embedded benchmarks (`digits`, `styles` in
`hf_bigdrop.data`) are made offline from files that pip packages ship, once, then reused. They all live under
one root, `default_cache_root()`, and are all built by `build_once`:

- the build writes into a temporary sibling folder (`.tmp-<name>-*`) that is renamed into place, so a killed
  build never leaves a half-written folder behind;
- a file lock (`.<name>.lock`) makes concurrent processes (e.g. under `accelerate launch`) build it once: the
  others wait, then find it complete;
- temporary folders left by killed builds are removed, with the lock held.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["CACHE_ENV_VAR", "build_once", "default_cache_root"]

logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "HF_BIGDROP_CACHE"
"""Environment variable that overrides the root of hf_bigdrop's local caches."""


def default_cache_root() -> Path:
    """Returns the root of hf_bigdrop's local caches.

    `$HF_BIGDROP_CACHE` if set, else `$HF_HOME/hf_bigdrop`, where `HF_HOME` defaults to
    `$XDG_CACHE_HOME/huggingface` or `~/.cache/huggingface`, as in `huggingface_hub`.

    Returns:
        `pathlib.Path`: The cache root (not created).
    """
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    hf_home = os.environ.get("HF_HOME")
    if not hf_home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        hf_home = os.path.join(xdg, "huggingface")
    return Path(hf_home).expanduser() / "hf_bigdrop"


def _make_readable(folder: Path) -> None:
    """Gives the built tree the usual permissions (mkdtemp creates it private) under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def build_once(
    target: str | os.PathLike,
    build: Callable[[Path], object],
    *,
    is_complete: Callable[[Path], bool] | None = None,
    force: bool = False,
    description: str | None = None,
) -> Path:
    """Returns `target`, building it first (atomically, once across processes) unless it is complete.

    Args:
        target (`str | os.PathLike`): The folder to return; its parent is created if needed.
        build (`Callable[[Path], object]`): Writes the folder's content into the (existing, empty) folder it
            is given; its return value is ignored. It runs at most once per call, with the lock held.
        is_complete (`Callable[[Path], bool] | None`, *optional*, defaults to `None`): Whether an existing
            `target` can be used as it is. Defaults to "it exists" (the rename makes a folder appear only
            complete); pass a check of a version stamp to rebuild folders of an older format.
        force (`bool`, *optional*, defaults to `False`): Rebuild even if `target` is complete.
        description (`str | None`, *optional*, defaults to `None`): What is built, for the log
            (default: the folder name).

    Returns:
        `pathlib.Path`: `target`.
    """
    from filelock import FileLock

    target = Path(target)
    complete = is_complete or Path.is_dir
    if not force and complete(target):
        return target
    parent, name = target.parent, target.name
    what = description or name
    parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(parent / f".{name}.lock")):
        # Another process may have finished the build while this one waited for the lock.
        if not force and complete(target):
            return target
        # With the lock held, temporary folders left by killed builds are stale.
        for stale in parent.glob(f".tmp-{name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        started = time.perf_counter()
        logger.info("Building %s in %s (one time, offline).", what, target)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=parent))
        try:
            build(tmp)
            _make_readable(tmp)
            if target.exists():
                # Move the old (incomplete, outdated or force-rebuilt) folder aside, then swap the new one in.
                old = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-old-", dir=parent))
                os.replace(target, old / name)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        logger.info("Built %s in %.1f s.", what, time.perf_counter() - started)
    return target
