"""The benchmark's profile breakdown: kernel names sorted into kinds of work, and one profiled pass."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from profile_breakdown import category, profile_pass  # noqa: E402


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
    a = torch.randn(384, 384)

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
