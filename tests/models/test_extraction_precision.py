"""``extract_precision`` (probes) and ``harness extract --precision``: fp32 by default, tf32 or bf16 on
CUDA, fp32 on the CPU whatever is asked; features of another precision get a cache of their own."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from harness.core.params import validate_params
from harness.core.registry import PluginManager
from harness.evaluation.probe import feature_cache_for
from harness.evaluation.probe_settings import resolve_settings
from harness.models.inference import batched_forward, effective_precision, extraction_precision
from plugins.downstreams.pr import PROTOCOLS
from plugins.upstreams.hubert import HubertParams, HubertPlugin
from tests.downstream_helpers import make_ctx


def _waves() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(n).astype(np.float32) for n in (16000, 9000, 12500)]


def test_the_precision_applies_on_cuda_only():
    for precision in ("fp32", "tf32", "bf16"):
        assert effective_precision(precision, torch.device("cpu")) == "fp32"
        assert effective_precision(precision, None) == "fp32"
        assert effective_precision(precision, "cuda:1") == precision


def test_on_the_cpu_every_precision_extracts_the_fp32_features():
    model = HubertPlugin().build(HubertParams(preset="tiny"), seed=1)
    runs = {p: dict(batched_forward(model, _waves(), device="cpu", precision=p)) for p in ("fp32", "tf32", "bf16")}
    for precision in ("tf32", "bf16"):
        for i, states in runs["fp32"].items():
            assert all(torch.equal(a, b) for a, b in zip(states, runs[precision][i], strict=True)), precision


def test_tf32_switches_the_matmul_precision_for_the_forward_only():
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    with extraction_precision("tf32", torch.device("cuda")):
        assert matmul.fp32_precision == "tf32"
    assert matmul.fp32_precision == before
    with pytest.raises(KeyError), extraction_precision("tf32", torch.device("cuda")):
        raise KeyError("a failing batch")
    assert matmul.fp32_precision == before  # restored on the way out of an error too
    with extraction_precision("tf32", torch.device("cpu")):
        assert matmul.fp32_precision == before


@pytest.mark.parametrize("downstream", ["pr", "abx"])
def test_the_parameter_keeps_stage_keys_and_refuses_other_values(downstream):
    plugin = PluginManager().create("downstream", downstream)
    assert "extract_precision" not in validate_params(plugin.Params, {}, downstream).model_dump()  # keys unchanged
    params = validate_params(plugin.Params, {"extract_precision": "bf16"}, downstream)
    assert params.model_dump()["extract_precision"] == "bf16"
    if downstream == "pr":
        assert resolve_settings(params, PROTOCOLS).extract_precision == "bf16"
    with pytest.raises(Exception, match="extract_precision"):
        validate_params(plugin.Params, {"extract_precision": "fp16"}, downstream)


def test_features_of_another_precision_have_a_cache_of_their_own(tmp_path):
    model = HubertPlugin().build(HubertParams(preset="tiny"), seed=1)
    settings = resolve_settings(validate_params(PluginManager().create("downstream", "pr").Params, {}, "pr"), PROTOCOLS)
    roots = {}
    for device, precision in (("cpu", "fp32"), ("cpu", "bf16"), ("cuda", "fp32"), ("cuda", "bf16"), ("cuda", "tf32")):
        ctx = dataclasses.replace(make_ctx(tmp_path), device=torch.device(device))
        cache = feature_cache_for(model, ctx, dataclasses.replace(settings, extract_precision=precision))
        roots[device, precision] = cache.root
        assert cache.precision == effective_precision(precision, ctx.device)
        ignored = device == "cpu" and precision != "fp32"
        assert ctx.messages == ([f"extract_precision: {precision} applies on CUDA only; this run on cpu extracts "
                                 "features in fp32"] if ignored else [])
    shared = tmp_path / "cache" / "features" / "m" / "c"
    assert roots["cpu", "fp32"] == roots["cpu", "bf16"] == roots["cuda", "fp32"] == shared  # the CPU ignores it
    assert roots["cuda", "bf16"] == shared / "bf16" and roots["cuda", "tf32"] == shared / "tf32"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_tf32_and_bf16_features_stay_close_to_fp32():
    model = HubertPlugin().build(HubertParams(preset="tiny"), seed=1).cuda()
    runs = {p: dict(batched_forward(model, _waves(), device="cuda", precision=p)) for p in ("fp32", "tf32", "bf16")}
    for precision, tolerance in (("tf32", 1e-2), ("bf16", 5e-2)):
        for i, states in runs["fp32"].items():
            for a, b in zip(states, runs[precision][i], strict=True):
                assert (a - b).norm() / a.norm() < tolerance, precision
