"""Dataset cards shipped as package data (``<name>.yaml``): class names and facts of known
datasets, read by task readers when the data itself does not name its classes (IDX files).
They install with visionsuite, editable or not."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def card_path(name: str) -> Path | None:
    """The card of dataset ``name`` (e.g. ``"fashion-mnist"``), or ``None``."""
    card = resources.files(__name__) / f"{name}.yaml"
    return Path(str(card)) if card.is_file() else None
