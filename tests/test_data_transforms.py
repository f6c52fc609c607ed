"""DomainBed transforms, lazy with_transform application, the collator and a DataLoader with workers."""

from __future__ import annotations

import io
import pickle

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from hf_bigdrop.data import (
    DomainBalancedBatchSampler,
    DomainBatchTransform,
    DomainCollator,
    apply_transforms,
    build_transforms,
    collate_fn,
    image_spec_from_processor,
)


def _png(mode: str, size=(20, 14), seed=0) -> bytes:
    array = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(array, "RGB").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def dataset():
    modes = ["L", "RGB", "RGBA", "P", "LA", "1"]
    n = 24
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=["a", "b", "c"]),
            "domain": datasets.ClassLabel(names=["x", "y"]),
        }
    )
    return datasets.Dataset.from_dict(
        {
            "image": [{"bytes": _png(modes[i % len(modes)], seed=i), "path": None} for i in range(n)],
            "label": [i % 3 for i in range(n)],
            "domain": [i % 2 for i in range(n)],
        },
        features=features,
    )


def test_spec_from_processors():
    from transformers import ConvNextImageProcessor, TimmWrapperImageProcessor, ViTImageProcessor

    vit = image_spec_from_processor(ViTImageProcessor(size={"height": 64, "width": 48}))
    assert vit.size == (64, 48) and vit.mean == (0.5, 0.5, 0.5)
    assert image_spec_from_processor(ConvNextImageProcessor(size={"shortest_edge": 96})).size == (96, 96)
    timm = TimmWrapperImageProcessor(
        pretrained_cfg={"input_size": (3, 80, 80), "mean": (0.1, 0.2, 0.3), "std": (1, 1, 1)}
    )
    spec = image_spec_from_processor(timm)
    assert spec.size == (80, 80) and spec.mean == (0.1, 0.2, 0.3)
    assert image_spec_from_processor(timm, image_size=32).size == (32, 32)
    default = image_spec_from_processor(None)
    assert default.size == (224, 224) and default.mean == (0.485, 0.456, 0.406)


def test_domainbed_recipe():
    train = build_transforms(None, train=True, image_size=32)
    names = [type(t).__name__ for t in train.transforms]
    assert names == [
        "ToRGB", "RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale",
        "ToImage", "ToDtype", "Normalize",
    ]  # fmt: skip
    crop = train.transforms[1]
    assert crop.scale == (0.7, 1.0) and tuple(crop.size) == (32, 32)
    jitter = train.transforms[3]
    assert jitter.brightness == (0.7, 1.3) and jitter.hue == (-0.3, 0.3)
    eval_names = [type(t).__name__ for t in build_transforms(None, train=False, image_size=32).transforms]
    assert eval_names == ["ToRGB", "Resize", "ToImage", "ToDtype", "Normalize"]
    with pytest.raises(
        ValueError, match="Unknown recipe 'fancy'; valid recipes: domainbed, domainbed_batched, none"
    ):
        build_transforms(None, recipe="fancy")


def test_a_recipe_registered_as_a_list_of_pil_steps(monkeypatch):
    from hf_bigdrop.data import RECIPES

    monkeypatch.setitem(
        RECIPES, "flip", lambda spec, train: [v2.RandomHorizontalFlip(p=1.0), v2.Resize(spec.size)]
    )
    names = [
        type(t).__name__ for t in build_transforms(None, train=True, recipe="flip", image_size=8).transforms
    ]
    assert names == ["ToRGB", "RandomHorizontalFlip", "Resize", "ToImage", "ToDtype", "Normalize"]


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "I", "CMYK"])
def test_every_mode_becomes_rgb(mode):
    image = Image.open(io.BytesIO(_png("RGB"))).convert(mode)
    for train in (True, False):
        out = build_transforms(None, train=train, image_size=(16, 12))(image)
        assert out.shape == (3, 16, 12) and out.dtype == torch.float32


def test_apply_transforms_and_collate(dataset):
    splits = datasets.DatasetDict({"train": dataset, "test": dataset})
    ready = apply_transforms(splits, None, image_size=16)
    example = ready["test"][0]
    assert example["pixel_values"].shape == (3, 16, 16)
    assert example["labels"] == 0 and example["domain_ids"] == 0
    batch = collate_fn([ready["train"][i] for i in range(4)])
    assert set(batch) == {"pixel_values", "labels"}
    assert batch["pixel_values"].shape == (4, 3, 16, 16) and batch["labels"].dtype == torch.long
    with_domains = DomainCollator(include_domain_ids=True)([ready["train"][i] for i in range(4)])
    assert with_domains["domain_ids"].tolist() == [0, 1, 0, 1]
    # eval is deterministic (resize only); the original dataset is untouched
    assert torch.equal(ready["test"][3]["pixel_values"], ready["test"][3]["pixel_values"])
    assert set(dataset[0]) == {"image", "label", "domain"}


def test_transform_is_picklable_and_works_in_workers(dataset):
    ready = apply_transforms(dataset, None, train=True, image_size=16)
    pickle.loads(pickle.dumps(ready))
    sampler = DomainBalancedBatchSampler.from_dataset(dataset, per_domain_batch_size=3, seed=0)
    loader = DataLoader(
        ready, batch_sampler=sampler, collate_fn=DomainCollator(include_domain_ids=True), num_workers=2
    )
    batches = list(loader)
    assert len(batches) == len(sampler) == 4
    for batch in batches:
        assert batch["pixel_values"].shape == (6, 3, 16, 16)
        assert sorted(batch["domain_ids"].tolist()) == [0, 0, 0, 1, 1, 1]


def test_corrupt_image_at_decode_names_the_file(tmp_path):
    bad = tmp_path / "truncated.png"
    bad.write_bytes(_png("RGB", size=(64, 64))[:200])
    ds = datasets.Dataset.from_dict(
        {"image": [str(bad)], "label": [0]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a"])}),
    )
    ready = apply_transforms(ds, None, image_size=8)
    with pytest.raises(ValueError, match=r"Cannot decode image .*truncated\.png"):
        ready[0]


def test_collator_errors():
    with pytest.raises(ValueError, match="apply_transforms"):
        collate_fn([{"image": None, "label": 0}])
    with pytest.raises(ValueError, match="empty"):
        collate_fn([])


def test_v2_compose_type():
    assert isinstance(build_transforms(None), v2.Compose)


def test_batch_transform_scales_and_normalises_the_batch_at_once_with_the_same_pixels():
    images = [
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 24, 3), dtype=np.uint8))
        for i in range(5)
    ]
    for train in (True, False):
        transform = build_transforms(None, train=train, image_size=16)
        torch.manual_seed(3)
        one_by_one = [transform(image) for image in images]
        torch.manual_seed(3)
        batched = DomainBatchTransform(transform)({"image": images, "label": [0] * 5})["pixel_values"]
        assert all(torch.equal(a, b) for a, b in zip(one_by_one, batched)), (
            train
        )  # bitwise, same random draws
