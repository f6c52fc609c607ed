"""What counts as a Hub repository id, and what the Hub knows of a backbone (its Hub id, its licence)."""

from __future__ import annotations

import pytest
from transformers import TimmWrapperConfig

from hf_bigdrop.backbones import EMBEDDED_BACKBONES
from hf_bigdrop.hub import backbone_hub_id, backbone_license, is_hub_id


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


def test_backbone_hub_ids():
    assert backbone_hub_id("timm/resnet50.tv2_in1k") == "timm/resnet50.tv2_in1k"
    assert backbone_hub_id("embedded:efficientnet-lite0") == "timm/tf_efficientnet_lite0.in1k"
    assert backbone_hub_id("embedded:unknown") is None
    assert backbone_hub_id("./runs/backbone") is None


def test_the_embedded_backbones_hub_id_is_timms_for_the_same_weights():
    from timm.models import get_pretrained_cfg

    for spec in EMBEDDED_BACKBONES.values():
        tag = spec.pretrained_cfg["tag"]
        assert spec.hub_id == get_pretrained_cfg(f"{spec.timm_architecture}.{tag}").hf_hub_id


def test_backbone_licenses_known_offline(tmp_path):
    assert backbone_license("embedded:efficientnet-lite0") == "apache-2.0"
    # A timm checkpoint's config names its architecture and tag; timm's registry knows their licence.
    timm_config = TimmWrapperConfig(architecture="resnet50", pretrained_cfg={"tag": "tv2_in1k"})
    assert backbone_license("timm/resnet50.tv2_in1k", timm_config) == "bsd-3-clause"
    # A folder with a model card says it there; a Hub id that is not cached, nothing.
    (tmp_path / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n# A backbone\n")
    assert backbone_license(tmp_path) == "cc-by-nc-4.0"
    assert backbone_license("someone/never-downloaded") is None
