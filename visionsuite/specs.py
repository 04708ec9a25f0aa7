"""What a model eats and returns: :class:`InputSpec` and :class:`OutputSpec`.

A task declares both (``Task.input_spec()``, ``Task.output_specs()``); trained models carry them
in their :class:`~visionsuite.models.ModelMetadata`, and every runtime, the stream engine, export
and the conformance check read them from there -- one source of truth for input shapes.

Layouts (no batch axis):

* ``HWC``  -- an image, ``(H, W, C)``;
* ``THWC`` -- a clip of ``T`` frames, ``(T, H, W, C)``;
* ``DHWC`` -- a volume of ``D`` slices, ``(D, H, W, C)``.

Example:
    >>> spec = InputSpec.image(224)                       # (224, 224, 3) RGB in [0, 255]
    >>> clip = InputSpec((8, 112, 112, 3), layout="THWC")
    >>> spec.spatial, clip.frames
    ((224, 224), 8)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from visionsuite.errors import UsageError

LAYOUTS = ("HWC", "THWC", "DHWC")


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """The model input of one item, without the batch axis."""

    # (tuple) shape without the batch axis, in the order of ``layout``
    shape: tuple[int, ...]
    # (str) "HWC" (image), "THWC" (clip) or "DHWC" (volume)
    layout: str = "HWC"
    # (str) numpy dtype of the input
    dtype: str = "float32"
    # (int) every spatial side is a multiple of this (e.g. 32 for a stride-32 detector)
    divisor: int = 1
    # (str) the input's name
    name: str = "image"
    # (tuple) range of the values the model expects (RGB pixels: 0..255)
    value_range: tuple[float, float] = (0.0, 255.0)

    def __post_init__(self):
        shape = tuple(int(s) for s in self.shape)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))
        if self.layout not in LAYOUTS:
            raise UsageError(f"layout must be one of {', '.join(LAYOUTS)}. "
                             f"Received: layout={self.layout!r}")
        if len(shape) != len(self.layout) or min(shape, default=0) < 1:
            raise UsageError(f"a {self.layout} input needs {len(self.layout)} positive sizes. "
                             f"Received: shape={shape}")
        if self.divisor < 1 or any(s % self.divisor for s in self.spatial):
            raise UsageError(f"the spatial sides {self.spatial} must be multiples of divisor "
                             f"{self.divisor}. Received: shape={shape}, divisor={self.divisor}")

    @classmethod
    def image(cls, size: int | Sequence[int], channels: int = 3, **kwargs) -> "InputSpec":
        """An ``HWC`` image input: ``size`` is a side or ``(height, width)``."""
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return cls((int(h), int(w), int(channels)), "HWC", **kwargs)

    @property
    def channels(self) -> int:
        return self.shape[-1]

    @property
    def spatial(self) -> tuple[int, int]:
        """``(height, width)`` of one image, frame or slice."""
        return self.shape[-3], self.shape[-2]

    @property
    def frames(self) -> int | None:
        """``T`` of a clip or ``D`` of a volume; ``None`` for an image."""
        return self.shape[0] if len(self.layout) == 4 else None

    @property
    def square_size(self) -> int | None:
        """The side of a square image input, else ``None``."""
        h, w = self.spatial
        return h if self.layout == "HWC" and h == w else None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["shape"], d["value_range"] = list(self.shape), list(self.value_range)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "InputSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def describe(self) -> str:
        return f"{self.layout} {'x'.join(map(str, self.shape))} {self.dtype}"


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """One named model output, without the batch axis (``None`` for sizes that vary)."""

    # (str) the output's name, the key runtimes hand to ``postprocess``
    name: str
    # (tuple) shape without the batch axis (informative; ``None`` = varies)
    shape: tuple = ()
    # (str) numpy dtype
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping | str) -> "OutputSpec":
        if isinstance(d, str):
            return cls(d)
        return cls(str(d["name"]), tuple(d.get("shape", ())), str(d.get("dtype", "float32")))


def output_names(specs: Sequence[OutputSpec]) -> tuple[str, ...]:
    return tuple(s.name for s in specs)
