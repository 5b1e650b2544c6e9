"""``python -m workbench satclip ...``: the SatCLIP line's commands.

    satclip probe [--encoders a,b] [--points N] [--where anywhere|land|gallery] [--seeds S]
                  [--split-level L] [--probes linear,mlp] [--csv FILE] [--out FILE.json]
        linear / MLP probes of frozen location encoders on offline targets (JSON: rows + table)
    satclip export RUN --out DIR      bundle a finished run (weights, metrics + probe table, embeddings)
    satclip export-demo RUN           the same into checkpoints/satclip-demo/

Imported at every CLI start-up: heavy imports (torch, sklearn, rasters) stay inside commands.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from workbench.cli import command
from workbench.errors import ConfigError

MAX_POINTS = 100_000
MAX_SEEDS = 20


@command("satclip", "SatCLIP line: location-encoder probes, export a bundle")
def _satclip_parser(sub):
    p = sub.add_parser("satclip", help=_satclip_parser.help, description=(
        "The SatCLIP line: images and locations in one space, and probes that judge location "
        "encoders by what they predict about a place."))
    sp = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    s = sp.add_parser("probe", help="linear and MLP probes of frozen location encoders (JSON)")
    s.add_argument("--encoders", default=None,
                   help="comma-separated (default: all): raw_latlon, geoclip, rff, sh10, sh40, sh40_siren")
    s.add_argument("--points", default="5000", help=f"probe points, 50..{MAX_POINTS} (default 5000)")
    s.add_argument("--where", default="anywhere",
                   help="anywhere (uniform by area, default), land or gallery (GeoCLIP photo locations)")
    s.add_argument("--seeds", default="5", help=f"splits / MLP inits, 1..{MAX_SEEDS} (default 5)")
    s.add_argument("--split-level", default="4", help="S2 level of the held-out cells, 1..10 (default 4)")
    s.add_argument("--probes", default="linear,mlp", help="comma-separated: linear, mlp (default both)")
    s.add_argument("--csv", default=None, help="probe your own CSV of lat, lon, target instead of "
                                               "the built-in targets (at its points)")
    s.add_argument("--out", default=None, help="also write the JSON to this file")

    for name, text in (("export", "bundle a finished satclip run into a folder"),
                       ("export-demo", "bundle a finished satclip run into checkpoints/satclip-demo/")):
        e = sp.add_parser(name, help=text)
        e.add_argument("run_id", metavar="RUN")
        e.add_argument("--runs", default=None, help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
        if name == "export":
            e.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_satclip)
    return p


def cmd_satclip(args) -> int:
    return {"probe": _probe, "export": _export, "export-demo": _export}[args.action](args)


def _export(args) -> int:
    from workbench.lines.satclip.bundle import DEMO, export_run

    out = Path(args.out) if args.action == "export" else DEMO
    metrics = export_run(args.run_id, out, args.runs)
    print(f"exported {args.run_id} to {out}", file=sys.stderr)
    print(json.dumps({"out": str(out), "val": metrics.get("val"), "untrained": metrics.get("untrained"),
                      "probes": len(metrics.get("probes") or [])}, indent=2))
    return 0


def _int_in(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--{name} must be an integer in [{low}, {high}], got {text!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"--{name} must be in [{low}, {high}], got {value}")
    return value


def _names(text: str, option: str, valid: tuple[str, ...]) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        raise ConfigError(f"{option}: unknown {unknown or text!r}. Available: {list(valid)}")
    return names


def _probe(args) -> int:
    # Check every argument before any slow import or file read.
    points = _int_in("points", args.points, 50, MAX_POINTS)
    seeds = _int_in("seeds", args.seeds, 1, MAX_SEEDS)
    level = _int_in("split-level", args.split_level, 1, 10)
    if args.where not in ("anywhere", "land", "gallery"):
        raise ConfigError(f"--where: unknown {args.where!r}. Available: ['anywhere', 'land', 'gallery']")
    from workbench.lines.satclip import probes

    encoders = probes.default_encoders(
        None if args.encoders is None else _names(args.encoders, "--encoders", probes.ENCODER_NAMES))
    probe_kinds = _names(args.probes, "--probes", probes.PROBES)

    from workbench.lines.satclip import probe_targets

    start = time.perf_counter()
    if args.csv:
        latlon, targets = probes.csv_target(args.csv)
        source = {"csv": str(args.csv), "points": len(latlon)}
    else:
        latlon = probe_targets.sample_probe_points(points, seed=0, where=args.where)
        targets = probe_targets.probe_targets(latlon[:, 0], latlon[:, 1])
        source = {"where": args.where, "points": points, "land_points": int(targets["land"].sum())}
    rows = probes.run_probes(encoders, latlon, targets, seeds=tuple(range(seeds)), split_level=level,
                             probes=probe_kinds)
    result = {**source, "seeds": seeds, "split_level": level,
              "seconds": round(time.perf_counter() - start, 1), "rows": rows,
              "table": probes.probe_table(rows).to_dict(orient="records")}
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    print(text)
    return 0
