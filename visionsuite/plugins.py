"""Entry-point discovery for task plugins (group ``visionsuite.tasks``).

Only installed entry points are loaded -- never arbitrary modules or paths. Loading is lazy
and per name: a broken plugin fails alone, with a one-line reason, and the others still load.
"""

from __future__ import annotations

import dataclasses
from importlib import metadata

from visionsuite.errors import UsageError, VisionsuiteError, did_you_mean

TASK_GROUP = "visionsuite.tasks"


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """One discovered entry point and the distribution that provides it."""

    name: str
    value: str  # "module:attr"
    dist: str  # "name version"
    entry_point: metadata.EntryPoint = dataclasses.field(repr=False, compare=False)


def discover(group: str = TASK_GROUP) -> tuple[dict[str, PluginInfo], list[str]]:
    """Find entry points of ``group`` without importing them.

    Returns the plugins by name and a list of one-line problems (duplicate names).
    The first distribution found for a duplicated name wins; the rest are reported.
    """
    found: dict[str, PluginInfo] = {}
    problems: list[str] = []
    # Stable sort by name: for a duplicated name the distribution first on sys.path wins.
    for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
        info = PluginInfo(ep.name, ep.value, dist, ep)
        if ep.name in found:
            if found[ep.name].value != ep.value:
                problems.append(
                    f"{group}: duplicate name {ep.name!r} from {dist} ({ep.value}); "
                    f"keeping {found[ep.name].dist} ({found[ep.name].value})"
                )
            continue
        found[ep.name] = info
    return found, problems


class PluginLoadError(VisionsuiteError):
    """An entry point that exists but cannot be imported or is not a valid plugin."""


def load_plugin(info: PluginInfo, base: type) -> type:
    """Import one entry point and check it is a subclass of ``base``."""
    try:
        obj = info.entry_point.load()
    except Exception as exc:  # a plugin's import can fail in any way
        raise PluginLoadError(
            f"plugin {info.name!r} ({info.value}, from {info.dist}) failed to load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise PluginLoadError(
            f"plugin {info.name!r} ({info.value}, from {info.dist}) is not a "
            f"{base.__module__}.{base.__qualname__} subclass. Received: {obj!r}"
        )
    return obj


def task_names() -> list[str]:
    """Names of the installed tasks (nothing is imported)."""
    return sorted(discover(TASK_GROUP)[0])


def get_task_class(name: str):
    """Load the task class registered under ``name``."""
    from visionsuite.task import Task

    plugins, _ = discover(TASK_GROUP)
    if name not in plugins:
        raise UsageError(f"unknown task {name!r}.{did_you_mean(name, plugins)}")
    cls = load_plugin(plugins[name], Task)
    if getattr(cls, "name", None) != name:
        raise PluginLoadError(
            f"plugin {name!r} ({plugins[name].value}) declares name={getattr(cls, 'name', None)!r};"
            f" the entry-point name and the class's `name` must match"
        )
    return cls


def load_all_tasks() -> tuple[dict[str, type], dict[str, str]]:
    """Load every task: (classes by name, one-line errors by name). Never raises for one
    broken plugin."""
    plugins, problems = discover(TASK_GROUP)
    loaded, errors = {}, {}
    for name in plugins:
        try:
            loaded[name] = get_task_class(name)
        except VisionsuiteError as exc:
            errors[name] = str(exc)
    for p in problems:
        errors.setdefault(p.split("'")[1] + " (duplicate)", p)
    return loaded, errors


def task_for_model(metadata, task=None, overrides: dict | None = None, *,
                   source: str = "model"):
    """The one way to rebuild the task that runs a model: the plugin named by
    ``metadata.task`` (``task``, a name or an instance, must match it), configured from the
    config saved in the model plus ``overrides``; the model's input fixes ``image_size``.

    Args:
        metadata: the model's :class:`~visionsuite.models.ModelMetadata`.
        task: the task the caller asked for (a name or a Task), or ``None``.
        overrides: task options, e.g. ``{"top_k": 3}``.
        source: the model reference, for messages.
    """
    from visionsuite.config import build_config
    from visionsuite.models import check_task
    from visionsuite.task import Task

    if isinstance(task, Task):
        check_task(metadata, task.name, source)
        cls, base = type(task), dataclasses.asdict(task.config)
    else:
        check_task(metadata, str(task) if task is not None else metadata.task, source)
        cls, base = get_task_class(metadata.task), dict(metadata.task_config)
    known = {f.name for f in dataclasses.fields(cls.Config)}
    fixed = {}
    size = metadata.input_spec.square_size
    if "image_size" in known and size is not None:
        fixed["image_size"] = size
    config = build_config(cls.Config, {k: v for k, v in base.items() if k in known},
                          dict(overrides or {}), fixed, source=f"{source}: task")
    return cls(config)
