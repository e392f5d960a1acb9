"""Plugin parameters: validation with one-sentence errors, ``k=v`` parsing, input-path discovery, the split
between what a stage key holds and what only changes how a stage runs."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from harness.core.errors import HarnessError
from harness.core.plugin import ExecutionOnlyMarker, InputPathMarker, PluginParams
from harness.core.suggest import suggest


def describe_validation_error(exc: ValidationError, model: type[BaseModel], where: str) -> str:
    """One sentence for the first problem pydantic found, naming the key and what was expected."""
    return describe_error(exc.errors()[0], model, where)


def describe_validation_errors(exc: ValidationError, model: type[BaseModel], where: str) -> list[str]:
    """One sentence for every problem pydantic found."""
    return [describe_error(err, model, where) for err in exc.errors()]


def describe_error(err: Any, model: type[BaseModel], where: str) -> str:
    """One sentence for one pydantic error, naming the key and what was expected."""
    loc = ".".join(str(p) for p in err["loc"])
    path = f"{where}.{loc}" if loc else where
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(err["loc"][-1])
        return f"{path}: unknown key {key!r}{suggest(key, list(model.model_fields))}"
    if kind == "missing":
        return f"{path}: this key is required"
    got = err.get("input")
    got_text = f" (got {got!r})" if not isinstance(got, (dict, list)) else ""
    msg = err["msg"].removeprefix("Value error, ")  # a validator's own sentence, without pydantic's prefix
    return f"{path}: {msg[0].lower()}{msg[1:]}{got_text}"


def changed_params(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Where two resolved parameter sets differ: ``(name, old, new)``, values as text (``default`` for an
    unset one), names in order."""

    def shown(value: Any) -> str:
        return "default" if value is None else str(value)

    return [(k, shown(old.get(k)), shown(new.get(k))) for k in sorted({*old, *new}) if old.get(k) != new.get(k)]


def validate_params(params_cls: type[PluginParams], values: dict[str, Any], where: str) -> PluginParams:
    """Validate ``values`` against a plugin's schema; raise one clear :class:`HarnessError`."""
    try:
        return params_cls.model_validate(values)
    except ValidationError as exc:
        message = describe_validation_error(exc, params_cls, where)
        raise HarnessError(message if message.endswith((".", "?", "!")) else message + ".") from None


def parse_key_values(pairs: list[str] | None) -> dict[str, Any]:
    """``["alpha=0.25", "scope=model"]`` -> ``{"alpha": 0.25, "scope": "model"}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise HarnessError(f"--param {pair!r} is not of the form key=value; write e.g. --param alpha=0.25.")
        out[key.strip()] = yaml.safe_load(value) if value else ""
    return out


def _is_input_path(annotation: Any) -> bool:
    if any(isinstance(m, InputPathMarker) for m in getattr(annotation, "__metadata__", ())):
        return True
    return any(_is_input_path(arg) for arg in typing.get_args(annotation))


def input_path_fields(params_cls: type[BaseModel]) -> list[str]:
    """Names of the fields typed :data:`harness.core.interfaces.InputPath` (optionally in a union or list)."""
    names = []
    for name, info in params_cls.model_fields.items():
        if any(isinstance(m, InputPathMarker) for m in info.metadata) or _is_input_path(info.annotation):
            names.append(name)
    return names


def input_paths(params: BaseModel) -> dict[str, Path]:
    """The user-supplied paths in validated params, by field name (lists give name[i])."""
    out: dict[str, Path] = {}
    for name in input_path_fields(type(params)):
        value = getattr(params, name)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                out[f"{name}[{i}]"] = Path(v)
        else:
            out[name] = Path(value)
    return out


def execution_only_fields(params_cls: type[BaseModel]) -> list[str]:
    """Names of the fields marked :data:`harness.core.plugin.EXECUTION_ONLY`."""
    return [name for name, info in params_cls.model_fields.items()
            if any(isinstance(m, ExecutionOnlyMarker) for m in info.metadata)]


def keyed_params(params: BaseModel | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``params`` as a stage stores them: what its key holds (every execution-only field at its default,
    so that changing one reuses a finished stage) and the execution-only values that differ from it."""
    if params is None:
        return {}, {}
    dumped = params.model_dump(mode="json")
    names = execution_only_fields(type(params))
    if not names:
        return dumped, {}
    defaults = {name: type(params).model_fields[name].get_default(call_default_factory=True) for name in names}
    keyed = params.model_copy(update=defaults).model_dump(mode="json")
    return keyed, {name: dumped[name] for name in names if name in dumped and dumped[name] != keyed.get(name)}


def with_absolute_inputs(params: BaseModel) -> BaseModel:
    """``params`` with every relative input path made absolute against the working directory.

    Plugins that store the paths they read (a corpus writing its manifest) call this first, so the
    stored paths read back from any folder.
    """
    update: dict[str, Any] = {}
    for name in input_path_fields(type(params)):
        value = getattr(params, name)
        if isinstance(value, (list, tuple)):
            update[name] = type(value)(Path(v).absolute() for v in value)
        elif value is not None:
            update[name] = Path(value).absolute()
    return params.model_copy(update=update) if update else params


def type_text(annotation: Any) -> str:
    """A parameter's type as a recipe writer reads it: ``int``, ``path | None``, ``'full' | 'header'``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        if any(isinstance(m, InputPathMarker) for m in annotation.__metadata__):
            return "path"
        return type_text(args[0])
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        parts = [type_text(a) for a in args if a is not type(None)]
        return " | ".join(parts + (["None"] if type(None) in args else []))
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(a) for a in args)}]" if args else name
    if annotation is Any:
        return "any"
    if isinstance(annotation, type):
        return "path" if issubclass(annotation, Path) else annotation.__name__
    return str(annotation).replace("typing.", "")


def describe_params(params_cls: type[BaseModel]) -> list[dict[str, str]]:
    """Each parameter's recipe key, type, default (``required`` when it has none) and description (which
    says so for an execution-only one)."""
    out = []
    execution_only = set(execution_only_fields(params_cls))
    for name, info in params_cls.model_fields.items():
        if info.is_required():
            default = "required"
        else:
            value = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
            default = yaml.safe_dump(json.loads(json.dumps(value, default=str)), default_flow_style=True,
                                     width=10_000).strip().removesuffix("...").strip()
        description = info.description or ""
        if name in execution_only:
            description = "; ".join(filter(None, [description, "execution-only: not part of the stage key"]))
        out.append({"name": info.alias or name, "type": type_text(info.annotation), "default": default,
                    "description": description})
    return out


def is_list_field(params_cls: type[BaseModel], name: str) -> bool:
    """Whether a field itself takes a list (so a list value is a value, not a sweep)."""
    info = params_cls.model_fields.get(name)
    if info is None:
        return False
    return _accepts_list(info.annotation)


def _accepts_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin is typing.Annotated:
        return _accepts_list(typing.get_args(annotation)[0])
    return any(_accepts_list(a) for a in typing.get_args(annotation)) if origin is not None else False
