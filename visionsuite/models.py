"""Saving and loading task models with their metadata.

Every model visionsuite writes carries :class:`ModelMetadata` (task name, class names, input
size, backbone) so that it can be evaluated, exported and run with no other flags:

* ``.keras`` files hold it as ``visionsuite.json`` inside the zip (Keras ignores the entry);
* other formats (SavedModel, TFLite) carry it as described in :mod:`visionsuite.runtime`.

``.keras`` files are always loaded with ``safe_mode=True``: no lambdas or pickled code run.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any

from visionsuite.errors import ModelError, VisionsuiteError
from visionsuite.specs import InputSpec, OutputSpec
from visionsuite.files import atomic_path

METADATA_NAME = "visionsuite.json"
FORMAT_VERSION = 2
# v1 files (one output, a square RGB input) name their only output this way when read
V1_OUTPUT = "probabilities"


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """What a visionsuite model is: enough to run it with no other flags.

    Version 2 declares the input (:class:`~visionsuite.specs.InputSpec`) and the named outputs
    (:class:`~visionsuite.specs.OutputSpec`); version-1 files (``input_size`` only) still load:
    their input becomes a square RGB ``HWC`` spec and their one output is named
    ``"probabilities"``. ``input_size`` may still be given instead of ``input_spec``.
    """

    # (str) task plugin name, e.g. "classification"
    task: str
    # (tuple) class names, index order of the model output
    classes: tuple[str, ...]
    # (InputSpec) what the model eats (shape without batch axis, layout, dtype, divisor);
    # an int is the side of a square RGB image (the v1 positional ``input_size``)
    input_spec: InputSpec | int | None = None
    # (str | None) backbone registry name
    backbone: str | None = None
    # (dict) the task's config, as saved by training
    task_config: dict = dataclasses.field(default_factory=dict)
    # (dict) free-form extras (e.g. the preprocessing spec, export details)
    extra: dict = dataclasses.field(default_factory=dict)
    # (tuple) the model's named outputs, in the order of a list-output model
    outputs: tuple[OutputSpec, ...] = ()
    # (dict) how the model was made: git commit, config, data fingerprint, versions, metrics
    record: dict = dataclasses.field(default_factory=dict)
    # (int | None) side of a square image input (v1 files; derived from input_spec otherwise)
    input_size: int | None = None
    # (int) metadata schema version
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        spec = self.input_spec
        if isinstance(spec, dict):
            spec = InputSpec.from_dict(spec)
        elif isinstance(spec, int):  # v1 callers: ModelMetadata(task, classes, input_size)
            spec = InputSpec.image(spec)
        if spec is None:
            if self.input_size is None:
                raise ModelError("model metadata needs input_spec (or input_size). "
                                 "Received: neither")
            spec = InputSpec.image(int(self.input_size))
        object.__setattr__(self, "input_spec", spec)
        object.__setattr__(self, "input_size", spec.square_size)
        outputs = tuple(OutputSpec.from_dict(o) if not isinstance(o, OutputSpec) else o
                        for o in self.outputs)
        object.__setattr__(self, "outputs", outputs or (OutputSpec(V1_OUTPUT),))
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "format_version", FORMAT_VERSION)  # read v1 as v2

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes)
        d["input_spec"] = self.input_spec.to_dict()
        d["outputs"] = [o.to_dict() for o in self.outputs]
        return json.dumps(d, indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str, source: str = "metadata") -> "ModelMetadata":
        try:
            d = json.loads(text)
            d["classes"] = tuple(d["classes"])
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in d.items() if k in known})
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{source}: invalid visionsuite metadata ({exc})") from exc
        except VisionsuiteError as exc:
            raise ModelError(f"{source}: invalid visionsuite metadata ({exc})") from exc


def save_keras_model(model: Any, path: str | Path, metadata: ModelMetadata) -> Path:
    """Save ``model`` as ``.keras`` with metadata, atomically (a kill never leaves a
    half-written file at ``path``)."""
    from visionsuite.files import atomic_path

    path = Path(path)
    if path.suffix != ".keras":
        raise ModelError(f"model files must end in .keras. Received: {path}")
    with atomic_path(path, keep_suffix=True) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.writestr(METADATA_NAME, metadata.to_json())
    return path


def read_keras_metadata(path: str | Path) -> ModelMetadata:
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            if METADATA_NAME not in zf.namelist():
                raise ModelError(f"{path}: not a visionsuite model (no {METADATA_NAME} inside); "
                                 f"train it with `visionsuite train`")
            return ModelMetadata.from_json(zf.read(METADATA_NAME).decode(), str(path))
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{path}: not a readable .keras file ({exc})") from exc


def load_keras_model(path: str | Path, *, compile: bool = False):
    """Load a ``.keras`` model in safe mode, with a one-line error for a bad file."""
    import keras

    import visionsuite.backbones.layers  # noqa: F401  (registers serialisable layers)

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:  # import the task plugin first: it registers the task's serialisable layers
        import importlib

        from visionsuite.plugins import get_task_class

        for module in get_task_class(read_keras_metadata(path).task).keras_modules:
            importlib.import_module(module)
    except (VisionsuiteError, ImportError):
        pass  # a plain Keras file, a corrupt one or a broken plugin: keras reports it below
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:  # keras raises many types for corrupt files
        msg = " ".join(str(exc).split())
        if "safe_mode" in msg or "unsafe_deserialization" in msg:
            what = ("a Lambda layer" if "Lambda" in msg
                    else "Python code (a lambda or a pickled function)")
            raise ModelError(f"{path}: refused to load: the model contains {what}, which could "
                             f"run arbitrary code; visionsuite only loads models in Keras safe "
                             f"mode. Rebuild the model without it (use a registered layer "
                             f"instead)") from None
        if len(msg) > 300:  # cut at a word, never mid-sentence without saying so
            msg = msg[:300].rsplit(" ", 1)[0] + " ..."
        raise ModelError(f"{path}: cannot load model ({type(exc).__name__}: "
                         f"{msg or 'no details'})") from exc


def check_task(metadata: ModelMetadata, task: str, source: str) -> None:
    """Fail clearly when a model file was made for another task."""
    if metadata.task != task:
        raise ModelError(f"{source} is a {metadata.task!r} model, not {task!r}; "
                         f"use `visionsuite ... {metadata.task}` or another model")
