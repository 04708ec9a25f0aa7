"""Keras layers shared by backbones (serialisable, so `.keras` files load in safe mode)."""

from __future__ import annotations

import keras
from keras import ops

from visionsuite.backbones.registry import Preprocessing


@keras.saving.register_keras_serializable(package="visionsuite")
class PixelNormalization(keras.layers.Layer):
    """Maps RGB pixels in [0, 255] to what a backbone's weights expect.

    Computes ``(x[..., order] * scale - mean) / std`` where ``order`` reverses the channels
    when ``channel_order == "BGR"``.

    Args:
        scale: factor applied to the raw pixels.
        mean: per-channel mean (in the target channel order), subtracted after scaling.
        std: per-channel standard deviation.
        channel_order: ``"RGB"`` or ``"BGR"``.
    """

    def __init__(self, scale=1.0 / 255.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                 channel_order="RGB", **kwargs):
        super().__init__(**kwargs)
        if channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR'. Received: {channel_order!r}")
        self.scale = float(scale)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.channel_order = channel_order

    @classmethod
    def from_spec(cls, spec: Preprocessing, **kwargs) -> "PixelNormalization":
        return cls(spec.scale, spec.mean, spec.std, spec.channel_order, **kwargs)

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        if self.channel_order == "BGR":
            x = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)
        std = ops.convert_to_tensor(self.std, dtype=self.compute_dtype)
        return (x * self.scale - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, mean=self.mean, std=self.std,
                      channel_order=self.channel_order)
        return config
