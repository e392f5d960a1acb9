"""Numbers and sentences shared by every rendering of the leaderboard (text and HTML)."""

from __future__ import annotations

import math

from harness.report.leaderboard.model import Column, Leaderboard, PaperMatch, PaperValue


def fmt(value: float | None, digits: int = 2, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


#: the legend's addition when some p over items comes from the paired bootstrap
BOOTSTRAP_P = (" p marked (bootstrap) is the paired bootstrap's (the smallest level at which its interval "
               "excludes 0): an EER's or MTWV's scores are on each model's own scale, so they are not swapped "
               "between models.")


def adjustment_text(adjust: str) -> str:
    """The legend's sentence on adjusted p-values ("" when they are not adjusted)."""
    names = {"holm": "Holm-adjusted (family-wise error)", "bh": "Benjamini–Hochberg-adjusted (false discovery rate)"}
    if adjust not in names:
        return ""
    return (f" All p are {names[adjust]} over the comparisons of their table, item tests and seed tests apart; "
            "* uses the adjusted values.")


def _bootstrap_p(lb: Leaderboard) -> bool:
    return any(cmp is not None and cmp.p_items is not None and cmp.items_test == "bootstrap"
               for r in lb.rows for c in r.cells.values() for cmp in (c.vs_baseline, c.vs_finetuned))


def method_text(lb: Leaderboard) -> dict[str, str]:
    """The sentences that explain the numbers, shared by the markdown and HTML pages."""
    s = lb.settings
    level = f"{round(s.level * 100)} %"
    return {
        "values": (f"Mean over seeds [{level} interval: percentile bootstrap over test items, and over seeds "
                   f"when there are several; {s.n_resamples} resamples]. * marks p < {s.threshold:g} against "
                   "the pre-trained model of the same upstream."),
        "superb": ("The SUPERB score's interval resamples the items of all its tasks jointly"
                   + (" (FBank's measured values, its reference, held fixed)" if lb.reference == "measured" else "")
                   + "; where per-item results are missing it is a Student-t interval over seeds."),
        "compare": (f"Δ = model − pre-trained on the same items and seeds, with its {level} paired-bootstrap "
                    f"interval. p: paired permutation test over items ({s.n_permutations} resamples, two-sided), "
                    "and a paired t-test over seeds (\"seeds\") from 3 seeds on; * needs p < "
                    f"{s.threshold:g} in every test that applies." + (BOOTSTRAP_P if _bootstrap_p(lb) else "")
                    + adjustment_text(s.adjust)),
        "finetuned": ("Speech-FT against Stable-FT: each merge with 0 < α < 1 against the fully fine-tuned model "
                      "(α = 1) of the same upstream, fine-tuning and merge entry (or the unmerged fine-tuned model), "
                      "on the same items and seeds; Δ = model − fully fine-tuned, interval and p as above."),
        "sweeps": ("dev SUPERB: the SUPERB score of each model's dev results (a probe's dev value at the step it "
                   "kept, averaged over the folds of a cross-validated task; QbE's at the layer it chose on dev) "
                   "against the reference of its test score (for measured, FBank's dev results), mean over seeds. A "
                   "sweep is a merge's α (the pre-trained model at 0, the fine-tuned one at 1), another merge's "
                   "swept parameters (TIES's lambda) or a fine-tuning entry's. ✓: the setting with the highest dev "
                   "score (on a tie, the first listed), the choice of a study that does not look at its test "
                   "results; – where an evaluation kept no dev value."),
        "paper": ("Each model that corresponds to a row of the Speech-FT paper's tables (matched by the shipped "
                  "recipes' upstream, fine-tuning and merge entry names, and α or TIES's lambda): this run's mean over "
                  "seeds, then the paper's value and this run's minus the paper's; ✓ where the paper's value lies "
                  "inside this run's interval. The SUPERB score is compared only where this run scores the same tasks "
                  f"against superb-2024 (this run: {lb.reference or 'no SUPERB score'}). Table 7 reports its best L2 "
                  "weight, which every weight of a sweep is set beside."),
        "abx": ("δ(p) is a model's ABX score on phone pair p (percent, pooled over seeds). δ sd is the standard "
                "deviation of δ over pairs: the model's discriminative range. Δ sd is the standard deviation "
                "over pairs of δ_model(p) − δ_pre-trained(p): the spread of per-pair differences between the two "
                "models. p is the paired permutation test over pairs."),
    }


def seeds_text(lb: Leaderboard) -> str:
    counts = sorted({len(r.seeds) for r in lb.rows})
    if not counts:
        return "no seeds"
    n = str(counts[0]) if counts[0] == counts[-1] else f"{counts[0]}–{counts[-1]}"
    return f"{n} seed{'s' if counts[-1] > 1 else ''}"


def best_value(lb: Leaderboard, col: Column) -> float | None:
    """The column's best value when exactly one row has it; None for a tie (nothing is bolded)."""
    values = [r.cells[col.key].mean for r in lb.rows if col.key in r.cells and math.isfinite(r.cells[col.key].mean)]
    if len(values) < 2:
        return None
    best = min(values) if col.direction == "lower" else max(values)
    return best if sum(math.isclose(v, best, abs_tol=1e-12) for v in values) == 1 else None


_SHORT_WORDS = {"speaker": "spk", "context": "ctx"}


def short_label(col: Column) -> str:
    """A header that fits a narrow column: ``ABX within-spk any-ctx`` for ``ABX within speaker any context``."""
    words = col.label.split()
    out: list[str] = []
    for word in words:
        if word in _SHORT_WORDS and out:
            out[-1] = f"{out[-1]}-{_SHORT_WORDS[word]}"
        else:
            out.append(word)
    return " ".join(out)


#: the title of the sweeps' section
SWEEP_TITLE = "Settings chosen on the dev sets"


def sweep_rows(lb: Leaderboard) -> list[tuple[str, str, str, str, float | None, float, bool]]:
    """The sweeps (:attr:`Leaderboard.sweep_choices`), a row per swept value: upstream, sweep, setting, model, dev
    and test SUPERB score, and whether the dev sets chose it."""
    rows = []
    for choice in lb.sweep_choices:
        for value, model, dev, test in zip(choice.values, choice.models, choice.dev, choice.test, strict=True):
            shown = f"{value:g}" if isinstance(value, float) else value
            rows.append((choice.upstream, choice.sweep, f"{choice.parameter} = {shown}", model, dev, test,
                         choice.chosen is not None and value == choice.chosen))
    return rows


def sweep_table(lb: Leaderboard) -> tuple[list[str], list[list[str]]]:
    """The header and text cells of :func:`sweep_rows`, ✓ at the value chosen on the dev sets."""
    header = ["upstream", "sweep", "setting", "model", "dev SUPERB ↑", "test SUPERB ↑", "chosen"]
    rows = [[*names, fmt(dev), fmt(test), "✓" if chosen else ""] for *names, dev, test, chosen in sweep_rows(lb)]
    return header, rows


#: the title of the section that sets the paper's numbers beside the run's
PAPER_TITLE = "Against the paper's numbers"
#: what the section says when no model of the run corresponds to a row of the paper
NO_PAPER_MATCH = ("No model here corresponds to a row of the paper: models are matched by the entry names of the "
                  "shipped recipes (recipes/speech_ft_supervised.yaml and the others README.md lists for the paper's "
                  "tables).")


def paper_columns(lb: Leaderboard) -> list[Column]:
    """The columns of :attr:`Leaderboard.paper`: those some model shares with its paper row, in table order."""
    shown = {v.column for m in lb.paper or [] for v in m.values}
    return [c for c in lb.columns if c.key in shown]


def paper_grid(lb: Leaderboard) -> tuple[list[Column], list[tuple[PaperMatch, list[PaperValue | None]]]]:
    """:func:`paper_columns` and each model's values in those columns (None where its paper row lacks one)."""
    columns = paper_columns(lb)
    grid = []
    for match in lb.paper or []:
        values = {v.column: v for v in match.values}
        grid.append((match, [values.get(c.key) for c in columns]))
    return columns, grid


def paper_table(lb: Leaderboard) -> tuple[list[str], list[list[str]]]:
    """The header and text cells of :attr:`Leaderboard.paper`: a row per model, a column per metric that some model
    shares with its paper row, each ``ours (paper, Δ)`` with ✓ where the paper's value is inside the interval."""
    columns, grid = paper_grid(lb)
    header = ["upstream", "model", "paper", *[f"{c.label} {c.arrow}" for c in columns]]
    rows = []
    for match, values in grid:
        cells = ["–" if v is None else f"{fmt(v.ours, c.digits)} ({fmt(v.paper, c.digits)}, "
                 f"{fmt(v.delta, c.digits, sign=True)}){' ✓' if v.inside else ''}"
                 for c, v in zip(columns, values, strict=True)]
        rows.append([match.upstream, match.model, match.row, *cells])
    return header, rows
