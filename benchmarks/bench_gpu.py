"""The whole machine in one run, on whatever device it has (CUDA when present): upstream, ABX, probes, demo.

1. Upstream: TFLOP/s and MFU of HuBERT forward+backward and extraction per path, and the fine-tuning
   stage's rate against the raw model rate (``measure`` of ``bench_upstream_speed.py``).
2. ABX: ours (all cores, and CUDA when present; libri-light's summation order and the default tile
   products) against libri-light's, and fastabx when importable, on random clustered frames
   (``bench_abx.py``'s features and fastabx call); scores and ratios.
3. Probes: PR (frames) and SID (pooled means) optimizer steps per second under the SUPERB protocol's
   batch, accumulation and learning rate, on random cached features of the preset's dimensions; the
   features moved per batch (the host path) against held in device memory (the CUDA default); and the
   PR probe on the fly (``cache: off``: the preset's HuBERT run on every batch of random audio files).
4. ``--demo``: ``harness run recipes/demo.yaml`` sequential against ``--jobs N``, into two temporary
   output folders that share one prepared corpus; wall times and whether the metrics are identical.

Every ratio is against a baseline measured in the same process. Defaults fit a 2-core CPU in about
two minutes; on a GPU:

    .venv/bin/python benchmarks/bench_gpu.py --preset base --batch-seconds 160 --steps 5 \\
        --abx-files 40 --abx-dim 768 --probe-steps 200 --probe-seconds 12 --demo --jobs 4
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from harness.core.threads import available_cores  # noqa: E402
from harness.evaluation.abx import abx, write_item_file  # noqa: E402
from harness.evaluation.probe import run_probe  # noqa: E402
from harness.models.feature_cache import FrameStore  # noqa: E402
from harness.models.sources import ENCODER_SHAPES  # noqa: E402

#: s3prl's LibriSpeech phone set without silence has 70 tokens; VoxCeleb1 has 1,251 speakers
PR_PHONES, SID_SPEAKERS = 70, 1251


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- 1. upstream


def upstream_section(device: torch.device, preset: str, batch_seconds: float, steps: int) -> None:
    print(f"\n## 1. upstream: HuBERT {preset}, batches of <= {batch_seconds:g} s x {steps}")
    try:
        measure = importlib.import_module("bench_upstream_speed").measure
    except (ImportError, AttributeError) as exc:
        print(f"not available ({exc})")
        return
    for row in measure(device, preset, batch_seconds, steps):
        print("  ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)


# --------------------------------------------------------------------------- 2. ABX


def abx_section(device: torch.device, files: int, dim: int, phones: int) -> None:
    from bench_abx import fastabx_scores

    from tests.downstream_helpers import clustered_features, librilight_abx

    print(f"\n## 2. ABX: {files} files of {dim}-dim random clustered frames, {phones} phones, 4 conditions, angular")
    tmp = Path(tempfile.mkdtemp(prefix="bench_gpu_abx_"))
    try:
        feats, items = clustered_features(tmp / "feats", files, dim, seed=0, n_phones=phones)
        write_item_file(tmp / "x.item", items)
        shift = 0.02
        start = time.perf_counter()
        try:
            ref = librilight_abx(tmp / "feats", tmp / "x.item", shift)
            if ref is None:
                print("libri-light's ABX is not installed (pip install --no-deps zerospeech-libriabx2==0.9.8): "
                      "ours alone")
        except RuntimeError as exc:  # it fails on sets where some condition has an empty group
            print(f"libri-light's ABX failed on this set ({exc}); ours alone (use more --abx-files)")
            ref = None
        t_ref = time.perf_counter() - start
        paths: list[tuple[str, dict[str, Any]]] = [(f"ours, {available_cores()} cores", {"threads": None})]
        if device.type == "cuda":
            abx(feats, items, shift, librilight_compat=True, device=device)  # warm-up: context and kernels
            abx(feats, items, shift, device=device)
            paths.append(("ours, CUDA", {"device": device}))
        # the default mode (tile products; what the ABX stage runs and what fastabx compares with)
        paths += [(f"{name} [default]", {**kw, "librilight_compat": False}) for name, kw in paths]
        results: dict[str, tuple[float, dict[str, float]]] = {}
        for name, kwargs in paths:
            start = time.perf_counter()
            scores = abx(feats, items, shift, **{"librilight_compat": True, **kwargs})
            _sync(device)
            results[name] = (time.perf_counter() - start, {f"{r.speaker}-{r.context}": r.score for r in scores})
        fast = fastabx_scores(tmp / "feats", tmp / "x.item", shift)
        if fast is not None:
            results["fastabx"] = fast
        print(f"{len(items)} items")
        if ref is not None:
            print(f"libri-light              {t_ref:8.2f} s")
        for name, (seconds, scores) in results.items():
            diff = max(abs(scores[k] - ref[k]) for k in ref) if ref is not None else float("nan")
            ratio = f"{t_ref / seconds:6.1f}x libri-light, " if ref is not None else ""
            vs_fast = ""
            if fast is not None and name != "fastabx":
                gap = max(abs(scores[k] - fast[1][k]) for k in fast[1])
                vs_fast = f", {fast[0] / seconds:5.2f}x fastabx (score difference {gap:.1e})"
            print(f"{name:<28} {seconds:8.2f} s  {ratio}largest score difference {diff:.1e}{vs_fast}")
        if fast is None:
            print("fastabx is not importable here (it needs Python >= 3.12): not compared")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- 3. probes


class _Dims(nn.Module):
    """What a probe asks of its upstream when every feature comes from the cache: its dimensions."""

    def __init__(self, num_hidden_states: int, hidden_size: int):
        super().__init__()
        self.num_hidden_states, self.hidden_size = num_hidden_states, hidden_size


class _RandomCache:
    """Random cached features for manifest rows: float16 frames of about ``frames`` per row, pooled means.

    Every row's frames are a window of one random pool (drawn once), as the frame cache hands out
    windows of its shards: drawing each split's frames anew would time the random generator."""

    POOL_FRAMES = 8192

    def __init__(self, layers: int, dim: int, frames: int, seed: int = 0):
        self.layers, self.dim, self.mean_frames = layers, dim, frames
        self.rng = np.random.default_rng(seed)
        shape = (layers, max(self.POOL_FRAMES, 2 * frames), dim)
        self.pool = self.rng.standard_normal(shape, dtype=np.float32).astype(np.float16)
        self.upstream_seconds = 0.0

    def pooled(self, rows: list[dict[str, Any]]) -> torch.Tensor:
        return torch.from_numpy(self.rng.standard_normal((len(rows), self.layers, self.dim), dtype=np.float32))

    def frames(self, rows: list[dict[str, Any]]) -> FrameStore:
        n = self.mean_frames
        lengths = self.rng.integers(n // 2, 3 * n // 2 + 1, size=len(rows))
        starts = self.rng.integers(0, self.pool.shape[1] - lengths + 1)
        return FrameStore([(self.pool, int(s), int(k)) for s, k in zip(starts, lengths, strict=True)])


def _probe_rows(task: str, n: int, rng: np.random.Generator, frames: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"id": f"{task}{i:05d}", "duration": 0.02 * frames}
        if task == "pr":  # about one phone per 4 frames (CTC needs fewer targets than frames)
            row["phones"] = [[f"p{k}", 0.0, 0.0] for k in rng.integers(0, PR_PHONES, size=max(1, frames // 4))]
        else:
            row["speaker"] = f"spk{int(rng.integers(0, SID_SPEAKERS))}"
        rows.append(row)
    return rows


def probe_section(device: torch.device, preset: str, steps: int, utterance_seconds: float, n_train: int) -> None:
    from plugins.downstreams.pr import PROTOCOLS as PR_PROTOCOLS
    from plugins.downstreams.pr import PhoneRecognitionTask
    from plugins.downstreams.sid import PROTOCOLS as SID_PROTOCOLS
    from plugins.downstreams.sid import SpeakerTask

    shape = ENCODER_SHAPES[preset]
    layers, dim = shape["num_hidden_layers"] + 1, shape["hidden_size"]
    frames = int(round(utterance_seconds * 50))
    print(f"\n## 3. probes: SUPERB protocol batches, {steps} steps, {layers} x {dim} features ({preset}), "
          f"utterances of {frames // 2}-{3 * frames // 2} frames, {n_train} training utterances, on {device}")

    for name, task, protocols in (
        ("pr", PhoneRecognitionTask([f"p{k}" for k in range(PR_PHONES)]), PR_PROTOCOLS),
        ("sid", SpeakerTask([f"spk{k}" for k in range(SID_SPEAKERS)]), SID_PROTOCOLS),
    ):
        base = protocols["superb"]
        settings = replace(base, steps=steps, eval_every=None)
        slow_steps = max(4, steps // 4)  # the slow paths (host batches, the upstream on the fly): fewer steps
        rng = np.random.default_rng(1)
        splits = {"train": _probe_rows(name, n_train, rng, frames), "dev": _probe_rows(name, 8, rng, frames),
                  "test": _probe_rows(name, 8, rng, frames)}
        rates = {}
        # the accelerator's default first, then batches built on the host
        for label, resident, n in (("in device memory", True, steps), ("moved per batch", False, slow_steps)):
            result = run_probe(task, _Dims(layers, dim), splits, replace(settings, steps=n),
                               _RandomCache(layers, dim, frames), seed=0, resident=resident, ctx=_device_ctx(device))
            rates[label] = result.extra["steps_per_second"]
        per_batch, held = rates["moved per batch"], rates["in device memory"]
        print(f"{name}: batch {settings.batch_size} x accumulate {settings.accumulate}, lr {settings.lr:g}: "
              f"{per_batch:8.2f} steps/s moved per batch, {held:8.2f} steps/s in device memory "
              f"({held / per_batch:.2f}x)")
        if name == "pr":
            on_the_fly_probe(device, preset, task, splits, replace(settings, steps=slow_steps), held)


def on_the_fly_probe(device: torch.device, preset: str, task: Any, splits: dict[str, list[dict[str, Any]]],
                     settings: Any, cached_rate: float) -> None:
    """The PR probe with ``cache: off``: the frozen upstream (the HuBERT preset, fp32 as extraction runs)
    on every batch of random waveforms written as WAV files, against the cached features' rate."""
    import soundfile as sf

    from plugins.upstreams.hubert import HubertParams, HubertPlugin

    tmp = Path(tempfile.mkdtemp(prefix="bench_gpu_audio_"))
    rng = np.random.default_rng(2)
    try:
        for split_rows in splits.values():
            for row in split_rows:
                row["path"] = str(tmp / f"{row['id']}.wav")
                sf.write(row["path"], (0.1 * rng.standard_normal(int(row["duration"] * 16000))).astype(np.float32),
                         16000, subtype="FLOAT")
        upstream = HubertPlugin().build(HubertParams(preset=preset), seed=0).to(device)
        result = run_probe(task, upstream, splits, replace(settings, cache="off"),
                           _RandomCache(1, 1, 1), seed=0, ctx=_device_ctx(device))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rate = result.extra["steps_per_second"]
    audio = settings.steps * settings.batch_size * settings.accumulate * float(splits["train"][0]["duration"])
    print(f"pr on the fly (HuBERT {preset} run on every batch): {rate:8.2f} steps/s, about "
          f"{audio / (settings.steps / rate):.0f} audio s/s ({rate / cached_rate:.3f}x the cached features' rate)")


def _device_ctx(device: torch.device):  # noqa: ANN202 - a stage context on its own folders
    from harness.core.registry import PluginManager
    from harness.core.stage import StageContext

    tmp = Path(tempfile.mkdtemp(prefix="bench_gpu_probe_"))
    return StageContext(key="bench", out_dir=tmp / "out", work_dir=tmp / "work", cache_root=tmp / "cache", seed=0,
                        plugins=PluginManager(entry_points=False), device=device)


# --------------------------------------------------------------------------- 4. the demo


def _metrics(output: Path) -> dict[tuple[str, str], float]:
    from harness.core.store import Store

    with Store(output, readonly=True) as store:
        titles = {s.key: s.name for s in store.stages()}
        return {(titles[m.stage], m.full_name): m.value for m in store.metrics()}


def demo_section(recipe_path: Path, jobs: int, device: str, gpu_jobs: int = 1) -> None:
    from harness.core.plan import Plan, build_plan
    from harness.core.recipe import load_recipe
    from harness.core.registry import default_manager
    from harness.pipeline.executors.local import LocalExecutor
    from harness.pipeline.run import run_plan

    overlapped = f"--jobs {jobs}" + (f" --gpu-jobs {gpu_jobs}" if gpu_jobs > 1 else "")
    print(f"\n## 4. {recipe_path.name}: sequential against {overlapped}, device {device}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_gpu_demo_"))
    try:
        manager = default_manager()
        prepared = tmp / "prepared"
        plan = build_plan(load_recipe(recipe_path, manager, output=prepared), manager)
        prepare = Plan(plan.recipe, {k: s for k, s in plan.stages.items() if s.kind == "prepare"})
        start = time.perf_counter()
        if not run_plan(prepare, prepared, LocalExecutor(manager, device="cpu")).ok:
            print("preparing the demo's corpora failed: not measured")
            return
        print(f"corpora prepared once in {time.perf_counter() - start:.1f} s (shared by both runs, not timed below)")
        walls = {}
        for label, extra in (("sequential", []), (overlapped, overlapped.split())):
            out = tmp / ("sequential" if label == "sequential" else "overlapped")
            out.mkdir()
            for key in prepare.stages:
                shutil.copytree(prepared / key, out / key)
            cmd = [sys.executable, "-m", "harness.cli", "run", str(recipe_path), "--output", str(out),
                   "--device", device, "--heartbeat", "0", *extra]
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
            walls[label] = (time.perf_counter() - start, out)
            if proc.returncode != 0:
                print(f"{label}: failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
                return
        (t_seq, seq_out), (t_par, par_out) = walls.values()
        same = _metrics(seq_out) == _metrics(par_out)
        print(f"sequential {t_seq:7.1f} s   {overlapped} {t_par:7.1f} s   ({t_seq / t_par:.2f}x)   "
              f"identical metrics: {same}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if cuda else "cpu")
    ap.add_argument("--preset", default="tiny", choices=sorted(ENCODER_SHAPES), help="HuBERT preset and feature dims")
    ap.add_argument("--batch-seconds", type=float, default=8.0, help="upstream: padded seconds per batch")
    ap.add_argument("--steps", type=int, default=2, help="upstream: batches timed per path")
    ap.add_argument("--abx-files", type=int, default=24)
    ap.add_argument("--abx-dim", type=int, default=24)
    ap.add_argument("--abx-phones", type=int, default=8)
    ap.add_argument("--probe-steps", type=int, default=20)
    ap.add_argument("--probe-seconds", type=float, default=4.0, help="probes: mean utterance length")
    ap.add_argument("--probe-train", type=int, default=64, help="probes: training utterances")
    ap.add_argument("--demo", action="store_true", help="also time the demo sequential against --jobs (minutes)")
    ap.add_argument("--jobs", type=int, default=2, help="--demo: concurrent stages of the overlapped run")
    ap.add_argument("--gpu-jobs", type=int, default=1, help="--demo: of those, how many share a CUDA GPU")
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "demo.yaml", help="--demo: the recipe run")
    ap.add_argument("--skip", nargs="*", default=[], choices=["upstream", "abx", "probes"])
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; {available_cores()} cores; torch {torch.__version__}; "
          f"settings {json.dumps(vars(args), default=str)}")
    started = time.perf_counter()
    if "upstream" not in args.skip:
        upstream_section(device, args.preset, args.batch_seconds, args.steps)
    if "abx" not in args.skip:
        abx_section(device, args.abx_files, args.abx_dim, args.abx_phones)
    if "probes" not in args.skip:
        probe_section(device, args.preset, args.probe_steps, args.probe_seconds, args.probe_train)
    if args.demo:
        demo_section(args.recipe.resolve(), args.jobs, "cuda" if device.type == "cuda" else "cpu", args.gpu_jobs)
    print(f"\nbench_gpu: {time.perf_counter() - started:.1f} s in all")


if __name__ == "__main__":
    main()
