"""Merges: linear end points, TIES against hand-computed values, the streaming engine and `harness merge`."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.cli import main
from harness.core.errors import CheckpointError
from harness.merging.engine import merge_files
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
    got = SequentialMerge().merge_tensor("w", base, [ft], SequentialParams(alpha=0.25))
    assert torch.equal(got, torch.tensor([1.5, -1.0]))
    assert SequentialMerge.mode == "chain"


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
    got = TiesMerge().merge_tensor("w", base, [base + t for t in taus], params)
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


def test_mismatched_models_fail_with_one_sentence(models, tmp_path):
    save_file({"encoder.w": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match=r"other.safetensors does not have the tensors of the base model"):
        merge_files(LinearMerge(), LinearParams(), models["base"], [tmp_path / "other.safetensors"], tmp_path / "o")
    with pytest.raises(CheckpointError, match=r"model .*nope does not exist; give a .safetensors file"):
        merge_files(LinearMerge(), LinearParams(), models["base"], [tmp_path / "nope"], tmp_path / "o")


def test_merge_command(models, tmp_path, capsys):
    out = tmp_path / "cli.safetensors"
    code = main(
        [
            "merge",
            "--method",
            "ties",
            "--base",
            str(models["base"]),
            "--models",
            str(models["a"]),
            str(models["b"] / "model.safetensors"),
            "--param",
            "density=0.5",
            "--param",
            "lambda=0.25",
            "--out",
            str(out),
        ]
    )
    assert code == 0 and out.is_file()
    assert "merged 2 tensors of 3 models" in capsys.readouterr().out
    assert (
        main(
            [
                "merge",
                "--method",
                "ties",
                "--base",
                str(models["base"]),
                "--models",
                str(models["a"]),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "already exists" in capsys.readouterr().err
    assert (
        main(
            [
                "merge",
                "--method",
                "ties",
                "--base",
                str(models["base"]),
                "--models",
                str(models["a"]),
                "--param",
                "densty=0.5",
                "--out",
                str(tmp_path / "y.safetensors"),
            ]
        )
        == 2
    )
    assert "unknown key 'densty'; did you mean 'density'?" in capsys.readouterr().err
