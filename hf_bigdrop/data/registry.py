"""Registry of the DomainBed datasets: domains, classes, short names and where to load them from.

The registry is data, not code: adding a dataset means adding one `DomainDatasetInfo` entry to
`DATASET_REGISTRY`. `hf_bigdrop.data.load_domain_dataset` reads it to resolve dataset names,
domain names (full, DomainBed short names or aliases, case-insensitive) and the Hub column mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .digits import ensure_digits
from .emoji import DEFAULT_IMAGE_SIZE as EMOJI_IMAGE_SIZE
from .emoji import EMOJI_CLASSES, ensure_emoji
from .styles import DEFAULT_IMAGE_SIZE as STYLES_IMAGE_SIZE
from .styles import STYLES_CLASSES, ensure_styles

__all__ = [
    "DATASET_REGISTRY",
    "DomainDatasetInfo",
    "DomainSpec",
    "get_dataset_info",
    "held_out_domains",
    "list_datasets",
    "normalize_name",
    "resolve_domains",
]


def normalize_name(name: str) -> str:
    """Normalises a dataset or domain name for lenient matching.

    Lower-cases and drops every character that is not a letter or a digit, so that `"Real World"`,
    `"real_world"` and `"RealWorld"` all match.

    Args:
        name (`str`): The name to normalise.

    Returns:
        `str`: The normalised name.
    """
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


@dataclass(frozen=True)
class DomainSpec:
    """One domain of a registered dataset.

    Args:
        name (`str`): Canonical domain name (the DomainBed folder name, e.g. `"art_painting"`).
        short_name (`str`): DomainBed's one-letter (or short) name, e.g. `"A"`.
        aliases (`tuple[str, ...]`, *optional*, defaults to `()`): Other accepted spellings, e.g. the
            environment names DomainBed uses in its code (`"clip"` for DomainNet's `clipart`).
    """

    name: str
    short_name: str
    aliases: tuple[str, ...] = ()

    def matches(self, query: str) -> bool:
        """Whether `query` names this domain (case-insensitive, punctuation-insensitive)."""
        key = normalize_name(query)
        return key in {normalize_name(n) for n in (self.name, self.short_name, *self.aliases)}


@dataclass(frozen=True)
class DomainDatasetInfo:
    """Metadata of one multi-domain image classification dataset.

    Args:
        name (`str`): Registry name (case-insensitive on lookup), e.g. `"PACS"`.
        domains (`tuple[DomainSpec, ...]`): The domains, in DomainBed's order.
        classes (`tuple[str, ...] | None`): Class names in label order, or `None` when they are read from
            the data (DomainNet's 345 classes).
        hub_id (`str | None`, *optional*, defaults to `None`): A public Hugging Face Hub dataset holding the
            whole dataset, or `None` when only the local DomainBed folder layout is supported.
        hub_split (`str | None`, *optional*, defaults to `"train"`): The Hub split that holds all examples
            (`None`: concatenate every split).
        image_column (`str`, *optional*, defaults to `"image"`): Image column of the Hub dataset.
        label_column (`str`, *optional*, defaults to `"label"`): Label column (a `ClassLabel`).
        domain_column (`str`, *optional*, defaults to `"domain"`): Column that holds the domain name.
        group_column (`str | None`, *optional*, defaults to `None`): Column naming the group of each example
            (e.g. the emoji that a render shows): every example of a group goes to the same side of each
            train / validation split, in every domain (see `load_domain_dataset`). `None`: examples are split one by
            one.
        builder (`Callable[..., Path] | None`, *optional*, defaults to `None`): For a benchmark built offline,
            the function that returns its cached folder (laid out like a Hub dataset repository), building it
            on first use. It is called as `builder(image_size=..., cache_dir=..., **builder_kwargs)`.
        default_image_size (`int | None`, *optional*, defaults to `None`): The image side a benchmark built
            offline is stored and trained at unless told otherwise (`None`: the backbone's own input size).
        url (`str`, *optional*, defaults to `""`): Where to download the original data.
    """

    name: str
    domains: tuple[DomainSpec, ...]
    classes: tuple[str, ...] | None
    hub_id: str | None = None
    hub_split: str | None = "train"
    image_column: str = "image"
    label_column: str = "label"
    domain_column: str = "domain"
    group_column: str | None = None
    builder: Callable[..., Path] | None = None
    default_image_size: int | None = None
    url: str = ""

    @property
    def domain_names(self) -> list[str]:
        """`list[str]`: Canonical domain names in registry order."""
        return [d.name for d in self.domains]

    def find_domain(self, query: str) -> DomainSpec | None:
        """Returns the domain that `query` names (full, short or alias, case-insensitive), or `None`."""
        for spec in self.domains:
            if spec.matches(query):
                return spec
        return None


def _domains(*triples: tuple[str, str] | tuple[str, str, tuple[str, ...]]) -> tuple[DomainSpec, ...]:
    return tuple(DomainSpec(*t) for t in triples)


# OfficeHome's 65 class folder names, in label order.
# fmt: off
_OFFICE_HOME_CLASSES = (
    "Alarm_Clock", "Backpack", "Batteries", "Bed", "Bike", "Bottle", "Bucket", "Calculator", "Calendar",
    "Candles", "Chair", "Clipboards", "Computer", "Couch", "Curtains", "Desk_Lamp", "Drill", "Eraser",
    "Exit_Sign", "Fan", "File_Cabinet", "Flipflops", "Flowers", "Folder", "Fork", "Glasses", "Hammer",
    "Helmet", "Kettle", "Keyboard", "Knives", "Lamp_Shade", "Laptop", "Marker", "Monitor", "Mop", "Mouse",
    "Mug", "Notebook", "Oven", "Pan", "Paper_Clip", "Pen", "Pencil", "Postit_Notes", "Printer", "Push_Pin",
    "Radio", "Refrigerator", "Ruler", "Scissors", "Screwdriver", "Shelf", "Sink", "Sneakers", "Soda",
    "Speaker", "Spoon", "TV", "Table", "Telephone", "ToothBrush", "Toys", "Trash_Can", "Webcam",
)
# fmt: on

# Every registered dataset, keyed by its lower-cased name.
DATASET_REGISTRY: dict[str, DomainDatasetInfo] = {
    info.name.lower(): info
    for info in (
        DomainDatasetInfo(
            name="PACS",
            domains=_domains(("art_painting", "A"), ("cartoon", "C"), ("photo", "P"), ("sketch", "S")),
            classes=("dog", "elephant", "giraffe", "guitar", "horse", "house", "person"),
            hub_id="flwrlabs/pacs",
            url="https://sketchx.eecs.qmul.ac.uk/downloads/",
        ),
        DomainDatasetInfo(
            name="VLCS",
            domains=_domains(("Caltech101", "C"), ("LabelMe", "L"), ("SUN09", "S"), ("VOC2007", "V")),
            classes=("bird", "car", "chair", "dog", "person"),
            url="https://github.com/belaalb/G2DM#download-vlcs",
        ),
        DomainDatasetInfo(
            name="OfficeHome",
            domains=_domains(("Art", "A"), ("Clipart", "C"), ("Product", "P"), ("Real World", "R")),
            classes=_OFFICE_HOME_CLASSES,
            hub_id="flwrlabs/office-home",
            url="https://www.hemanthdv.org/officeHomeDataset.html",
        ),
        DomainDatasetInfo(
            name="TerraIncognita",
            domains=_domains(
                ("location_100", "L100"),
                ("location_38", "L38"),
                ("location_43", "L43"),
                ("location_46", "L46"),
            ),
            classes=(
                "bird",
                "bobcat",
                "cat",
                "coyote",
                "dog",
                "empty",
                "opossum",
                "rabbit",
                "raccoon",
                "squirrel",
            ),
            url="https://lila.science/datasets/caltech-camera-traps",
        ),
        DomainDatasetInfo(
            name="DomainNet",
            domains=_domains(
                ("clipart", "C", ("clip",)),
                ("infograph", "I", ("info",)),
                ("painting", "P", ("paint",)),
                ("quickdraw", "Q", ("quick",)),
                ("real", "R"),
                ("sketch", "S"),
            ),
            classes=None,
            url="http://ai.bu.edu/M3SDA/",
        ),
        DomainDatasetInfo(
            name="digits",
            domains=_domains(
                ("mnist", "M"), ("mnist_m", "MM", ("mnistm",)), ("optdigits", "O"), ("typeface", "T")
            ),
            classes=tuple(str(i) for i in range(10)),
            builder=ensure_digits,
            default_image_size=32,
        ),
        DomainDatasetInfo(
            name="styles",
            domains=_domains(
                ("photo", "P"), ("sketch", "S"), ("cartoon", "C"), ("painting", "A", ("art_painting",))
            ),
            classes=STYLES_CLASSES,
            builder=ensure_styles,
            default_image_size=STYLES_IMAGE_SIZE,
        ),
        DomainDatasetInfo(
            name="emoji",
            domains=_domains(("twemoji", "T"), ("openmoji", "O"), ("noto", "N"), ("symbola", "S")),
            classes=EMOJI_CLASSES,
            group_column="emoji",
            builder=ensure_emoji,
            default_image_size=EMOJI_IMAGE_SIZE,
        ),
    )
}


def list_datasets() -> list[str]:
    """Returns the names of the registered datasets.

    Returns:
        `list[str]`: e.g. `["PACS", "VLCS", "OfficeHome", "TerraIncognita", "DomainNet", "digits", "styles",
            "emoji"]`.
    """
    return [info.name for info in DATASET_REGISTRY.values()]


def get_dataset_info(name: str) -> DomainDatasetInfo | None:
    """Looks a dataset up in the registry (case- and punctuation-insensitive).

    Args:
        name (`str`): e.g. `"pacs"`, `"OfficeHome"`, `"office-home"`.

    Returns:
        `DomainDatasetInfo | None`: The entry, or `None` when `name` is not registered.
    """
    key = normalize_name(name)
    for info in DATASET_REGISTRY.values():
        if normalize_name(info.name) == key:
            return info
    return None


def resolve_domains(
    requested: str | Iterable[str],
    available: Sequence[str],
    info: DomainDatasetInfo | None = None,
    *,
    what: str = "test_domains",
) -> list[str]:
    """Maps user-given domain names onto the domain names present in the data.

    Accepts each domain's full name, its DomainBed short name or an alias (registered datasets), or
    any spelling that matches after `normalize_name`. Duplicates are dropped, order is kept.

    Args:
        requested (`str | Iterable[str]`): One domain or several.
        available (`Sequence[str]`): Domain names as they appear in the data.
        info (`DomainDatasetInfo | None`, *optional*, defaults to `None`): Registry entry for short names.
        what (`str`, *optional*, defaults to `"test_domains"`): Argument name used in error messages.

    Returns:
        `list[str]`: The matching names from `available`.

    Raises:
        ValueError: If a requested domain matches no available domain (the message lists them).
    """
    if isinstance(requested, str):
        requested = [requested]
    resolved: list[str] = []
    for query in requested:
        match = _match_domain(str(query), available, info)
        if match is None:
            raise ValueError(f"Unknown domain {query!r} in {what}. {describe_domains(available, info)}")
        if match not in resolved:
            resolved.append(match)
    return resolved


def held_out_domains(
    requested: str | Iterable[str], available: Sequence[str], info: DomainDatasetInfo | None = None
) -> list[str]:
    """The held-out domains (`resolve_domains`), refusing a choice that leaves no domain to train on.

    Raises:
        ValueError: an unknown domain, or every domain held out (the message lists the domains).
    """
    held_out = resolve_domains(requested, available, info)
    if available and len(held_out) == len(available):
        raise ValueError(
            f"Every domain is held out (test_domains={requested!r}): at least one domain must remain for "
            f"training. {describe_domains(available, info)}"
        )
    return held_out


def _match_domain(query: str, available: Sequence[str], info: DomainDatasetInfo | None) -> str | None:
    key = normalize_name(query)
    for name in available:  # exact spelling first, then lenient
        if name == query:
            return name
    for name in available:
        if normalize_name(name) == key:
            return name
    if info is not None:
        spec = info.find_domain(query)
        if spec is not None:
            for name in available:
                if spec.matches(name):
                    return name
    return None


def describe_domains(available: Sequence[str], info: DomainDatasetInfo | None = None) -> str:
    """A human-readable list of the valid domains (with short names when known), for error messages."""
    parts = []
    for name in available:
        spec = info.find_domain(name) if info is not None else None
        parts.append(f"{name!r} ({spec.short_name!r})" if spec is not None else repr(name))
    return "Valid domains: " + ", ".join(parts) + "."
