"""The SUPERB score and its reference tables.

Per metric, ``1000 * (score - FBank) / (SOTA - FBank)`` (lower-is-better metrics need no special
case: both differences change sign); the metrics of a task are averaged, then the tasks
(SUPERB SLT 2022 challenge; Speech-FT paper, Appendix B). Metric names are ``task.metric``.

Reference tables:

- ``superb-2024`` (default): Table 15 of the Speech-FT paper, taken from the SUPERB journal
  extension (Yang et al., 2024). Worked example: HuBERT Base, PR 5.17, SID 81.86, ER 64.99,
  SF F1 88.54 / CER 24.70 gives 870.20.
- ``superb-slt2022``: the reference points of the SUPERB leaderboard site used for the SLT 2022
  challenge (public set). Error metrics there are stored as ``100 - value``; converted back here.
  They differ from ``superb-2024`` in two ways: the FBank baselines of KS (41.38 vs 8.63),
  IC (9.65 vs 10.44), SID (20.06 vs 0.09), ER (48.24 vs 35.39) and SF-CER (52.94 vs 52.92) were
  re-measured for the leaderboard, and the tops are the best public-leaderboard entries at the time
  of the challenge (e.g. PR 3.53, SID 90.30, ER 67.62, SF F1 89.81) rather than the journal's
  later state of the art (PR 2.55, SID 95.25, ER 70.68, SF F1 92.35). The site also scores ST, SE
  and SS, which the journal table does not.
- ``measured``: FBank as measured by the harness itself on the same corpus and downstreams, the
  ideal value as the top (0 for error rates, 100 for accuracies and F1): see :func:`measured_table`.
- a YAML file: ``{metric: {fbank: x, sota: y}}`` (or ``{metric: [x, y]}``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.core.errors import HarnessError
from harness.core.suggest import suggest

#: metric -> (FBank, SOTA)
Table = dict[str, tuple[float, float]]

SUPERB_2024: Table = {
    "pr.per": (82.01, 2.55),
    "asr.wer": (23.18, 3.36),
    "ks.acc": (8.63, 97.89),
    "qbe.mtwv": (0.0058, 0.1125),
    "sid.acc": (0.09, 95.25),
    "asv.eer": (9.56, 3.84),
    "sd.der": (10.05, 3.47),
    "er.acc": (35.39, 70.68),
    "ic.acc": (10.44, 99.34),
    "sf.f1": (69.64, 92.35),
    "sf.cer": (52.92, 17.61),
}

# The leaderboard stores error metrics as 100 - value; these are converted back (PER 100 - 17.99).
SUPERB_SLT2022: Table = {
    "pr.per": (100 - 17.99, 100 - 96.47),
    "asr.wer": (100 - 76.82, 100 - 96.38),
    "ks.acc": (41.3826674, 96.66),
    "qbe.mtwv": (0.0058, 0.0736),
    "sid.acc": (20.058174, 90.30),
    "asv.eer": (100 - 90.44, 100 - 94.89),
    "sd.der": (100 - 89.95, 100 - 94.38),
    "er.acc": (48.23672168, 67.62),
    "ic.acc": (9.649354219, 98.76),
    "sf.f1": (69.64, 89.81),
    "sf.cer": (100 - 47.06, 100 - 78.24),
    "st.bleu": (2.32, 20.01),
    "se.pesq": (2.55, 2.64),
    "se.stoi": (93.6, 94.2),
    "ss.sisdri": (9.2341, 10.4514),
}

#: metric (without its task) -> its ideal value, for the higher-is-better metrics that are not percentages
FRACTION_TOPS = {"mtwv": 1.0}

BUILTIN_TABLES: dict[str, Table] = {"superb-2024": SUPERB_2024, "superb-slt2022": SUPERB_SLT2022}
DEFAULT_TABLE = "superb-2024"


@dataclass
class ScoreResult:
    """The score, each task's score and each metric's scaled value (all on the 0..1000 scale)."""

    score: float
    tasks: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    reference_tasks: int = 0  # tasks in the reference table

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "tasks": self.tasks, "metrics": self.metrics}

    @property
    def coverage(self) -> tuple[int, int] | None:
        """(tasks scored, tasks of the reference) when the score covers only some of them, else None."""
        return (len(self.tasks), self.reference_tasks) if len(self.tasks) < self.reference_tasks else None


def table_tasks(table: Table) -> set[str]:
    """The tasks of a reference table (``pr`` of ``pr.per``)."""
    return {name.split(".", 1)[0].lower() for name in table}


def coverage(scored_tasks: Iterable[str], table: Table) -> tuple[int, int] | None:
    """(tasks of ``table`` scored, tasks of ``table``) when a score covers only some of them, else None."""
    total = table_tasks(table)
    covered = total & {t.lower() for t in scored_tasks}
    return None if covered == total else (len(covered), len(total))


def coverage_text(covers: tuple[int, int] | None) -> str:
    """`` (1 of 5 tasks)`` for a partial score, nothing for a complete one."""
    return "" if covers is None else f" ({covers[0]} of {covers[1]} tasks)"


def scaled(value: float, fbank: float, sota: float) -> float:
    """``1000 * (value - fbank) / (sota - fbank)``."""
    if sota == fbank:
        raise HarnessError(f"the reference has the same FBank and SOTA value ({fbank}); it cannot scale a score.")
    return 1000.0 * (value - fbank) / (sota - fbank)


def superb_score(metrics: Mapping[str, float], table: Table, strict: bool = True) -> ScoreResult:
    """The SUPERB score of ``metrics`` (``task.metric`` -> value) against ``table``.

    ``strict``: a metric the table lacks is an error (naming the closest known metric); otherwise
    it is left out and listed in ``ignored``.
    """
    if not metrics:
        raise HarnessError("no metrics to score; give them as task.metric=value, e.g. pr.per=5.17.")
    per_metric: dict[str, float] = {}
    ignored = []
    for name, value in metrics.items():
        key = name.lower()
        if key not in table:
            if strict:
                raise HarnessError(f"metric {name!r} is not in the reference table{suggest(key, sorted(table))}.")
            ignored.append(name)
            continue
        if not math.isfinite(float(value)):
            raise HarnessError(f"metric {name!r} has no finite value ({value}); rerun its evaluation.")
        per_metric[key] = scaled(float(value), *table[key])
    if not per_metric:
        raise HarnessError(
            f"none of the metrics {', '.join(metrics)} is in the reference table; pick another table."
        )
    by_task: dict[str, list[float]] = {}
    for key, value in per_metric.items():
        by_task.setdefault(key.split(".", 1)[0], []).append(value)
    tasks = {task: sum(v) / len(v) for task, v in by_task.items()}
    return ScoreResult(sum(tasks.values()) / len(tasks), tasks, per_metric, ignored, len(table_tasks(table)))


def measured_table(fbank: Mapping[str, float], directions: Mapping[str, str]) -> Table:
    """A table whose baseline is the harness's own FBank result and whose top is the ideal value.

    ``fbank``: ``task.metric`` -> the ``fbank`` upstream's value on the same corpus and downstreams;
    ``directions``: ``task.metric`` -> "higher"|"lower". Tops: 100 (higher) or 0 (lower), the scale
    of every percent metric here, and 1 for QbE's MTWV (a fraction, as SUPERB reports it); a metric
    where FBank is already ideal cannot be scaled and is left out.
    """
    table: Table = {}
    for name, value in fbank.items():
        direction = directions.get(name)
        if direction not in ("higher", "lower"):
            raise HarnessError(f"metric {name!r} has no direction (higher or lower); cannot build its top.")
        top = FRACTION_TOPS.get(name.split(".", 1)[-1].lower(), 100.0) if direction == "higher" else 0.0
        if float(value) != top:
            table[name.lower()] = (float(value), top)
    return table


def load_table(path: Path) -> Table:
    """A custom table from YAML: ``{task.metric: {fbank: x, sota: y}}`` or ``{task.metric: [x, y]}``."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"reference table {path} does not exist; give a built-in name or a YAML file.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise HarnessError(f"reference table {path} is not valid YAML ({exc.__class__.__name__}).") from None
    if not isinstance(data, dict) or not data:
        raise HarnessError(f"reference table {path} must map task.metric to {{fbank: x, sota: y}}.")
    table: Table = {}
    for name, entry in data.items():
        if isinstance(entry, dict) and {"fbank", "sota"} <= set(entry):
            pair = (entry["fbank"], entry["sota"])
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            pair = (entry[0], entry[1])
        else:
            raise HarnessError(f"reference table {path}: {name!r} must be {{fbank: x, sota: y}} or [x, y].")
        try:
            table[str(name).lower()] = (float(pair[0]), float(pair[1]))
        except (TypeError, ValueError):
            raise HarnessError(f"reference table {path}: {name!r} has a value that is not a number.") from None
        if "." not in str(name):
            raise HarnessError(f"reference table {path}: {name!r} must be named task.metric (e.g. pr.per).")
    return table


def get_table(name: str) -> Table:
    """A built-in table by name, or a YAML file by path (``measured`` needs FBank results: see
    :func:`measured_table`)."""
    if name in BUILTIN_TABLES:
        return BUILTIN_TABLES[name]
    if name == "measured":
        raise HarnessError(
            "the measured reference needs the fbank upstream's results; use it from a recipe or the "
            "leaderboard, which have them."
        )
    if name.endswith((".yaml", ".yml")) or Path(name).exists():
        return load_table(Path(name))
    raise HarnessError(
        f"unknown reference table {name!r}{suggest(name, list(BUILTIN_TABLES))} "
        f"(built-in: {', '.join(BUILTIN_TABLES)}, or a YAML file)."
    )


def reference_table(reference: str, fbank: Mapping[str, float] | None = None,
                    directions: Mapping[str, str] | None = None) -> Table:
    """The table a score stage and the leaderboard use: a built-in or YAML table by name, or for
    ``measured`` the FBank results restricted to SUPERB's task metrics (ABX and other metrics stay
    out of the score)."""
    if reference != "measured":
        return get_table(reference)
    superb = {name for table in BUILTIN_TABLES.values() for name in table}
    kept = {k: v for k, v in (fbank or {}).items() if k.lower() in superb and math.isfinite(float(v))}
    return measured_table(kept, directions or {})
