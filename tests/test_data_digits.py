"""The embedded offline `digits` benchmark (small image size keeps the build around a second)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from hf_bigdrop.data import DIGITS_DOMAINS, build_digits, digits_cache_dir, domain_ids, load_domain_dataset

SIZE = 16
EXPECTED_COUNTS = {"mnist": 2500, "mnist_m": 2500, "optdigits": 1797, "typeface": 2000}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("hf_cache")


@pytest.fixture(scope="module")
def splits(cache):
    return load_domain_dataset("digits", test_domains="mnist_m", image_size=SIZE, cache_dir=cache)


def test_domains_classes_and_counts(splits, cache):
    assert (digits_cache_dir(cache, image_size=SIZE) / "data").is_dir()
    train = splits["train"]
    assert train.features["domain"].names == list(DIGITS_DOMAINS)
    assert train.features["label"].names == [str(i) for i in range(10)]
    counts = dict.fromkeys(DIGITS_DOMAINS, 0)
    for split in splits.values():
        ids = domain_ids(split)
        for i, name in enumerate(DIGITS_DOMAINS):
            counts[name] += int((ids == i).sum())
    assert counts == EXPECTED_COUNTS
    assert len(splits["test"]) == EXPECTED_COUNTS["mnist_m"]
    assert set(splits["test"].unique("label")) == set(range(10))


def test_images_are_rgb_of_the_stated_size(splits):
    for split in splits.values():
        for i in (0, len(split) // 2, len(split) - 1):
            image = split[i]["image"]
            assert image.mode == "RGB" and image.size == (SIZE, SIZE)


def test_short_names(cache):
    splits = load_domain_dataset("Digits", test_domains=["O", "t"], image_size=SIZE, cache_dir=cache)
    names = splits["test"].features["domain"].names
    assert {names[i] for i in np.unique(domain_ids(splits["test"]))} == {"optdigits", "typeface"}


def test_identical_bytes_on_rebuild(tmp_path):
    a = build_digits(tmp_path / "a", image_size=SIZE, max_per_domain=40)
    b = build_digits(tmp_path / "b", image_size=SIZE, max_per_domain=40)
    assert hashlib.sha256(a.read_bytes()).hexdigest() == hashlib.sha256(b.read_bytes()).hexdigest()
    import pyarrow.parquet as pq

    table = pq.read_table(a)
    assert table.num_rows == 4 * 40
    first = Image.open(io.BytesIO(table.column("image")[0].as_py()["bytes"]))
    assert first.format == "PNG" and first.mode == "RGB" and first.size == (SIZE, SIZE)


def test_bad_size(tmp_path):
    with pytest.raises(ValueError, match="image_size must be between 8 and 256"):
        build_digits(tmp_path, image_size=4)
