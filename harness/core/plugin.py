"""What every plugin has in common: its parameter model, its class attributes, and the protocols
through which the core hands plugins to each other (a registry to fill, a source to look them up).

Every plugin class carries ``name`` (recipe name), ``version`` (part of stage keys: bump it when
results change), ``summary`` (one line for ``harness plugins``) and ``Params``, a pydantic model
(``extra="forbid"``) of what a recipe may set. A plugin is generic over its ``Params``: declare
``class MyMerge(MergePlugin[MyParams])`` and its methods receive a ``MyParams``; ``Params`` is
taken from that argument when the class does not set it. Parameters typed :data:`InputPath` are
checked for existence at plan time, all at once. Parameters marked :data:`EXECUTION_ONLY` change how a
stage runs, not its results: they stay out of its key, so changing one reuses finished stages.
"""

from __future__ import annotations

import types
from abc import ABC
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, Literal, Protocol, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator

Direction = Literal["higher", "lower"]


class InputPathMarker:
    """Marks a parameter as a path that must exist before anything runs."""


#: A path the user brings (a checkpoint, a corpus root); checked at plan time.
InputPath = Annotated[Path, InputPathMarker()]


class ExecutionOnlyMarker:
    """Marks a parameter that changes how a stage runs (memory, caching, checkpoints), never its results."""


#: ``max_frame_gb: Annotated[float, EXECUTION_ONLY] = 4.0``: the stage key holds the parameter's default
#: whatever its value, so a finished stage is reused when only such parameters changed (and keys made
#: before the marker stay as they were); the value a stage ran with is in its ``outcome.json``.
EXECUTION_ONLY = ExecutionOnlyMarker()


def _list_only(annotation: Any) -> bool:
    """Whether a field takes a list and never a single string (``list[str]``, ``list[str] | None``)."""
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin is Annotated:
        return _list_only(get_args(annotation)[0])
    if origin is Union or isinstance(annotation, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return bool(options) and all(_list_only(a) for a in options)
    return False


class PluginParams(BaseModel):
    """Base for every plugin's ``Params``: unknown keys are errors, values are immutable, floats are finite;
    one string given where a list is expected (``--param dev=test-clean``) is a list of that one string."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _one_string_is_a_list(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        fixed = {key: [value] for key, value in data.items()
                 if isinstance(value, str) and key in fields and _list_only(fields[key].annotation)}
        return {**data, **fixed} if fixed else data


P = TypeVar("P", bound=PluginParams)


class Plugin(ABC, Generic[P]):
    """What every plugin class has in common."""

    kind: ClassVar[str]
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    summary: ClassVar[str] = ""
    Params: ClassVar[type[PluginParams]] = PluginParams

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Params" in cls.__dict__:
            return
        for base in getattr(cls, "__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Plugin):
                (arg,) = get_args(base)
                if isinstance(arg, type) and issubclass(arg, PluginParams):
                    cls.Params = arg
                    return


class PluginRegistry(Protocol):
    """Handed to a plugin package's hook: ``add`` records one plugin class of the hook's kind."""

    kind: str

    def add(self, cls: type[Plugin[Any]]) -> None: ...


class PluginSource(Protocol):
    """Where a running stage finds other plugins (a downstream's task for supervised fine-tuning)."""

    def create(self, kind: str, name: str) -> Plugin[Any]: ...

    def names(self, kind: str) -> list[str]: ...
