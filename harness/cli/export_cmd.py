"""`harness export DIR --model LABEL [--seed N] [--format hf|harness] --out DIR`: one model of a run in a
format its family's users load directly (a transformers folder for wav2vec 2.0 and HuBERT; the harness's
model folder for DeCoAR 2.0 and any other family)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.core.registry import default_manager
from harness.models.model_io import export_model
from harness.report.models import find_model


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export", help="write a model of a run as a transformers folder (wav2vec2, hubert) or a harness folder",
        description='Example: harness export runs/x --model "pr · speech_ft alpha=0.25" --format hf --out my_model/ '
                    "(then transformers.AutoModel.from_pretrained('my_model')).")
    parser.add_argument("output", type=Path, help="the output folder of `harness run`")
    parser.add_argument("--model", required=True,
                        help="the model's leaderboard label, its stage key or its folder (see `harness models`)")
    parser.add_argument("--seed", type=int, help="which seed's model, when the run has several")
    parser.add_argument("--format", help="hf (transformers; wav2vec2 and hubert) or harness; default: the "
                                         "family's own format")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write (new or empty)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = find_model(args.output, args.model, args.seed)
    fmt = export_model(model.folder, args.out, default_manager(), args.format)
    seed = f", seed {model.seed}" if model.seed is not None else ""
    print(f"exported {model.full_label}{seed} (stage {model.stage}) as {fmt} to {args.out}")
    return 0
