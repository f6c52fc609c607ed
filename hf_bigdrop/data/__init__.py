"""Domain datasets through `datasets`: DomainBed registry, Hub ids, local folders, the embedded offline
`digits`, `styles` and `emoji` benchmarks, seeded per-domain splits, DomainBed transforms, a collator and a
domain-balanced batch sampler."""

from .collator import DomainCollator, collate_fn
from .digits import DIGITS_DOMAINS, build_digits, digits_cache_dir, ensure_digits
from .emoji import EMOJI_CLASSES, EMOJI_DOMAINS, build_emoji, emoji_cache_dir, ensure_emoji
from .loading import domain_ids, domain_names, load_domain_dataset, split_domain_indices
from .registry import DATASET_REGISTRY, DomainDatasetInfo, DomainSpec, get_dataset_info, list_datasets
from .sampler import DomainBalancedBatchSampler, SeededBatchSampler, SeededDataset
from .styles import STYLES_CLASSES, STYLES_DOMAINS, build_styles, ensure_styles, styles_cache_dir, stylize
from .transforms import (
    RECIPES,
    DomainBatchTransform,
    ImageSpec,
    apply_transforms,
    build_transforms,
    evaluation_preprocessing,
    image_spec_from_processor,
)

__all__ = [
    "DATASET_REGISTRY",
    "DIGITS_DOMAINS",
    "EMOJI_CLASSES",
    "EMOJI_DOMAINS",
    "RECIPES",
    "STYLES_CLASSES",
    "STYLES_DOMAINS",
    "SeededBatchSampler",
    "SeededDataset",
    "DomainBalancedBatchSampler",
    "DomainBatchTransform",
    "DomainCollator",
    "DomainDatasetInfo",
    "DomainSpec",
    "ImageSpec",
    "apply_transforms",
    "build_digits",
    "build_emoji",
    "build_styles",
    "build_transforms",
    "collate_fn",
    "digits_cache_dir",
    "domain_ids",
    "domain_names",
    "emoji_cache_dir",
    "ensure_digits",
    "ensure_emoji",
    "ensure_styles",
    "evaluation_preprocessing",
    "get_dataset_info",
    "image_spec_from_processor",
    "list_datasets",
    "load_domain_dataset",
    "split_domain_indices",
    "styles_cache_dir",
    "stylize",
]
