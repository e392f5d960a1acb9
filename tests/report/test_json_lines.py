"""Per-item results read in one parse, with orjson where installed and with json otherwise: the same values
either way, NaN included, and the same errors for a file that is not JSON lines."""

from __future__ import annotations

import json
import math

import pytest

from harness.report import json_lines
from harness.report.json_lines import read_json_lines

LINES = [{"id": "utt0001", "stats": {"per": [3.0, 17.0]}}, {"id": "é/ü 2", "stats": {"eer": {"target": 1,
         "score": 0.12345678901234568, "group": "id10270"}}}, {"id": "q7", "stats": {"mtwv": {"gains": [1e-17, -2.5]}}}]


@pytest.fixture(params=["orjson", "json"])
def parser(request, monkeypatch) -> str:
    if request.param == "json":
        monkeypatch.setattr(json_lines, "orjson", None)
    elif json_lines.orjson is None:
        pytest.skip("orjson is not installed (pip install 'speech-ft-harness[fast]')")
    return request.param


def test_every_line_is_read_as_json_reads_it(tmp_path, parser):
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in LINES[:2]) + "\n\n  \n" + json.dumps(LINES[2]) + "\n",
                    encoding="utf-8")
    assert read_json_lines(path) == LINES
    path.write_text(json.dumps({"id": "x", "stats": {"eer": {"score": float("nan")}}}) + "\n")
    assert math.isnan(read_json_lines(path)[0]["stats"]["eer"]["score"])  # json.dumps writes NaN


def test_a_file_that_is_not_json_lines_raises_what_json_raises(tmp_path, parser):
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a"}\n{"id": \n')
    with pytest.raises(json.JSONDecodeError):
        read_json_lines(path)
    path.write_bytes(b'{"id": "\xff"}\n')
    with pytest.raises((UnicodeDecodeError, json.JSONDecodeError)):
        read_json_lines(path)
