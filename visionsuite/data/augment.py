"""Albumentations builders shared by tasks.

Geometric transforms apply jointly to the image and to whatever targets the ``Compose`` is
given (``mask``, ``bboxes`` ...), so tasks with dense or box targets use the same builders
and pass ``bbox_params`` / ``additional_targets`` through ``compose_kwargs``.

There is deliberately no ``A.Normalize``: models take RGB pixels in ``[0, 255]`` and the
normalisation their backbone's weights expect is a layer inside the model (built from the
backbone's ``Preprocessing`` spec), so exported models need no numbers beside them. It is also
the slowest transform on CPU.
"""

from __future__ import annotations

from typing import Any

from visionsuite.errors import UsageError


def _check_size(size: int) -> int:
    if int(size) < 1:
        raise UsageError(f"image size must be a positive number of pixels. Received: size={size!r}")
    return int(size)


def train_transform(size: int, *, strength: float = 0.5, hflip: bool = True,
                    vflip: bool = False, rot90: bool = False, color_jitter: bool = True,
                    affine: bool = True, **compose_kwargs: Any):
    """Training augmentation ending at ``size`` x ``size``.

    Random resized crop (area ``[1 - 0.6 * strength, 1]``), horizontal flip, colour jitter
    (brightness / contrast / saturation ``0.4 * strength``, hue ``0.05 * strength``) and a
    random affine (rotation up to ``15 * strength`` degrees, shear up to ``8 * strength``).

    Args:
        size: side of the square output, in pixels.
        strength: 0 disables everything but the resize (and the flip), 1 is strong.
        hflip: randomly mirror left-right (turn off for text, digits, oriented scenes).
        vflip: randomly mirror top-bottom (microscopy, aerial and satellite images).
        rot90: random multiples of 90 degrees (orientation-free images; square outputs).
        color_jitter: include the colour jitter (~0.1 ms an image at any size).
        affine: include the random affine (~0.25 ms an image: the costliest step on small
            images such as 28 px Fashion-MNIST, where turning it off triples throughput).
        **compose_kwargs: passed to ``A.Compose`` (``bbox_params``, ``additional_targets``,
            ``seed`` ...).
    """
    import albumentations as A
    import cv2

    size = _check_size(size)
    s = float(strength)
    if not 0.0 <= s <= 1.0:
        raise UsageError(f"augmentation strength must be in [0, 1]. Received: strength={strength!r}")
    steps = []
    if s > 0:
        steps.append(A.RandomResizedCrop(size=(size, size), scale=(1.0 - 0.6 * s, 1.0), p=1.0))
    else:
        steps.append(A.Resize(size, size, interpolation=cv2.INTER_AREA))
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    if vflip:
        steps.append(A.VerticalFlip(p=0.5))
    if rot90:
        steps.append(A.RandomRotate90(p=0.75))
    if s > 0 and color_jitter:
        j = 0.4 * s
        steps.append(A.ColorJitter(brightness=j, contrast=j, saturation=j, hue=0.05 * s, p=0.8))
    if s > 0 and affine:
        steps.append(A.Affine(rotate=(-15 * s, 15 * s), shear=(-8 * s, 8 * s),
                              border_mode=cv2.BORDER_REFLECT_101, p=0.5))
    return A.Compose(steps, **compose_kwargs)


def train_transform_for(config, **compose_kwargs: Any):
    """:func:`train_transform` from a task config with the fields of
    :class:`~visionsuite.task.ImageTaskConfig`: ``image_size``, ``augment`` (strength),
    ``hflip``, ``vflip``, ``rot90``, ``color_jitter`` and ``affine``."""
    return train_transform(config.image_size, strength=config.augment, hflip=config.hflip,
                           vflip=getattr(config, "vflip", False),
                           rot90=getattr(config, "rot90", False),
                           color_jitter=config.color_jitter, affine=config.affine,
                           **compose_kwargs)


def eval_transform(size: int, **compose_kwargs: Any):
    """Evaluation / prediction transform: resize to ``size`` x ``size`` (area interpolation,
    as :meth:`visionsuite.task.Task.preprocess` does for single frames)."""
    import albumentations as A
    import cv2

    size = _check_size(size)
    return A.Compose([A.Resize(size, size, interpolation=cv2.INTER_AREA)], **compose_kwargs)
