"""`harness prepare CORPUS --out DIR [--param k=v ...]`: a corpus manifest (and the audio of the
embedded corpora), the same code the recipe's prepare stage runs."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.core.errors import HarnessError
from harness.core.outdir import make_output_dir
from harness.core.params import input_paths, parse_key_values, validate_params
from harness.core.registry import default_manager
from harness.core.stage import StageContext


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "prepare",
        help="prepare a corpus: per-split manifests, vocabularies, metadata (and audio for embedded corpora)",
        description="Prepare a corpus into DIR: <split>.jsonl, vocab.json, meta.json. "
        "Example: harness prepare librispeech --out data/ls --param root=/data/LibriSpeech",
    )
    parser.add_argument("corpus", help="corpus plugin name (see `harness plugins`)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created; must not hold a corpus)")
    parser.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="corpus parameter (repeatable; values read as YAML)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument("--json", action="store_true", help="print meta.json instead of a table")
    parser.set_defaults(func=run)


def _check_out_apart_from_inputs(out: Path, inputs: dict[str, Path]) -> None:
    """Refuse an ``--out`` that is, contains or lies inside an input: replacing it would delete the input."""
    target = out.resolve()
    for name, path in inputs.items():
        source = Path(path).resolve()
        if target == source or target in source.parents or source in target.parents:
            raise HarnessError(f"--out {out} is, contains or lies inside the input {name}={path}; "
                               "choose an --out outside the corpus.")


def run(args: argparse.Namespace) -> int:
    plugins = default_manager()
    info = plugins.get("corpus", args.corpus)
    values = parse_key_values(args.param)
    params = validate_params(info.cls.Params, values, where=f"corpus {args.corpus}")
    missing = [f"{name}={path}" for name, path in input_paths(params).items() if not Path(path).exists()]
    if missing:
        raise HarnessError(
            f"corpus {args.corpus}: {', '.join(missing)} does not exist; pass an existing folder with --param."
        )
    out: Path = args.out
    _check_out_apart_from_inputs(out, input_paths(params))
    if out.exists() and not out.is_dir():
        raise HarnessError(f"{out} is a file, not a folder; choose another --out.")
    make_output_dir(out.parent, "--out")
    if out.exists() and any(out.iterdir()):
        if not args.force:
            raise HarnessError(f"{out} already exists and is not empty; choose another --out or pass --force.")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="harness-prepare-", dir=out.parent) as tmp:
        staging = Path(tmp) / "out"
        staging.mkdir()
        with Progress(
            TextColumn(f"prepare {args.corpus}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            transient=True, console=Console(stderr=True),
        ) as bar:  # fmt: skip
            task = bar.add_task("prepare", total=None)
            ctx = StageContext(
                key=f"prepare-{args.corpus}",
                out_dir=staging,
                work_dir=Path(tmp) / "work",
                cache_root=Path(tmp) / "cache",
                seed=int(getattr(params, "seed", 0) or 0),
                plugins=plugins,
                on_progress=lambda step, total, _info: bar.update(task, completed=step, total=total),
            )
            plugins.create("corpus", args.corpus).prepare(params, staging, ctx)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True))
        return 0
    table = Table(title=f"{args.corpus} -> {out}")
    for col in ("split", "utterances", "hours"):
        table.add_column(col)
    for split in meta.get("splits", []):
        n, hours = meta.get("n_utterances", {}).get(split, ""), meta.get("hours", {}).get(split, "")
        table.add_row(split, str(n), str(hours))
    console = Console(highlight=False)
    console.print(table)
    console.print(f"labels: {', '.join(meta.get('label_fields', [])) or 'none'}")
    return 0
