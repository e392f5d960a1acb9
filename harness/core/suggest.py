"""Closest-name suggestions for error messages (kept free of heavy imports)."""

from __future__ import annotations

import difflib


def suggest(word: str, choices: list[str]) -> str:
    """'; did you mean X?' for the closest choice, else the list of valid ones."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (valid: {', '.join(choices)})" if choices else ""
