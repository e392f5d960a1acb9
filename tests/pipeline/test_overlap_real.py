"""`--jobs 2` on the real plugins: fine-tuning, probes (PR on frames, SID on pooled means) and ABX of
two models, the evaluate stages of one model sharing a frame cache (filled in turn, then read side by
side), give the weights and metrics of a sequential run."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from harness.core.plan import Plan, build_plan
from harness.core.recipe import load_recipe
from harness.core.registry import default_manager
from harness.core.store import Store
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import RunSummary, run_plan

RECIPE = """\
name: overlap
output: {output}
seeds: [0]
corpora:
  speech: {{plugin: synthetic, n_utterances: 24, n_speakers: 4, n_unseen_speakers: 1}}
upstreams:
  hub: {{plugin: hubert, preset: tiny}}
  w2v: {{plugin: wav2vec2, preset: tiny}}
finetune:
  pr: {{plugin: supervised, task: pr, corpus: speech, steps: 3, batch_seconds: 4}}
downstreams:
  pr: {{plugin: pr, corpus: speech, steps: 12, eval_every: 6}}
  sid: {{plugin: sid, corpus: speech, steps: 12, eval_every: 6}}
  abx: {{plugin: abx, corpus: speech}}
"""


def _plan(tmp: Path, name: str) -> tuple[Plan, Path]:
    output = tmp / name
    path = tmp / f"{name}.yaml"
    path.write_text(textwrap.dedent(RECIPE).format(output=output))
    manager = default_manager()
    return build_plan(load_recipe(path, manager), manager), output


def _run(plan: Plan, output: Path, jobs: int) -> RunSummary:
    return run_plan(plan, output, LocalExecutor(default_manager(), device="cpu", jobs=jobs))


def _metrics(output: Path) -> dict[tuple[str, str], float]:
    with Store(output, readonly=True) as store:
        titles = {s.key: s.name for s in store.stages()}
        return {(titles[m.stage], m.full_name): m.value for m in store.metrics()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("overlap_real")
    plan, seq_out = _plan(tmp, "seq")
    sequential = _run(plan, seq_out, jobs=1)
    par_plan, par_out = _plan(tmp, "par")
    assert par_plan.stages.keys() == plan.stages.keys()
    par_out.mkdir()
    for stage in plan.stages.values():  # the prepared corpus is shared: the overlapped run adopts it
        if stage.kind == "prepare":
            shutil.copytree(seq_out / stage.key, par_out / stage.key)
    overlapped = _run(par_plan, par_out, jobs=2)
    return plan, seq_out, par_out, sequential, overlapped


def test_overlapped_probes_and_abx_equal_the_sequential_run(runs):
    plan, seq_out, par_out, sequential, overlapped = runs
    assert sequential.ok and overlapped.ok
    evaluates = {k for k, s in plan.stages.items() if s.kind == "evaluate"}
    assert len(evaluates) == 12 and evaluates <= set(overlapped.ran)
    seq, par = _metrics(seq_out), _metrics(par_out)
    tasks = {name.split(".")[0] for _, name in seq}
    assert {"pr", "sid", "abx", "superb"} <= tasks
    assert par == seq


def test_overlapped_fine_tuning_writes_the_sequential_weights_bit_for_bit(runs):
    """Each worker runs torch on as many threads as a sequential stage: on fewer, matrix products sum
    in another order and the weights drift from the sequential run's in their last bits."""
    plan, seq_out, par_out, _, _ = runs
    finetunes = [k for k, s in plan.stages.items() if s.kind == "finetune"]
    assert len(finetunes) == 2
    for key in finetunes:
        files = sorted(p.relative_to(seq_out / key) for p in (seq_out / key).rglob("*.safetensors"))
        assert files
        for rel in files:
            assert (par_out / key / rel).read_bytes() == (seq_out / key / rel).read_bytes(), rel


def test_evaluate_stages_overlapped(runs):
    """Of two models, and of one model once the stages before it filled their shared cache (the order of
    filling is tested on timed toy stages in test_overlap.py; the equal metrics above are its purpose)."""
    plan, _, par_out, _, _ = runs
    with Store(par_out, readonly=True) as store:
        rows = [r for r in store.stages(kind="evaluate")]
    spans = {r.key: (r.started, r.ended, plan.stages[r.key].inputs["model"]) for r in rows}

    def overlap(a: str, b: str) -> bool:
        return spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]

    pairs = [(a, b) for a in spans for b in spans if a < b and overlap(a, b)]
    assert any(spans[a][2] != spans[b][2] for a, b in pairs), "no two models' evaluate stages ran at once"
