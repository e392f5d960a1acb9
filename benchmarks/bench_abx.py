"""ABX: this harness's batched implementation against libri-light's (``zerospeech-libriabx2``).

Same features, same item file, all four conditions (within/across speaker × within/any context),
angular distance, no subsampling on either side (libri-light's ``max_size_group`` and
``max_x_across`` set past the data), ``--librilight-compat`` on ours. Prints the scores per
condition and each path's wall time as a ratio to libri-light's, all measured in this run: ours on
one CPU thread, on every core, on CUDA when there is a GPU, each in libri-light's summation order
and in the default mode (``[default]``: tile products, what the ABX stage runs), the default mode
pair by pair as its baseline, and fastabx (angular, no subsampling, on its default device) when
it is importable (it needs Python >= 3.12).

    .venv/bin/pip install --no-deps zerospeech-libriabx2==0.9.8    # once
    .venv/bin/python benchmarks/bench_abx.py [--files 120 --dim 24 --phones 8] [--corpus DIR --upstream fbank]

By default the features are random frames with phone and speaker structure (``--files`` files of
``--dim`` dimensions). With ``--corpus`` (a prepared corpus with ``test.item``) they are the
hidden states of ``--upstream`` (``--layer``) on the utterances the item file names.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.core.threads import available_cores, torch_threads  # noqa: E402
from harness.evaluation.abx import abx, read_item_file, write_item_file  # noqa: E402
from harness.evaluation.abx.pair_table import PairAligner  # noqa: E402
from tests.downstream_helpers import clustered_features, librilight_abx  # noqa: E402

TILE_WASTE = PairAligner.PRODUCT_WASTE


def corpus_features(corpus_dir: Path, upstream: str, layer: int, out: Path):
    from harness.core.manifest import PreparedCorpus
    from harness.core.params import validate_params
    from harness.core.registry import PluginManager
    from harness.data import audio
    from harness.models.inference import batched_forward

    corpus = PreparedCorpus(corpus_dir)
    items = read_item_file(corpus_dir / corpus.meta["abx_items"]["test"])
    wanted = {it.file for it in items}
    rows = [r for s in corpus.splits for r in corpus.utterances(s) if r["id"] in wanted]
    pm = PluginManager()
    plugin = pm.create("upstream", upstream)
    model = plugin.build(validate_params(plugin.Params, {} if upstream == "fbank" else {"preset": "tiny"}, "u"), 0)
    feats = {}
    out.mkdir(parents=True, exist_ok=True)
    for i, states in batched_forward(model, [audio.load(r["path"]) for r in rows]):
        feats[rows[i]["id"]] = states[layer].numpy().astype(np.float32)
        np.save(out / f"{rows[i]['id']}.npy", feats[rows[i]["id"]])
    return feats, items, model.frame_shift


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=120)
    ap.add_argument("--dim", type=int, default=24)
    ap.add_argument("--phones", type=int, default=8)
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--upstream", default="fbank")
    ap.add_argument("--layer", type=int, default=-1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_abx_"))
    if args.corpus:
        feats, items, shift = corpus_features(args.corpus, args.upstream, args.layer, tmp / "feats")
        what = f"{args.upstream} layer {args.layer} on {args.corpus}"
    else:
        feats, items = clustered_features(tmp / "feats", args.files, args.dim, seed=0, n_phones=args.phones)
        shift = 0.02
        what = f"{args.files} files of {args.dim}-dim random clustered frames, {args.phones} phones"
    write_item_file(tmp / "x.item", items)
    dim = next(iter(feats.values())).shape[1]
    print(f"{what}: {len(items)} items, {len(feats)} files, dim {dim}, torch threads {torch.get_num_threads()}")

    # libri-light with torch's default threads and with one thread (its torch distance computations
    # are small too); the faster of the two is the reference time
    times = {}
    for threads in (torch.get_num_threads(), 1):
        with torch_threads(threads):
            start = time.perf_counter()
            ref = librilight_abx(tmp / "feats", tmp / "x.item", shift)
            times[threads] = time.perf_counter() - start
        if ref is None:
            sys.exit("zerospeech-libriabx2 is missing: .venv/bin/pip install --no-deps zerospeech-libriabx2==0.9.8")
    t_ref = min(times.values())
    cores = available_cores()
    paths = [("ours, 1 thread", {"threads": 1}), (f"ours, {cores} threads", {"threads": None})]
    if torch.cuda.is_available():
        abx(feats, items, shift, librilight_compat=True, device="cuda")  # warm-up: CUDA context, kernels
        paths.append(("ours, CUDA", {"device": "cuda"}))
    # the default mode (what the ABX stage runs, and what fastabx computes): one matrix product per
    # tile of tokens instead of libri-light's summation order
    paths += [(f"{name} [default]", {**kw, "librilight_compat": False}) for name, kw in paths]
    # the baseline of that: every pair's frame distances from its own frames (no tile products)
    paths.append((f"ours, {cores} threads, pair by pair [default]", {"librilight_compat": False, "waste": 0}))
    results = {}
    for name, kwargs in paths:
        PairAligner.PRODUCT_WASTE = kwargs.pop("waste", TILE_WASTE)
        start = time.perf_counter()
        ours = abx(feats, items, shift, **{"librilight_compat": True, **kwargs})
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        results[name] = (time.perf_counter() - start, {f"{r.speaker}-{r.context}": r.score for r in ours})
    PairAligner.PRODUCT_WASTE = TILE_WASTE
    fast = fastabx_scores(tmp / "feats", tmp / "x.item", shift)
    if fast is not None:
        results["fastabx (CUDA if present)"] = fast
    worst = 0.0
    for key in ref:
        shown = "  ".join(f"{name} {100 * scores[key]:8.4f} %" for name, (_, scores) in results.items())
        print(f"{key:<15} libri-light {100 * ref[key]:8.4f} %  {shown}")
        compatible = [sc for name, (_, sc) in results.items() if name.startswith("ours") and "[" not in name]
        compat = [abs(sc[key] - ref[key]) for sc in compatible]
        worst = max(worst, *compat)
    print(
        f"ours (libri-light compatible): largest difference to libri-light {worst:.2e} (fraction); "
        f"identical to 1e-6: {worst < 1e-6}"
    )
    shown = ", ".join(f"{v:.2f} s on {k} thread(s)" for k, v in times.items())
    print(f"libri-light {shown} (reference: the faster, {t_ref:.2f} s)")
    for name, (seconds, _) in results.items():
        print(f"{name:<44} {seconds:8.2f} s   {t_ref / seconds:6.1f}x libri-light")
    ratio = results[paths[-1][0]][0] / results[f"ours, {cores} threads [default]"][0]
    print(f"tile products against pair by pair, {cores} threads: {ratio:.2f}x")
    if fast is None:
        print("fastabx is not importable here (it needs Python >= 3.12): not compared")


def fastabx_scores(features: Path, item: Path, shift: float) -> tuple[float, dict[str, float]] | None:
    """fastabx's four scores (angular distance, no subsampling) and its time, or None without it."""
    try:
        from fastabx import zerospeech_abx
    except ImportError:
        return None
    scores = {}
    start = time.perf_counter()
    for speaker in ("within", "across"):
        for context in ("within", "any"):
            scores[f"{speaker}-{context}"] = zerospeech_abx(
                str(item), str(features), speaker=speaker, context=context, distance="angular",
                frequency=round(1 / shift), feature_maker=lambda p: torch.from_numpy(np.load(p)),
                max_size_group=None, max_x_across=None, extension=".npy",
            )
    return time.perf_counter() - start, scores

if __name__ == "__main__":
    main()
