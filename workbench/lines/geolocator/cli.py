"""Geolocator commands of ``python -m workbench``:

    predict --checkpoint PATH --image IMG [--top-k K]   top-k cells, probabilities, point and place (JSON)
    export onnx RUN_OR_CHECKPOINT [--out FILE]          ONNX model, verified with onnxruntime
    export checkpoint RUN_OR_CHECKPOINT --out DIR       bundle: model.pt, config, partition, metrics, predictions
    demo RUN_OR_CHECKPOINT [--port P]                   Gradio app on 127.0.0.1
    lr-find CONFIG [k=v ...]                            LR range test: suggestion (JSON) + plot (HTML)

RUN_OR_CHECKPOINT: a run id, a run folder, a bundle folder or a .pt file; the demo bundle
checkpoints/geolocator-demo when omitted.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from workbench.cli import command


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


# -- predict ------------------------------------------------------------------------------


@command("predict", "geolocate a photo with a geolocator checkpoint (JSON)")
def _predict_parser(sub):
    p = sub.add_parser("predict", help=_predict_parser.help, description=(
        "Print the top-k S2 cells with probabilities, the predicted point and the nearest place."))
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint .pt, bundle or run folder, or run id (default: checkpoints/geolocator-demo)")
    p.add_argument("--image", required=True, help="a PNG, JPEG, TIFF, WebP, BMP or GIF image")
    p.add_argument("--top-k", type=int, default=5, help="cells to list (default 5)")
    p.add_argument("--location", choices=("top1", "weighted"), default=None,
                   help="predicted point: top cell centroid or probability-weighted top-k (default: the model's)")
    p.add_argument("--runs", help="runs directory for run ids (default: $WORKBENCH_RUNS or ./runs)")
    p.set_defaults(func=cmd_predict)
    return p


def cmd_predict(args) -> int:
    from workbench.errors import InputError
    from workbench.lines.geolocator.data import load_image

    if not Path(args.image).is_file():
        raise InputError(f"image not found: {args.image}")
    image = load_image(args.image, target_size=1024)  # fail on a non-image before loading the model
    from workbench.data.exif import exif_gps
    from workbench.lines.geolocator.predict import load_predictor

    gps = exif_gps(args.image)
    if gps.status == "invalid":
        print(gps.message(), file=sys.stderr)  # a note: the prediction itself is still made
    predictor = load_predictor(args.checkpoint, runs_root=args.runs)
    result = predictor.predict(image, top_k=args.top_k, location=args.location)
    _print_json({"image": args.image, "checkpoint": predictor.source, **result.to_json(),
                 "exif_gps": {"status": gps.status, "lat": gps.lat, "lon": gps.lon, "reason": gps.reason}})
    return 0


# -- export -------------------------------------------------------------------------------


@command("export", "export a geolocator: ONNX model or checkpoint bundle")
def _export_parser(sub):
    p = sub.add_parser("export", help=_export_parser.help)
    es = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    o = es.add_parser("onnx", help="images -> cell probabilities as ONNX, checked with onnxruntime")
    o.add_argument("source", nargs="?", default=None, metavar="RUN_OR_CHECKPOINT")
    o.add_argument("--out", default=None, help="output .onnx file (default: <checkpoint folder>/model.onnx)")
    o.add_argument("--opset", type=int, default=17)
    c = es.add_parser("checkpoint", help="bundle a run: model.pt, config.yaml, partition.csv, metrics.json, "
                                         "predictions.parquet")
    c.add_argument("source", metavar="RUN_OR_CHECKPOINT")
    c.add_argument("--out", required=True, help="output folder (e.g. checkpoints/geolocator-demo)")
    b = es.add_parser("embeddings", help="(re)write a bundle's embeddings/ (backbone features and logits of its "
                                         "predictions split) from its own weights")
    b.add_argument("source", metavar="BUNDLE")
    for q in (o, c, b):
        q.add_argument("--runs", help="runs directory for run ids (default: $WORKBENCH_RUNS or ./runs)")
    p.set_defaults(func=cmd_export)
    return p


def cmd_export(args) -> int:
    if args.format == "onnx":
        from workbench.lines.geolocator.export import export_onnx
        from workbench.lines.geolocator.predict import resolve_checkpoint

        ckpt = resolve_checkpoint(args.source, args.runs)
        out = Path(args.out) if args.out else ckpt.parent / "model.onnx"
        _print_json(export_onnx(ckpt, out, opset=args.opset, runs_root=args.runs))
        return 0
    if args.format == "embeddings":
        from workbench.lines.geolocator.export import bundle_embeddings

        _print_json(bundle_embeddings(args.source, args.runs))
        return 0
    from workbench.lines.geolocator.export import export_bundle

    summary = export_bundle(args.source, args.out, runs_root=args.runs)
    _print_json({"out": args.out, **{k: v for k, v in summary.items() if k in ("n_cells", "source")},
                 **{s: summary[s]["model"] for s in ("val", "test") if s in summary}})
    return 0


# -- demo ---------------------------------------------------------------------------------


@command("demo", "launch a Gradio geolocation demo on 127.0.0.1")
def _demo_parser(sub):
    p = sub.add_parser("demo", help=_demo_parser.help)
    p.add_argument("source", nargs="?", default=None, metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--runs", help="runs directory for run ids (default: $WORKBENCH_RUNS or ./runs)")
    p.set_defaults(func=cmd_demo)
    return p


def cmd_demo(args) -> int:
    from workbench.lines.geolocator.gradio_demo import launch_demo
    from workbench.lines.geolocator.predict import load_predictor

    predictor = load_predictor(args.source, runs_root=args.runs)
    launch_demo(predictor, port=args.port, top_k=args.top_k)
    return 0


# -- lr-find ------------------------------------------------------------------------------


@command("lr-find", "learning-rate range test for a config (suggested LR + plot)")
def _lr_parser(sub):
    p = sub.add_parser("lr-find", help=_lr_parser.help)
    p.add_argument("config", help="YAML config or preset name (e.g. geolocator-demo)")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p.add_argument("--start-lr", type=float, default=1e-6)
    p.add_argument("--end-lr", type=float, default=1.0)
    p.add_argument("--num-iter", type=int, default=100)
    p.add_argument("--plot", default="lr_finder.html", help="plot file (HTML); '' for none")
    p.set_defaults(func=cmd_lr_find)
    return p


def cmd_lr_find(args) -> int:
    from workbench.experiments import create_experiment, load_config
    from workbench.lines.geolocator.lr_finder import lr_range_test

    cfg = load_config(args.config, args.overrides)
    result = lr_range_test(create_experiment(cfg), args.start_lr, args.end_lr, args.num_iter)
    if args.plot:
        from workbench.lines.geolocator.figures import lr_finder_figure

        lr_finder_figure(result.lrs, result.losses, result.suggestion, result.raw_losses).write_html(
            args.plot, include_plotlyjs=True)
    out = result.to_dict()
    out.pop("lrs"), out.pop("losses")
    _print_json({**out, "plot": args.plot or None})
    return 0
