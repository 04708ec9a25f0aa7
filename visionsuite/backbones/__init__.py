"""Backbone registry (see :mod:`visionsuite.backbones.registry`)."""

from visionsuite.backbones.registry import (
    Backbone,
    BackboneEntry,
    BackboneSpec,
    FeatureLevel,
    Preprocessing,
    build_backbone,
    get_backbone_entry,
    list_backbones,
)

__all__ = [
    "Backbone", "BackboneEntry", "BackboneSpec", "FeatureLevel", "Preprocessing",
    "build_backbone", "get_backbone_entry", "list_backbones",
]
