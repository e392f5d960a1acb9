"""The shared output folder: the driver's marker file that every node must read back, and the
start check's verdict on what a node reported (:func:`harness.pipeline.executors.ray.worker.probe_node`)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

MARKER_PREFIX = ".ray-visible-"


def write_marker(output: Path) -> tuple[Path, str]:
    """The driver's marker file in the output folder: a fresh token workers must read back."""
    token = secrets.token_hex(16)
    path = Path(output) / f"{MARKER_PREFIX}{token}"
    with open(path, "w") as f:
        f.write(token)
        f.flush()
        os.fsync(f.fileno())
    return path, token


def marker_seen(marker: str, token: str) -> bool:
    try:
        return Path(marker).read_text() == token
    except OSError:
        return False


def not_visible(output: str, hosts: list[str]) -> str:
    return (f"the output folder {output} is not visible from Ray node(s) {', '.join(hosts)} (they cannot read "
            f"the marker file the driver wrote there); put the output on a file system every node mounts at the "
            f"same path (NFS, Lustre, a cloud file store) and set the recipe's output to that path.")


def node_problem(report: dict[str, Any], wanted: dict[tuple[str, str], str]) -> str | None:
    """What keeps a node that sees the output folder from running the stages, as one sentence, or None."""
    host = report["host"]
    if report["error"]:
        return (f"the plugins could not be loaded on Ray node {host} ({report['error']}); install the project and "
                "its plugins on every node.")
    for (kind, name), version in sorted(wanted.items()):
        got = report["versions"].get(f"{kind}:{name}")
        if got != version:
            return (f"Ray node {host} has {kind} plugin {name!r} {'version ' + got if got else 'not installed'}, "
                    f"but the driver planned with version {version}; install the same packages on every node.")
    if report["missing"]:
        listing = "; ".join(f"{what} -> {path}" for path, what in sorted(report["missing"].items()))
        return (f"Ray node {host} cannot see {len(report['missing'])} input path(s) of the recipe ({listing}); "
                "put corpora and checkpoints on a file system every node mounts at the same path.")
    return None
