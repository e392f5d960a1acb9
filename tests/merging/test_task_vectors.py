"""Merges: linear end points, TIES against hand-computed values, the task-arithmetic family against
the formulas each method had on its own, the streaming engine and `harness merge`."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.cli import main
from harness.core.errors import CheckpointError, StageError
from harness.merging.engine import TensorView, merge_files
from harness.merging.task_vectors import TaskVectorMerge, TrimThresholds
from plugins.merges.linear import LinearMerge, LinearParams
from plugins.merges.sequential import SequentialMerge, SequentialParams
from plugins.merges.ties import TiesMerge, TiesParams


def state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "encoder.w": torch.randn(6, 5, generator=g),
        "encoder.b": torch.randn(5, generator=g).to(torch.bfloat16),
        "final_proj.weight": torch.randn(3, 5, generator=g),
        "num_batches_tracked": torch.tensor(seed + 7),
    }


@pytest.fixture
def models(tmp_path):
    paths = {}
    for name, seed in (("base", 0), ("a", 1), ("b", 2)):
        folder = tmp_path / name
        folder.mkdir()
        save_file(state(seed), str(folder / "model.safetensors"))
        (folder / "upstream.json").write_text(json.dumps({"family": "toy", "config": {"name": name}}))
        paths[name] = folder
    return paths


def test_linear_alpha_0_and_1_reproduce_theta0_and_theta_ft_exactly(models, tmp_path):
    base, ft = load_file(models["base"] / "model.safetensors"), load_file(models["a"] / "model.safetensors")
    for alpha, expected in ((0.0, base), (1.0, ft)):
        report = merge_files(LinearMerge(), LinearParams(alpha=alpha), models["base"], [models["a"]], tmp_path / "m")
        out = load_file(tmp_path / "m" / "model.safetensors")
        assert report.merged == 2 and report.copied == ["final_proj.weight", "num_batches_tracked"]
        for k in ("encoder.w", "encoder.b"):
            assert out[k].dtype == expected[k].dtype and torch.equal(out[k], expected[k]), (alpha, k)
        for k in report.copied:  # pre-training-only head and integer buffer come from θ0
            assert torch.equal(out[k], base[k])
    assert json.loads((tmp_path / "m" / "upstream.json").read_text())["config"] == {"name": "base"}
    merge_files(LinearMerge(), LinearParams(alpha=0.25), models["base"], [models["a"], models["b"]], tmp_path / "x")
    out = load_file(tmp_path / "x" / "model.safetensors")
    b = load_file(models["b"] / "model.safetensors")
    torch.testing.assert_close(
        out["encoder.w"], base["encoder.w"] + 0.25 * ((ft["encoder.w"] + b["encoder.w"]) / 2 - base["encoder.w"])
    )
    assert LinearMerge().shortcut(LinearParams(alpha=0.0), 2) == "base"
    assert LinearMerge().shortcut(LinearParams(alpha=1.0), 1) == "model"
    assert LinearMerge().shortcut(LinearParams(alpha=1.0), 2) is None


def test_sequential_link_interpolates_with_the_previous_model():
    base, ft = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 2.0])
    got = SequentialMerge().merge_tensor("w", base, [ft], SequentialParams(alpha=0.25), None)
    assert torch.equal(got, torch.tensor([1.5, -1.0]))
    assert SequentialMerge.mode == "chain"


def test_sequential_link_refuses_several_models(models, tmp_path):
    with pytest.raises(StageError, match="exactly one fine-tuned model with the previous link, got 2"):
        merge_files(SequentialMerge(), SequentialParams(), models["base"], [models["a"], models["b"]], tmp_path / "s")


def test_ties_tensor_scope_matches_a_hand_computed_example():
    base = torch.ones(4)
    taus = [
        torch.tensor([3.0, -1.0, 2.0, -4.0]),
        torch.tensor([-2.0, 5.0, -1.0, 1.5]),
        torch.tensor([1.0, -2.0, -6.0, 3.0]),
    ]
    # trim to 3 of 4: [3,0,2,-4], [-2,5,0,1.5], [0,-2,-6,3]; summed mass [1,3,-4,0.5] elects [+,+,-,+];
    # agreeing non-zeros: {3}, {5}, {-6}, {1.5, 3} -> [3, 5, -6, 2.25]; lambda 0.5 on θ0 = 1
    params = TiesParams.model_validate({"density": 0.75, "scope": "tensor", "lambda": 0.5})
    got = TiesMerge().merge_tensor("w", base, [base + t for t in taus], params, None)
    assert torch.equal(got, torch.tensor([2.5, 3.5, -2.0, 2.125]))


def test_ties_model_scope_trims_over_the_whole_model(tmp_path):
    base = {"a": torch.zeros(2), "b": torch.zeros(2)}
    t1 = {"a": torch.tensor([0.1, 4.0]), "b": torch.tensor([-3.0, 0.2])}
    t2 = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5, -0.1])}
    for name, sd in (("base", base), ("t1", t1), ("t2", t2)):
        save_file(sd, str(tmp_path / f"{name}.safetensors"))
    files = [tmp_path / "t1.safetensors", tmp_path / "t2.safetensors"]
    # model scope keeps 2 of 4 per model: t1 -> a=[0,4], b=[-3,0]; t2 -> a=[1,2], b=[0,0]
    merge_files(TiesMerge(), TiesParams(density=0.5), tmp_path / "base.safetensors", files, tmp_path / "m.safetensors")
    out = load_file(tmp_path / "m.safetensors")
    assert torch.equal(out["a"], torch.tensor([1.0, 3.0])) and torch.equal(out["b"], torch.tensor([-3.0, 0.0]))
    # tensor scope keeps 1 of 2 per tensor: t2 -> a=[0,2], b=[0.5,0]; b[0] elects -: [-3, 0]
    tensor = TiesParams(density=0.5, scope="tensor")
    merge_files(TiesMerge(), tensor, tmp_path / "base.safetensors", files, tmp_path / "t.safetensors")
    out = load_file(tmp_path / "t.safetensors")
    assert torch.equal(out["a"], torch.tensor([0.0, 3.0])) and torch.equal(out["b"], torch.tensor([-3.0, 0.0]))


def test_ties_thresholds_are_returned_by_prepare_not_kept_on_the_plugin(tmp_path):
    base = {"a": torch.zeros(2), "b": torch.zeros(2)}
    t1 = {"a": torch.tensor([0.1, 4.0]), "b": torch.tensor([-3.0, 0.2])}
    t2 = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5, -0.1])}
    plugin, params = TiesMerge(), TiesParams(density=0.5)
    state = plugin.prepare(DictSource(base), [DictSource(t1), DictSource(t2)], params)
    assert state == TrimThresholds((3.0, 1.0)) and vars(plugin) == {}
    # any tensor, in any order, from the state alone; one plugin serves two merges at once
    other = plugin.prepare(DictSource(base), [DictSource(t2), DictSource(t1)], params)
    assert torch.equal(plugin.merge_tensor("b", base["b"], [t1["b"], t2["b"]], params, state), torch.tensor([-3.0, 0]))
    assert torch.equal(plugin.merge_tensor("a", base["a"], [t2["a"], t1["a"]], params, other), torch.tensor([1.0, 3]))
    with pytest.raises(RuntimeError, match="model-scope trimming needs the thresholds returned by prepare"):
        plugin.merge_tensor("a", base["a"], [t1["a"], t2["a"]], params, None)
    assert TiesMerge().prepare(DictSource(base), [DictSource(t1)], TiesParams(scope="tensor")) is None


class DictSource:
    """A state dict as a :class:`harness.api.TensorSource`."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = tensors

    def keys(self) -> list[str]:
        return list(self.tensors)

    def get_tensor(self, name: str) -> torch.Tensor:
        return self.tensors[name]


# today's formulas of each method, written out on their own: the family must reproduce them bit for bit
def reference_linear(base, finetuned, alpha):
    if len(finetuned) == 1:
        return torch.lerp(base, finetuned[0], alpha)
    return base + alpha * torch.stack([t - base for t in finetuned]).mean(0)  # θ0 + α · mean task vector


def reference_sequential(base, ft, alpha):
    return torch.lerp(base, ft, alpha)


def reference_keep(numel, density):
    return max(1, min(numel, int(round(density * numel))))


def reference_kth(values, k):
    return float(torch.kthvalue(values, values.numel() - k + 1).values)


def reference_thresholds(base, finetuned, density):
    names = list(base)
    total = sum(base[n].numel() for n in names)
    mags = [torch.cat([(m[n] - base[n]).abs().flatten() for n in names]) for m in finetuned]
    return [reference_kth(v, reference_keep(total, density)) for v in mags]


def reference_ties(base, finetuned, thresholds, density, lambda_):
    deltas = torch.stack([t - base for t in finetuned])
    mags = deltas.abs()
    if thresholds is None:
        flat = mags.flatten(1)
        k = reference_keep(flat.shape[1], density)
        thr = torch.tensor([reference_kth(row, k) for row in flat], dtype=deltas.dtype)
    else:
        thr = torch.tensor(thresholds, dtype=deltas.dtype)
    thr = thr.view(-1, *([1] * (deltas.dim() - 1)))
    trimmed = torch.where(mags >= thr, deltas, torch.zeros_like(deltas))
    elected = torch.where(trimmed.sum(0) >= 0, 1.0, -1.0).to(deltas.dtype)
    agree = torch.sign(trimmed) == elected
    total = torch.where(agree, trimmed, torch.zeros_like(trimmed)).sum(0)
    return base + lambda_ * (total / agree.sum(0).clamp(min=1).to(deltas.dtype))


@pytest.mark.parametrize("seed", range(6))
def test_the_family_reproduces_each_methods_own_formula_bit_for_bit(seed):
    g = torch.Generator().manual_seed(seed)
    shapes = {"w": (7, 5), "b": (5,), "c": (2, 3, 4)}
    n = 1 + seed % 3
    base = {k: torch.randn(*s, generator=g) for k, s in shapes.items()}
    tuned = [{k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in base.items()} for _ in range(n)]
    if seed % 2:  # ties in magnitude and exact zeros, which trimming and sign election must treat alike
        tuned[0]["w"][0] = base["w"][0]
        tuned[-1]["c"][1] = base["c"][1] + 0.25
    if n == 2:  # opposite task vectors: a zero summed mass elects the positive sign
        base["b"].zero_()
        tuned[1]["b"] = -tuned[0]["b"]
    for alpha in (0.0, 0.25, 0.5, 0.75, 1.0, float(torch.rand(1, generator=g))):
        linear, linear_params = LinearMerge(), LinearParams(alpha=alpha)
        state = linear.prepare(DictSource(base), [DictSource(t) for t in tuned], linear_params)
        for k in shapes:
            got = linear.merge_tensor(k, base[k], [t[k] for t in tuned], linear_params, state)
            assert torch.equal(got, reference_linear(base[k], [t[k] for t in tuned], alpha)), (alpha, k)
            got = SequentialMerge().merge_tensor(k, base[k], [tuned[0][k]], SequentialParams(alpha=alpha), None)
            assert torch.equal(got, reference_sequential(base[k], tuned[0][k], alpha)), (alpha, k)
    for density in (0.1, 0.2, 0.5, 1.0):
        for scope in ("model", "tensor"):
            for lambda_ in (0.25, 1.0):
                params = TiesParams.model_validate({"density": density, "scope": scope, "lambda": lambda_})
                plugin = TiesMerge()
                state = plugin.prepare(DictSource(base), [DictSource(t) for t in tuned], params)
                thresholds = reference_thresholds(base, tuned, density) if scope == "model" else None
                assert (state.per_model if state else None) == (tuple(thresholds) if thresholds else None)
                for k in shapes:
                    got = plugin.merge_tensor(k, base[k], [t[k] for t in tuned], params, state)
                    want = reference_ties(base[k], [t[k] for t in tuned], thresholds, density, lambda_)
                    assert torch.equal(got, want), (density, scope, lambda_, k)


def test_a_tensor_no_model_changed_stays_exactly_theta0_in_a_linear_merge_of_several():
    base = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    plugin = LinearMerge()
    for alpha in (0.25, 1.0):
        params = LinearParams(alpha=alpha)
        got = plugin.merge_tensor("cnn", base, [base.clone() for _ in range(3)], params, None)
        assert torch.equal(got, base), alpha  # the frozen CNN of three fine-tuned models


def test_trimming_without_sign_election_is_the_mean_of_trimmed_task_vectors():
    base = torch.zeros(4)
    taus = [torch.tensor([3.0, -1.0, 2.0, -4.0]), torch.tensor([-2.0, 5.0, -1.0, 1.5])]
    method = TaskVectorMerge(scale=0.5, density=0.5, trim_scope="tensor")
    # trim to 2 of 4: [3,0,0,-4], [-2,5,0,0]; mean [0.5, 2.5, 0, -2]; scale 0.5
    assert torch.equal(method.merge(base, taus, None), torch.tensor([0.25, 1.25, 0.0, -1.0]))
    assert method.shortcut(1) is None and TaskVectorMerge.interpolation(1.0).shortcut(1) == "model"


def test_the_engine_hands_prepare_the_merged_tensors_as_float32(models):
    from safetensors import safe_open

    with safe_open(str(models["base"] / "model.safetensors"), framework="pt") as handle:
        view = TensorView(handle, ["encoder.b"])
        assert view.keys() == ["encoder.b"] and view.get_tensor("encoder.b").dtype == torch.float32


def test_mismatched_models_fail_with_one_sentence(models, tmp_path):
    save_file({"encoder.w": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match=r"other.safetensors does not have the tensors of the base model"):
        merge_files(LinearMerge(), LinearParams(), models["base"], [tmp_path / "other.safetensors"], tmp_path / "o")
    with pytest.raises(CheckpointError, match=r"model .*nope does not exist; give a .safetensors file"):
        merge_files(LinearMerge(), LinearParams(), models["base"], [tmp_path / "nope"], tmp_path / "o")


def merge_args(models, out, *extra):
    """``harness merge --method ties`` of model a (and what ``extra`` adds) on the base, into ``out``."""
    return ["merge", "--method", "ties", "--base", str(models["base"]), "--models", str(models["a"]), *extra,
            "--out", str(out)]


def test_merge_command(models, tmp_path, capsys):
    out = tmp_path / "cli.safetensors"
    extra = (str(models["b"] / "model.safetensors"), "--param", "density=0.5", "--param", "lambda=0.25")
    assert main(merge_args(models, out, *extra)) == 0
    assert out.is_file()
    assert "merged 2 tensors of 3 models" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "out_exists", "message"),
    [
        ((), True, "already exists"),
        (("--param", "densty=0.5"), False, "unknown key 'densty'; did you mean 'density'?"),
    ],
    ids=["out_exists", "param_typo"],
)
def test_merge_command_refuses_in_one_sentence(models, tmp_path, capsys, extra, out_exists, message):
    out = tmp_path / "y.safetensors"
    if out_exists:
        out.write_bytes(b"keep me")
    assert main(merge_args(models, out, *extra)) == 2
    assert message in capsys.readouterr().err
    assert not out_exists or out.read_bytes() == b"keep me"
