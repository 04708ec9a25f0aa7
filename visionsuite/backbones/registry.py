"""Backbone registry: one name builds a Keras model with multi-scale features.

Families are found through the entry-point group ``visionsuite.backbones``; each entry point
names a :class:`BackboneEntry` (or a tuple of them) in a family module. Nothing registers by
import side effect.

Contract of every backbone: ``build_backbone(name, input_shape, weights, **arch)`` returns a
:class:`Backbone` whose ``model`` takes float32 RGB pixels in ``[0, 255]`` (the normalisation
the weights expect is a layer inside the model) and outputs a dict of feature maps
``{"P2": stride 4, "P3": 8, "P4": 16, "P5": 32}`` (fewer where the architecture has fewer),
and whose ``spec`` describes those levels and the preprocessing.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from visionsuite.errors import UsageError, VisionsuiteError, did_you_mean

BACKBONE_GROUP = "visionsuite.backbones"
LEVEL_STRIDES = {"P1": 2, "P2": 4, "P3": 8, "P4": 16, "P5": 32}


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """The input normalisation a backbone's weights expect.

    Applied inside the backbone model as ``(x[..., order] * scale - mean) / std`` on RGB
    pixels in [0, 255]; recorded here so that users and exporters can see it.
    """

    # (float) factor applied to raw 0..255 pixels first
    scale: float = 1.0 / 255.0
    # (tuple) per-channel mean subtracted after scaling, in `channel_order`
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # (tuple) per-channel std divided after subtracting the mean
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # (str) "RGB" or "BGR": channel order the weights were trained on
    channel_order: str = "RGB"


@dataclasses.dataclass(frozen=True)
class FeatureLevel:
    """One feature map of a backbone: its key, stride and channel count."""

    name: str
    stride: int
    channels: int


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What a built backbone provides (returned next to the model)."""

    name: str
    levels: tuple[FeatureLevel, ...]
    preprocessing: Preprocessing
    input_shape: tuple[int, int, int]
    weights: str | None
    arch: Mapping[str, Any]

    def level(self, name: str) -> FeatureLevel:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise KeyError(f"backbone {self.name!r} has no level {name!r}; it has "
                       f"{[lv.name for lv in self.levels]}")


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A built backbone: the Keras model (dict of feature maps) and its spec."""

    model: Any  # keras.Model
    spec: BackboneSpec


@dataclasses.dataclass(frozen=True)
class BackboneEntry:
    """A registered backbone name.

    Args:
        name: the registry name (``mobilenet_v3_large``).
        build: ``build(input_shape, weights, **arch) -> keras.Model`` with dict outputs.
            ``weights`` is ``None``, ``"imagenet"`` or a path to a weights file.
        levels: ``levels(**arch) -> tuple[FeatureLevel]`` declared statically; the
            conformance test checks every built model against it.
        preprocessing: what the weights expect (see :class:`Preprocessing`).
        arch_defaults: every architecture keyword ``build`` accepts, with its default.
        pretrained: weights names this backbone has (``("imagenet",)``), ``()`` if none.
        weights_source: ``weights_source(weights) -> (description, is_present)`` for
            listings: where the weights come from and whether they are available offline.
        default_input_size: side of the input the weights were trained at.
        description: one line for listings.
    """

    name: str
    build: Callable[..., Any]
    levels: Callable[..., tuple[FeatureLevel, ...]]
    preprocessing: Preprocessing = Preprocessing()
    arch_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    pretrained: tuple[str, ...] = ()
    weights_source: Callable[[str], tuple[str, bool]] | None = None
    default_input_size: int = 224
    description: str = ""


def _load_entries() -> tuple[dict[str, BackboneEntry], list[str]]:
    entries: dict[str, BackboneEntry] = {}
    problems: list[str] = []
    for ep in sorted(metadata.entry_points(group=BACKBONE_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception as exc:
            problems.append(f"backbone family {ep.name!r} ({ep.value}) failed to load: "
                            f"{type(exc).__name__}: {exc}")
            continue
        objs = obj if isinstance(obj, (tuple, list)) else (obj,)
        for entry in objs:
            if not isinstance(entry, BackboneEntry):
                problems.append(f"backbone family {ep.name!r} ({ep.value}) is not a "
                                f"BackboneEntry. Received: {type(entry).__name__}")
            elif entry.name in entries:
                problems.append(f"duplicate backbone name {entry.name!r} in {ep.value}")
            else:
                entries[entry.name] = entry
    return entries, problems


def list_backbones() -> list[BackboneEntry]:
    """Every registered backbone, sorted by name."""
    entries, _ = _load_entries()
    return [entries[k] for k in sorted(entries)]


def backbone_problems() -> list[str]:
    """One line per backbone family that failed to load."""
    return _load_entries()[1]


def get_backbone_entry(name: str) -> BackboneEntry:
    entries, problems = _load_entries()
    if name not in entries:
        hint = f" ({'; '.join(problems)})" if problems else ""
        raise UsageError(f"unknown backbone {name!r}.{did_you_mean(name, entries)}{hint}")
    return entries[name]


def resolve_arch(entry: BackboneEntry, arch: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated with ``arch``; unknown keywords are rejected with the allowed list.
    ``None`` values mean "default" (generic flags a model does not take are dropped)."""
    unknown = sorted(k for k, v in arch.items() if k not in entry.arch_defaults and v is not None)
    if unknown:
        allowed = ", ".join(sorted(entry.arch_defaults)) or "none"
        raise UsageError(
            f"backbone {entry.name!r} does not take {', '.join(unknown)}; allowed: {allowed}. "
            f"Received: {', '.join(f'{k}={arch[k]!r}' for k in unknown)}"
        )
    resolved = dict(entry.arch_defaults)
    resolved.update({k: v for k, v in arch.items() if v is not None and k in entry.arch_defaults})
    return resolved


def build_backbone(name: str, input_shape: tuple[int, int, int] | None = None,
                   weights: str | None = None, **arch) -> Backbone:
    """Build a registered backbone.

    Args:
        name: registry name, e.g. ``"mobilenet_v3_large"``.
        input_shape: ``(height, width, 3)``; default: the size the weights were trained at.
        weights: ``None`` (random init), ``"imagenet"`` or a path to a weights file.
        **arch: architecture keywords of that family (unknown ones are rejected).
    """
    entry = get_backbone_entry(name)
    resolved = resolve_arch(entry, arch)
    if input_shape is None:
        input_shape = (entry.default_input_size, entry.default_input_size, 3)
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise UsageError(f"backbone {name!r} takes RGB input (H, W, 3). "
                         f"Received: input_shape={input_shape}")
    if weights is not None and weights != "imagenet" and not str(weights).endswith(
            (".h5", ".weights.h5", ".keras", ".pth")):
        raise UsageError(f"weights must be None, 'imagenet' or a weights file path. "
                         f"Received: weights={weights!r}")
    if weights is not None and weights != "imagenet":
        from visionsuite.backbones.weights import check_weights_file

        check_weights_file(weights)
    if weights == "imagenet" and "imagenet" not in entry.pretrained:
        raise UsageError(f"backbone {name!r} has no ImageNet weights; use weights=None. "
                         f"Received: weights={weights!r}")
    model = entry.build(input_shape, weights, **resolved)
    levels = tuple(entry.levels(**resolved))
    spec = BackboneSpec(name=name, levels=levels, preprocessing=entry.preprocessing,
                        input_shape=input_shape, weights=weights, arch=resolved)
    return Backbone(model=model, spec=spec)


def count_params(entry: BackboneEntry) -> int:
    """Parameter count at the default configuration (builds the model once)."""
    bb = build_backbone(entry.name)
    return int(bb.model.count_params())


def _check_signature(entry: BackboneEntry) -> None:  # used by visionsuite.testing
    params = inspect.signature(entry.build).parameters
    missing = [k for k in entry.arch_defaults if k not in params and not any(
        p.kind == p.VAR_KEYWORD for p in params.values())]
    if missing:
        raise VisionsuiteError(f"backbone {entry.name!r}: build() lacks {missing}")
