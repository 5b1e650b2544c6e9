"""``python -m workbench softprompt ...``: probe, export and describe soft-prompt models.

    softprompt weights --checkpoint PATH --lat LAT --lon LON   K mixture weights, top entries, nearest cities (JSON)
    softprompt export RUN --out DIR                           bundle a finished run (model.pt, index, metrics.json)
    softprompt export-demo RUN                                the same into checkpoints/softprompt-demo/
    softprompt params [CONFIG] [k=v ...]                      honest parameter counts of every architecture
    softprompt summary RUN                                    a run's held-out metrics (and seed study)
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from workbench.cli import command
from workbench.errors import NotFoundError, WorkbenchError


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


@command("softprompt", "soft-prompt models: click weights, export a demo bundle, parameter counts")
def _softprompt_parser(sub):
    p = sub.add_parser("softprompt", help=_softprompt_parser.help, description=(
        "Probe, export and describe soft-prompt models (experiment kind 'softprompt'). The demo bundle "
        "is made with: python -m workbench train softprompt-demo, then "
        "python -m workbench softprompt export-demo RUN_ID."))
    p.add_argument("--runs", help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
    sp = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    w = sp.add_parser("weights", help="mixture weights of one location (JSON)")
    w.add_argument("--checkpoint", default=None,
                   help="bundle folder or model.pt, run folder or run id (default: checkpoints/softprompt-demo)")
    # Strings, not type=float: a bad value then gets our one-line error, not argparse's usage block.
    w.add_argument("--lat", required=True, help="latitude in degrees, [-90, 90]")
    w.add_argument("--lon", required=True, help="longitude in degrees, [-180, 180]")
    w.add_argument("--top", type=int, default=5, help="top entries to describe")
    w.add_argument("--cities", type=int, default=5, help="nearest held-out cities to list")

    for name, text in (("export", "bundle a finished softprompt run into a folder"),
                       ("export-demo", "bundle a finished run into checkpoints/softprompt-demo/")):
        e = sp.add_parser(name, help=text)
        e.add_argument("run_id", metavar="RUN")
        e.add_argument("--checkpoint", choices=("best", "last"), default="best")
        if name == "export":
            e.add_argument("--out", required=True, help="output folder")

    c = sp.add_parser("params", help="trainable / frozen parameter counts of each architecture")
    c.add_argument("items", nargs="*", metavar="[CONFIG] [KEY=VALUE ...]",
                   help="a YAML config (default: the softprompt preset) and key=value overrides")

    b = sp.add_parser("embeddings", help="(re)write a bundle's embeddings/ (held-out cities: location features, "
                                         "predicted vs target sequences) for the Embeddings page")
    b.add_argument("bundle", metavar="BUNDLE", help="a soft-prompt bundle folder")

    s = sp.add_parser("summary", help="a finished run's artifacts/summary.json")
    s.add_argument("run_id", metavar="RUN")
    p.set_defaults(func=cmd_softprompt)
    return p


def cmd_softprompt(args) -> int:
    return {"weights": _weights, "export": _export, "export-demo": _export, "params": _params,
            "summary": _summary, "embeddings": _embeddings}[args.action](args)


def _embeddings(args) -> int:
    from workbench.lines.softprompt.evaluate import bundle_embeddings

    folder = Path(args.bundle)
    for need in ("cities.csv", "index.pt"):
        if not (folder / need).is_file():
            raise NotFoundError(f"{folder / need} not found: {folder} is not a soft-prompt bundle")
    _print_json({"bundle": str(folder), "sets": bundle_embeddings(folder)})
    return 0


def _weights(args) -> int:
    from workbench.lines.softprompt.explorer import DEMO_CHECKPOINT, click_report, load_source

    if args.checkpoint is None and not (DEMO_CHECKPOINT / "model.pt").is_file():
        raise NotFoundError(f"no demo checkpoint in {DEMO_CHECKPOINT}; pass --checkpoint PATH")
    em = load_source(args.checkpoint or DEMO_CHECKPOINT, args.runs)
    report = click_report(em, args.lat, args.lon, top=args.top, n_cities=args.cities)
    if report["weights"] is not None:
        report["sum"] = float(sum(report["weights"]))
    _print_json(report)
    return 0


def _export(args) -> int:
    from workbench.lines.softprompt.explorer import DEMO_CHECKPOINT

    out = Path(args.out) if args.action == "export" else DEMO_CHECKPOINT
    result = export_run(args.run_id, out, args.checkpoint, args.runs)
    print(f"exported {args.run_id} ({args.checkpoint}.pt) to {out}", file=sys.stderr)
    _print_json(result)
    return 0


def export_run(run_id: str, out: Path, which: str = "best", runs_root=None) -> dict:
    """Write ``out/``: model.pt (bundle), config.yaml, index.pt + cities.csv (held-out
    cities), metrics.json (held-out metrics of these weights, of the untrained model and of
    the model-free baselines, parameter counts, the seed study). Returns the metrics."""
    import torch

    from workbench.config import to_dict
    from workbench.lines.softprompt.bundle import bundle_info, bundle_readme
    from workbench.lines.softprompt.experiment import SoftPromptExperiment
    from workbench.train.bundle import save_bundle
    from workbench.lines.softprompt.models import model_dims
    from workbench.runs import RunStore
    from workbench.lines.softprompt.bundle import load_model
    from workbench.lines.softprompt.explorer import location_encoder
    from workbench.lines.softprompt.models import parameter_counts

    run = RunStore(runs_root).get(run_id)
    ckpt = run.checkpoint_dir / f"{which}.pt"
    if not ckpt.is_file():
        raise NotFoundError(f"run '{run.id}' has no checkpoints/{which}.pt")
    summary_path = run.artifacts_dir / "summary.json"
    if not summary_path.is_file():
        raise WorkbenchError(f"run '{run.id}' has no artifacts/summary.json yet; export it once it is done")
    cfg, model = load_model(ckpt)
    # Evaluate exactly the exported weights (the run's summary holds the last weights').
    exp = SoftPromptExperiment(cfg)
    _, val_ds = exp.build_datasets()
    loader = torch.utils.data.DataLoader(val_ds, batch_size=cfg.train.batch_size, collate_fn=exp.collate)
    held_out = exp.evaluate(model, loader)
    untrained = exp.evaluate(exp.untrained_model(), loader)
    summary = json.loads(summary_path.read_text())
    metrics = {
        "source_run": run.id,
        "checkpoint": which,
        "reproduce": [f"python -m workbench train {_config_hint(cfg)}",
                      f"python -m workbench softprompt export-demo {run.id}"],
        "dims": dict(zip(("features", "seq_len", "token_dim"), model_dims(cfg))),
        "n_train": summary.get("n_train"), "n_val": summary.get("n_val"),
        "param_counts": parameter_counts(model, location_encoder(cfg.features.location_encoder)),
        "held_out": held_out,
        "untrained": untrained,
        "baselines": exp.baselines(),
        "seeds": summary.get("seeds"),
    }
    save_bundle(out, to_dict(cfg), model.state_dict(), metrics, bundle_readme(out.name, metrics),
                **bundle_info(model, to_dict(cfg)), source_run=run.id, checkpoint=which)
    for name in ("index.pt", "cities.csv"):
        shutil.copyfile(run.artifacts_dir / name, out / name)
    from workbench.lines.softprompt.evaluate import bundle_embeddings

    bundle_embeddings(out)  # of the exported weights
    return metrics


def _config_hint(cfg) -> str:
    return "softprompt-demo" if cfg.name == "demo" else f"CONFIG  # a softprompt config named '{cfg.name}'"


def _params(args) -> int:
    from workbench.config import applicable
    from workbench.experiments import build_config, load_config
    from workbench.lines.softprompt.models import build_sequence_model, model_dims
    from workbench.lines.softprompt.explorer import location_encoder
    from workbench.lines.softprompt.models import SEQUENCE_MODELS, parameter_counts

    items = list(args.items)
    if items and "=" not in items[0]:
        cfg = load_config(items.pop(0), items)
    else:
        cfg = load_config("softprompt", items)
    encoder = location_encoder(cfg.features.location_encoder)
    out = {"dims": dict(zip(("features", "seq_len", "token_dim"), model_dims(cfg))), "models": {}}
    for arch in SEQUENCE_MODELS.list():
        c = build_config({**_as_dict(cfg), "model": applicable(type(cfg.model), {**_as_dict(cfg)["model"], "arch": arch})})
        out["models"][arch] = parameter_counts(build_sequence_model(c), encoder)
    _print_json(out)
    return 0


def _as_dict(cfg) -> dict:
    from workbench.config import to_dict

    return to_dict(cfg)


def _summary(args) -> int:
    from workbench.runs import RunStore

    run = RunStore(args.runs).get(args.run_id)
    path = run.artifacts_dir / "summary.json"
    if not path.is_file():
        raise NotFoundError(f"run '{run.id}' has no artifacts/summary.json yet (written when the run finishes)")
    _print_json(json.loads(path.read_text()))
    return 0
