"""Loading checkpoints from outside without running their code.

A PyTorch checkpoint is a pickle, and a pickle can call any function while it loads. This module
loads them with ``torch.load(weights_only=True)`` (torch's restricted unpickler) plus a short
allow-list of *names* that released speech checkpoints carry beside their tensors: fairseq's
``Dictionary`` and config dataclasses, omegaconf containers, ``argparse.Namespace``, numpy scalars.
Each such name is bound to an :class:`Inert` placeholder class that only records the arguments and
state it is given; nothing from those packages is imported or called, so neither fairseq nor
omegaconf needs to be installed. :func:`to_plain` turns placeholders of configs back into dicts.

Harmless constants (``builtins.Ellipsis``, which ``typing.Tuple[int, ...]`` in an omegaconf
config's metadata pickles through) are bound to themselves.

Before loading, the pickle stream is read statically (:func:`pickle_globals`): a checkpoint that
names anything outside torch's own allow-list and ours (``os.system``, ``builtins.exec``, ...)
is refused with a :class:`~harness.core.errors.CheckpointError` and nothing in it runs. The work
and memory spent deciding are bounded: a zip entry declaring more than :data:`MAX_INFLATED_BYTES`
beyond what the file stores, or a pickle of more than :data:`MAX_PICKLE_OPS` operations, is refused
before it is inflated or read further.
"""

from __future__ import annotations

import _compat_pickle
import io
import json
import pickletools
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import torch

from harness.core.errors import CheckpointError
from harness.core.hub import missing_checkpoint

# Names bound to inert placeholders: modules whose *classes* hold data in released checkpoints.
_INERT_CLASS_PREFIXES = (
    "fairseq.",
    "fairseq2.",
    "omegaconf.",
    "hydra.",
    "argparse.",
    "typing.",
    "enum.",
    "pathlib.",
    "numpy.",
    "collections.",
)
# ... and a few lower-case names that data (not code) is pickled through.
_INERT_NAMES = frozenset(
    {
        "collections.defaultdict",
        "numpy.core.multiarray.scalar",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy._core.multiarray._reconstruct",
        "numpy.dtype",
        "numpy.ndarray",
        "_codecs.encode",
        "_operator.getitem",
        "typing.Any",
    }
    | {
        f"builtins.{t}"
        for t in ("str", "int", "float", "bool", "dict", "list", "tuple", "set", "frozenset", "bytes", "object",
                  "NoneType", "complex")
    }
)
# Constants bound to themselves: they are values, not callables.
_CONSTANTS = {"builtins.Ellipsis": Ellipsis, "builtins.NotImplemented": NotImplemented}

#: The most pickle operations one checkpoint may hold. A released fairseq checkpoint (configs,
#: optimizer history, a dictionary of a few thousand symbols) holds well under a million; scanning
#: this many takes a few seconds.
MAX_PICKLE_OPS = 2_000_000
#: How many bytes the entries of a zip checkpoint may declare beyond the file's own size.
#: ``torch.save`` stores its entries uncompressed, so a real checkpoint declares about its file size;
#: a "zip bomb" declares far more than it stores.
MAX_INFLATED_BYTES = 64 * 2**20

_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
)
_LEGACY_PICKLES = 4  # magic number, protocol, sys info, the object


class Inert:
    """Stands in for a class the checkpoint names but that is never imported or called.

    Calling it, creating it and setting its state only records ``args`` and ``state``.
    """

    qualified_name: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Inert:
        obj = object.__new__(cls)
        object.__setattr__(obj, "args", args)
        object.__setattr__(obj, "state", None)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "state", state)

    def __repr__(self) -> str:
        return f"<inert {self.qualified_name}>"


def is_inert_name(name: str) -> bool:
    """Whether ``name`` may be bound to a placeholder: a data class of a known package, or listed."""
    if name in _INERT_NAMES:
        return True
    last = name.rsplit(".", 1)[-1]
    return name.startswith(_INERT_CLASS_PREFIXES) and last[:1].isupper()


def _placeholder(name: str) -> type[Inert]:
    return type(name.rsplit(".", 1)[-1], (Inert,), {"qualified_name": name, "__module__": __name__})


# --------------------------------------------------------------------------- static reading


class _TooLarge(Exception):
    """A pickle past :data:`MAX_PICKLE_OPS` operations."""


def _scan_pickle(stream: io.BufferedIOBase, found: set[str], budget: list[int]) -> None:
    """Add every global the next pickle in ``stream`` names to ``found`` (reads up to its STOP).

    ``budget`` holds the operations still allowed (shared by every pickle of one checkpoint);
    :class:`_TooLarge` is raised when it runs out.
    """
    recent: list[Any] = []
    memo: dict[int, Any] = {}
    for op, arg, _pos in pickletools.genops(stream):
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLarge
        name = op.name
        if name in _STRING_OPS:
            recent.append(arg)
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            recent.append(memo.get(int(arg)))
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = recent[-1] if recent else None
        elif name in ("GLOBAL", "INST"):
            module, _, qual = str(arg).partition(" ")
            # protocol 2 writes Python 2 names (__builtin__.unicode); read them as unpicklers do
            if (module, qual) in _compat_pickle.NAME_MAPPING:
                module, qual = _compat_pickle.NAME_MAPPING[(module, qual)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
            found.add(f"{module}.{qual}")
            recent.append(None)
        elif name == "STACK_GLOBAL":
            module, qual = (recent[-2:] + [None, None])[:2] if len(recent) >= 2 else (None, None)
            ok = isinstance(module, str) and isinstance(qual, str)
            found.add(f"{module}.{qual}" if ok else "<a global computed while loading>")
            recent.append(None)
        else:
            recent.append(None)
        if len(recent) > 64:
            del recent[:-8]


def pickle_globals(path: Path) -> set[str]:
    """Every module-level name (function or class) the pickles of a torch checkpoint refer to.

    Reads zip checkpoints (``*/data.pkl``) and the legacy format (consecutive pickles) without
    executing anything. Raises :class:`CheckpointError` for files that are not readable pickles.
    """
    path = Path(path)
    found: set[str] = set()
    budget = [MAX_PICKLE_OPS]
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(0)
            if head.startswith(b"PK"):
                try:
                    archive = zipfile.ZipFile(f)
                except zipfile.BadZipFile:
                    raise CheckpointError(
                        f"{path} is truncated or damaged (its zip directory is unreadable); download or copy it again."
                    ) from None
                names = archive.namelist()
                if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
                    raise CheckpointError(
                        f"{path} is a TorchScript archive, which carries code; give the original checkpoint "
                        "or its weights as safetensors."
                    )
                _check_declared_sizes(archive, path)
                pickles = [n for n in names if n.endswith("data.pkl")]
                if not pickles:
                    raise CheckpointError(f"{path} is a zip file but not a PyTorch checkpoint (no data.pkl inside).")
                for member in pickles:
                    with archive.open(member) as data:
                        _scan_pickle(io.BufferedReader(data), found, budget)  # type: ignore[arg-type]
            else:
                # magic number, protocol, sys info, then the object; what follows is storage data
                for i in range(_LEGACY_PICKLES):
                    if i > 0:
                        pos = f.tell()
                        if not f.read(1):
                            break
                        f.seek(pos)
                    _scan_pickle(f, found, budget)  # type: ignore[arg-type]
    except CheckpointError:
        raise
    except _TooLarge:
        raise CheckpointError(
            f"{path} was refused because its pickle holds more than {MAX_PICKLE_OPS:,} operations, far more than "
            "a checkpoint's configs need; nothing in it was run (give weights as safetensors)."
        ) from None
    except (ValueError, EOFError, zipfile.BadZipFile, OSError, KeyError) as exc:
        raise CheckpointError(
            f"{path} is truncated or not a PyTorch checkpoint ({_short(exc)}); download or copy it again."
        ) from None
    return found


def _check_declared_sizes(archive: zipfile.ZipFile, path: Path) -> None:
    """Refuse a zip whose entries declare far more bytes than the file holds, before inflating any."""
    declared = sum(info.file_size for info in archive.infolist())
    stored = path.stat().st_size
    if declared > stored + MAX_INFLATED_BYTES:
        raise CheckpointError(
            f"{path} was refused because its zip entries would inflate to {declared / 2**20:,.0f} MiB from a "
            f"{stored / 2**20:,.1f} MiB file (more than {MAX_INFLATED_BYTES // 2**20} MiB beyond it), which no "
            "torch.save file does; nothing in it was inflated or run."
        )


# --------------------------------------------------------------------------- loading


def _torch_allowed() -> set[str]:
    from torch import _weights_only_unpickler as wou

    return set(wou._get_allowed_globals()) | set(wou._get_user_allowed_globals())


def load_torch_checkpoint(path: Path) -> Any:
    """Load a ``torch.save`` file without running code; see the module docstring for the rules.

    Raises :class:`CheckpointError` (one sentence) for unsafe, truncated or non-checkpoint files.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(missing_checkpoint(path))
    names = pickle_globals(path)
    unknown = sorted(names - _torch_allowed())
    refused = [n for n in unknown if not is_inert_name(n) and n not in _CONSTANTS]
    if refused:
        shown = ", ".join(refused[:4]) + (f" and {len(refused) - 4} more" if len(refused) > 4 else "")
        raise CheckpointError(
            f"{path} was refused because loading it would call {shown}, which can run code; "
            "nothing in it was run (give weights as safetensors, or a checkpoint that holds only tensors and configs)."
        )
    pairs = [(_CONSTANTS[n], n) if n in _CONSTANTS else (_placeholder(n), n) for n in unknown]
    try:
        with torch.serialization.safe_globals(pairs):
            return torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:  # torch's unpickler is the last gate: any refusal or damage ends here
        text = _short(exc)
        if "Unsupported" in text or "unrecognized" in text or "weights_only" in text.lower():
            raise CheckpointError(f"{path} was refused by the safe loader ({text}); nothing in it was run.") from None
        raise CheckpointError(
            f"{path} is truncated or not a PyTorch checkpoint ({text}); download or copy it again."
        ) from None


def _short(exc: Exception) -> str:
    """The first line of an exception, or its type when that line is long or not plain text."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.split(". ")[0].rstrip(".")
    if not text or len(text) > 160 or not text.isprintable() or "\\x" in text:
        return type(exc).__name__
    return text


_INTERP = re.compile(r"^\$\{([A-Za-z0-9_.]+)\}$")


def to_plain(obj: Any) -> Any:
    """Placeholders of configs (omegaconf containers, argparse.Namespace, enums) -> plain Python.

    Other placeholders are returned as they are; ``${a.b}`` interpolations are resolved against
    the outermost container given.
    """
    plain = _to_plain(obj)
    return _resolve(plain, plain)


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, Inert):
        name = obj.qualified_name
        state = obj.state
        if name.startswith("omegaconf.") and isinstance(state, dict):
            if "_content" in state:
                content = state["_content"]
                if isinstance(content, dict):
                    return {k: _to_plain(v) for k, v in content.items()}
                if isinstance(content, (list, tuple)):
                    return [_to_plain(v) for v in content]
                return content  # None, "???" (missing) or an interpolation string
            if "_val" in state:
                return _to_plain(state["_val"])
        if name == "argparse.Namespace" and isinstance(state, dict):
            return {k: _to_plain(v) for k, v in state.items()}
        if state is None and len(obj.args) == 1 and isinstance(obj.args[0], (str, int, float, bool)):
            return obj.args[0]  # an enum member or a path: its value
        return obj
    if isinstance(obj, type) and issubclass(obj, Inert):
        return obj.qualified_name
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_plain(v) for v in obj)
    return obj


def _lookup(root: Any, dotted: str) -> Any:
    node = root
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def _resolve(obj: Any, root: Any, depth: int = 0) -> Any:
    if isinstance(obj, dict):
        return {k: _resolve(v, root, depth) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v, root, depth) for v in obj]
    if isinstance(obj, str) and depth < 8:
        m = _INTERP.match(obj)
        if m:
            try:
                return _resolve(_lookup(root, m.group(1)), root, depth + 1)
            except KeyError:
                return obj
    return obj


# --------------------------------------------------------------------------- tensors


def tensors_only(state: Any, where: Path) -> dict[str, torch.Tensor]:
    """``state`` as a flat {name: tensor} dict; raise one sentence if it is not a state dict."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{where} does not hold a state dict (found {type(state).__name__}).")
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def read_config_object(path: Path, holds: str) -> dict[str, Any]:
    """The JSON object in a model's config file; one sentence when it is not JSON or not an object
    (``holds`` says what the object should hold, e.g. "of config fields")."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); the model folder is damaged.") from None
    if not isinstance(raw, dict):
        raise CheckpointError(
            f"{path} holds a JSON {type(raw).__name__}, not an object {holds}; the model folder is damaged."
        )
    return raw


def load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``.bin``/``.pt``/``.pth``), safely."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise CheckpointError(
                f"{path} is truncated or not a safetensors file ({str(exc)[:120]}); download or copy it again."
            ) from None
    obj = load_torch_checkpoint(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    return tensors_only(obj, path)


def check_keys(
    needed: Iterable[str], given: Iterable[str], where: Path, family: str, *, show: int = 4
) -> None:
    """Raise one sentence naming the first missing weights, if any of ``needed`` is absent."""
    missing = sorted(set(needed) - set(given))
    if missing:
        shown = ", ".join(missing[:show]) + (f" and {len(missing) - show} more" if len(missing) > show else "")
        raise CheckpointError(
            f"{where} lacks {len(missing)} weights a {family} model needs ({shown}); "
            "it is incomplete or of another architecture."
        )
