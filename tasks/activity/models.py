"""Video classifiers on any registry backbone: a clip model and a causal streaming model.

Both apply a 2D backbone from the registry (``visionsuite.backbones``) to every frame of a clip
``(batch, T, H, W, 3)`` (RGB pixels in ``[0, 255]``; the frames are folded into the batch, so
the backbone -- and its ImageNet weights -- is used unchanged) and put a temporal head on one
of its feature levels (default: the deepest):

* :class:`ClipClassifier` -- offline clips (TSN/TSM style). A temporal shift block (a share of
  the channels moves one frame forward, another one frame back, then a residual 3x3 conv; the
  TSM idea, applied here on the chosen feature level instead of inside every backbone block),
  then centred temporal convolutions, mean over time and space, softmax.
* :class:`StreamingClassifier` -- live video. Causal temporal convolutions (only past frames:
  left padding) over the per-frame feature maps, spatial mean, softmax at every frame. It is
  trained as a clip model (output: the probabilities at the clip's last frame) and runs frame
  by frame through :meth:`StreamingClassifier.step_model`, whose inputs are the frame and one
  buffer per temporal layer (the last ``(kernel_size - 1) * dilation`` feature maps) and whose
  outputs are the probabilities and the updated buffers. Live inference therefore costs one
  backbone pass per frame, not one clip, and gives the same numbers as the clip model on the
  frames seen so far (zero buffers at the start = the clip model's zero left padding).

:func:`export_step_tflite` writes the step model as a TFLite file with named state inputs and
outputs; :class:`Streamer` carries the state between frames for the Keras step model or a
TFLite file (run by ``ai_edge_litert``).

Every layer is registered (package ``visionsuite_activity``) and both models rebuild from
``get_config``, so ``.keras`` files load with ``safe_mode=True``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
from keras import ops

import visionsuite.backbones.layers  # noqa: F401  (registers the backbones' layers for loading)
from visionsuite.errors import ModelError, UsageError
from visionsuite.files import write_bytes_atomic

PACKAGE = "visionsuite_activity"
OUTPUT = "probabilities"


# ============================================================================ layers


@keras.saving.register_keras_serializable(package=PACKAGE)
class FoldTime(keras.layers.Layer):
    """``(B, T, *rest)`` -> ``(B * T, *rest)``: frames become batch items.

    Example:
        >>> frames = FoldTime()(clip)   # (B*T, H, W, 3)
    """

    def call(self, x):
        return ops.reshape(x, (-1, *x.shape[2:]))

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[2:])


@keras.saving.register_keras_serializable(package=PACKAGE)
class UnfoldTime(keras.layers.Layer):
    """``[(B * T, *rest), reference (B, T, ...)]`` -> ``(B, T, *rest)``.

    Args:
        frames: the clip length ``T`` when fixed, ``None`` to read it from the reference.

    Example:
        >>> feats = UnfoldTime(8)([frame_features, clip])
    """

    def __init__(self, frames=None, **kwargs):
        super().__init__(**kwargs)
        self.frames = None if frames is None else int(frames)

    def call(self, inputs):
        x, ref = inputs
        frames = self.frames if self.frames is not None else ops.shape(ref)[1]
        return ops.reshape(x, (-1, frames, *x.shape[1:]))

    def compute_output_shape(self, input_shape):
        return (None, self.frames, *input_shape[0][1:])

    def get_config(self):
        config = super().get_config()
        config.update(frames=self.frames)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpatialMean(keras.layers.Layer):
    """Mean over the two spatial axes before the channels: ``(..., h, w, C)`` -> ``(..., C)``.

    Works on per-frame maps ``(B, h, w, C)`` and on clips ``(B, T, h, w, C)`` alike."""

    def call(self, x):
        return ops.mean(x, axis=(-3, -2))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], input_shape[-1])


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpatialMax(keras.layers.Layer):
    """Max over the two spatial axes before the channels: ``(..., h, w, C)`` -> ``(..., C)``
    (keeps the response of a small moving object that a mean would dilute)."""

    def call(self, x):
        return ops.max(x, axis=(-3, -2))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], input_shape[-1])


SPATIAL_POOLS = {"mean": SpatialMean, "max": SpatialMax}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LastFrame(keras.layers.Layer):
    """``(B, T, ...)`` -> ``(B, ...)``: the last time step."""

    def call(self, x):
        return x[:, -1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *input_shape[2:])


@keras.saving.register_keras_serializable(package=PACKAGE)
class TemporalShift(keras.layers.Layer):
    """Temporal shift (TSM, Lin et al. 2019) on clips of feature maps ``(B, T, h, w, C)``.

    The first ``C // shift_div`` channels take the next frame's values, the following
    ``C // shift_div`` the previous frame's (zeros beyond the clip's ends); the rest stay.
    No parameters: a following convolution mixes the shifted channels with the others.

    Args:
        shift_div: ``1 / shift_div`` of the channels is shifted each way (TSM's default 8).

    Example:
        >>> y = TemporalShift(8)(x)   # same shape as x
    """

    def __init__(self, shift_div=8, **kwargs):
        super().__init__(**kwargs)
        if int(shift_div) < 2:
            raise UsageError(f"TemporalShift: shift_div must be >= 2. Received: shift_div={shift_div!r}")
        self.shift_div = int(shift_div)

    def call(self, x):
        fold = x.shape[-1] // self.shift_div
        if fold == 0:
            return x
        back, fwd, keep = x[..., :fold], x[..., fold:2 * fold], x[..., 2 * fold:]
        back = ops.concatenate([back[:, 1:], ops.zeros_like(back[:, :1])], axis=1)
        fwd = ops.concatenate([ops.zeros_like(fwd[:, :1]), fwd[:, :-1]], axis=1)
        return ops.concatenate([back, fwd, keep], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(shift_div=self.shift_div)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class TemporalConv(keras.layers.Layer):
    """Temporal (and optionally spatial) convolution over clips of feature maps.

    Input ``(B, T, h, w, C)``, output ``(B, T, h, w, filters)``. The ``kernel_size`` taps at
    ``t, t - dilation, ..., t - (kernel_size - 1) * dilation`` (causal) are concatenated along
    the channels and go through one ``Conv2D`` (``spatial_kernel`` x ``spatial_kernel``), so
    the layer is a (2+1)D-style kernel ``kernel_size x spatial_kernel x spatial_kernel``.
    With ``causal=True`` the clip is padded with zeros on the left only, and the layer can
    run one frame at a time: :meth:`step` takes ``frame_features (B, h, w, C)`` and a buffer
    ``(B, buffer_frames, h, w, C)`` and returns ``(output (B, h, w, filters), new buffer)`` -- the
    same numbers as the clip call at that frame (:meth:`step`; in a functional graph through
    :class:`StreamingStep`). With ``causal=False`` the padding is centred.

    Args:
        filters: output channels.
        kernel_size: number of temporal taps.
        dilation: frames between taps.
        spatial_kernel: side of the spatial kernel (1 = purely temporal).
        causal: only past frames (left padding) and a streaming step.
        activation: activation after the convolution.
        residual: add the input (needs ``filters`` equal to the input channels).
        difference_init: (``kernel_size=2`` only) initialise the kernel of the previous frame
            as minus the current frame's, so the layer starts as a filtered frame difference.

    Example:
        >>> conv = TemporalConv(32, kernel_size=3, dilation=2)
        >>> y = conv(x)                              # clip: (B, T, h, w, 32)
        >>> y_t, buf = conv.step(x_t, buf)            # one frame
    """

    def __init__(self, filters, kernel_size=3, dilation=1, spatial_kernel=3, causal=True,
                 activation="relu", residual=True, difference_init=False, **kwargs):
        super().__init__(**kwargs)
        if int(kernel_size) < 1 or int(dilation) < 1 or int(filters) < 1:
            raise UsageError(f"TemporalConv: filters, kernel_size and dilation must be >= 1. "
                             f"Received: filters={filters!r}, kernel_size={kernel_size!r}, "
                             f"dilation={dilation!r}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.dilation = int(dilation)
        self.spatial_kernel = int(spatial_kernel)
        self.causal = bool(causal)
        self.activation = activation
        self.residual = bool(residual)
        self.difference_init = bool(difference_init)
        if self.difference_init and self.kernel_size != 2:
            raise UsageError(f"TemporalConv: difference_init needs kernel_size=2. "
                             f"Received: kernel_size={kernel_size!r}")
        self.conv = keras.layers.Conv2D(self.filters, self.spatial_kernel, padding="same",
                                        activation=activation, name="conv")

    @property
    def buffer_frames(self) -> int:
        """Past feature maps a streaming step keeps: ``(kernel_size - 1) * dilation``."""
        return (self.kernel_size - 1) * self.dilation

    def build(self, input_shape):
        shape = input_shape
        channels = int(shape[-1])
        if self.residual and channels != self.filters:
            raise UsageError(f"TemporalConv: residual needs filters == input channels. "
                             f"Received: filters={self.filters}, channels={channels}")
        self.conv.build((None, int(shape[-3]), int(shape[-2]), channels * self.kernel_size))
        if self.difference_init:  # start as a filtered frame difference: W_prev = -W_now
            kernel = keras.ops.convert_to_numpy(self.conv.kernel)
            kernel[:, :, :channels] = -kernel[:, :, channels:]
            self.conv.kernel.assign(kernel)

    def call(self, x):
        frames = ops.shape(x)[1]
        total = self.buffer_frames
        left = total if self.causal else total // 2
        right = total - left
        parts = []
        if left:
            parts.append(ops.zeros_like(x[:, :1]) if left == 1 else
                         ops.repeat(ops.zeros_like(x[:, :1]), left, axis=1))
        parts.append(x)
        if right:
            parts.append(ops.repeat(ops.zeros_like(x[:, :1]), right, axis=1))
        padded = ops.concatenate(parts, axis=1) if len(parts) > 1 else x
        taps = [padded[:, i * self.dilation: i * self.dilation + frames]
                for i in range(self.kernel_size)]
        stacked = ops.concatenate(taps, axis=-1) if len(taps) > 1 else taps[0]
        y = self.conv(ops.reshape(stacked, (-1, *stacked.shape[2:])))
        y = ops.reshape(y, (-1, frames, *y.shape[1:]))
        return x + y if self.residual else y

    def step(self, x, buffer):
        """One frame: ``x`` ``(B, h, w, C)`` and the buffer of the previous
        ``buffer_frames`` inputs -> ``(output (B, h, w, filters), new buffer)``."""
        if not self.causal:
            raise UsageError("TemporalConv: only a causal layer runs frame by frame. "
                             "Received: causal=False")
        seq = ops.concatenate([buffer, x[:, None]], axis=1)   # (B, buffer + 1, h, w, C)
        taps = [seq[:, i * self.dilation] for i in range(self.kernel_size)]
        stacked = ops.concatenate(taps, axis=-1) if len(taps) > 1 else taps[0]
        y = self.conv(stacked)
        return x + y if self.residual else y, seq[:, 1:]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size,
                      dilation=self.dilation, spatial_kernel=self.spatial_kernel,
                      causal=self.causal, activation=self.activation, residual=self.residual,
                      difference_init=self.difference_init)
        return config


class StreamingStep(keras.layers.Layer):
    """Graph node for one frame of a causal :class:`TemporalConv` (shares its weights).

    ``StreamingStep(conv)([x_t, buffer]) -> [y_t, new_buffer]``. Used only inside
    :meth:`StreamingClassifier.step_model` (never saved: the step is exported to TFLite).
    """

    def __init__(self, temporal_conv, **kwargs):
        super().__init__(**kwargs)
        self.temporal_conv = temporal_conv

    def call(self, inputs):
        y, buffer = self.temporal_conv.step(*inputs)
        return [y, buffer]

    def compute_output_shape(self, input_shape):
        x, buffer = input_shape
        return [(*x[:-1], self.temporal_conv.filters), tuple(buffer)]


# ============================================================================ helpers


def frame_feature_model(backbone, level: str | None = None) -> keras.Model:
    """One feature level of a registry :class:`~visionsuite.backbones.Backbone` as a
    single-output model ``(H, W, 3) -> (h, w, C)`` (default level: the deepest)."""
    levels = [lv.name for lv in backbone.spec.levels]
    level = level or levels[-1]
    if level not in levels:
        raise UsageError(f"backbone {backbone.spec.name!r} has levels {levels}. "
                         f"Received: level={level!r}")
    outputs = backbone.model.output
    return keras.Model(backbone.model.inputs, outputs[level],
                       name=f"{backbone.spec.name}_{level.lower()}")


def _check_common(features: keras.Model, num_classes, frames, width, dropout):
    if not isinstance(features, keras.Model) or len(features.outputs) != 1:
        raise UsageError("features must be a keras.Model with one output (use "
                         "frame_feature_model(backbone)). Received: "
                         f"{type(features).__name__}")
    if len(features.inputs[0].shape) != 4 or features.inputs[0].shape[-1] != 3:
        raise UsageError(f"features must take frames (H, W, 3). Received: input shape "
                         f"{tuple(features.inputs[0].shape)}")
    if int(num_classes) < 2:
        raise UsageError(f"num_classes must be >= 2. Received: num_classes={num_classes!r}")
    if frames is not None and int(frames) < 1:
        raise UsageError(f"frames must be >= 1 or None. Received: frames={frames!r}")
    if int(width) < 1:
        raise UsageError(f"width must be >= 1. Received: width={width!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise UsageError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")


class _VideoClassifierBase(keras.Model):
    """Shared config handling: the ``features`` model is serialised inside the config."""

    def _config(self):
        return dict(name=self.name, trainable=self.trainable,
                    features=keras.saving.serialize_keras_object(self.features))

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["features"] = keras.saving.deserialize_keras_object(config["features"])
        return cls(**config)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(H, W, 3)`` of one frame."""
        return tuple(int(v) for v in self.features.inputs[0].shape[1:])


def _clip_input(features, frames):
    return keras.Input((None if frames is None else int(frames), *features.inputs[0].shape[1:]),
                       name="clip")


def _per_frame(features, reduce, clip, frames):
    x = FoldTime(name="fold_time")(clip)
    x = reduce(features(x))
    return UnfoldTime(frames, name="unfold_time")([x, clip])


def _motion_layers(features, motion_channels, width, spatial_pool="mean"):
    """Layers of the motion branch (see :class:`StreamingClassifier`), or ``None``."""
    if int(motion_channels) < 0:
        raise UsageError(f"motion_channels must be >= 0. Received: motion_channels={motion_channels!r}")
    if not motion_channels:
        return None
    (height, wide), (h, w) = (features.inputs[0].shape[1:3], features.outputs[0].shape[1:3])
    stride = -(-int(height) // int(h))
    if -(-int(height) // stride) != h or -(-int(wide) // stride) != w:
        raise UsageError(f"motion_channels needs a feature level whose stride divides the "
                         f"frame. Received: frame {height}x{wide}, level {h}x{w}")
    # Stride-2 convolutions down to the feature level (the motion stream's own small CNN on
    # the two-frame responses), then a pool for any remaining non-power-of-2 factor.
    steps = max(0, int(np.floor(np.log2(stride))))
    rest = stride // (2 ** steps)
    down = [keras.layers.Conv2D(2 * int(motion_channels), 3, strides=2, padding="same",
                                activation="relu", name=f"motion_down_{i}") for i in range(steps)]
    pool_cls = keras.layers.MaxPooling2D if spatial_pool == "max" else keras.layers.AveragePooling2D
    return dict(
        scale=keras.layers.Rescaling(1.0 / 255.0, name="motion_scale"),
        conv=TemporalConv(int(motion_channels), kernel_size=2, spatial_kernel=3, causal=True,
                          residual=False, difference_init=True, name="motion_conv"),
        down=down,
        pool=pool_cls(rest, rest, padding="same", name="motion_pool") if rest > 1 else None,
        concat=keras.layers.Concatenate(name="motion_concat"),
        fuse=keras.layers.Conv2D(int(width), 1, activation="relu", name="motion_fuse"))


def _motion_per_frame(motion, m):
    """The per-frame part of the motion branch (after the two-frame convolution)."""
    for layer in motion["down"]:
        m = layer(m)
    return motion["pool"](m) if motion["pool"] is not None else m


def _apply_motion(motion, x, clip, frames):
    """Clip path of the motion branch: fuse the motion stream into ``x``."""
    m = motion["conv"](motion["scale"](clip))
    m = _motion_per_frame(motion, FoldTime(name="fold_motion")(m))
    m = UnfoldTime(frames, name="unfold_motion")([m, clip])
    x = motion["concat"]([x, m])
    return UnfoldTime(frames, name="unfold_fused")([motion["fuse"](FoldTime(name="fold_fused")(x)), clip])


# ============================================================================ models


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClipClassifier(_VideoClassifierBase):
    """Clip classifier: a 2D backbone per frame + temporal shift + temporal convolutions.

    Input ``"clip"``: ``(batch, frames, H, W, 3)`` RGB pixels in ``[0, 255]``; output
    ``{"probabilities": (batch, num_classes)}`` (softmax, float32). See the module docstring.

    Args:
        features: per-frame feature model ``(H, W, 3) -> (h, w, C)`` (see
            :func:`frame_feature_model`; its ImageNet weights transfer as they are).
        num_classes: number of activity classes.
        frames: clip length ``T``, or ``None`` for any length.
        width: channels of the temporal head (a 1x1 conv reduces the backbone's channels).
        shift_div: temporal shift of ``1/shift_div`` of the channels each way; 0 = no shift.
        kernel_size: temporal taps of each temporal convolution.
        dilations: one temporal convolution per entry, with that dilation.
        dropout: dropout before the classifier.
        motion_channels: 0, or the channels of the motion branch (a two-frame convolution
            on the pixels of consecutive sampled frames; see :class:`StreamingClassifier`).

    Example:
        >>> bb = build_backbone("mobilenet_v3_small", (112, 112, 3), weights="imagenet")
        >>> model = ClipClassifier(frame_feature_model(bb), num_classes=6, frames=8)
        >>> model(np.zeros((2, 8, 112, 112, 3), "float32"))["probabilities"].shape
        TensorShape([2, 6])
    """

    def __init__(self, features, num_classes, frames=None, width=64, shift_div=8,
                 kernel_size=3, dilations=(1,), dropout=0.0, motion_channels=0, **kwargs):
        _check_common(features, num_classes, frames, width, dropout)
        # === Layers ===
        reduce = keras.layers.Conv2D(int(width), 1, activation="relu", name="reduce")
        motion = _motion_layers(features, motion_channels, width)
        shift = TemporalShift(shift_div, name="temporal_shift") if shift_div else None
        shift_conv = (keras.layers.Conv2D(int(width), 3, padding="same", activation="relu",
                                          name="shift_conv") if shift_div else None)
        temporal = [TemporalConv(int(width), kernel_size, d, causal=False,
                                 name=f"temporal_conv_{i}") for i, d in enumerate(dilations)]
        classifier = keras.layers.Dense(int(num_classes), name="classifier")
        # === Functional model ===
        clip = _clip_input(features, frames)
        x = _per_frame(features, reduce, clip, frames)
        if motion is not None:
            x = _apply_motion(motion, x, clip, frames)
        if shift is not None:
            s = shift(x)
            s = UnfoldTime(frames, name="unfold_shift")([shift_conv(FoldTime(name="fold_shift")(s)), clip])
            x = keras.layers.Add(name="shift_residual")([x, s])
        for layer in temporal:
            x = layer(x)
        x = SpatialMean(name="spatial_mean")(x)
        x = keras.layers.GlobalAveragePooling1D(name="temporal_mean")(x)
        if dropout:
            x = keras.layers.Dropout(float(dropout), name="dropout")(x)
        x = classifier(x)
        probs = keras.layers.Activation("softmax", dtype="float32", name=OUTPUT)(x)
        super().__init__(inputs=clip, outputs={OUTPUT: probs}, **kwargs)
        # === Config ===
        self.features = features
        self.num_classes = int(num_classes)
        self.frames = None if frames is None else int(frames)
        self.width = int(width)
        self.shift_div = int(shift_div)
        self.kernel_size = int(kernel_size)
        self.dilations = tuple(int(d) for d in dilations)
        self.dropout = float(dropout)
        self.motion_channels = int(motion_channels)

    def get_config(self):
        config = self._config()
        config.update(num_classes=self.num_classes, frames=self.frames, width=self.width,
                      shift_div=self.shift_div, kernel_size=self.kernel_size,
                      dilations=self.dilations, dropout=self.dropout,
                      motion_channels=self.motion_channels)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class StreamingClassifier(_VideoClassifierBase):
    """Causal video classifier: trained on clips, run one frame at a time with carried state.

    Input ``"clip"``: ``(batch, frames, H, W, 3)`` RGB pixels in ``[0, 255]``; output
    ``{"probabilities": (batch, num_classes)}``: the softmax at the clip's last frame. Each
    frame's output depends only on that frame and the ``receptive_field - 1`` before it.
    :meth:`step_model` gives the one-frame model with explicit state (see module docstring).

    Args:
        features: per-frame feature model ``(H, W, 3) -> (h, w, C)`` (see
            :func:`frame_feature_model`).
        num_classes: number of activity classes.
        frames: clip length used in training, or ``None`` for any length.
        width: channels of the temporal layers.
        kernel_size: temporal taps of each causal convolution.
        dilations: one causal temporal convolution per entry, with that dilation; the
            receptive field is ``1 + (kernel_size - 1) * sum(dilations)`` frames (+1 with
            the motion branch); train on clips at least that long.
        spatial_kernel: spatial side of the temporal convolutions' kernels.
        dropout: dropout before the classifier (training only).
        motion_channels: 0, or the channels of a motion branch: a causal two-frame
            convolution on the pixels, initialised as a filtered frame difference (TSN's RGB-diff
            idea) and trained further, a small stride-2 CNN down to the feature level, fused with the backbone
            features by a 1x1 conv. Its state is the previous frame (``state_motion``).
        spatial_pool: ``"mean"`` or ``"max"``: how the temporal features (and the motion
            branch) are pooled over space; max keeps a small moving object's response.

    Example:
        >>> model = StreamingClassifier(frame_feature_model(bb), num_classes=6, frames=8)
        >>> stream = Streamer.from_keras(model)
        >>> for frame in frames:                       # (H, W, 3) float32 RGB
        ...     probs = stream(frame)["probabilities"]  # (6,)
    """

    def __init__(self, features, num_classes, frames=None, width=64, kernel_size=3,
                 dilations=(1, 2), spatial_kernel=3, dropout=0.0, motion_channels=0,
                 spatial_pool="mean", **kwargs):
        _check_common(features, num_classes, frames, width, dropout)
        if not dilations:
            raise UsageError(f"dilations needs at least one causal layer. Received: dilations={dilations!r}")
        if spatial_pool not in SPATIAL_POOLS:
            raise UsageError(f"spatial_pool must be one of {sorted(SPATIAL_POOLS)}. "
                             f"Received: spatial_pool={spatial_pool!r}")
        # === Layers ===
        reduce = keras.layers.Conv2D(int(width), 1, activation="relu", name="reduce")
        motion = _motion_layers(features, motion_channels, width, spatial_pool)
        temporal = [TemporalConv(int(width), kernel_size, d, spatial_kernel=spatial_kernel,
                                 causal=True, name=f"causal_conv_{i}")
                    for i, d in enumerate(dilations)]
        pool = SPATIAL_POOLS[spatial_pool](name="spatial_pool")
        drop = keras.layers.Dropout(float(dropout), name="dropout") if dropout else None
        classifier = keras.layers.Dense(int(num_classes), name="classifier")
        softmax = keras.layers.Activation("softmax", dtype="float32", name=OUTPUT)
        # === Functional model ===
        clip = _clip_input(features, frames)
        x = _per_frame(features, reduce, clip, frames)
        if motion is not None:
            x = _apply_motion(motion, x, clip, frames)
        for layer in temporal:
            x = layer(x)
        x = pool(x)
        x = LastFrame(name="last_frame")(x)
        if drop is not None:
            x = drop(x)
        probs = softmax(classifier(x))
        super().__init__(inputs=clip, outputs={OUTPUT: probs}, **kwargs)
        # === Config ===
        self.features = features
        self.num_classes = int(num_classes)
        self.frames = None if frames is None else int(frames)
        self.width = int(width)
        self.kernel_size = int(kernel_size)
        self.dilations = tuple(int(d) for d in dilations)
        self.spatial_kernel = int(spatial_kernel)
        self.dropout = float(dropout)
        self.motion_channels = int(motion_channels)
        self.spatial_pool = spatial_pool

    @property
    def receptive_field(self) -> int:
        """Frames that influence one output: ``1 + (kernel_size - 1) * sum(dilations)``, plus
        one with the motion branch."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations) + (1 if self.motion_channels else 0)

    def state_specs(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape (without batch) of every state tensor of :meth:`step_model`."""
        h, w = (int(v) for v in self.features.outputs[0].shape[1:3])
        out = {f"state_{i}": ((self.kernel_size - 1) * d, h, w, self.width)
               for i, d in enumerate(self.dilations)}
        if self.motion_channels:
            out["state_motion"] = (1, *self.frame_shape)
        return out

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """Zero buffers: the state before the first frame (= the clip's left padding)."""
        return {k: np.zeros((batch, *s), np.float32) for k, s in self.state_specs().items()}

    def step_model(self, batch_size: int | None = None) -> keras.Model:
        """One-frame model sharing this model's layers (and weights).

        ``batch_size`` fixes the batch axis (1 for a TFLite export). Inputs ``{"frame": (B, H, W, 3), "state_0": ..., ...}``; outputs
        ``{"probabilities": (B, num_classes), "state_0": ..., ...}`` with the updated buffers.
        """
        frame = keras.Input(self.frame_shape, batch_size=batch_size, name="frame")
        states = {k: keras.Input(s, batch_size=batch_size, name=k) for k, s in self.state_specs().items()}
        x = self.get_layer("reduce")(self.features(frame))
        new_states = {}
        if self.motion_channels:
            conv = self.get_layer("motion_conv")
            m, new_states["state_motion"] = StreamingStep(conv, name="motion_conv_step")(
                [self.get_layer("motion_scale")(frame), states["state_motion"]])
            for layer in self.layers:
                if layer.name.startswith("motion_down_"):
                    m = layer(m)
            if any(layer.name == "motion_pool" for layer in self.layers):
                m = self.get_layer("motion_pool")(m)
            x = self.get_layer("motion_fuse")(self.get_layer("motion_concat")([x, m]))
        for i in range(len(self.dilations)):
            conv = self.get_layer(f"causal_conv_{i}")
            x, new_states[f"state_{i}"] = StreamingStep(conv, name=f"{conv.name}_step")(
                [x, states[f"state_{i}"]])
        x = self.get_layer("spatial_pool")(x)
        probs = self.get_layer(OUTPUT)(self.get_layer("classifier")(x))
        # Inputs in sorted-name order: Keras flattens dicts by sorted keys, and the TFLite
        # converter feeds them back as a list in that order.
        inputs = dict(sorted({"frame": frame, **states}.items()))
        return keras.Model(inputs, {OUTPUT: probs, **new_states}, name=f"{self.name}_step")

    def get_config(self):
        config = self._config()
        config.update(num_classes=self.num_classes, frames=self.frames, width=self.width,
                      kernel_size=self.kernel_size, dilations=self.dilations,
                      spatial_kernel=self.spatial_kernel, dropout=self.dropout,
                      motion_channels=self.motion_channels, spatial_pool=self.spatial_pool)
        return config


MODELS = {"clip": ClipClassifier, "streaming": StreamingClassifier}


def build_video_classifier(kind: str, backbone, num_classes: int, *, frames: int | None = None,
                           level: str | None = None, **head) -> keras.Model:
    """A :class:`ClipClassifier` (``kind="clip"``) or :class:`StreamingClassifier`
    (``kind="streaming"``) on a built registry backbone (``build_backbone(name, (H, W, 3))``).

    Example:
        >>> bb = build_backbone("efficientnet_lite0", (96, 96, 3), weights="imagenet")
        >>> model = build_video_classifier("streaming", bb, 6, frames=8, width=32)
    """
    if kind not in MODELS:
        raise UsageError(f"kind must be one of {sorted(MODELS)}. Received: kind={kind!r}")
    return MODELS[kind](frame_feature_model(backbone, level), num_classes, frames=frames, **head)


# ============================================================================ streaming


class Streamer:
    """Runs a streaming step one frame at a time, carrying the state between calls.

    ``streamer(frame)`` takes one frame ``(H, W, 3)`` (RGB, 0..255; a batch ``(B, H, W, 3)``
    also works when the state was made for ``B``) and returns ``{"probabilities": (K,)}``;
    :meth:`reset` zeroes the state (new source, reconnect).

    Build it with :meth:`from_keras` (a :class:`StreamingClassifier`; the step runs as a
    compiled ``tf.function``) or :meth:`from_tflite` (a file from :func:`export_step_tflite`,
    run by ``ai_edge_litert``).

    Example:
        >>> stream = Streamer.from_tflite("step.tflite")
        >>> for frame in frames:
        ...     p = stream(frame)["probabilities"]
    """

    def __init__(self, step, state_specs: Mapping[str, Sequence[int]], batch: int = 1):
        self._step = step
        self.state_specs = {k: tuple(v) for k, v in state_specs.items()}
        self.batch = int(batch)
        self.reset()

    def reset(self) -> None:
        self.state = {k: np.zeros((self.batch, *s), np.float32)
                      for k, s in self.state_specs.items()}

    def __call__(self, frame) -> dict[str, np.ndarray]:
        frame = np.asarray(frame, np.float32)
        single = frame.ndim == 3
        if single:
            frame = frame[None]
        if frame.ndim != 4 or frame.shape[0] != self.batch:
            raise UsageError(f"a streaming step takes one frame (H, W, 3) or a batch of "
                             f"{self.batch}. Received: shape {frame.shape}")
        outputs = self._step({"frame": frame, **self.state})
        self.state = {k: np.asarray(outputs[k]) for k in self.state_specs}
        return {k: (np.asarray(v)[0] if single else np.asarray(v))
                for k, v in outputs.items() if k not in self.state_specs}

    @classmethod
    def from_keras(cls, model: StreamingClassifier, batch: int = 1) -> "Streamer":
        import tensorflow as tf

        step_model = model.step_model()
        fn = tf.function(lambda inputs: step_model(inputs, training=False), reduce_retracing=True)

        def step(inputs):
            return {k: v.numpy() for k, v in fn({k: tf.constant(v) for k, v in inputs.items()}).items()}

        return cls(step, model.state_specs(), batch)

    @classmethod
    def from_tflite(cls, path: str | Path, num_threads: int = 1) -> "Streamer":
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"no TFLite file at {path}. Received: path={str(path)!r}")
        interpreter = Interpreter(model_path=str(path), num_threads=int(num_threads))
        runner = interpreter.get_signature_runner()
        inputs = runner.get_input_details()
        if "frame" not in inputs:
            raise ModelError(f"{path.name} is not a streaming step (no 'frame' input). "
                             f"Received: inputs {sorted(inputs)}")
        specs = {k: tuple(int(v) for v in d["shape"][1:]) for k, d in inputs.items() if k != "frame"}
        batch = int(inputs["frame"]["shape"][0])
        return cls(lambda feed: runner(**feed), specs, batch)


def export_step_tflite(model: StreamingClassifier, path: str | Path) -> Path:
    """Write the one-frame step of ``model`` as a float32 TFLite file (batch 1).

    Signature ``serving_default``: inputs ``frame`` ``(1, H, W, 3)`` and ``state_0``, ...;
    outputs ``probabilities`` ``(1, K)`` and ``state_0``, ... (the buffers to feed back).
    Run it with :meth:`Streamer.from_tflite`.
    """
    import contextlib
    import io
    import warnings

    import tensorflow as tf

    if not isinstance(model, StreamingClassifier):
        raise UsageError(f"only a StreamingClassifier has a streaming step. Received: "
                         f"{type(model).__name__}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model.step_model(batch_size=1))
    try:
        # The converter feeds the dict inputs as a list (Keras warns about the structure).
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The structure of `inputs`")
            data = converter.convert()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ModelError(f"TFLite conversion of the streaming step failed "
                         f"({type(exc).__name__}: {first})") from exc
    return write_bytes_atomic(path, data)
