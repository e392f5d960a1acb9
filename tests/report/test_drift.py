"""`harness drift`: the relative weight change per block and the linear CKA with θ0 per hidden state,
checked against an independent CKA (the HSIC form over n × n Gram matrices), the invariances CKA has, and
the Speech-FT identity θ0 + α(θft − θ0) → exactly α times the fine-tuned model's weight change."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
import torch

import harness
from harness.cli import main
from harness.core.errors import HarnessError
from harness.core.manifest import PreparedCorpus
from harness.core.registry import default_manager
from harness.core.store import StageRow, Store
from harness.data import audio
from harness.models.inference import batched_forward
from harness.models.model_io import load_model
from harness.report.drift import CKAStatistics, linear_cka, pretrained_of, weight_blocks, weight_change
from harness.report.drift_tables import drift_markdown, over_seeds


def hsic_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """CKA as Kornblith et al. define it: HSIC of the centred Gram matrices, normalised."""
    x, y = x.double(), y.double()
    n = x.shape[0]
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, l_ = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return float((k * l_).sum() / torch.sqrt((k * k).sum() * (l_ * l_).sum()))


def test_linear_cka_equals_the_hsic_form_and_has_its_invariances():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 12, generator=g)
    y = x[:, :8] @ torch.randn(8, 6, generator=g) + 0.5 * torch.randn(200, 6, generator=g)
    assert linear_cka(x, y) == pytest.approx(hsic_cka(x, y), abs=1e-10)
    assert 0.05 < linear_cka(x, y) < 0.95
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))
    assert linear_cka(x, (x.double() @ q) * 3.0 + 5.0) == pytest.approx(1.0, abs=1e-10)  # rotation, scale, shift
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)
    chunked = CKAStatistics()
    for start in range(0, 200, 37):  # accumulated over uneven chunks: the same value
        chunked.add(x[start:start + 37], y[start:start + 37])
    assert chunked.cka() == pytest.approx(linear_cka(x, y), abs=1e-12)
    with pytest.raises(HarnessError, match="gave 200 and 199 frames"):
        linear_cka(x, y[:199])


def _tiny_hubert():
    plugin = default_manager().create("upstream", "hubert")
    return plugin.build(plugin.Params(preset="tiny"), 0)


def test_blocks_and_the_weight_change_of_an_interpolated_model():
    base = _tiny_hubert()
    blocks = weight_blocks(base, base.downsampling_module())
    assert {n for n, b in blocks.items() if b == "cnn"} == {n for n, _ in base.named_parameters()
                                                            if n.startswith("feature_extractor.")}
    assert blocks["encoder.layers.0.attention.k_proj.weight"] == "layer 1"
    assert blocks["feature_projection.projection.weight"] == "other"
    g = torch.Generator().manual_seed(1)
    deltas = {n: torch.randn(p.shape, generator=g) * 0.01 for n, p in base.named_parameters()}
    tuned, merged = _tiny_hubert(), _tiny_hubert()
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            p.add_(deltas[name])
        for name, p in merged.named_parameters():
            p.add_(0.25 * deltas[name])
    full, speech_ft = weight_change(tuned, base, blocks), weight_change(merged, base, blocks)
    assert list(full) == [*dict.fromkeys(blocks.values()), "all"]
    for block in full:
        assert speech_ft[block] == pytest.approx(0.25 * full[block], rel=1e-5)
    by_hand = {n: p for n, p in base.named_parameters() if blocks[n] == "layer 2"}
    moved = sum(float(deltas[n].double().pow(2).sum()) for n in by_hand)
    size = sum(float(p.detach().double().pow(2).sum()) for p in by_hand.values())
    assert full["layer 2"] == pytest.approx((moved / size) ** 0.5, rel=1e-5)


def _row(key: str, kind: str, inputs: dict, labels: dict | None = None) -> StageRow:
    return StageRow(key, kind, "p", "", {}, inputs, labels or {}, "done", 0, 1, 1, None, None, {}, None, [])


def test_the_pretrained_model_is_found_through_fine_tunings_merges_and_continued_pretraining():
    stages = {s.key: s for s in [
        _row("up", "upstream", {}), _row("ft", "finetune", {"model": "up"}), _row("m", "merge", {"base": "up",
                                                                                             "models.0": "ft"}),
        _row("link", "merge", {"base": "m", "models.0": "ft"}),
        _row("pre", "finetune", {"model": "up"}, {"finetune": "pretrain"}), _row("ft2", "finetune", {"model": "pre"}),
    ]}
    assert [pretrained_of(k, stages) for k in ("up", "ft", "m", "link", "pre", "ft2")] == [
        "up", "up", "up", "up", "pre", "pre"]


RECIPE = """\
name: drift
output: {output}
seeds: [0]
corpora:
  speech: {{plugin: synthetic, n_utterances: 24, n_speakers: 4, n_unseen_speakers: 1}}
upstreams:
  hub: {{plugin: hubert, preset: tiny}}
finetune:
  pr: {{plugin: supervised, task: pr, corpus: speech, steps: 4, batch_seconds: 4, beta: 0.25}}
merges:
  speech_ft: {{plugin: linear, alpha: [0.25, 1.0]}}
downstreams:
  sid: {{plugin: sid, corpus: speech, steps: 2, eval_every: 2}}
"""


@pytest.fixture(scope="module")
def drift_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("drift")
    path = tmp / "drift.yaml"
    path.write_text(textwrap.dedent(RECIPE).format(output=tmp / "out"))
    assert main(["run", str(path), "--device", "cpu"]) == 0
    return tmp / "out"


def test_drift_of_a_run_against_an_independent_computation(drift_run, capsys, tmp_path):
    capsys.readouterr()
    figure = tmp_path / "drift.png"
    assert main(["drift", str(drift_run), "--split", "train", "--utterances", "6", "--format", "json",
                 "--plot", str(figure), "--device", "cpu"]) == 0  # the reference below runs on the CPU
    report = json.loads(capsys.readouterr().out)
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert harness.drift(drift_run, split="train", utterances=6, device="cpu") == report  # the same from Python
    assert (report["corpus"], report["split"], report["utterances"]) == ("speech", "train", 6)
    by_label = {m["model"]: m for m in report["models"]}
    assert set(by_label) == {"pr · speech_ft alpha=0.25", "pr · speech_ft alpha=1.0"}  # θ0 is the reference
    speech_ft, stable_ft = by_label["pr · speech_ft alpha=0.25"], by_label["pr · speech_ft alpha=1.0"]
    assert speech_ft["reference"] == stable_ft["reference"]
    assert stable_ft["weight_change"]["cnn"] == 0.0  # stable fine-tuning keeps the CNN frozen
    assert stable_ft["weight_change"]["all"] > 0
    for block, value in stable_ft["weight_change"].items():
        assert speech_ft["weight_change"][block] == pytest.approx(0.25 * value, rel=1e-4, abs=1e-12), block

    # CKA from the full hidden states of the same utterances, by the HSIC form
    plugins = default_manager()
    with Store(drift_run, readonly=True) as store:
        corpus_key = next(s.key for s in store.stages() if s.kind == "prepare")
    rows = PreparedCorpus(drift_run / corpus_key).utterances("train")[:6]
    wavs = [audio.load_utterance(r) for r in rows]

    def states(folder):
        model = load_model(folder, plugins)
        out = dict(batched_forward(model, wavs, batches=[[i] for i in range(len(wavs))]))
        return [torch.cat([out[i][layer] for i in range(len(wavs))]) for layer in range(model.num_hidden_states)]

    base = states(drift_run / stable_ft["reference"])
    for model in (speech_ft, stable_ft):
        tuned = states(drift_run / model["stage"])
        assert model["frames"] == base[0].shape[0]
        assert model["cka"] == pytest.approx([hsic_cka(b, t) for b, t in zip(base, tuned, strict=True)], abs=1e-6)
        assert all(0 < v <= 1 + 1e-9 for v in model["cka"])
    assert min(speech_ft["cka"]) < 1 - 1e-6  # the representations did move


def test_drift_table_and_its_refusals(drift_run, capsys, tmp_path):
    capsys.readouterr()
    assert main(["drift", str(drift_run), "--utterances", "3"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Weight change from the pre-trained model" in out and "pr · speech_ft alpha=0.25" in out
    assert "Linear CKA with the pre-trained model by hidden state (3 utterances of speech test" in out
    assert main(["drift", str(drift_run), "--utterances", "3", "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("**Weight change from the pre-trained model, ‖θ − θ0‖ / ‖θ0‖ (%)**\n\n")
    assert "| model | seeds | cnn | other | layer 1 | layer 2 | layer 3 | all |" in md  # the tiny HuBERT's blocks
    assert "| model | seeds | 0 | 1 | 2 | 3 | mean |" in md
    assert "\n| pr · speech_ft alpha=1.0 | 1 | 0.00 |" in md  # the CNN stayed frozen
    for args, message in [
        (["--corpus", "nope"], "this run prepared no corpus 'nope' (it has: speech); give one of them with --corpus."),
        (["--split", "nope"], "corpus speech has no split 'nope'"),
        (["--utterances", "0"], "--utterances 0 compares no audio; give 1 or more."),
        (["--plot", "x.pdf"], "--plot x.pdf names no figure format; end it in .png or .svg."),
        (["--plot", "/proc/drift.png"], "cannot write /proc/drift.png"),
    ]:
        assert main(["drift", str(drift_run), *args]) == 2
        assert message in " ".join(capsys.readouterr().err.split())
    assert main(["drift", str(drift_run / "absent")]) == 2
    assert "holds no results store" in capsys.readouterr().err
    damaged = tmp_path / "damaged"
    shutil.copytree(drift_run, damaged)
    assert main(["drift", str(damaged), "--format", "json"]) == 0
    stage = json.loads(capsys.readouterr().out)["models"][0]["stage"]
    (damaged / stage / "model.safetensors").unlink()  # weights deleted to save space
    assert main(["drift", str(damaged)]) == 2
    assert f"{damaged / stage} holds upstream.json but no model.safetensors; give a complete model folder" in " ".join(
        capsys.readouterr().err.split())


def test_the_leaderboard_carries_the_drift_report_where_asked(drift_run, capsys, tmp_path):
    fast = ["--resamples", "100", "--permutations", "100", "--drift", "--device", "cpu"]
    capsys.readouterr()
    assert main(["drift", str(drift_run), "--format", "md", "--device", "cpu"]) == 0
    tables = capsys.readouterr().out
    assert main(["leaderboard", str(drift_run), "--format", "md", *fast]) == 0
    board = capsys.readouterr().out
    assert f"## How far each model moved from its pre-trained model\n\n{tables.rstrip()}\n" in board
    assert main(["leaderboard", str(drift_run), "--format", "json", *fast]) == 0
    board_json = json.loads(capsys.readouterr().out)
    assert board_json["drift"] == harness.drift(drift_run, device="cpu")
    assert harness.leaderboard(drift_run, resamples=100, permutations=100, drift=True, device="cpu") == board_json
    # the α sweep judged on the dev sets: SID's dev accuracy, scaled as superb-2024 scales SID (FBank 0.09, top 95.25)
    (sweep,) = board_json["sweep_choices"]
    evals = {r["model"]: r["stage"] for r in harness.results(drift_run) if r["metric"] == "sid.acc"}
    dev = [json.loads((drift_run / evals[m] / "metrics.json").read_text())["extra"]["dev"]["acc"]
           for m in sweep["models"]]
    assert sweep["values"] == [0.0, 0.25, 1.0]
    assert sweep["dev"] == pytest.approx([1000 * (d - 0.09) / (95.25 - 0.09) for d in dev], rel=1e-9)
    assert sweep["chosen"] == sweep["values"][max(range(3), key=lambda i: (dev[i], -i))]
    page = tmp_path / "board.html"
    assert main(["leaderboard", str(drift_run), "--format", "html", "--out", str(page), "--plots", str(tmp_path / "p"),
                 *fast]) == 0
    assert (tmp_path / "p" / "drift.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "p" / "drift.svg").is_file()
    html = page.read_text()
    section = html[html.index('<section id="drift-section">'):]
    section = section[:section.index("</section>")]
    assert "<caption>Weight change from the pre-trained model" in section and "pr · speech_ft alpha=0.25" in section
    assert section.count("data:image/svg+xml;base64,") == 1  # the figure
    assert main(["leaderboard", str(drift_run), "--format", "md", "--resamples", "100", "--permutations", "100"]) == 0
    assert "How far each model moved" not in capsys.readouterr().out  # only where asked
    assert main(["leaderboard", str(drift_run), "--format", "csv", "--drift"]) == 2
    assert "--drift adds a section to md, html, json; csv holds the tables only" in capsys.readouterr().err


def test_several_folders_make_one_report(drift_run, capsys, tmp_path):
    copy, other = tmp_path / "copy", tmp_path / "other"
    shutil.copytree(drift_run, copy)
    one = harness.drift(drift_run, utterances=3, device="cpu")
    for folders in ([drift_run, drift_run], [drift_run, copy]):  # a folder twice, or the same models twice: once
        assert harness.drift(folders, utterances=3, device="cpu") == one
    # another piece of the study: the same recipe merged at α = 0.5
    assert main(["run", str(drift_run.parent / "drift.yaml"), "--device", "cpu", "--output", str(other),
                 "--set", "merges.speech_ft.alpha=[0.5]"]) == 0
    capsys.readouterr()
    assert main(["drift", str(drift_run), str(other), "--utterances", "3", "--format", "json", "--device", "cpu"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in both["models"]] == [*(m["model"] for m in one["models"]), "pr · speech_ft alpha=0.5"]
    assert both["models"][:2] == one["models"]
    # `harness models` lists the models of each folder in turn, a folder's copy adding none
    assert main(["models", str(drift_run), str(copy), str(other), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert main(["models", str(drift_run), "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert listed[:len(alone)] == alone
    assert [m["label"] for m in listed[len(alone):] if m["evaluated"]] == ["pr · speech_ft alpha=0.5"]
    assert {m["folder"].rsplit("/", 1)[0] for m in listed[len(alone):]} == {str(other)}


def test_models_past_the_memory_budget_are_compared_in_chunks_with_the_same_numbers(drift_run, monkeypatch):
    together = harness.drift(drift_run, utterances=3, device="cpu")
    monkeypatch.setattr("harness.report.drift.MODEL_BYTES_AT_ONCE", 1)  # one model at a time
    assert harness.drift(drift_run, utterances=3, device="cpu") == together


def test_any_model_of_the_run_can_be_the_reference(drift_run, capsys, tmp_path):
    stable = "pr · speech_ft alpha=1.0"
    default = {m["model"]: m for m in harness.drift(drift_run, utterances=3, device="cpu")["models"]}
    report = harness.drift(drift_run, utterances=3, device="cpu", reference=stable)
    by_label = {m["model"]: m for m in report["models"]}
    assert report["reference"] == stable and set(by_label) == {"pre-trained", "pr · speech_ft alpha=0.25"}
    assert by_label["pre-trained"]["cka"] == pytest.approx(default[stable]["cka"], abs=1e-9)  # CKA is symmetric
    # θ0 + 0.25 δ is 0.75 δ from θft, θ0 is δ from it: in every block
    for block, value in by_label["pre-trained"]["weight_change"].items():
        assert by_label["pr · speech_ft alpha=0.25"]["weight_change"][block] == pytest.approx(0.75 * value, rel=1e-4,
                                                                                             abs=1e-12), block
    capsys.readouterr()
    assert main(["drift", str(drift_run), "--utterances", "3", "--reference", stable, "--format", "md",
                 "--device", "cpu"]) == 0
    md = capsys.readouterr().out
    assert md.startswith(f"**Weight change from {stable}, ‖θ − θr‖ / ‖θr‖ (%)**")
    assert f"**Linear CKA with {stable} by hidden state (3 utterances of speech test" in md
    assert main(["drift", str(drift_run), "--reference", "nope"]) == 2
    assert "has no model 'nope'" in " ".join(capsys.readouterr().err.split())
    shutil.copytree(drift_run, tmp_path / "copy")
    assert main(["drift", str(drift_run), str(tmp_path / "copy"), "--reference", stable]) == 2
    assert "a reference model is looked up in one output folder" in capsys.readouterr().err


def test_a_reference_is_the_named_model_of_each_seed(drift_run, tmp_path):
    two_seeds = tmp_path / "seeds"
    assert main(["run", str(drift_run.parent / "drift.yaml"), "--device", "cpu", "--output", str(two_seeds),
                 "--set", "seeds=[0, 1]"]) == 0
    stable = "pr · speech_ft alpha=1.0"
    report = harness.drift(two_seeds, utterances=3, device="cpu", reference=stable)
    rows = {(m["model"], m["seed"]): m for m in report["models"]}
    assert set(rows) == {(label, seed) for label in ("pre-trained", "pr · speech_ft alpha=0.25") for seed in (0, 1)}
    plain = harness.drift(two_seeds, utterances=3, device="cpu")
    default = {(m["model"], m["seed"]): m for m in plain["models"]}
    for seed in (0, 1):  # each seed's rows compared with that seed's Stable-FT model
        assert rows[("pre-trained", seed)]["reference"] == default[(stable, seed)]["stage"]
        assert rows[("pre-trained", seed)]["cka"] == pytest.approx(default[(stable, seed)]["cka"], abs=1e-9)
    assert rows[("pre-trained", 0)]["cka"] != pytest.approx(rows[("pre-trained", 1)]["cka"], abs=1e-6)

    # the tables: a row per model with the mean over its seeds, or (--by-seed) a row per seed
    speech_ft = "pr · speech_ft alpha=0.25"
    first, second = default[(speech_ft, 0)], default[(speech_ft, 1)]
    mean = {m["model"]: m for m in over_seeds(plain)["models"]}[speech_ft]
    assert mean["seeds"] == [0, 1]
    assert mean["cka"] == pytest.approx([(a + b) / 2 for a, b in zip(first["cka"], second["cka"], strict=True)])
    assert mean["weight_change"]["all"] == pytest.approx((first["weight_change"]["all"]
                                                         + second["weight_change"]["all"]) / 2)
    md = drift_markdown(plain)
    row = f"\n| {speech_ft} | 2 | " + " | ".join(f"{v:.3f}" for v in mean["cka"])
    assert "(mean over seeds)**" in md and row in md and "seed 1" not in md
    by_seed = drift_markdown(plain, by_seed=True)
    assert f"\n| {speech_ft}, seed 1 | 1 | " in by_seed and "mean over seeds" not in by_seed


def test_cka_of_the_layer_normed_states_the_probes_read(drift_run, capsys):
    from harness.models.featurizer import layer_norm

    report = harness.drift(drift_run, split="train", utterances=4, device="cpu", layer_norm=True)
    plain = harness.drift(drift_run, split="train", utterances=4, device="cpu")
    assert report["layer_norm"] and not plain["layer_norm"]
    assert [m["weight_change"] for m in report["models"]] == [m["weight_change"] for m in plain["models"]]
    plugins = default_manager()
    with Store(drift_run, readonly=True) as store:
        corpus_key = next(s.key for s in store.stages() if s.kind == "prepare")
    wavs = [audio.load_utterance(r) for r in PreparedCorpus(drift_run / corpus_key).utterances("train")[:4]]

    def normed(folder):
        out = dict(batched_forward(load_model(folder, plugins), wavs, batches=[[i] for i in range(len(wavs))]))
        return [layer_norm(torch.cat([out[i][layer] for i in range(len(wavs))])) for layer in range(len(out[0]))]

    model = report["models"][0]
    base, tuned = normed(drift_run / model["reference"]), normed(drift_run / model["stage"])
    assert model["cka"] == pytest.approx([hsic_cka(b, t) for b, t in zip(base, tuned, strict=True)], abs=1e-6)
    # the frames compared are the layer-normed ones (HuBERT's post-norm layers already normalise theirs, up to
    # their affine weights, and the tiny models barely moved: both CKAs are near 1)
    from harness.report.drift import _frames

    upstream = load_model(drift_run / model["stage"], plugins)
    raw, normalized = (_frames(upstream, wavs, [0, 1], "cpu", normed) for normed in (False, True))
    assert all(torch.equal(layer_norm(r), n) for r, n in zip(raw, normalized, strict=True))
    assert not any(torch.equal(r, n) for r, n in zip(raw, normalized, strict=True))
    capsys.readouterr()
    assert main(["drift", str(drift_run), "--utterances", "3", "--layer-norm", "--format", "md",
                 "--device", "cpu"]) == 0
    assert "by hidden state (layer-normed) (3 utterances of speech test" in capsys.readouterr().out
