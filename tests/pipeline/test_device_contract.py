"""The device contract (harness.core.interfaces): which device each stage runs on and who moves what there.

A CPU-only machine has one real device, so these tests use the ``meta`` device as the accelerator and a
dispatch mode that fails any operation mixing two devices: a plugin that leaves a tensor on the CPU while
the runner put the model on ``ctx.device`` fails here as it would on a GPU.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from harness import hookimpl
from harness.cli import main
from harness.core.errors import HarnessError
from harness.core.interfaces import EvalResult
from harness.core.plan import Stage, build_plan
from harness.core.recipe import load_recipe
from harness.core.registry import PluginManager
from harness.core.store import Store
from harness.models import model_io
from harness.models.model_io import model_device, parse_device
from harness.pipeline import execute
from harness.pipeline.execute import ACCELERATOR_KINDS, STAGE_FUNCTIONS, Outcome, execute_stage
from harness.pipeline.executors import local
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.executors.ray import RayExecutor, ray_device, run_stage_task, write_marker
from harness.pipeline.run import run_plan
from tests import toy_plugins
from tests.core_helpers import toy_manager, write_recipe

META = torch.device("meta")
CPU = torch.device("cpu")


class DeviceMixDetector(TorchDispatchMode):
    """Fails every operation whose tensor arguments live on different devices (a copy between devices and
    0-dim CPU scalars are allowed, as on CUDA)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not torch.ops.aten.copy_.default:
            devices = {t.device for t in tree_leaves((args, kwargs))
                       if isinstance(t, torch.Tensor) and not (t.dim() == 0 and t.device.type == "cpu")}
            if len(devices) > 1:
                raise AssertionError(f"{func} mixes devices {sorted(map(str, devices))}")
        return func(*args, **kwargs)


# ---------------------------------------------------------------------- spies around the toy plugins

SEEN: dict[str, Any] = {}


def _devices(model: torch.nn.Module) -> set[torch.device]:
    return {p.device for p in model.parameters()}


class SpyCorpus(toy_plugins.ToyCorpus):
    name = "spy_corpus"

    def prepare(self, params, out_dir, ctx) -> None:
        SEEN["prepare"] = ctx.device
        super().prepare(params, out_dir, ctx)


class SpyFinetune(toy_plugins.ToyFinetune):
    """The toy fine-tuning as it is; then the model goes back to (empty) CPU memory, since a meta model
    cannot be copied to the CPU for saving."""

    name = "spy_ft"

    def finetune(self, upstream, corpora, params, ctx):
        SEEN["finetune"] = (ctx.device, _devices(upstream))
        with DeviceMixDetector():
            metrics = super().finetune(upstream, corpora, params, ctx)
        SEEN["finetune_after"] = _devices(upstream)
        upstream.to_empty(device="cpu")
        return metrics


class SpyEval(toy_plugins.ToyEval):
    """Records the devices and runs the model on inputs made on ctx.device (the toy's metric needs real
    weights, which a meta model does not have)."""

    name = "spy_eval"

    def evaluate(self, upstream, corpus, params, ctx) -> EvalResult:
        SEEN["evaluate"] = (ctx.device, _devices(upstream))
        n = len(corpus.utterances("test"))
        with DeviceMixDetector():
            out = upstream(torch.zeros(n, upstream.width, device=ctx.device),
                           torch.full((n,), upstream.width, device=ctx.device))
        SEEN["evaluate_out"] = {h.device for h in out.hidden_states} | {out.lengths.device}
        return EvalResult({"acc": 50.0}, {"acc": "higher"}, n, [], None)


class SpyMerge(toy_plugins.ToyMerge):
    name = "spy_merge"

    def merge_tensor(self, name, base, finetuned, params, *rest):
        SEEN.setdefault("merge", set()).update({base.device, *(t.device for t in finetuned)})
        return super().merge_tensor(name, base, finetuned, params, *rest)


@hookimpl
def harness_register_corpus(registry):
    registry.add(SpyCorpus)


@hookimpl
def harness_register_upstream(registry):
    registry.add(toy_plugins.ToyUpstream)


@hookimpl
def harness_register_finetune(registry):
    registry.add(SpyFinetune)


@hookimpl
def harness_register_merge(registry):
    registry.add(SpyMerge)


@hookimpl
def harness_register_downstream(registry):
    registry.add(SpyEval)


def spy_manager() -> PluginManager:
    return PluginManager(modules=[(sys.modules[__name__], "device-tests", "0.0")], entry_points=False)


def stage(key: str, kind: str, plugin: str, params: dict | None = None, inputs: dict | None = None) -> Stage:
    return Stage(key, kind, plugin, "1", params or {}, inputs or {}, 0)


def run_ok(st: Stage, output: Path, plugins: PluginManager, device: torch.device) -> Outcome:
    outcome = execute_stage(st, output, plugins=plugins, device=device)
    assert outcome.status == "done", outcome.error
    return outcome


# ---------------------------------------------------------------------- the stage runner


def test_the_detector_catches_a_tensor_left_on_the_cpu():
    weight = torch.zeros(2, 2, device=META)
    with pytest.raises(AssertionError, match="mixes devices"), DeviceMixDetector():
        weight.add_(torch.ones(2, 2))  # what the toy fine-tuning did before it followed the contract
    with DeviceMixDetector():
        weight.add_(torch.ones(2, 2, device=META))
        weight.mul_(torch.tensor(2.0))


def test_accelerator_kinds_are_declared_for_stage_kinds_that_exist():
    assert ACCELERATOR_KINDS == {"finetune", "evaluate"}
    assert ACCELERATOR_KINDS <= set(STAGE_FUNCTIONS)
    assert execute.stage_device("finetune", META) == META
    assert {execute.stage_device(kind, META) for kind in set(STAGE_FUNCTIONS) - ACCELERATOR_KINDS} == {CPU}


def test_accelerator_stages_get_the_upstream_on_ctx_device_and_the_others_stay_on_the_cpu(tmp_path):
    SEEN.clear()
    plugins = spy_manager()
    run_ok(stage("prep", "prepare", "spy_corpus", {"n": 4}), tmp_path, plugins, META)
    # an upstream stage saves the model it built: that works only while the model stays on the CPU
    run_ok(stage("up", "upstream", "toy_up", {"width": 4}), tmp_path, plugins, META)
    run_ok(stage("ft", "finetune", "spy_ft", {"corpus": "nums", "steps": 2},
                 {"model": "up", "corpus:nums": "prep"}), tmp_path, plugins, META)
    run_ok(stage("ev", "evaluate", "spy_eval", {}, {"model": "up", "corpus": "prep"}), tmp_path, plugins, META)
    run_ok(stage("mg", "merge", "spy_merge", {"alpha": 0.5}, {"base": "up", "models.0": "up"}), tmp_path, plugins,
           META)
    assert SEEN["prepare"] == CPU
    assert SEEN["finetune"] == (META, {META}) and SEEN["finetune_after"] == {META}
    assert SEEN["evaluate"] == (META, {META}) and SEEN["evaluate_out"] == {META}
    assert SEEN["merge"] == {CPU}


def test_without_a_device_the_runner_resolves_auto(tmp_path, monkeypatch):
    SEEN.clear()
    monkeypatch.setattr(execute, "model_device", lambda *a: META)
    plugins = spy_manager()
    run_ok(stage("prep", "prepare", "spy_corpus", {"n": 2}), tmp_path, plugins, None)  # type: ignore[arg-type]
    run_ok(stage("up", "upstream", "toy_up"), tmp_path, plugins, None)  # type: ignore[arg-type]
    run_ok(stage("ev", "evaluate", "spy_eval", {}, {"model": "up", "corpus": "prep"}), tmp_path, plugins,
           None)  # type: ignore[arg-type]
    assert SEEN["prepare"] == CPU and SEEN["evaluate"][0] == META


@pytest.mark.filterwarnings("ignore:for .* copying from a non-meta parameter")
def test_toy_finetune_resumes_on_ctx_device(tmp_path):
    """A checkpoint is read back on the CPU and loaded into the model on ctx.device."""
    SEEN.clear()
    plugins = spy_manager()
    run_ok(stage("prep", "prepare", "spy_corpus", {"n": 2}), tmp_path, plugins, CPU)
    run_ok(stage("up", "upstream", "toy_up"), tmp_path, plugins, CPU)
    ft = stage("ft", "finetune", "spy_ft", {"corpus": "nums", "steps": 2}, {"model": "up", "corpus:nums": "prep"})
    ctx_dir = tmp_path / execute.WORK / "ft"
    ctx_dir.mkdir(parents=True)
    model = toy_plugins.ToyUpstream().build(toy_plugins.ToyUpParams(), 0)
    gen = torch.Generator().manual_seed(0)
    torch.save({"model": model.state_dict(), "rng": gen.get_state(), "step": 1}, ctx_dir / "checkpoint.pt")
    outcome = run_ok(ft, tmp_path, plugins, META)
    assert outcome.messages == ["resumed at step 1"]


# ---------------------------------------------------------------------- resolving --device


@pytest.mark.parametrize("text, expected", [("auto", "auto"), (" CPU ", "cpu"), ("cuda", "cuda"),
                                            ("cuda:1", "cuda:1"), (torch.device("cuda", 2), "cuda:2")])
def test_device_spellings(text, expected):
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:-1", "cuda:x", "mps", "meta", ""])
def test_a_bad_device_is_one_sentence(text):
    with pytest.raises(HarnessError) as info:
        parse_device(text)
    assert str(info.value) == f"--device {text!r} is not a device; use auto, cpu, cuda or cuda:N."


def fake_cuda(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)


def test_auto_is_the_gpu_when_there_is_one(monkeypatch):
    fake_cuda(monkeypatch, 0)
    assert model_device() == model_device("auto") == model_device("cpu") == CPU
    fake_cuda(monkeypatch, 2)
    assert model_device() == model_device("cuda") == torch.device("cuda", 0)
    assert model_device("cuda:1") == torch.device("cuda", 1)
    assert model_device("cpu") == CPU


@pytest.mark.parametrize("count, text, message", [
    (0, "cuda", "--device cuda asks for a CUDA GPU, but torch sees none on HOST; use --device cpu or auto."),
    (0, "cuda:0", "--device cuda:0 asks for a CUDA GPU, but torch sees none on HOST; use --device cpu or auto."),
    (1, "cuda:1", "--device cuda:1 asks for GPU 1, but torch sees only cuda:0 on HOST; pick one of those or use "
                  "auto."),
    (2, "cuda:7", "--device cuda:7 asks for GPU 7, but torch sees cuda:0 to cuda:1 on HOST; pick one of those or "
                  "use auto."),
])
def test_a_gpu_that_is_not_there_is_one_sentence(monkeypatch, count, text, message):
    fake_cuda(monkeypatch, count)
    monkeypatch.setattr(model_io.socket, "gethostname", lambda: "HOST")
    with pytest.raises(HarnessError) as info:
        model_device(text)
    assert str(info.value) == message


# ---------------------------------------------------------------------- `harness run --device`


def cli_error(capsys, *argv: str) -> str:
    code = main(["run", *argv])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "Traceback" not in err
    return err


def test_run_refuses_a_bad_device_before_reading_the_recipe(tmp_path, capsys):
    recipe = str(tmp_path / "missing.yaml")
    assert cli_error(capsys, recipe, "--device", "gpu") == \
        "error: --device 'gpu' is not a device; use auto, cpu, cuda or cuda:N."


def test_run_refuses_a_gpu_that_is_not_there(tmp_path, capsys, monkeypatch):
    fake_cuda(monkeypatch, 1)
    monkeypatch.setattr(model_io.socket, "gethostname", lambda: "HOST")
    assert cli_error(capsys, str(tmp_path / "missing.yaml"), "--device", "cuda:3") == \
        "error: --device cuda:3 asks for GPU 3, but torch sees only cuda:0 on HOST; pick one of those or use auto."


def test_run_with_ray_refuses_a_gpu_number(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # refused before Ray is needed
    assert cli_error(capsys, str(tmp_path / "missing.yaml"), "--executor", "ray", "--device", "cuda:1") == \
        ("error: --device cuda:1 names one GPU, but with --executor ray Ray gives each stage its GPU; use "
         "--device auto, cuda or cpu.")


def test_run_help_shows_the_device_option(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--device DEVICE" in capsys.readouterr().out


# ---------------------------------------------------------------------- executors pass the resolved device


def test_the_local_executor_resolves_once_and_hands_the_device_to_each_stage(tmp_path, monkeypatch):
    calls: list[Any] = []

    def fake_execute(st, output, on_progress=None, plugins=None, device=None):
        calls.append(device)
        return Outcome(st.key, "done", 0.0, 0.0, "here")

    monkeypatch.setattr(local, "execute_stage", fake_execute)
    fake_cuda(monkeypatch, 1)
    executor = LocalExecutor(device="auto")
    assert executor.device == torch.device("cuda", 0)
    executor.execute([stage("a", "prepare", "x"), stage("b", "evaluate", "y", inputs={"in": "a"})], set(), tmp_path,
                     lambda s: None, lambda s, o: True, lambda *a: None)
    assert calls == [torch.device("cuda", 0)] * 2
    assert LocalExecutor(device="cpu").device == CPU


@pytest.fixture
def ray_worker(tmp_path, monkeypatch):
    """run_stage_task called here, with execute_stage replaced by a recorder."""
    module = sys.modules[run_stage_task.__module__]
    calls: list[Any] = []

    def fake_execute(st, output, on_progress=None, plugins=None, device=None, on_cache_filled=None):
        calls.append(device)
        return Outcome(st.key, "done", 0.0, 0.0, "here")

    class Events:
        def put_nowait(self, event):
            pass

    monkeypatch.setattr(module, "execute_stage", fake_execute)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored after the test: hide_gpus writes it
    marker, token = write_marker(tmp_path)

    def call(hide_gpus: bool, device: str) -> Outcome:
        return run_stage_task(stage("ft", "finetune", "toy_ft"), str(tmp_path), str(marker), token, toy_manager,
                              Events(), hide_gpus, device)

    return call, calls


def test_a_ray_stage_that_declares_no_gpu_runs_on_the_cpu(ray_worker, monkeypatch):
    call, calls = ray_worker
    fake_cuda(monkeypatch, 1)
    assert call(True, "cuda").status == "done"
    assert call(False, "auto").status == "done"
    assert call(False, "cpu").status == "done"
    assert calls == [CPU, torch.device("cuda", 0), CPU]


def test_a_ray_stage_without_its_gpu_fails_as_a_user_error(ray_worker, monkeypatch):
    call, calls = ray_worker
    fake_cuda(monkeypatch, 0)
    outcome = call(False, "cuda")
    assert outcome.status == "failed" and outcome.user_error and not calls
    assert outcome.error.startswith("--device cuda asks for a CUDA GPU, but torch sees none on ")


def test_the_ray_executor_checks_the_device_spelling():
    assert ray_device("AUTO") == "auto" and ray_device("cuda") == "cuda"
    with pytest.raises(HarnessError, match=r"^--device 'tpu' is not a device"):
        RayExecutor(device="tpu")


# ---------------------------------------------------------------------- the whole toy recipe


def metrics(output: Path) -> dict[tuple[str, str], float]:
    with Store(output, readonly=True) as store:
        return {(m.stage, m.full_name): m.value for m in store.metrics()}


def test_the_device_is_no_part_of_stage_keys_and_changes_no_toy_result(tmp_path):
    """On a GPU machine `auto` is the GPU: the toys give the same numbers there, and the stages run on
    the CPU are reused as they are."""
    manager = toy_manager()
    path = write_recipe(tmp_path)
    plan = build_plan(load_recipe(path, manager), manager)
    on_cpu = run_plan(plan, tmp_path / "out", LocalExecutor(manager, device="cpu"))
    assert on_cpu.ok and len(on_cpu.ran) == len(plan.stages)
    assert run_plan(plan, tmp_path / "out", LocalExecutor(manager)).ran == []
    auto_plan = build_plan(load_recipe(path, manager, output=tmp_path / "auto"), manager)
    assert set(auto_plan.stages) == set(plan.stages)
    assert run_plan(auto_plan, tmp_path / "auto", LocalExecutor(manager)).ok
    assert metrics(tmp_path / "auto") == metrics(tmp_path / "out")
