"""The embedded offline `styles` benchmark, built tiny (a few crops per class, small images)."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools

import numpy as np
import pytest
from helpers import REPO
from PIL import Image

from hf_bigdrop.data import (
    STYLES_CLASSES,
    STYLES_DOMAINS,
    build_styles,
    domain_ids,
    load_domain_dataset,
    styles_cache_dir,
    stylize,
)
from hf_bigdrop.data import styles as styles_module
from hf_bigdrop.data.registry import get_dataset_info

SIZE = 24
PER_CLASS = 3
TINY = {"examples_per_class": PER_CLASS}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bigdrop_cache")


@pytest.fixture(scope="module")
def splits(cache):
    return load_domain_dataset(
        "styles", test_domains="sketch", image_size=SIZE, builder_kwargs=TINY, cache_dir=cache
    )


def _arrays(split) -> np.ndarray:
    return np.stack([np.asarray(example["image"], dtype=np.float32) / 255.0 for example in split])


def test_classes_domains_and_counts(splits, cache):
    assert (styles_cache_dir(cache, image_size=SIZE, examples_per_class=PER_CLASS) / "data").is_dir()
    train = splits["train"]
    assert (
        train.features["domain"].names == list(STYLES_DOMAINS) == ["photo", "sketch", "cartoon", "painting"]
    )
    assert train.features["label"].names == list(STYLES_CLASSES) and len(STYLES_CLASSES) == 11
    counts: dict[tuple[int, int], int] = {}
    for split in splits.values():
        for domain, label in zip(domain_ids(split), split["label"]):
            counts[(int(domain), int(label))] = counts.get((int(domain), int(label)), 0) + 1
    assert counts == {(d, c): PER_CLASS for d in range(4) for c in range(11)}
    assert len(splits["test"]) == 11 * PER_CLASS
    example = splits["test"][0]["image"]
    assert example.mode == "RGB" and example.size == (SIZE, SIZE)


def test_registry_entry_carries_builder_and_default_size():
    info = get_dataset_info("Styles")
    assert info.builder is styles_module.ensure_styles and info.default_image_size == 64
    assert [d.short_name for d in info.domains] == ["P", "S", "C", "A"]
    assert get_dataset_info("digits").default_image_size == 32


def test_same_seed_same_images_other_seed_other_images(tmp_path):
    a = build_styles(tmp_path / "a", image_size=16, examples_per_class=1, seed=3)
    b = build_styles(tmp_path / "b", image_size=16, examples_per_class=1, seed=3)
    c = build_styles(tmp_path / "c", image_size=16, examples_per_class=1, seed=4)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]


def test_more_examples_per_class_extend_the_same_crops(splits, cache, tmp_path):
    import pyarrow.parquet as pq

    def images(folder):
        return pq.read_table(next((folder / "data").glob("*.parquet"))).column("image").to_pylist()

    build_styles(tmp_path, image_size=SIZE, examples_per_class=1)
    one, three = (
        images(tmp_path),
        images(styles_cache_dir(cache, image_size=SIZE, examples_per_class=PER_CLASS)),
    )
    assert len(one) == 4 * 11 and len(three) == 4 * 11 * PER_CLASS
    # rows run domain by domain, class by class: the first crop of each pair is the same
    assert [row["bytes"] for row in one] == [row["bytes"] for row in three[::PER_CLASS]]


def test_second_load_does_not_rebuild(cache, monkeypatch, splits):
    parquet = next(
        (styles_cache_dir(cache, image_size=SIZE, examples_per_class=PER_CLASS) / "data").glob("*.parquet")
    )
    before = parquet.stat()

    def no_build(*args, **kwargs):
        raise AssertionError("the cached benchmark was built again")

    monkeypatch.setattr(styles_module, "build_styles", no_build)
    again = load_domain_dataset(
        "styles", test_domains="S", image_size=SIZE, builder_kwargs=TINY, cache_dir=cache
    )
    assert len(again["test"]) == len(splits["test"])
    after = parquet.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_cache_root_follows_hf_bigdrop_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_BIGDROP_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(styles_module, "build_styles", lambda folder, **options: calls.append(folder))
    folder = styles_module.ensure_styles(image_size=16, examples_per_class=1)
    assert (
        folder == styles_cache_dir(image_size=16, examples_per_class=1)
        and folder.parent == tmp_path / "datasets" / "styles"
    )
    assert folder.is_dir() and len(calls) == 1  # built in a temporary sibling, renamed into place
    assert calls[0].parent == folder.parent and calls[0] != folder
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".tmp")] == []


def test_unknown_style_names_the_valid_ones(cache, splits):
    with pytest.raises(ValueError, match="Unknown domain 'watercolour'") as err:
        load_domain_dataset(
            "styles", test_domains="watercolour", image_size=SIZE, builder_kwargs=TINY, cache_dir=cache
        )
    assert all(repr(name) in str(err.value) for name in STYLES_DOMAINS)
    with pytest.raises(ValueError, match="Unknown style 'watercolour'. Valid styles: 'photo', 'sketch'"):
        stylize(np.zeros((8, 8, 3), np.uint8), "watercolour")


def test_bad_arguments_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="image_size must be between 16 and 512"):
        styles_module.ensure_styles(image_size=8, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="crop_area must be"):
        styles_module.ensure_styles(crop_area=(0.3, 0.1), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="examples_per_class must be a positive integer"):
        styles_module.ensure_styles(examples_per_class=0, cache_dir=tmp_path)
    with pytest.raises(
        ValueError, match=r"Unknown builder_kwargs \['per_class'\] for 'styles'.*examples_per_class"
    ):
        load_domain_dataset("styles", test_domains="S", builder_kwargs={"per_class": 3}, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def _thumbnail(photo: np.ndarray) -> np.ndarray:
    thumb = np.asarray(Image.fromarray(photo).convert("L").resize((32, 32)), dtype=np.float64).ravel()
    return (thumb - thumb.mean()) / thumb.std()


def _same_photo(a: np.ndarray, b: np.ndarray) -> bool:
    return float(_thumbnail(a) @ _thumbnail(b)) / 1024 > 0.6


def test_photos_are_distinct_natural_colour_photos():
    import skimage.data

    photos = {name: styles_module._photo(name) for name in STYLES_CLASSES}
    for name, photo in photos.items():
        assert photo.dtype == np.uint8 and photo.ndim == 3 and min(photo.shape[:2]) >= 300
        assert np.abs(photo.astype(int)[..., 0] - photo[..., 2]).mean() > 5, name  # colour, not grey
    for a, b in itertools.combinations(STYLES_CLASSES, 2):
        assert not _same_photo(photos[a], photos[b]), (a, b)
    # the check does catch two views of one scene: the right view of the stereo pair, left out
    assert _same_photo(photos["motorcycle"], skimage.data.stereo_motorcycle()[1])


def _stats(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image colour statistics of float images (n, h, w, 3) in [0, 1]."""
    chroma = (images.max(-1) - images.min(-1)).mean(axis=(1, 2))
    gradient = np.abs(np.diff(images, axis=2)).mean(axis=(1, 2, 3))
    return {"chroma": chroma, "brightness": images.mean(axis=(1, 2, 3)), "gradient": gradient}


def test_styles_really_differ_on_the_same_crops():
    rng = np.random.default_rng(0)
    crops = []
    for name in STYLES_CLASSES:
        crop = styles_module._random_crop(
            styles_module._photo_at_common_area(name), rng, (0.0025, 0.01), name
        )
        crops.append(np.asarray(Image.fromarray(crop).resize((96, 96), Image.Resampling.LANCZOS)))
    styled = {
        s: np.stack([stylize(c, s, np.random.default_rng(i)) for i, c in enumerate(crops)])
        for s in STYLES_DOMAINS
    }
    photo = _stats(styled["photo"] / 255.0)
    assert np.array_equal(styled["photo"], np.stack(crops))
    # sketch: grey, dark lines on white paper
    sketch = _stats(styled["sketch"] / 255.0)
    assert sketch["chroma"].max() == 0 and (sketch["brightness"] > photo["brightness"]).mean() > 0.8
    # cartoon: a handful of flat colours (4 to 6, the outline colour) where the photo has thousands
    for cartoon, original in zip(styled["cartoon"], crops):
        assert (
            len(np.unique(cartoon.reshape(-1, 3), axis=0))
            <= 7
            < len(np.unique(original.reshape(-1, 3), axis=0))
        )
    # painting: the colours move (hue shift, saturation) and warm up (varnish tint)
    painting, original = styled["painting"].astype(np.float32), styled["photo"].astype(np.float32)
    assert np.abs(painting - original).mean(axis=(1, 2, 3)).min() > 0.03 * 255
    warmth = {
        name: (x[..., 0] - x[..., 2]).mean(axis=(1, 2)) for name, x in (("p", painting), ("o", original))
    }
    assert (warmth["p"] > warmth["o"]).sum() >= 9 and (warmth["p"] - warmth["o"]).mean() > 10


def test_domains_differ_in_colour_statistics(splits):
    """Per domain of the built benchmark: sketch is grey, cartoon and painting more colourful than photo."""
    data = splits["train"]
    by_domain = {}
    everything = [splits["train"], splits["validation"], splits["test"]]
    for split in everything:
        images, ids = _arrays(split), domain_ids(split)
        for i, name in enumerate(STYLES_DOMAINS):
            if (ids == i).any():
                by_domain.setdefault(name, []).append(images[ids == i])
    stats = {name: _stats(np.concatenate(parts)) for name, parts in by_domain.items()}
    mean = {name: {k: float(v.mean()) for k, v in s.items()} for name, s in stats.items()}
    assert (
        mean["sketch"]["chroma"] == 0.0 and mean["sketch"]["brightness"] > mean["photo"]["brightness"] + 0.15
    )
    assert mean["cartoon"]["chroma"] > mean["photo"]["chroma"]
    assert mean["painting"]["chroma"] > mean["photo"]["chroma"]
    assert data.features["domain"].names == list(STYLES_DOMAINS)


def test_sample_grid_has_a_cell_per_domain_and_class(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_BIGDROP_CACHE", str(tmp_path))
    spec = importlib.util.spec_from_file_location("samples", REPO / "examples" / "benchmark_samples.py")
    samples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(samples)
    grid = samples.sample_grid("styles", image_size=16, scale=2, label_width=64, header=16)
    assert grid.size == (64 + 11 * 32, 16 + 4 * 32)
    # the photo row's first cell is the first photo crop, enlarged twice
    first = load_domain_dataset(
        "styles",
        test_domains=[],
        image_size=16,
        builder_kwargs={"examples_per_class": 1},
        holdout_fraction=0.0,
    )["train"][0]["image"]
    cell = np.asarray(grid.crop((64, 16, 64 + 32, 16 + 32)))
    assert np.array_equal(cell[::2, ::2], np.asarray(first))


def test_the_build_parameters_are_one_dataclass():
    from hf_bigdrop.data.styles import StylesBuild

    build = StylesBuild(image_size=16, examples_per_class=1, crop_area=(0.01, 0.02))
    assert build.crop_area == (0.01, 0.02) and build.variant.endswith("_16px_1pc_area0.01-0.02_seed0")
    assert (
        styles_cache_dir("/cache", image_size=16, examples_per_class=1, crop_area=(0.01, 0.02)).name
        == build.variant
    )
    for bad in ({"image_size": 8}, {"examples_per_class": 0}, {"crop_area": (0.5, 0.1)}):
        with pytest.raises(ValueError):
            StylesBuild(**bad)
