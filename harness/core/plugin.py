"""What every plugin has in common: its parameter model, its class attributes, and the protocols
through which the core hands plugins to each other (a registry to fill, a source to look them up).

Every plugin class carries ``name`` (recipe name), ``version`` (part of stage keys: bump it when
results change), ``summary`` (one line for ``harness plugins``) and ``Params``, a pydantic model
(``extra="forbid"``) of what a recipe may set. A plugin is generic over its ``Params``: declare
``class MyMerge(MergePlugin[MyParams])`` and its methods receive a ``MyParams``; ``Params`` is
taken from that argument when the class does not set it. Parameters typed :data:`InputPath` are
checked for existence at plan time, all at once.
"""

from __future__ import annotations

from abc import ABC
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, Literal, Protocol, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict

Direction = Literal["higher", "lower"]


class InputPathMarker:
    """Marks a parameter as a path that must exist before anything runs."""


#: A path the user brings (a checkpoint, a corpus root); checked at plan time.
InputPath = Annotated[Path, InputPathMarker()]


class PluginParams(BaseModel):
    """Base for every plugin's ``Params``: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
