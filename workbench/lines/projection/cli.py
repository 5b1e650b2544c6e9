"""``python -m workbench projection ...``: split pre-encoded data, evaluate, query and export.

    projection split DIR [--source all] [--val-fraction F] [--test-fraction F] ...   image-level split + tuning subset
    projection evaluate [SOURCE] [--split test]          R@K / ranks of a model next to its baselines (JSON)
    projection retrieve [SOURCE] --text "..." | --image-row N [--top K]   top images for a caption / captions for an image
    projection export RUN --out DIR                      bundle a finished run
    projection export-demo RUN                           the same into checkpoints/projection-demo/

SOURCE: a bundle folder, model.pt, run folder or run id (default: checkpoints/projection-demo).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from workbench.cli import command


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


@command("projection", "projection heads: split pre-encoded data, evaluate, retrieve, export a bundle")
def _projection_parser(sub):
    p = sub.add_parser("projection", help=_projection_parser.help, description=(
        "Projection heads over frozen embeddings (experiment kind 'projection'). The demo bundle is made "
        "with: python -m workbench train projection-demo, then python -m workbench projection export-demo RUN_ID."))
    p.add_argument("--runs", help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
    sp = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    s = sp.add_parser("split", help="image-level train/val/test split and a tuning subset, written once")
    s.add_argument("dir", metavar="DIR", help="folder with {source}_image_embeddings.pt, ..._text_embeddings.pt, "
                                              "..._metadata.json")
    s.add_argument("--source", default="all", help="split to divide (default: all; the note's data: train2017)")
    s.add_argument("--val-fraction", type=float, default=0.1, help="fraction of the images in val (default 0.1)")
    s.add_argument("--test-fraction", type=float, default=0.1, help="fraction of the images in test (default 0.1)")
    s.add_argument("--tuning-fraction", type=float, default=0.25,
                   help="fraction of the training pairs in train_tuning (default 0.25)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--group", choices=("auto", "image"), default="auto",
                   help="auto: keep images of one metadata 'group' (e.g. an S2 cell) together; image: per image")
    s.add_argument("--force", action="store_true", help="re-split although a different split exists")

    for name, text in (("evaluate", "test R@K of a model and its baselines (JSON)"),
                       ("retrieve", "top images for a caption, or top captions for a test image (JSON)")):
        e = sp.add_parser(name, help=text)
        e.add_argument("source", nargs="?", default=None, metavar="SOURCE",
                       help="bundle folder, model.pt, run folder or run id (default: checkpoints/projection-demo)")
        if name == "evaluate":
            e.add_argument("--split", default=None, help="data split to evaluate (default: the model's test split)")
        else:
            what = e.add_mutually_exclusive_group(required=True)
            what.add_argument("--text", help="a caption to search the test images for")
            what.add_argument("--image-row", help="a test image (row of the embeddings artifact)")
            e.add_argument("--top", type=int, default=5)

    for name, text in (("export", "bundle a finished projection run into a folder"),
                       ("export-demo", "bundle a finished run into checkpoints/projection-demo/")):
        e = sp.add_parser(name, help=text)
        e.add_argument("run_id", metavar="RUN")
        if name == "export":
            e.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_projection)
    return p


def cmd_projection(args) -> int:
    return {"split": _split, "evaluate": _evaluate, "retrieve": _retrieve, "export": _export,
            "export-demo": _export}[args.action](args)


def _split(args) -> int:
    from workbench.contrastive.encoded import SplitSpec, split_encoded

    spec = SplitSpec(source=args.source, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                     tuning_fraction=args.tuning_fraction, seed=args.seed, group=args.group)
    record = split_encoded(Path(args.dir), spec, force=args.force, say=lambda m: print(m, file=sys.stderr))
    _print_json(record)
    return 0


def _source(args):
    from workbench.errors import NotFoundError
    from workbench.lines.projection.bundle import DEMO, load_projection

    if args.source is None and not (DEMO / "model.pt").is_file():
        raise NotFoundError(f"no demo bundle in {DEMO}; pass SOURCE (a bundle, run folder or run id)")
    return load_projection(args.source or DEMO, args.runs)


def _evaluate(args) -> int:
    from workbench.contrastive.encoded import load_encoded
    from workbench.lines.projection import evaluate as ev
    from workbench.lines.projection.data import resolve

    lp = _source(args)
    cfg = lp.cfg
    pairs = load_encoded(resolve(cfg.data.dir), args.split or cfg.data.test_split)
    train = load_encoded(resolve(cfg.data.dir), cfg.data.train_split)
    result = {"source": lp.source.label, "split": pairs.split,
              "images": pairs.n_images, "pairs": len(pairs.text),
              "trained": ev.evaluate_model(lp.model, pairs, cfg.eval.chunk_size),
              "baselines": ev.baselines(train, pairs, cfg.model.output_dim, cfg.eval.baseline_seed, cfg.eval.chunk_size)}
    _print_json(result)
    return 0


def _retrieve(args) -> int:
    from workbench.errors import InputError
    from workbench.lines.projection import bundle

    if args.text is not None:
        bundle.check_query(args.text)  # before loading anything
    lp = _source(args)
    if args.text is not None:
        name = bundle.text_encoder_name(lp)
        if name is None:
            raise InputError(f"{lp.source.label} does not name an offline text encoder in its metrics "
                             "('encoders'), so a typed caption cannot be embedded; use --image-row")
        from workbench.encoders.text import create_text_encoder

        query = bundle.encode_query(lp, args.text, create_text_encoder(name))
        table = bundle.images_for_query(lp, query, args.top)
        cols = [c for c in ("rank", "score", "image_id", "place", "country_name", "continent", "lat", "lon")
                if c in table]
        _print_json({"query": args.text, "images": table[cols].to_dict(orient="records")})
    else:
        try:
            row = int(args.image_row)
        except ValueError:
            raise InputError(f"--image-row must be an integer, got {args.image_row!r}") from None
        table = bundle.captions_for_image(lp, row, args.top)
        _print_json({"image_row": row, "captions": table.to_dict(orient="records")})
    return 0


def _export(args) -> int:
    from workbench.lines.projection.bundle import DEMO, export_run

    out = Path(args.out) if args.action == "export" else DEMO
    metrics = export_run(args.run_id, out, args.runs)
    print(f"exported {args.run_id} to {out}", file=sys.stderr)
    _print_json({"out": str(out), "test": metrics.get("test"), "baselines": metrics.get("baselines")})
    return 0
