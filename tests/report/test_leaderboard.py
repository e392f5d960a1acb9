"""The leaderboard built from a store with known numbers: cells, intervals, tests, every format, the CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from harness.cli import main
from harness.core.registry import PluginManager
from harness.core.store import MetricRow, StageRow
from harness.report import leaderboard as lbm
from harness.report import stats
from harness.report.leaderboard import formats as fmts
from harness.report.leaderboard import superb as superb_scoring
from tests.leaderboard_helpers import FakeRun, labels, standard_run

SETTINGS = lbm.Settings(n_resamples=400, n_permutations=1000)
COLUMNS = ["pr.per", "sid.acc", "sf.f1", "sf.cer", "abx.error", "superb.score"]
MODELS = [("tiny", "pre-trained"), ("tiny", "pr · interp alpha=0.25"), ("tiny", "pr (Stable-FT)"),
          ("fbank", "pre-trained")]


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory) -> FakeRun:
    run = standard_run(tmp_path_factory.mktemp("lb3") / "out", seeds=[0, 1, 2], n_items=60)
    # things the leaderboard must leave out: fine-tuning metrics, a failed stage
    run._stage("ft1", "finetune", "supervised", labels("tiny", "pr (Stable-FT)", "pr", "", 1.0))
    run.store.record_metrics("ft1", [MetricRow("ft1", "finetune.supervised", "dev_per", 20.0, "higher", None, None)])
    run._stage("bad1", "evaluate", "pr", {**labels("tiny", "broken", "pr"), "seed": 0, "downstream": "pr",
                                          "task": "pr"}, status="failed")
    run.close()
    return run


@pytest.fixture(scope="module")
def board(three_seeds) -> lbm.Leaderboard:
    return lbm.build(three_seeds.output, SETTINGS)


def _row(board: lbm.Leaderboard, upstream: str, model: str) -> lbm.Row:
    return next(r for r in board.rows if (r.upstream, r.model) == (upstream, model))


def _items(run: FakeRun, upstream: str, model: str, task: str, seeds: list[int], metric: str) -> stats.ItemStats:
    runs = {}
    for seed in seeds:
        path = run.output / run.evals[(upstream, model, task, seed)] / "items.jsonl"
        runs[seed] = [json.loads(line) for line in path.read_text().splitlines()]
    return stats.ItemStats.from_items(runs, metric)


def test_rows_are_models_in_table_order_and_columns_are_metrics_then_superb(board):
    assert [(r.upstream, r.model) for r in board.rows] == MODELS
    assert [c.key for c in board.columns] == COLUMNS
    assert [c.label for c in board.columns] == ["PR PER", "SID ACC", "SF F1", "SF CER", "ABX ERROR", "SUPERB"]
    assert [r.baseline for r in board.rows] == [True, False, False, True]
    assert [r.alpha for r in board.rows] == [0.0, 0.25, 1.0, 0.0]
    assert all(r.seeds == [0, 1, 2] for r in board.rows)
    assert board.reference == "measured" and board.notes == []


def test_columns_follow_the_plugins_declared_order_and_uninstalled_tasks_come_last_by_name(tmp_path):
    run = standard_run(tmp_path / "out", seeds=[0], n_items=20, tasks=("abx", "sid", "pr"))
    run.close()
    settings = lbm.Settings(n_resamples=100, n_permutations=100)
    installed = lbm.build(run.output, settings)
    assert [c.key for c in installed.columns] == ["pr.per", "sid.acc", "abx.error", "superb.score"]
    none_installed = lbm.build(run.output, settings, plugins=PluginManager(entry_points=False))
    assert [c.key for c in none_installed.columns] == ["abx.error", "pr.per", "sid.acc", "superb.score"]


def test_cells_are_seed_means_with_item_and_seed_bootstrap_intervals(board, three_seeds):
    for upstream, model in MODELS:
        row = _row(board, upstream, model)
        for col in COLUMNS:
            cell = row.cells[col]
            stored = [three_seeds.values[(upstream, model, col, s)] for s in (0, 1, 2)]
            assert cell.per_seed == {s: pytest.approx(v) for s, v in zip((0, 1, 2), stored, strict=True)}
            assert cell.mean == pytest.approx(np.mean(stored))
            assert cell.interval == "items+seeds"
            assert cell.low < cell.mean < cell.high
    pr = _row(board, "tiny", "pr (Stable-FT)").cells["pr.per"]
    expected = stats.bootstrap_ci(_items(three_seeds, "tiny", "pr (Stable-FT)", "pr", [0, 1, 2], "per"),
                                  n_resamples=SETTINGS.n_resamples, seed=SETTINGS.seed)
    assert (pr.low, pr.high) == (pytest.approx(expected.low), pytest.approx(expected.high))
    assert pr.n_items == 60


def test_comparisons_use_the_same_upstreams_baseline_on_shared_items_and_seeds(board, three_seeds):
    base = _row(board, "tiny", "pre-trained")
    assert all(c.vs_baseline is None for c in base.cells.values())
    assert all(c.vs_baseline is None for c in _row(board, "fbank", "pre-trained").cells.values())
    for model in ("pr · interp alpha=0.25", "pr (Stable-FT)"):
        row = _row(board, "tiny", model)
        for col, task, metric in (("pr.per", "pr", "per"), ("sid.acc", "sid", "acc"), ("abx.error", "abx", "error")):
            cmp = row.cells[col].vs_baseline
            a = [three_seeds.values[("tiny", model, col, s)] for s in (0, 1, 2)]
            b = [three_seeds.values[("tiny", "pre-trained", col, s)] for s in (0, 1, 2)]
            assert cmp.p_seeds == pytest.approx(sps.ttest_rel(a, b).pvalue)
            assert cmp.delta == pytest.approx(np.mean(a) - np.mean(b))
            ours = _items(three_seeds, "tiny", model, task, [0, 1, 2], metric)
            theirs = _items(three_seeds, "tiny", "pre-trained", task, [0, 1, 2], metric)
            perm = stats.permutation_test(ours, theirs, n_resamples=SETTINGS.n_permutations, seed=SETTINGS.seed)
            assert cmp.p_items == pytest.approx(perm.pvalue)
            assert cmp.significant == (perm.pvalue < 0.05 and cmp.p_seeds < 0.05)
            lower = col != "sid.acc"
            assert cmp.better == ((cmp.delta < 0) if lower else (cmp.delta > 0))
            assert cmp.n_seeds == 3
    superb = _row(board, "tiny", "pr · interp alpha=0.25").cells["superb.score"].vs_baseline
    assert superb.p_items is not None and superb.p_seeds is not None
    assert superb.delta > 0 and superb.better


def test_superb_interval_resamples_all_tasks_jointly_and_falls_back_to_seeds(three_seeds, monkeypatch):
    board = lbm.build(three_seeds.output, SETTINGS)
    cell = _row(board, "tiny", "pr (Stable-FT)").cells["superb.score"]
    assert cell.interval == "items+seeds"
    monkeypatch.setattr(superb_scoring, "make_scorer", lambda *a, **k: None)
    fallback = lbm.build(three_seeds.output, SETTINGS)
    cell = _row(fallback, "tiny", "pr (Stable-FT)").cells["superb.score"]
    ci = stats.seed_interval(list(cell.per_seed.values()))
    assert cell.interval == "seeds" and (cell.low, cell.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert any("SUPERB intervals are over seeds only" in n for n in fallback.notes)
    base = _row(fallback, "tiny", "pre-trained").cells["superb.score"].per_seed
    diffs = [cell.per_seed[s] - base[s] for s in (0, 1, 2)]
    cmp = cell.vs_baseline
    assert cmp.p_items is None and cmp.delta == pytest.approx(np.mean(diffs))
    assert cmp.p_seeds == pytest.approx(sps.ttest_rel(list(cell.per_seed.values()), list(base.values())).pvalue)
    assert (cmp.low, cmp.high) == (pytest.approx(stats.seed_interval(diffs).low),
                                   pytest.approx(stats.seed_interval(diffs).high))


def test_abx_delta_value_std_per_model_and_paired(board, three_seeds):
    for model in ("pre-trained", "pr (Stable-FT)"):
        own = _items(three_seeds, "tiny", model, "abx", [0, 1, 2], "error")
        spread = _row(board, "tiny", model).abx["abx.error"]
        assert spread.n_pairs == 60
        assert spread.delta_value_std == pytest.approx(np.std(own.per_item(), ddof=1))
    base = _items(three_seeds, "tiny", "pre-trained", "abx", [0, 1, 2], "error")
    ft = _items(three_seeds, "tiny", "pr (Stable-FT)", "abx", [0, 1, 2], "error")
    spread = _row(board, "tiny", "pr (Stable-FT)").abx["abx.error"]
    assert spread.paired_delta_value_std == pytest.approx(np.std(ft.per_item() - base.per_item(), ddof=1))
    assert _row(board, "tiny", "pre-trained").abx["abx.error"].paired_delta_value_std is None
    assert "pr.per" not in _row(board, "tiny", "pre-trained").abx


def test_layer_weights_are_averaged_over_seeds(board):
    row = _row(board, "tiny", "pr (Stable-FT)")
    assert set(row.layer_weights) == {"pr", "sid", "sf"}  # ABX has no learned weights
    assert row.layer_weights["pr"] == pytest.approx(list(np.round(np.linspace(1, 3, 4) / 10, 4)))


def test_plot_data_follow_the_table(board):
    from harness.report.leaderboard.figures import alpha_series, bar_panels, weight_panels

    (series,) = alpha_series(board)
    assert series.label == "tiny · pr (interp)" and series.x == [0.0, 0.25, 1.0]
    means = [_row(board, "tiny", m).cells["superb.score"].mean for m in ("pre-trained", "pr · interp alpha=0.25",
                                                                        "pr (Stable-FT)")]
    assert series.y == pytest.approx(means)
    panels = bar_panels(board)
    assert [p.title for p in panels] == [c.label for c in board.columns]
    assert panels[0].baseline == [True, False, False, True]
    assert panels[0].significant == [False] + [bool(_row(board, "tiny", m).cells["pr.per"].vs_baseline.significant)
                                               for m in ("pr · interp alpha=0.25", "pr (Stable-FT)")] + [False]
    weights = weight_panels(board)
    assert set(weights) == {"pr", "sid", "sf"} and len(weights["pr"]) == 4


def test_single_seed_uses_items_only_and_items_that_disagree_with_the_store_are_noted(tmp_path):
    run = FakeRun(tmp_path / "one", n_items=40)
    pre, ft = labels("up", "pre-trained"), labels("up", "sid (Stable-FT)", "sid", "", 1.0)
    run.evaluate(pre, "sid", "sid", 0, {"acc": 50.0})
    run.evaluate(ft, "sid", "sid", 0, {"acc": 90.0})
    run.evaluate(pre, "pr", "pr", 0, {"per": 30.0})
    key = run.evaluate(ft, "pr", "pr", 0, {"per": 20.0})
    # the stored PER no longer matches its items
    run.store.record_metrics(key, [MetricRow(key, "pr", "per", 99.0, "lower", 40, f"{key}/items.jsonl")])
    run.close()
    board = lbm.build(run.output, SETTINGS)
    sid = _row(board, "up", "sid (Stable-FT)").cells["sid.acc"]
    assert sid.interval == "items" and sid.vs_baseline.p_seeds is None
    assert sid.vs_baseline.significant and sid.vs_baseline.p_items < 0.05 and sid.vs_baseline.better
    pr = _row(board, "up", "sid (Stable-FT)").cells["pr.per"]
    assert pr.mean == 99.0 and pr.interval == "" and pr.low is None
    assert pr.vs_baseline.p_items is None and not pr.vs_baseline.significant
    assert any("per-item results give" in n and "99" in n for n in board.notes)
    assert "superb.score" not in [c.key for c in board.columns]


def test_items_outside_a_condition_are_not_taken_for_items_a_seed_missed(tmp_path):
    run = FakeRun(tmp_path / "abx")
    pre, ft = labels("up", "pre-trained"), labels("up", "pr (Stable-FT)", "pr", "", 1.0)
    # every pair is scored within speaker, only half of them across (their speakers allow no more)
    both = {"within_error": [[0.2, 1.0]] * 6, "error": [[0.3, 1.0]] * 3 + [None] * 3}
    for seed in (0, 1):
        run.evaluate(pre, "abx", "abx", seed, {}, items=both)
    run.evaluate(ft, "abx", "abx", 0, {}, items=both)
    # seed 1 of the fine-tuned model lost two pairs: that one is worth a note
    first_four = [f"pair{i:03d}" for i in range(4)]
    run.evaluate(ft, "abx", "abx", 1, {}, items={m: v[:4] for m, v in both.items()}, ids=first_four)
    run.close()
    board = lbm.build(run.output, SETTINGS)
    assert _row(board, "up", "pre-trained").cells["abx.error"].mean == pytest.approx(30.0)
    assert not any("up / pre-trained" in n for n in board.notes)
    # the lost pairs were all scored within speaker; across speaker both seeds scored the same three
    missed = [n for n in board.notes if "up / pr (Stable-FT)" in n]
    assert len(missed) == 1 and "seeds were evaluated on different items; only the 4 shared ones" in missed[0]


def test_a_stored_superb_score_the_items_do_not_explain_is_noted(tmp_path):
    run = FakeRun(tmp_path / "mismatch", n_items=30)
    for seed in (0, 1):
        keys = {}
        for lab in (labels("fbank", "pre-trained"), labels("up", "pre-trained")):
            keys[lab["upstream"]] = {"sid": run.evaluate(lab, "sid", "sid", seed, {"acc": 60.0})}
        run.score(labels("fbank", "pre-trained"), seed, keys["fbank"], keys["fbank"])
        run.score(labels("up", "pre-trained"), seed, keys["up"], keys["fbank"], offset=5.0)
    run.close()
    board = lbm.build(run.output, SETTINGS)
    up = _row(board, "up", "pre-trained").cells["superb.score"]
    assert up.interval == "seeds"
    assert _row(board, "fbank", "pre-trained").cells["superb.score"].interval == "items+seeds"
    assert any("differs from the stored one" in n for n in board.notes)


def test_cross_validated_results_average_their_folds_and_resample_within_them(tmp_path):
    run = FakeRun(tmp_path / "folds")
    rng = np.random.default_rng(8)
    folds = [1] * 10 + [2] * 30 + [3] * 60  # unequal folds: the fold mean is not the pooled accuracy
    models = [(labels("fbank", "pre-trained"), [0.2, 0.4, 0.5]), (labels("up", "pre-trained"), [0.9, 0.5, 0.6]),
              (labels("up", "er (Stable-FT)", "er", "", 1.0), [0.95, 0.7, 0.8])]
    for seed in (0, 1):
        keys = []
        for lab, p in models:
            acc = [[float(rng.random() < p[k - 1]), 1.0] for k in folds]
            keys.append({"er": run.evaluate(lab, "er", "er", seed, {}, items={"acc": acc}, folds=folds)})
        for (lab, _), k in zip(models, keys, strict=True):
            run.score(lab, seed, k, keys[0])
    run.close()
    board = lbm.build(run.output, SETTINGS)
    assert board.notes == []
    cell = _row(board, "up", "er (Stable-FT)").cells["er.acc"]
    flat = _items(run, "up", "er (Stable-FT)", "er", [0, 1], "acc")
    assert cell.mean == pytest.approx(np.mean(list(cell.per_seed.values())))
    assert abs(cell.mean - flat.value) > 0.5  # the pooled value would be wrong here
    strata = {f"er.acc#fold={k}": flat.subset([i for i, f in zip(flat.ids, folds, strict=True) if f == k], (0, 1))
              for k in (1, 2, 3)}
    expected = stats.bootstrap_ci(strata, lambda v, seeds: np.mean(list(v.values()), axis=0),
                                  n_resamples=SETTINGS.n_resamples, seed=SETTINGS.seed)
    assert (cell.low, cell.high) == (pytest.approx(expected.low), pytest.approx(expected.high))
    assert cell.interval == "items+seeds" and cell.n_items == 100
    superb = _row(board, "up", "er (Stable-FT)").cells["superb.score"]
    assert superb.interval == "items+seeds" and superb.vs_baseline.p_items is not None


def test_build_is_deterministic(three_seeds, board):
    again = lbm.build(three_seeds.output, SETTINGS)
    assert fmts.render_json(again) == fmts.render_json(board)


# ------------------------------------------------------------------------------------------------ formats


def test_markdown_has_the_results_significance_and_abx_tables(board):
    md = fmts.render_markdown(board)
    lines = md.splitlines()
    header = "| upstream | model | seeds | PR PER ↓ | SID ACC ↑ | SF F1 ↑ | SF CER ↓ | ABX ERROR ↓ | SUPERB ↑ |"
    assert header in lines
    stable = _row(board, "tiny", "pr (Stable-FT)")
    cell = stable.cells["pr.per"]
    expected = f"{cell.mean:.2f} [{cell.low:.2f}, {cell.high:.2f}]" + (" *" if cell.vs_baseline.significant else "")
    row_line = next(line for line in lines if line.startswith("| tiny | pr (Stable-FT) | 3 |"))
    assert row_line.split(" | ")[3] == expected
    assert "## Against the pre-trained model" in md and "## ABX: delta-value standard deviation" in md
    cmp = cell.vs_baseline
    sig_line = next(line for line in lines[lines.index("## Against the pre-trained model"):]
                    if line.startswith("| tiny | pr (Stable-FT) |"))
    assert f"{cmp.delta:+.2f}" in sig_line and f"seeds {fmts.fmt_p(cmp.p_seeds)}" in sig_line
    spread = stable.abx["abx.error"]
    abx_line = next(line for line in lines[lines.index("## ABX: delta-value standard deviation"):]
                    if line.startswith("| tiny | pr (Stable-FT) |"))
    assert f"| {spread.delta_value_std:.2f} | {spread.paired_delta_value_std:.2f} |" in abx_line


def test_csv_is_tidy_with_one_line_per_model_and_column(board):
    rows = list(csv.DictReader(io.StringIO(fmts.render_csv(board))))
    assert len(rows) == len(MODELS) * len(COLUMNS)
    assert tuple(rows[0]) == fmts.CSV_FIELDS
    line = next(r for r in rows if r["model"] == "pr (Stable-FT)" and r["column"] == "sid.acc")
    cell = _row(board, "tiny", "pr (Stable-FT)").cells["sid.acc"]
    assert float(line["mean"]) == cell.mean and float(line["ci_low"]) == cell.low
    assert float(line["p_items"]) == cell.vs_baseline.p_items and float(line["p_seeds"]) == cell.vs_baseline.p_seeds
    assert line["seeds"] == "0 1 2" and line["interval"] == "items+seeds" and line["delta_value_std"] == ""
    base = next(r for r in rows
                if (r["upstream"], r["model"], r["column"]) == ("tiny", "pre-trained", "abx.error"))
    assert base["p_items"] == "" and float(base["delta_value_std"]) > 0


def test_json_is_strict_and_complete(board):
    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(fmts.render_json(board), parse_constant=no_constants)
    assert [c["key"] for c in data["columns"]] == COLUMNS
    assert data["settings"]["n_resamples"] == SETTINGS.n_resamples
    row = data["rows"][2]
    assert row["model"] == "pr (Stable-FT)" and row["alpha"] == 1.0
    cell = row["cells"]["pr.per"]
    assert set(cell) >= {"mean", "low", "high", "interval", "per_seed", "n_items", "vs_baseline"}
    assert set(cell["per_seed"]) == {"0", "1", "2"}
    assert set(cell["vs_baseline"]) >= {"delta", "low", "high", "p_items", "p_seeds", "significant"}
    assert row["abx"]["abx.error"]["n_pairs"] == 60


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_prints_markdown_and_writes_every_format(three_seeds, tmp_path, capsys):
    args = ["leaderboard", str(three_seeds.output), "--resamples", "200", "--permutations", "200"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Leaderboard") and "| tiny | pr (Stable-FT) | 3 |" in out
    target = tmp_path / "nested" / "board.csv"
    assert main([*args, "--format", "csv", "--out", str(target), "--plots", str(tmp_path / "plots")]) == 0
    assert target.read_text().startswith(",".join(fmts.CSV_FIELDS))
    saved = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert saved == ["layer_weights.png", "layer_weights.svg", "superb_vs_alpha.png", "superb_vs_alpha.svg",
                     "tasks.png", "tasks.svg"]
    assert (tmp_path / "plots" / "tasks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_without_a_store_exits_2_with_one_sentence(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path} holds no results store (results.sqlite); give the output folder of `harness run`."


def test_cli_with_an_empty_store_exits_2(tmp_path, capsys):
    run = FakeRun(tmp_path / "empty")
    run.store.record_stage(StageRow("k", "upstream", "x", "", {}, {}, {}, "done", 0, 1, 1, None, None, {}, None, []))
    run.close()
    assert main(["leaderboard", str(run.output)]) == 2
    assert "holds no finished evaluate or score stage" in capsys.readouterr().err


def test_output_path_is_checked(tmp_path, three_seeds, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["leaderboard", str(three_seeds.output), "--resamples", "100", "--permutations", "100",
                 "--out", str(blocker / "board.md")])
    assert code == 2 and "choose a writable --out path" in capsys.readouterr().err


def test_path_type_is_kept_in_the_source_field(board, three_seeds):
    assert Path(board.source) == three_seeds.output


def _evaluated(upstream: str, finetune: str, alpha: float, rank: list[int] | None) -> StageRow:
    tags = {"upstream": upstream, "finetune": finetune, "merge": "", "alpha": alpha, "seed": 0,
            "model": "pre-trained" if finetune == "none" else f"{finetune} a={alpha}"}
    if rank is not None:
        tags["rank"] = rank
    return StageRow("k", "evaluate", "pr", "", {}, {}, tags, "done", 0, 1, 1, None, None, {}, None, [])


def test_rows_follow_the_recipe_whatever_order_the_stages_started_in():
    from harness.report.leaderboard.rows import model_rows
    from harness.report.stage_order import in_recipe_order

    planned = [("hubert", "none", 0.0), ("hubert", "pr", 0.25), ("hubert", "sid", 0.25), ("fbank", "none", 0.0)]
    ranks = [[0, 0], [0, 1], [0, 2], [1, 0]]
    started = [3, 2, 0, 1]  # overlapped stages start out of plan order: fbank and sid first
    stages = [_evaluated(*planned[i], ranks[i]) for i in started]
    table = [(r.upstream, r.finetune) for r in model_rows(stages).values()]
    assert table == [(u, f) for u, f, _ in planned]
    # a model's evaluations by the downstream's place in the recipe (the leaderboard's column order)
    evals = [_evaluated("hubert", "none", 0.0, [0, 0, d]) for d in (2, 0, 1)]
    for ev, name in zip(evals, ("sf", "pr", "sid"), strict=True):
        ev.labels["downstream"] = name
    assert [s.labels["downstream"] for s in in_recipe_order(evals)] == ["pr", "sid", "sf"]
    # a store written before ranks were recorded keeps the order the stages started in
    unranked = [(r.upstream, r.finetune) for r in model_rows([_evaluated(*planned[i], None) for i in started]).values()]
    assert unranked == [("fbank", "none"), ("hubert", "none"), ("hubert", "sid"), ("hubert", "pr")]
    # and so does one where new stages joined old ones: old rows do not move below the new
    mixed = [_evaluated(*planned[i], None if i != 0 else ranks[0]) for i in started]
    assert [(r.upstream, r.finetune) for r in model_rows(mixed).values()] == unranked


def test_fractions_show_four_decimals_and_percentages_two():
    from harness.report.leaderboard.model import Cell, Column, Comparison

    assert Column("qbe.mtwv", "qbe", "qbe", "mtwv", "higher").digits == 4  # QbE's MTWV is a fraction
    assert Column("pr.per", "pr", "pr", "per", "lower").digits == 2
    cmp = Comparison(0.0372, 0.01, 0.06, 0.02, None, 1, True, True, digits=4)
    cell = Cell(0.08724, 0.05, 0.1, "items", {0: 0.08724}, 10, vs_baseline=cmp, digits=4)
    assert fmts.fmt_cell(cell) == "0.0872 [0.0500, 0.1000] *"
    assert fmts.fmt_delta(cmp) == "+0.0372 [+0.0100, +0.0600] *"
