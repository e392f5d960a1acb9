"""The benchmarks' tools: the FLOP count (grouped convolutions corrected, counted on a shape-only copy)
and the profile breakdown (kernel names sorted into kinds of work, one profiled pass)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from flop_count import count_flops, flops_by_category, shape_only_copy  # noqa: E402
from profile_breakdown import category, profile_pass  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402


def test_a_grouped_convolution_backward_counts_the_products_it_does():
    conv = torch.nn.Conv1d(32, 32, kernel_size=8, groups=4, padding=4)
    x = torch.randn(2, 32, 50, requires_grad=True)
    out_frames = 51  # 50 + 2·4 - 8 + 1
    forward = 2 * 2 * 32 * out_frames * (32 // 4) * 8  # 2 · batch · C_out · frames · C_in/groups · kernel
    assert count_flops(lambda: conv(x)) == forward
    assert count_flops(lambda: conv(x).sum().backward()) == 3 * forward  # input and weight gradients
    with FlopCounterMode(display=False) as torch_counter:  # torch's own formula: 4 × the weight gradient
        conv(x).sum().backward()
    assert torch_counter.get_total_flops() == 2 * forward + 4 * forward


def test_an_ungrouped_convolution_counts_as_torch_counts_it():
    conv = torch.nn.Conv1d(8, 16, kernel_size=3, stride=2)
    x = torch.randn(3, 8, 40, requires_grad=True)
    with FlopCounterMode(display=False) as torch_counter:
        conv(x).sum().backward()
    assert count_flops(lambda: conv(x).sum().backward()) == torch_counter.get_total_flops()


def test_flops_are_sorted_into_the_profile_categories_and_rated_against_their_time():
    a, conv, x = torch.randn(64, 32), torch.nn.Conv1d(4, 8, 3), torch.randn(2, 4, 20)

    def run() -> None:
        for _ in range(10):
            (a @ a.T).relu_()
        conv(x)

    flops = flops_by_category(run)
    assert flops == {"matmul": 10 * 2 * 64 * 32 * 64, "convolution": 2 * 2 * 8 * 18 * 4 * 3}
    breakdown = profile_pass(run, torch.device("cpu"))
    breakdown.flops = flops
    row = next(line for line in breakdown.format().splitlines() if line.strip().startswith("matmul"))
    rate = flops["matmul"] / breakdown.by_category["matmul"] / 1e12
    assert row.split()[-1] == f"{rate:.4g}" and row.split()[-2] == f"{flops['matmul'] / 1e12:.4g}"


def test_the_shape_only_copy_counts_what_the_model_computes():
    from plugins.upstreams.hubert import HubertParams, HubertPlugin

    model = HubertPlugin().build(HubertParams(preset="tiny"), seed=0).train()
    model.set_layerdrop(0.0)  # a layer skipped at random would make the two passes' work differ
    model.set_attention("packed")
    wavs, lengths = torch.randn(3, 16000), torch.tensor([16000, 9000, 12000])
    meta = shape_only_copy(model)
    assert meta.attention_mode == "packed" and next(meta.parameters()).device.type == "meta"
    on_cpu = count_flops(lambda: model(wavs, lengths).hidden_states[-1].sum().backward())
    on_meta = count_flops(lambda: meta(wavs.to("meta"), lengths).hidden_states[-1].sum().backward())
    assert on_meta == on_cpu > 0


@pytest.mark.parametrize(("name", "kind"), [
    # CUDA kernels as the profiler names them (torch 2.11, H200)
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1", "matmul"),
    ("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_TNT", "matmul"),
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nwc", "convolution"),
    ("void cudnn::cnn::implicit_convolve_sgemm<float, float, 1024, 5, 5, 3, 3, 3, 1, false>", "convolution"),
    ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel)", "attention"),
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128>>", "attention"),
    ("void vector_fft_r2c<float, 512u, 8u>(float*, float2*)", "fft"),
    ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16, float>", "normalization"),
    ("void at::native::(anonymous namespace)::GammaBetaBackwardCUDAKernel<float, float>", "normalization"),
    ("void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda>", "copy/cast"),
    ("Memcpy HtoD (Pageable -> Device)", "copy/cast"),
    ("void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor>", "optimizer"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>", "elementwise"),
    # CPU operators
    ("aten::addmm", "matmul"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
    ("aten::mkldnn_convolution", "convolution"),
    ("aten::native_layer_norm_backward", "normalization"),
    ("aten::_to_copy", "copy/cast"),
    ("aten::bernoulli_", "elementwise"),
])
def test_kernels_and_operators_are_sorted_into_kinds_of_work(name, kind):
    assert category(name) == kind


def test_a_matmul_heavy_pass_is_mostly_matmul_and_the_parts_add_up():
    # large enough that the products outweigh the ReLUs on many cores too (at 384 on 16 cores they did not)
    a = torch.randn(768, 768)

    def run() -> None:
        for _ in range(20):
            (a @ a).relu_()

    breakdown = profile_pass(run, torch.device("cpu"))
    assert max(breakdown.by_category, key=breakdown.by_category.get) == "matmul"
    assert breakdown.by_category["matmul"] > 0.6 * breakdown.busy
    assert sum(breakdown.by_category.values()) == pytest.approx(breakdown.busy)
    assert sum(sec for _, sec, _ in breakdown.top) == pytest.approx(breakdown.busy)
    assert dict((name, calls) for name, _, calls in breakdown.top)["aten::mm"] == 20
    assert 0.0 <= breakdown.idle_share < 1.0
    table = breakdown.format(per=20)
    assert "matmul" in table and "aten::mm" in table and "operators" in table


def test_the_readme_quotes_hubert_bases_useful_work_per_audio_second():
    """README: 33.2 (forward+backward) and 14.5 (extraction) TFLOP per thousand audio seconds, for the
    upstream benchmark's eight 160-second batches."""
    from bench_upstream_speed import _batches, _flops, _model

    model = _model(torch.device("cpu"), "base")
    batches = _batches(160.0, 8)
    audio = sum(len(w) for b in batches for w in b) / 16000
    train = _flops(model, batches, True, "packed") / audio / 1e9
    extraction = _flops(model, batches, False, "packed") / audio / 1e9
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"useful work is {train:.1f} TFLOP per thousand audio seconds" in readme
    assert f"forward+backward and {extraction:.1f} for extraction" in readme


def test_the_gpu_session_script_names_paths_flags_and_files_that_exist():
    """benchmarks/gpu_session.sh runs only where a GPU is lent: what it names must still exist when it does."""
    import re
    import shlex
    import subprocess

    from bench_upstream_speed import STAGE_LOOP, STAGE_PARTS, _paths

    root = Path(__file__).resolve().parents[1]
    script = root / "benchmarks" / "gpu_session.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text().replace("\\\n", " ")
    bench = re.search(r'^B="([^"]+)"$', text, re.M).group(1)
    text = text.replace("$B ", bench + " ")
    words = shlex.split(" ".join(line.split("#")[0] for line in text.splitlines()))
    for path in {w for w in words if re.fullmatch(r"(tests|benchmarks|recipes)/\S+\.(py|yaml)", w)}:
        assert (root / path).is_file(), path
    known = {p[0] for p in _paths(torch.device("cuda"), compile=True, only=None)} | {STAGE_LOOP, STAGE_PARTS}
    timed = set()
    for at in (i for i, w in enumerate(words) if w == "--paths"):
        rest = words[at + 1:]
        timed |= set(rest[:next(i for i, w in enumerate(rest) if w.startswith(("-", ">")))])
    assert {STAGE_LOOP, STAGE_PARTS, "bf16+auto+compile"} <= timed <= known, timed - known
    # on each command line, every flag after a tool's name is one that tool defines
    cli = root / "harness" / "cli"
    sources = {"bench_upstream_speed.py": [root / "benchmarks" / "bench_upstream_speed.py"],
               "bench_gpu.py": [root / "benchmarks" / "bench_gpu.py"],
               "bench_qbe.py": [root / "benchmarks" / "bench_qbe.py"],
               "run": [cli / "run_cmd.py", cli / "common.py"], "results": [cli / "results_cmd.py"],
               "drift": [cli / "drift_cmd.py"]}
    checked = 0
    for line in text.splitlines():
        line_words = shlex.split(line.split("#")[0].split(">")[0])
        at = next((i for i, w in enumerate(line_words) if Path(w).name in sources
                   and (w.endswith(".py") or line_words[i - 1] == "harness")), None)
        if at is None:
            continue
        defined = "".join(f.read_text() for f in sources[Path(line_words[at]).name])
        for flag in (w.split("=")[0] for w in line_words[at + 1:] if w.startswith("--")):
            assert f'"{flag}"' in defined, f"{flag} is not a flag of {line_words[at]}"
            checked += 1
    assert checked >= 23
