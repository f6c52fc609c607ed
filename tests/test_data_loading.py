"""load_domain_dataset on generated local folders (DomainBed layout and Hub-like Parquet), offline."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from hf_bigdrop.data import domain_ids, load_domain_dataset

DOMAINS = {"clipart": 20, "photo": 15, "sketch": 10}  # images per class
CLASSES = ("cat", "dog", "fish")
MODES = ("L", "RGB", "RGBA", "P")


def _write_image(path, mode: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
    image = Image.fromarray(array, "RGB").convert(mode)
    image.save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")


def make_domainbed_folder(root, domains=DOMAINS, classes=CLASSES):
    """root/<domain>/<class>/<image>, mixed modes (L, RGB, RGBA, P) and formats (JPEG, PNG)."""
    k = 0
    for domain, per_class in domains.items():
        for cls in classes:
            folder = root / domain / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                mode = MODES[k % len(MODES)]
                ext = ".jpg" if mode in ("L", "RGB") and k % 2 else ".png"
                _write_image(folder / f"{i:03d}{ext}", mode, k)
                k += 1
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_domainbed_folder(tmp_path_factory.mktemp("domainbed"))


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory, folder):
    """A folder laid out like the public Hub repos (flwrlabs/pacs): data/train-*.parquet, domain as a string."""
    root = tmp_path_factory.mktemp("hub_like")
    images, labels, domains = [], [], []
    for domain in DOMAINS:
        for c, cls in enumerate(CLASSES):
            for path in sorted((folder / domain / cls).iterdir()):
                images.append({"bytes": path.read_bytes(), "path": None})
                labels.append(c)
                domains.append(domain)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "domain": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(CLASSES)),
        }
    )
    ds = datasets.Dataset.from_dict({"image": images, "domain": domains, "label": labels}, features=features)
    (root / "data").mkdir()
    ds.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


def _names(split):
    return split.features["domain"].names


def _per_domain_counts(split):
    names = _names(split)
    ids = domain_ids(split)
    return {names[i]: int((ids == i).sum()) for i in np.unique(ids)}


def _keys(split):
    """Identity of each example: its file path (local folder) or bytes (Hub-like)."""
    table = split.select_columns(["image"]).with_format("arrow")[:]
    return [(e["path"], e["bytes"]) for e in table.column("image").to_pylist()]


@pytest.mark.parametrize("holdout_fraction", [0.2, 0.3])
def test_split_sizes_per_domain(folder, holdout_fraction):
    splits = load_domain_dataset(folder, test_domains=["sketch"], holdout_fraction=holdout_fraction, seed=1)
    assert set(splits) == {"train", "validation", "test"}
    train, val, test = (
        _per_domain_counts(splits["train"]),
        _per_domain_counts(splits["validation"]),
        _per_domain_counts(splits["test"]),
    )
    for domain in ("clipart", "photo"):
        total = DOMAINS[domain] * len(CLASSES)
        assert val[domain] == int(total * holdout_fraction)
        assert train[domain] + val[domain] == total
    assert test == {"sketch": DOMAINS["sketch"] * len(CLASSES)}
    for split in splits.values():
        assert split.features["label"].names == list(CLASSES)
        assert isinstance(split.features["image"], datasets.Image)
        assert _names(split) == ["clipart", "photo", "sketch"]


def test_no_overlap_and_test_domains_stay_out(folder):
    splits = load_domain_dataset(folder, test_domains=["photo", "sketch"], test_holdout_fraction=0.5)
    keys = {name: _keys(split) for name, split in splits.items()}
    all_keys = [k for ks in keys.values() for k in ks]
    assert len(all_keys) == len(set(all_keys)) == sum(DOMAINS.values()) * len(CLASSES)
    assert set(_per_domain_counts(splits["train"])) == {"clipart"}
    assert set(_per_domain_counts(splits["validation"])) == {"clipart"}
    assert set(_per_domain_counts(splits["test"])) == {"photo", "sketch"}
    assert _per_domain_counts(splits["test_validation"]) == {"photo": 22, "sketch": 15}
    assert all("/clipart/" not in path for path, _ in keys["test"] + keys["test_validation"])


def test_seeded_splits(folder):
    a = load_domain_dataset(folder, test_domains="sketch", seed=0)
    b = load_domain_dataset(folder, test_domains="sketch", seed=0)
    c = load_domain_dataset(folder, test_domains="sketch", seed=1)
    assert _keys(a["validation"]) == _keys(b["validation"])
    assert _keys(a["train"]) == _keys(b["train"])
    assert _keys(a["validation"]) != _keys(c["validation"])
    # A domain's split depends only on (seed, domain): holding out another domain does not change it.
    d = load_domain_dataset(folder, test_domains="photo", seed=0)
    clip_a = [k for k in _keys(a["validation"]) if "/clipart/" in k[0]]
    clip_d = [k for k in _keys(d["validation"]) if "/clipart/" in k[0]]
    assert clip_a == clip_d


def test_images_decode_lazily_to_pil(folder):
    splits = load_domain_dataset(folder, test_domains="sketch")
    modes = {splits["train"][i]["image"].mode for i in range(8)}
    assert modes <= set(MODES) and len(modes) > 1  # stored as is; transforms convert to RGB


def test_short_names_with_registered_dataset(tmp_path):
    root = make_domainbed_folder(
        tmp_path / "PACS",
        domains={"art_painting": 2, "cartoon": 2, "photo": 2, "sketch": 2},
        classes=("dog", "horse"),
    )
    splits = load_domain_dataset("pacs", data_dir=root, test_domains="s")
    assert set(_per_domain_counts(splits["test"])) == {"sketch"}
    assert _names(splits["train"]) == ["art_painting", "cartoon", "photo", "sketch"]  # registry order
    splits = load_domain_dataset("PACS", data_dir=root, test_domains=["A", "Photo"])
    assert set(_per_domain_counts(splits["test"])) == {"art_painting", "photo"}


def test_hub_like_folder_goes_through_load_dataset(hub_folder, folder, monkeypatch):
    calls = []
    real_load_dataset = datasets.load_dataset

    def spy(path, *args, **kwargs):
        calls.append(path)
        return real_load_dataset(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    splits = load_domain_dataset(hub_folder, test_domains="sketch", seed=3)
    assert calls == [str(hub_folder)]
    assert _names(splits["train"]) == ["clipart", "photo", "sketch"]
    assert splits["train"].features["label"].names == list(CLASSES)
    reference = load_domain_dataset(folder, test_domains="sketch", seed=3)
    for name in splits:  # same examples, same seeded splits as the folder of files
        assert _per_domain_counts(splits[name]) == _per_domain_counts(reference[name])
    assert splits["test"][0]["image"].size == (10, 12)


def test_registered_hub_id_is_passed_to_load_dataset(hub_folder, monkeypatch):
    """PACS without data_dir loads `flwrlabs/pacs` through the same function; redirected to the local copy."""
    calls = []
    real_load_dataset = datasets.load_dataset

    def redirect(path, *args, **kwargs):
        calls.append((path, kwargs.get("split")))
        return real_load_dataset(str(hub_folder), *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", redirect)
    splits = load_domain_dataset("PACS", test_domains="S")
    assert calls == [("flwrlabs/pacs", "train")]
    assert set(_per_domain_counts(splits["test"])) == {"sketch"}  # PACS short name
    # Hub ids of unregistered datasets go through it too.
    load_domain_dataset("someone/some-dataset", test_domains="photo")
    assert calls[-1] == ("someone/some-dataset", None)


def test_custom_column_names(tmp_path, hub_folder):
    ds = datasets.load_dataset(str(hub_folder), split="train")
    ds = ds.rename_columns({"image": "img", "label": "y", "domain": "site"})
    (tmp_path / "data").mkdir()
    ds.to_parquet(str(tmp_path / "data" / "train.parquet"))
    with pytest.raises(ValueError, match="no column 'domain'.*domain_column"):
        load_domain_dataset(tmp_path, test_domains="photo", image_column="img", label_column="y")
    splits = load_domain_dataset(
        tmp_path, test_domains="photo", image_column="img", label_column="y", domain_column="site"
    )
    assert splits["train"].column_names == ["image", "label", "domain"]


def test_domain_level_one(tmp_path, folder):
    root = tmp_path / "by_class"
    for domain in DOMAINS:
        for cls in CLASSES:
            (root / cls / domain).mkdir(parents=True)
            for path in (folder / domain / cls).iterdir():
                (root / cls / domain / path.name).write_bytes(path.read_bytes())
    splits = load_domain_dataset(root, test_domains="photo", domain_level=1)
    assert _names(splits["train"]) == ["clipart", "photo", "sketch"]
    assert splits["train"].features["label"].names == list(CLASSES)


def test_max_per_domain(folder):
    splits = load_domain_dataset(folder, test_domains="sketch", max_per_domain=10, holdout_fraction=0.2)
    assert _per_domain_counts(splits["train"]) == {"clipart": 8, "photo": 8}
    assert _per_domain_counts(splits["test"]) == {"sketch": 10}


# ------------------------------------------------------------------------------------------------- errors


def test_unknown_dataset_lists_registry():
    with pytest.raises(
        ValueError, match=r"Unknown dataset 'nonexistent'.*PACS, VLCS, OfficeHome, TerraIncognita"
    ):
        load_domain_dataset("nonexistent", test_domains="A")


def test_registered_without_hub_id_says_where_to_get_it():
    with pytest.raises(
        ValueError, match=r"VLCS has no public Hugging Face Hub dataset.*<domain>/<class>/<image>.*data_dir="
    ):
        load_domain_dataset("VLCS", test_domains="V")


def test_unknown_domain_lists_domains(folder):
    with pytest.raises(ValueError, match=r"Unknown domain 'cartoon'.*'clipart', 'photo', 'sketch'"):
        load_domain_dataset(folder, test_domains="cartoon")


def test_all_domains_held_out(folder):
    with pytest.raises(ValueError, match="Every domain is held out"):
        load_domain_dataset(folder, test_domains=["clipart", "photo", "SKETCH"])


def test_empty_domain(tmp_path):
    root = make_domainbed_folder(tmp_path / "d", domains={"a": 2, "b": 2})
    (root / "c" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match="Domain 'c'.*no images"):
        load_domain_dataset(root, test_domains="a")


@pytest.mark.parametrize("layout", ["flat", "images_in_domain", "file"])
def test_folder_not_matching_layout(tmp_path, layout):
    root = tmp_path / "bad"
    root.mkdir()
    if layout == "images_in_domain":
        (root / "photo").mkdir()
        _write_image(root / "photo" / "x.png", "RGB", 0)
    elif layout == "flat":
        _write_image(root / "x.png", "RGB", 0)
    else:
        root = root / "x.png"
        _write_image(root, "RGB", 0)
    with pytest.raises(ValueError, match=r"DomainBed layout|is a file"):
        load_domain_dataset(root, test_domains="photo")


def test_corrupt_image_named_or_skipped(tmp_path, caplog):
    root = make_domainbed_folder(tmp_path / "d", domains={"a": 3, "b": 3})
    bad = root / "b" / "dog" / "broken.jpg"
    bad.write_bytes(b"definitely not a JPEG")
    with pytest.raises(ValueError, match=r"broken\.jpg.*skip_corrupt_images=True"):
        load_domain_dataset(root, test_domains="a")
    with caplog.at_level(logging.WARNING, logger="hf_bigdrop.data.checks"):
        splits = load_domain_dataset(root, test_domains="a", skip_corrupt_images=True)
    assert "Skipped 1 unreadable" in caplog.text
    assert sum(len(s) for s in splits.values()) == 2 * 3 * len(CLASSES)


def test_label_column_must_be_classlabel(tmp_path, hub_folder):
    ds = datasets.load_dataset(str(hub_folder), split="train")
    ds = ds.cast_column("label", datasets.Value("int64"))
    (tmp_path / "data").mkdir()
    ds.to_parquet(str(tmp_path / "data" / "train.parquet"))
    with pytest.raises(ValueError, match=r"not a datasets.ClassLabel.*class_encode_column"):
        load_domain_dataset(tmp_path, test_domains="photo")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"holdout_fraction": 1.0}, "holdout_fraction must be"),
        ({"test_holdout_fraction": -0.1}, "test_holdout_fraction must be"),
        ({"test_group_fraction": 1.0}, "test_group_fraction must be"),
        ({"seed": -1}, "seed must be"),
        ({"domain_level": 2}, "domain_level must be"),
        ({"max_per_domain": 0}, "max_per_domain must be"),
        ({"max_per_domain": True}, "max_per_domain must be"),
        ({"image_size": 32}, r"built offline is made \(digits, styles, emoji\); .* is loaded as stored"),
        ({"builder_kwargs": {"examples_per_class": 3}}, "image_size and builder_kwargs set how"),
    ],
)
def test_bad_arguments(folder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_domain_dataset(folder, test_domains="photo", **kwargs)


def _with_groups(tmp_path, hub_folder, group_of):
    """The Hub-like folder with a `group` column: group_of(index within its domain and class, label) -> name."""
    ds = datasets.load_dataset(str(hub_folder), split="train")
    seen: dict[tuple[str, int], int] = {}
    groups = []
    for domain, label in zip(ds["domain"], ds["label"]):
        i = seen[(domain, label)] = seen.get((domain, label), -1) + 1
        groups.append(group_of(i, label))
    (tmp_path / "data").mkdir()
    ds.add_column("group", groups).to_parquet(str(tmp_path / "data" / "train.parquet"))
    return tmp_path


def test_group_column_keeps_groups_on_one_side_in_every_domain(tmp_path, hub_folder):
    # Two examples a group in every domain (the same "objects" seen in each domain), 5 groups a class.
    root = _with_groups(tmp_path, hub_folder, lambda i, label: f"{CLASSES[label]}-{(i // 2) % 5}")
    no_test_groups = {"group_column": "group", "test_group_fraction": 0.0}
    splits = load_domain_dataset(root, test_domains="sketch", holdout_fraction=0.4, **no_test_groups)
    assert "group" in splits["train"].column_names
    train, validation = set(splits["train"]["group"]), set(splits["validation"]["group"])
    assert not train & validation
    # floor(5 * 0.4) = 2 of each class's 5 groups, the same in both training domains.
    assert len(validation) == 2 * len(CLASSES)
    for domain in (0, 1):
        ids = domain_ids(splits["validation"])
        assert {g for g, d in zip(splits["validation"]["group"], ids) if d == domain} == validation
    # Seeded: the same seed gives the same groups, another seed others.
    again = load_domain_dataset(root, test_domains="sketch", holdout_fraction=0.4, **no_test_groups)
    other = load_domain_dataset(root, test_domains="sketch", holdout_fraction=0.4, seed=1, **no_test_groups)
    assert set(again["validation"]["group"]) == validation != set(other["validation"]["group"])


def test_grouped_dataset_tests_on_groups_training_never_saw(tmp_path, hub_folder):
    # 8 groups a class: floor(8 * 0.25) = 2 test groups, then floor(6 * 0.2) = 1 validation group, 5 training groups.
    root = _with_groups(tmp_path, hub_folder, lambda i, label: f"{CLASSES[label]}-{i % 8}")
    for seed in (0, 1, 2):
        splits = load_domain_dataset(root, test_domains="sketch", group_column="group", seed=seed)
        train, validation = set(splits["train"]["group"]), set(splits["validation"]["group"])
        test, known = set(splits["test"]["group"]), set(splits["test_known"]["group"])
        assert len(test) == 2 * len(CLASSES) and len(validation) == len(CLASSES)
        assert not test & (train | validation) and not train & validation
        assert known == train  # the diagnostic: the held-out domain on the groups training saw


def test_test_groups_need_a_group_column(folder):
    with pytest.raises(ValueError, match="test_group_fraction=0.25 holds whole groups out of training"):
        load_domain_dataset(folder, test_domains="photo", test_group_fraction=0.25)


def test_group_spanning_classes_or_missing_column_is_refused(tmp_path, hub_folder):
    with pytest.raises(ValueError, match="no column 'objects'.*group_column"):
        load_domain_dataset(hub_folder, test_domains="sketch", group_column="objects")
    root = _with_groups(tmp_path, hub_folder, lambda i, label: f"g{i % 3}")
    with pytest.raises(ValueError, match="Group 'g0' holds examples of several classes"):
        load_domain_dataset(root, test_domains="sketch", group_column="group")


def test_empty_class_folders_are_refused_or_warned_about(tmp_path, caplog):
    root = make_domainbed_folder(tmp_path / "d", domains={"a": 2, "b": 2})
    (root / "a" / "zebra").mkdir()
    (root / "b" / "zebra").mkdir()  # empty in every domain: an error
    with pytest.raises(ValueError, match="Class 'zebra' .* has no images in any domain"):
        load_domain_dataset(root, test_domains="b")
    image = next((root / "a" / "cat").iterdir())
    shutil.copy(image, root / "a" / "zebra" / image.name)  # seen in domain a only: a warning that names b
    with caplog.at_level(logging.WARNING):
        splits = load_domain_dataset(root, test_domains="b")
    assert "zebra" in splits["train"].features["label"].names
    assert "Class 'zebra' has no images in domain(s) ['b']" in caplog.text


def test_a_registered_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    from hf_bigdrop.data.resolving import resolve_source

    monkeypatch.chdir(tmp_path)
    for name in ("PACS", "digits"):
        (tmp_path / name / "photo" / "dog").mkdir(parents=True)
    # The common DomainBed layout: `cd /data; ... --dataset PACS --data_dir PACS`.
    source = resolve_source("PACS", "PACS")
    assert (source.kind, source.info.name, source.location) == ("folder", "PACS", "PACS")
    assert resolve_source("digits", None).kind == "builder"
    # A path means the folder itself.
    for path in ("./PACS", os.path.abspath("PACS"), Path("PACS")):
        source = resolve_source(path, None)
        assert (source.kind, source.info) == ("folder", None), path
