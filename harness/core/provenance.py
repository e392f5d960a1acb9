"""What a run was started from, written once per ``harness run`` next to the results store.

``<output>/provenance/<UTC time>-<recipe digest>.json`` holds the recipe (its path, name, text and
sha256), the package versions, the git commit, the host, the date and the keys of every stage of the
plan. Together with each stage's row in the store (resolved parameters, versions, commit, dates) and
its ``outcome.json`` (the device it ran on), :mod:`harness.report.provenance` tells, for each model,
where its numbers came from.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.core.plan import Plan

FOLDER = "provenance"


def iso_time(seconds: float | None) -> str | None:
    """``seconds`` since the epoch as an ISO 8601 UTC time (None stays None)."""
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def recipe_record(path: Path) -> dict[str, Any]:
    """The recipe file's path, text and sha256 (text None when it cannot be read)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = None
    digest = hashlib.sha256(text.encode()).hexdigest() if text is not None else None
    return {"path": str(path.resolve()), "sha256": digest, "text": text}


def record_run(plan: Plan, output: Path, versions: dict[str, str], commit: str | None,
               now: float | None = None) -> Path:
    """Write the provenance file of a run of ``plan`` into ``output``; returns its path."""
    now = time.time() if now is None else now
    recipe = {"name": plan.recipe.name, **recipe_record(plan.recipe.path)}
    folder = Path(output) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    path = folder / f"{stamp}-{(recipe['sha256'] or 'unknown')[:12]}.json"
    record = {"recipe": recipe, "date": iso_time(now), "host": socket.gethostname(), "git_commit": commit,
              "versions": versions, "stages": sorted(plan.stages)}
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_runs(output: Path) -> list[dict[str, Any]]:
    """Every provenance file of ``output``, oldest first (unreadable ones are skipped)."""
    out = []
    for file in sorted((Path(output) / FOLDER).glob("*.json")):
        try:
            out.append(json.loads(file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
    return out
