"""The SUPERB score: the paper's worked example, the reference tables and the `harness score` command."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.core.errors import HarnessError
from harness.evaluation.scoring import SUPERB_2024, SUPERB_SLT2022, get_table, load_table, measured_table, superb_score

HUBERT_BASE = {"pr.per": 5.17, "sid.acc": 81.86, "er.acc": 64.99, "sf.f1": 88.54, "sf.cer": 24.70}


def test_worked_example_of_the_paper():
    result = superb_score(HUBERT_BASE, SUPERB_2024)
    assert round(result.score, 2) == 870.20
    # PR: 1000 (5.17 - 82.01) / (2.55 - 82.01); the lower-is-better metric needs no special case
    assert result.tasks["pr"] == pytest.approx(1000 * 76.84 / 79.46)
    # SF averages its two metrics before the tasks are averaged
    f1 = 1000 * (88.54 - 69.64) / (92.35 - 69.64)
    cer = 1000 * (24.70 - 52.92) / (17.61 - 52.92)
    assert result.tasks["sf"] == pytest.approx((f1 + cer) / 2)
    assert result.score == pytest.approx(sum(result.tasks.values()) / 4)


def test_other_rows_of_the_paper():
    # Table 9: alpha = 0.25 row (Speech-FT on TIMIT PC) -> 877.66; alpha = 1.0 -> 726.64
    row = {"pr.per": 4.76, "sid.acc": 81.78, "er.acc": 65.48, "sf.f1": 88.65, "sf.cer": 24.05}
    assert round(superb_score(row, SUPERB_2024).score, 2) == 877.66
    row = {"pr.per": 10.34, "sid.acc": 66.34, "er.acc": 61.25, "sf.f1": 83.5, "sf.cer": 33.82}
    assert round(superb_score(row, SUPERB_2024).score, 2) == 726.64


def test_anchors_score_0_and_1000_in_every_table():
    for table in (SUPERB_2024, SUPERB_SLT2022):
        assert superb_score({k: v[0] for k, v in table.items()}, table).score == pytest.approx(0)
        assert superb_score({k: v[1] for k, v in table.items()}, table).score == pytest.approx(1000)
    assert SUPERB_SLT2022["pr.per"] == pytest.approx((82.01, 3.53))
    assert SUPERB_SLT2022["sf.cer"] == pytest.approx((52.94, 21.76))


def test_measured_table_uses_fbank_and_the_ideal_top():
    table = measured_table({"pr.per": 60.0, "sid.acc": 40.0}, {"pr.per": "lower", "sid.acc": "higher"})
    assert table == {"pr.per": (60.0, 0.0), "sid.acc": (40.0, 100.0)}
    result = superb_score({"pr.per": 30.0, "sid.acc": 70.0}, table)
    assert result.tasks == {"pr": pytest.approx(500.0), "sid": pytest.approx(500.0)}
    # QbE's MTWV is a fraction (as SUPERB reports it): its ideal is 1
    assert measured_table({"qbe.mtwv": 0.02}, {"qbe.mtwv": "higher"}) == {"qbe.mtwv": (0.02, 1.0)}


def test_custom_yaml_table(tmp_path):
    path = tmp_path / "ref.yaml"
    path.write_text("pr.per: {fbank: 50, sota: 10}\nsid.acc: [20, 70]\n")
    assert load_table(path) == {"pr.per": (50.0, 10.0), "sid.acc": (20.0, 70.0)}
    assert superb_score({"pr.per": 30, "sid.acc": 45}, get_table(str(path))).score == pytest.approx(500.0)
    path.write_text("pr: {fbank: 50, sota: 10}\n")
    with pytest.raises(HarnessError, match="task.metric"):
        load_table(path)


def test_errors_name_the_problem():
    with pytest.raises(HarnessError, match=r"metric 'pr.pre' is not in the reference table; did you mean 'pr.per'\?"):
        superb_score({"pr.pre": 5.0}, SUPERB_2024)
    with pytest.raises(HarnessError, match="unknown reference table 'superb-2042'; did you mean 'superb-2024'"):
        get_table("superb-2042")
    # non-strict scoring leaves unknown metrics out and says which
    result = superb_score({"pr.per": 5.17, "abx.x": 3.0}, SUPERB_2024, strict=False)
    assert result.ignored == ["abx.x"]


def test_score_command(capsys):
    args = [f"{k}={v}" for k, v in HUBERT_BASE.items()]
    assert main(["score", "--reference", "superb-2024", *args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert round(out["score"], 2) == 870.20
    assert set(out["tasks"]) == {"pr", "sid", "er", "sf"}
    assert main(["score", *args]) == 0
    # the paper's four tasks of the ten in the table
    assert capsys.readouterr().out.strip().splitlines()[-1].split() == ["score", "870.20", "(4", "of", "10", "tasks)"]
    assert main(["score", "pr.per=abc"]) == 2
    assert "'abc' is not a number" in capsys.readouterr().err
