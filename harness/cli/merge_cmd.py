"""`harness merge --method NAME --base PATH --models PATH... [--param k=v ...] --out PATH`: merge
fine-tuned models with their pre-trained model tensor by tensor, the same code as the merge stage.

Paths are ``.safetensors`` files or harness model folders. An output ending in ``.safetensors`` is a
file; anything else is a model folder (``model.safetensors``, plus θ0's ``upstream.json`` when the
base is a folder).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.params import parse_key_values, validate_params
from harness.core.registry import default_manager
from harness.merging.engine import merge_files


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "merge",
        help="merge fine-tuned models with their pre-trained model (linear, ties, sequential, ...)",
        description="Merge tensor by tensor. Example: harness merge --method ties --base pre.safetensors "
        "--models a.safetensors b.safetensors --param density=0.2 --out merged.safetensors",
    )
    parser.add_argument("--method", required=True, help="merge plugin name (see `harness plugins`)")
    parser.add_argument("--base", type=Path, required=True, help="the pre-trained model θ0")
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="fine-tuned models θ1..θn")
    parser.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="merge parameter (repeatable; values read as YAML)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output .safetensors file or model folder")
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    plugins = default_manager()
    info = plugins.get("merge", args.method)
    params = validate_params(info.cls.Params, parse_key_values(args.param), where=f"merge {args.method}")
    out: Path = args.out
    target = out if out.suffix == ".safetensors" else out / "model.safetensors"
    if target.exists() and not args.force:
        raise HarnessError(f"{target} already exists; choose another --out or pass --force.")
    report = merge_files(info.cls(), params, args.base, list(args.models), out)
    copied = f"; copied from the base unmerged: {', '.join(report.copied)}" if report.copied else ""
    print(f"merged {report.merged} tensors of {len(args.models) + 1} models into {report.out_path}{copied}")
    return 0
