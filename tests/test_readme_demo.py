"""The demo tables README.md quotes are the ones `make demo` last wrote (docs/demo_leaderboard.md, and
docs/demo_drift.md from `harness drift`), and the three-seed evidence it quotes is what `make evidence`
last wrote (docs/demo_evidence.md), so the README's numbers cannot drift from what the code prints. Both
take minutes, too long for the suite: the make targets regenerate the files, and these tests compare the
README with them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- demo-leaderboard:start -->", "<!-- demo-leaderboard:end -->"
QUOTES = {  # marker name -> (file the make target writes, the target)
    "demo-leaderboard": ("demo_leaderboard.md", "make demo"),
    "evidence-leaderboard": ("demo_evidence.md", "make evidence"),
    "demo-drift": ("demo_drift.md", "make demo"),
    "evidence-drift": ("demo_evidence_drift.md", "make evidence"),
}


def quoted_table(readme: str, name: str = "demo-leaderboard") -> str | None:
    """The text between the ``name`` markers, or None when the README has no such markers."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in readme or end not in readme:
        return None
    return readme.split(start, 1)[1].split(end, 1)[0].strip()


@pytest.mark.parametrize("name", sorted(QUOTES))
def test_readme_quotes_what_the_make_target_wrote(name):
    file, target = QUOTES[name]
    table = ROOT / "docs" / file
    quoted = quoted_table((ROOT / "README.md").read_text(encoding="utf-8"), name)
    assert quoted is not None, f"README.md must quote docs/{file} between its {name} markers"
    assert table.is_file(), f"docs/{file} is missing; run `{target}` to write it"
    written = table.read_text(encoding="utf-8").strip()
    assert quoted == written, (f"README.md's {name} text differs from docs/{file} (what `{target}` printed); "
                               "paste the file between the README's markers")


def test_quoted_table_reads_between_the_markers():
    assert quoted_table(f"intro\n{START}\n| a |\n|---|\n{END}\nafter") == "| a |\n|---|"
    assert quoted_table("no markers here") is None
    assert quoted_table("<!-- x:start -->\nbody\n<!-- x:end -->", "x") == "body"
