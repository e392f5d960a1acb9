"""The demo table README.md quotes is the one `make demo` last wrote (docs/demo_leaderboard.md), so
the README's numbers cannot drift from what the code prints. The demo takes minutes, too long for
the suite: `make demo` regenerates the file, and this test compares the README with it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- demo-leaderboard:start -->", "<!-- demo-leaderboard:end -->"
TABLE = ROOT / "docs" / "demo_leaderboard.md"


def quoted_table(readme: str) -> str | None:
    """The text between the demo-leaderboard markers, or None when the README has no markers."""
    if START not in readme or END not in readme:
        return None
    return readme.split(START, 1)[1].split(END, 1)[0].strip()


def test_readme_quotes_the_demo_table_make_demo_wrote():
    quoted = quoted_table((ROOT / "README.md").read_text(encoding="utf-8"))
    assert quoted is not None, f"README.md must quote the demo table between {START} and {END}"
    assert TABLE.is_file(), f"{TABLE.relative_to(ROOT)} is missing; run `make demo` to write it"
    written = TABLE.read_text(encoding="utf-8").strip()
    assert quoted == written, ("README.md's demo table differs from docs/demo_leaderboard.md (what `make demo` "
                               "printed); paste the file between the README's markers")


def test_quoted_table_reads_between_the_markers():
    assert quoted_table(f"intro\n{START}\n| a |\n|---|\n{END}\nafter") == "| a |\n|---|"
    assert quoted_table("no markers here") is None
