"""Cutting a prepared corpus down to a few utterances per split (``harness run --limit N``).

The kept utterances are the first ``n`` by a stable hash of their id, so they spread over
speakers and classes instead of taking the first ones in id order, and the same ``n`` always keeps
the same utterances. ABX item files keep the items of kept utterances; ``meta.json`` records the
limit with the new counts.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.core.manifest import read_jsonl, write_json, write_jsonl
from harness.data.corpus import ABX_HEADER, stable_fraction


def limit_prepared(folder: Path, n: int) -> None:
    """Keep at most ``n`` utterances in every split of the prepared corpus in ``folder``."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    kept_ids: dict[str, set[str]] = {}
    for split in meta.get("splits", []):
        rows = list(read_jsonl(folder / f"{split}.jsonl"))
        chosen = {r["id"] for r in sorted(rows, key=lambda r: (stable_fraction(str(r["id"])), str(r["id"])))[:n]}
        rows = [r for r in rows if r["id"] in chosen]
        write_jsonl(folder / f"{split}.jsonl", rows)
        kept_ids[split] = chosen
        meta.setdefault("n_utterances", {})[split] = len(rows)
        meta.setdefault("hours", {})[split] = round(sum(float(r.get("duration", 0.0)) for r in rows) / 3600, 4)
    for split, name in (meta.get("abx_items") or {}).items():
        path = folder / name
        if not path.is_file() or split not in kept_ids:
            continue
        lines = [line for line in path.read_text(encoding="utf-8").splitlines()[1:]
                 if line.strip() and line.split()[0] in kept_ids[split]]
        path.write_text("\n".join([ABX_HEADER, *lines]) + "\n", encoding="utf-8")
        meta.setdefault("abx_item_counts", {})[split] = len(lines)
    meta["utterance_limit"] = n
    write_json(folder / "meta.json", meta)
