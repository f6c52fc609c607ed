"""hf_bigdrop.cache.build_once: built once, atomically, stale temporary folders cleaned up."""

from __future__ import annotations

import pytest

from hf_bigdrop.cache import build_once


def _writer(calls: list):
    def build(folder):
        calls.append(folder)
        (folder / "data").mkdir()
        (folder / "data" / "file.txt").write_text("built")

    return build


def test_builds_once_then_reuses(tmp_path):
    calls = []
    target = tmp_path / "root" / "thing"
    assert build_once(target, _writer(calls)) == target
    assert (target / "data" / "file.txt").read_text() == "built"
    assert build_once(target, _writer(calls)) == target
    assert len(calls) == 1 and calls[0] != target and calls[0].parent == target.parent
    assert sorted(p.name for p in target.parent.iterdir()) == [".thing.lock", "thing"]


def test_failed_build_leaves_nothing_behind(tmp_path):
    def broken(folder):
        (folder / "half-written").write_text("...")
        raise RuntimeError("killed")

    target = tmp_path / "thing"
    with pytest.raises(RuntimeError, match="killed"):
        build_once(target, broken)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_stale_temporary_folders_are_removed_and_incomplete_folders_rebuilt(tmp_path):
    target = tmp_path / "thing"
    target.mkdir()  # a folder without the stamp that `is_complete` asks for
    (tmp_path / ".tmp-thing-killed").mkdir()  # left by a killed build
    calls = []
    build_once(target, _writer(calls), is_complete=lambda folder: (folder / "data").is_dir())
    assert len(calls) == 1 and (target / "data" / "file.txt").exists()
    assert not (tmp_path / ".tmp-thing-killed").exists()
    build_once(target, _writer(calls), force=True)
    assert len(calls) == 2
