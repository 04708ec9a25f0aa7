"""Errors that reach the user as one line (the CLI prints them without a traceback)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VisionsuiteError(Exception):
    """A failure the user can act on. The CLI prints `error: <message>` and exits 1."""

    exit_code = 1


class UsageError(VisionsuiteError):
    """Bad arguments, config keys or names. The CLI exits 2."""

    exit_code = 2


class DataError(VisionsuiteError):
    """Bad or missing input data (files, folders, frames, masks)."""


class ModelError(VisionsuiteError):
    """A model file that cannot be loaded or was made for another task."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean: a, b?' for close matches, or a list of valid names."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(value, choices, n=3, cutoff=0.6)
    if close:
        return f" Did you mean: {', '.join(close)}?"
    if len(choices) <= 25:
        return f" Choose from: {', '.join(choices)}."
    return ""
