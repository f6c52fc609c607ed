"""One rule for what a Hub repository id is (backbones, datasets, model cards)."""

from __future__ import annotations

import pytest

from hf_bigdrop.hub import is_hub_id


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("timm/resnet50.tv2_in1k", True),
        ("flwrlabs/pacs", True),
        ("digits", False),
        ("embedded:efficientnet-lite0", False),
        ("embedded:owner/name", False),
        ("./runs/model", False),
        ("/data/PACS", False),
        ("a/b/c", False),
    ],
)
def test_is_hub_id(name, expected):
    assert is_hub_id(name) is expected


def test_an_existing_local_folder_is_not_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    assert not is_hub_id("owner/name")
