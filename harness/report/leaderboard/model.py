"""The leaderboard's view model: settings, columns, rows of cells and their comparisons with the baseline
and, for merges with 0 < α < 1, with the fully fine-tuned model."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.evaluation.scoring import FRACTION_TOPS

#: the key of the SUPERB score's column
SUPERB = "superb.score"
#: the ``finetune`` label of a pre-trained model (each upstream's baseline)
BASELINE_FINETUNE = "none"


@dataclass
class Settings:
    level: float = 0.95
    n_resamples: int = 2000
    n_permutations: int = 5000
    seed: int = 0
    threshold: float = 0.05
    #: p-values adjusted over each table's comparisons (items and seeds apart): "none", "holm" or "bh"
    adjust: str = "none"


@dataclass
class Column:
    key: str  # "<downstream>.<metric>" or "superb.score"
    downstream: str  # recipe entry name ("" for the SUPERB score)
    task: str  # plugin name ("superb" for the score)
    metric: str
    direction: str

    @property
    def digits(self) -> int:
        """Decimals shown: 2 for percentages and scores, 4 for the fractions SUPERB reports that way (QbE's MTWV)."""
        return 4 if self.metric.lower() in FRACTION_TOPS else 2

    @property
    def label(self) -> str:
        if self.key == SUPERB:
            return "SUPERB"
        name = self.task.upper() if self.downstream == self.task else self.downstream
        metric = self.metric.replace("_", " ") if "_" in self.metric else self.metric.upper()
        return f"{name} {metric}"  # "PR PER", "ABX within speaker within context"

    @property
    def arrow(self) -> str:
        return "↓" if self.direction == "lower" else "↑"


@dataclass
class Comparison:
    """Model − baseline (the pre-trained or the fully fine-tuned model) on the shared items and seeds."""

    delta: float
    low: float | None
    high: float | None
    p_items: float | None
    p_seeds: float | None
    n_seeds: int
    significant: bool
    better: bool
    digits: int = 2  # decimals shown (the column's)
    #: what gave p_items: "permutation" (ratio metrics) or "bootstrap" (the paired bootstrap's p, for an EER,
    #: an MTWV and a SUPERB score that includes them)
    items_test: str = "permutation"


@dataclass
class Cell:
    mean: float
    low: float | None
    high: float | None
    interval: str  # "items", "items+seeds", "seeds" or "" (none)
    per_seed: dict[int, float]
    n_items: int | None
    vs_baseline: Comparison | None = None
    covers: tuple[int, int] | None = None  # a partial SUPERB score: (tasks scored, tasks of the reference)
    vs_finetuned: Comparison | None = None  # a merge with 0 < α < 1 against its α = 1 model (Stable-FT)
    digits: int = 2  # decimals shown (the column's)


@dataclass
class AbxSpread:
    """The delta-value standard deviations of one ABX metric (see :func:`harness.report.stats.delta_value_std`)."""

    n_pairs: int
    delta_value_std: float
    paired_delta_value_std: float | None


@dataclass
class Row:
    upstream: str
    model: str
    finetune: str
    merge: str
    merge_params: Any
    alpha: float | None
    seeds: list[int]
    baseline: bool
    cells: dict[str, Cell] = field(default_factory=dict)
    layer_weights: dict[str, list[float]] = field(default_factory=dict)
    abx: dict[str, AbxSpread] = field(default_factory=dict)
    #: the SUPERB score of its dev results, mean over seeds (None: some evaluation kept no dev value)
    dev_superb: float | None = None


@dataclass
class SweepChoice:
    """One sweep of a setting (α of a merge, or a swept fine-tuning parameter such as ``l2_lambda``) with each
    model's SUPERB score on the dev sets and on the test sets, and the value whose dev score is highest: the one a
    study that does not look at its test results would choose (None when a model has no dev score)."""

    upstream: str
    sweep: str  # what is swept: "pr (speech_ft)" for α, the fine-tuning entry (and its merge) otherwise
    parameter: str  # "α", or the swept parameters' names ("l2_lambda")
    values: list[float | str]  # α, or each point's swept values as the recipe wrote them
    models: list[str]
    dev: list[float | None]
    test: list[float]
    chosen: float | str | None


@dataclass
class Pairwise:
    """One column of a comparison of two chosen models: both cells and model − baseline."""

    column: Column
    model: Cell
    baseline: Cell
    comparison: Comparison


@dataclass
class PaperValue:
    """One metric of a model beside the value the paper reports for the row it reproduces."""

    column: str  # the column's key
    ours: float
    low: float | None
    high: float | None
    paper: float

    @property
    def delta(self) -> float:
        return self.ours - self.paper

    @property
    def inside(self) -> bool:
        """Whether the paper's value lies inside this run's interval."""
        return self.low is not None and self.high is not None and self.low <= self.paper <= self.high


@dataclass
class PaperMatch:
    """A model of the run that reproduces a row of the paper (:mod:`harness.report.paper_tables`)."""

    upstream: str
    model: str
    row: str  # "Table 2: PC on TIMIT, Speech-FT"
    values: list[PaperValue]


@dataclass
class Leaderboard:
    source: str
    columns: list[Column]
    rows: list[Row]
    settings: Settings
    reference: str | None
    notes: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)  # the output folders read (``source`` names them)
    drift: dict[str, Any] | None = None  # `harness drift`'s report, where asked for (harness.report.drift.drift)
    sweep_choices: list[SweepChoice] = field(default_factory=list)  # each sweep (α, swept fine-tuning), on dev
    paper: list[PaperMatch] | None = None  # the paper's numbers beside the run's, where asked for (leaderboard.paper)

    def to_dict(self) -> dict[str, Any]:
        return _finite({
            "source": self.source,
            "folders": self.folders or [self.source],
            "reference": self.reference,
            "settings": asdict(self.settings),
            "columns": [{**asdict(c), "label": c.label} for c in self.columns],
            "rows": [asdict(r) for r in self.rows],
            "notes": self.notes,
            **({"sweep_choices": [asdict(c) for c in self.sweep_choices]} if self.sweep_choices else {}),
            **({"drift": self.drift} if self.drift is not None else {}),
            **({"paper": [{**asdict(m), "values": [{**asdict(v), "delta": v.delta, "inside": v.inside}
                                                   for v in m.values]} for m in self.paper]}
               if self.paper is not None else {}),
        })

    @property
    def multi_upstream(self) -> bool:
        return len({r.upstream for r in self.rows}) > 1

    def row_label(self, row: Row) -> str:
        return f"{row.upstream} · {row.model}" if self.multi_upstream else row.model


def _finite(x: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, dict keys strings."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x
