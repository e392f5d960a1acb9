#!/usr/bin/env bash
# Every GPU measurement still missing, in one call of under ten minutes, each part written into $OUT as
# it finishes: the fine-tuning stage loop against the raw rate and taken apart a piece a row
# (stage-parts), the probes' steps per second (PR and SID, cached and on the fly), the three-seed demo
# overlapped on the GPU and `harness drift` of its models, the upstream's default path against compiled
# layers and CUDA graphs, QbE's grouped DTW on the CPU and the GPU, then the GPU-only tests.
# (`bench_upstream_speed.py --profile bf16+fft` and the full path table were measured on an H200 and are
# in README.md; run them on their own where a new device needs them.)
#
#   OUT=gpu-results WHEELS=path/to/py-wheels bash benchmarks/gpu_session.sh
#
# WHEELS: a folder of wheels for what the GPU image lacks (shared/DESIGN.md lists them), installed with
# --no-index; leave it unset where they are installed already. Each part has its own time limit, so a
# slow part costs its limit and the rest still run. It writes nine files (the device tool brings back
# ten) and prints the most telling ones last, where a truncated output keeps them.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
DEMO_OUT=${DEMO_OUT:-/tmp/gpu-session-demo}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "== $1 at +$(( $(date +%s) - t0 )) s" | tee -a "$OUT/timeline.txt"; }
if [ -n "${WHEELS:-}" ]; then
  python -m pip install -q --no-index --find-links "$WHEELS" pydantic soundfile soxr espeakng-loader \
    kaldi-native-fbank jiwer editdistance cffi 2>&1 | tail -2
fi
python -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/timeline.txt"

B="python benchmarks/bench_upstream_speed.py --preset base --seconds 160"
stamp "stage loop"
timeout 60 $B --steps 8 --paths stage-loop stage-parts > "$OUT/stage_loop.txt" 2>&1
stamp "probes (rc $?)"
timeout 100 python benchmarks/bench_gpu.py --preset base --skip upstream abx --probe-steps 100 --probe-seconds 12 \
  > "$OUT/probes.txt" 2>&1
stamp "three-seed demo, overlapped (rc $?)"
rm -rf "$DEMO_OUT"
s=$(date +%s)
timeout 140 harness run recipes/demo_evidence.yaml --output "$DEMO_OUT" --device cuda --jobs 12 --gpu-jobs 10 \
  --heartbeat 0 >> "$OUT/demo.txt" 2>&1  # appending: workers left running must not write over the next line
echo "demo_evidence, 3 seeds, --jobs 12 --gpu-jobs 10: rc $? in $(( $(date +%s) - s )) s of wall time" | tee -a "$OUT/demo.txt"
pkill -f "harness run" 2>/dev/null; pkill -f "multiprocessing.spawn" 2>/dev/null  # workers a timeout left behind
timeout 20 env COLUMNS=160 harness results "$DEMO_OUT" --times 2>&1 | grep -A40 "stage time by kind" > "$OUT/demo_times.txt"
stamp "drift of the demo's models on the GPU"
s=$(date +%s)
timeout 25 harness drift "$DEMO_OUT" --device cuda --format md > "$OUT/drift.txt" 2>&1
echo "harness drift --device cuda: rc $? in $(( $(date +%s) - s )) s of wall time" | tee -a "$OUT/drift.txt"
stamp "upstream: the default path against compiled layers and CUDA graphs (rc $?)"
# one call, so the useful work is counted once; the compiled paths (the slowest) last
timeout 95 $B --steps 8 --paths bf16+fft bf16+fft+cnn_gemm bf16+auto+compile bf16+auto+compile+graphs \
  > "$OUT/upstream.txt" 2>&1
stamp "QbE matching, grouped against one document at a time (rc $?)"
timeout 45 python benchmarks/bench_qbe.py --queries 20 --documents 400 --dim 768 > "$OUT/qbe.txt" 2>&1
stamp "tests (rc $?)"
timeout 90 python -m pytest -p no:cacheprovider -rf tests/pipeline/test_device_contract.py \
  tests/training/test_stable_ft.py tests/evaluation/test_probe_resident.py tests/models/test_host_lengths.py tests/training/test_autotune_buckets.py tests/models/test_packed_encoder.py \
  tests/models/test_upstream_speed.py tests/models/test_feature_conv.py tests/models/test_extraction_precision.py \
  tests/models/test_inference.py tests/models/test_featurizer.py tests/test_benchmark_tools.py \
  -k "not readme" > "$OUT/pytest.txt" 2>&1
stamp "end (rc $?)"
cat "$OUT/demo_times.txt"
tail -2 "$OUT/demo.txt"
tail -1 "$OUT/drift.txt"
cat "$OUT/qbe.txt" "$OUT/upstream.txt" "$OUT/probes.txt" "$OUT/stage_loop.txt"
tail -3 "$OUT/pytest.txt"
