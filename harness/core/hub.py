"""Hugging Face Hub ids given where a local path is expected: nothing is downloaded at run time, so say how
to fetch the folder first."""

from __future__ import annotations

import re
from pathlib import Path

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FILE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".json", ".yaml", ".yml")


def looks_like_hub_id(path: Path | str) -> bool:
    """``owner/name`` that is not a path here: no such file, and no folder named ``owner`` either."""
    text = str(path)
    if not _HUB_ID.match(text) or text.lower().endswith(_FILE_SUFFIXES) or Path(text).exists():
        return False
    return not Path(text.split("/", 1)[0]).exists()


def hub_hint(path: Path | str) -> str | None:
    """What to do when ``path`` looks like a Hub id (None when it does not)."""
    if not looks_like_hub_id(path):
        return None
    text = str(path)
    local = f"checkpoints/{text.split('/', 1)[1]}"
    return (f"{text} looks like a Hugging Face Hub id, but nothing is downloaded at run time: fetch the folder "
            f"first (`huggingface-cli download {text} --local-dir {local}`) and give {local} instead")


def missing_checkpoint(path: Path | str, what: str = "checkpoint") -> str:
    """The one sentence for a checkpoint that is not there."""
    hint = hub_hint(path)
    if hint is not None:
        return f"{what} {path} does not exist; {hint}."
    return f"{what} {path} does not exist; check the path."
