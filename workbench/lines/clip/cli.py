"""``python -m workbench clip ...``: the CLIP line's commands.

    clip export RUN --out DIR      bundle a finished run (weights + tokenizer, metrics, test artifacts)
    clip export-demo RUN           the same into checkpoints/clip-demo/

Imported at every CLI start-up: heavy imports (torch, the towers) stay inside commands.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from workbench.cli import command


@command("clip", "CLIP from scratch: export a bundle")
def _clip_parser(sub):
    p = sub.add_parser("clip", help=_clip_parser.help, description=(
        "The CLIP line: a ViT and a text transformer trained from scratch. Train with: "
        "python -m workbench train clip, then python -m workbench clip export-demo RUN_ID."))
    sp = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("export", "bundle a finished clip run into a folder"),
                       ("export-demo", "bundle a finished clip run into checkpoints/clip-demo/")):
        e = sp.add_parser(name, help=text)
        e.add_argument("run_id", metavar="RUN")
        e.add_argument("--runs", default=None, help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
        if name == "export":
            e.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_clip)
    return p


def cmd_clip(args) -> int:
    from workbench.lines.clip.bundle import DEMO, export_run

    out = Path(args.out) if args.action == "export" else DEMO
    metrics = export_run(args.run_id, out, args.runs)
    print(f"exported {args.run_id} to {out}", file=sys.stderr)
    print(json.dumps({"out": str(out), "test": metrics.get("test"), "chance": metrics.get("chance"),
                      "zero_shot": metrics.get("zero_shot")}, indent=2))
    return 0
