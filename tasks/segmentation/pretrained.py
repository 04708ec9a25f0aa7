"""The default segmentation model: MediaPipe's selfie (person) segmentation as a visionsuite model.

The TFLite file comes from the ``mediapipe==0.10.21`` wheel on PyPI (Apache-2.0; fetched once
into the visionsuite cache by :func:`visionsuite.samples.selfie_segmentation_tflite`, offline
afterwards). The network takes 256x256 RGB in ``[0, 1]`` and returns one sigmoid channel (the
person probability).

:func:`selfie_segmentation_model` turns it, once, into a visionsuite ``.tflite`` model in the
cache: the graph gains a first ``MUL`` by 1/255, so that it takes RGB pixels in ``[0, 255]``
like every visionsuite model, and the file embeds its
:class:`~visionsuite.models.ModelMetadata` (task ``segmentation``, classes ``background`` /
``person``, input size 256). The TFLite runtime (:mod:`visionsuite.runtime`) then runs it like
any exported model, with no extra flags; the task's ``postprocess`` reads its single sigmoid
channel as the two classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visionsuite.errors import ModelError
from visionsuite.models import ModelMetadata

SELFIE_CLASSES = ("background", "person")
SELFIE_INPUT_SIZE = 256
SELFIE_INPUT_SCALE = 1.0 / 255.0
SELFIE_SOURCE = ("mediapipe==0.10.21 (PyPI, Apache-2.0): "
                 "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite")
MODEL_NAME = "mediapipe_selfie_segmentation.tflite"
# Bump when the conversion below changes, so cached files are rebuilt.
CONVERSION_VERSION = 1


def selfie_metadata() -> ModelMetadata:
    """What the converted selfie model is."""
    return ModelMetadata(
        task="segmentation", classes=SELFIE_CLASSES, input_size=SELFIE_INPUT_SIZE, backbone=None,
        task_config={"image_size": SELFIE_INPUT_SIZE},
        extra={"source": SELFIE_SOURCE, "licence": "Apache-2.0", "format": "tflite",
               "output": "one sigmoid channel: person probability",
               "input_scale_in_graph": SELFIE_INPUT_SCALE,
               "conversion_version": CONVERSION_VERSION})


def scale_tflite_input(model_bytes: bytes, scale: float, *, input_name: str = "image") -> bytes:
    """Return a TFLite model whose new float32 input is multiplied by ``scale`` and fed to the
    original input (one ``MUL`` op prepended to the main subgraph)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1:
        raise ModelError(f"expected a model with one input. Received: {len(graph.inputs)} inputs")
    old = graph.tensors[graph.inputs[0]]
    if old.type != schema.TensorType.FLOAT32:
        raise ModelError(f"expected a float32 input. Received: tensor type {old.type}")

    def add_buffer(data: bytes = b"") -> int:
        buffer = schema.BufferT()
        buffer.data = list(data) if data else None
        model.buffers.append(buffer)
        return len(model.buffers) - 1

    def add_tensor(name, shape, buffer) -> int:
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = name, list(shape), old.type, buffer
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    new_input = add_tensor(input_name.encode(), old.shape, add_buffer())
    factor = add_tensor(b"input_scale", [1],
                        add_buffer(np.array([scale], np.float32).tobytes()))
    codes = [k for k, c in enumerate(model.operatorCodes)
             if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.MUL]
    if codes:
        code = codes[0]
    else:
        opcode = schema.OperatorCodeT()
        opcode.builtinCode = opcode.deprecatedBuiltinCode = schema.BuiltinOperator.MUL
        opcode.version = 1
        model.operatorCodes.append(opcode)
        code = len(model.operatorCodes) - 1
    op = schema.OperatorT()
    op.opcodeIndex = code
    op.inputs = [new_input, factor]
    op.outputs = [graph.inputs[0]]
    op.builtinOptionsType = schema.BuiltinOptions.MulOptions
    op.builtinOptions = schema.MulOptionsT()
    graph.operators.insert(0, op)
    graph.inputs = [new_input]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def selfie_segmentation_model(source: str | Path | None = None,
                              out: str | Path | None = None) -> Path:
    """The visionsuite ``.tflite`` selfie segmentation model (built once into the cache).

    Args:
        source: MediaPipe's ``selfie_segmentation.tflite``; default: fetched from the
            mediapipe wheel (cached; raises :class:`~visionsuite.assets.AssetError` offline
            when it is not there yet).
        out: where to write the converted model; default: the visionsuite cache.
    """
    from visionsuite.runtime.metadata import embed_tflite_metadata, read_tflite_metadata

    if out is None:
        from visionsuite.assets import cache_dir

        out = cache_dir("models") / MODEL_NAME
    out = Path(out)
    if out.is_file():
        try:
            if (read_tflite_metadata(out).extra.get("conversion_version")
                    == CONVERSION_VERSION):
                return out
        except ModelError:
            pass  # damaged or older: rebuild
    if source is None:
        from visionsuite import samples

        source = samples.selfie_segmentation_tflite()
    source = Path(source)
    try:
        data = scale_tflite_input(source.read_bytes(), SELFIE_INPUT_SCALE)
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from exc
    except Exception as exc:  # a damaged flatbuffer raises anything
        raise ModelError(f"{source}: not a readable TFLite model ({type(exc).__name__})") from exc
    data = embed_tflite_metadata(data, selfie_metadata())
    from visionsuite.files import write_bytes_atomic

    return write_bytes_atomic(out, data)
